"""The worker: records outcomes and claims ready beans in one transaction per turn.

Any number of workers share one PostgreSQL (claims use FOR UPDATE SKIP LOCKED); on SQLite
every write transaction takes the file's write lock first (BEGIN IMMEDIATE). A worker
killed mid-bean loses nothing: its leases expire and another worker runs those beans again.

Lock order everywhere: runs, then run beans, then pools — each sorted — so workers,
cancels and recoveries never deadlock one another.
"""

import logging
import os
import queue
import socket
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, exists, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from metalyard.db import Database, utcnow
from metalyard.errors import TransientError
from metalyard.orchestrator import engine, service
from metalyard.orchestrator.beans import (
    BeanContext,
    Done,
    Fail,
    Outcome,
    Retry,
    Skipped,
    Subject,
    Wait,
)
from metalyard.orchestrator.flows import Flow, FlowRegistry, flows
from metalyard.orchestrator.models import BeanAttempt, BeanPool, Pool, Run, RunBean, Signal
from metalyard.orchestrator.states import BeanState, RunState

log = logging.getLogger(__name__)

_beans = RunBean.__table__
# Every bean update sets the same columns (see _bean_values), so one executemany carries
# a whole turn; the SET clause comes from the parameters' keys.
UPDATE_BEAN = update(_beans).where(_beans.c.id == bindparam("bean_id"))


@dataclass
class Claim:
    """A bean this worker holds the lease (and its pool slots) on."""

    bean_id: int
    run_id: int
    name: str
    attempt: int
    failures: int
    flow: Flow
    subject: Subject
    params: dict[str, Any]
    event: dict[str, Any] | None
    pool_keys: list[str]
    data: dict[str, dict[str, Any]] = field(default_factory=dict)
    started_at: datetime = field(default_factory=utcnow)
    deadline: float = 0.0


@dataclass
class Finished:
    claim: Claim
    outcome: Outcome
    ended_at: datetime
    error: str = ""
    emitted: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


class Worker:
    def __init__(
        self,
        database: Database,
        *,
        registry: FlowRegistry = flows,
        name: str | None = None,
        concurrency: int = 64,
        batch: int = 64,
        lease: float = 30.0,
        poll: float = 1.0,
        linger: float = 0.005,
        drivers=None,
    ) -> None:
        self.database = database
        self.registry = registry
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.concurrency = concurrency
        """Beans running at once; beans mostly wait on BMCs and agents, so threads are cheap."""
        self.batch = batch
        self.lease = lease
        self.poll = poll
        self.linger = linger
        """Seconds to let outcomes gather before a turn: bigger batches, less CPU per bean."""
        self.drivers = drivers
        self.executed = 0
        self._inflight: dict[int, Claim] = {}
        self._abandoned: set[int] = set()
        self._finished: queue.SimpleQueue[Finished] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_heartbeat = 0.0
        self._next_maintenance = 0.0

    # Life cycle ------------------------------------------------------------------------

    def start(self) -> "Worker":
        """Run in background threads (the worker embedded in `metalyard serve`)."""
        self._thread = threading.Thread(target=self.run_forever, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_forever(self) -> None:
        service.local_workers.add(self._wake)
        listener = self._listen() if not self.database.is_sqlite else None
        try:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="bean") as pool:
                while not self._stopping.is_set():
                    try:
                        busy = self.step(pool)
                    except Exception:
                        log.exception("worker %s: turn failed; trying again", self.name)
                        busy = False
                    if not busy:
                        self._wake.wait(self.poll)
                        self._wake.clear()
                    if self._finished.qsize() < len(self._inflight) // 2:
                        self._stopping.wait(self.linger)
                self._drain(pool)
        finally:
            service.local_workers.discard(self._wake)
            if listener is not None:
                listener.join(timeout=5)

    def step(self, pool: ThreadPoolExecutor, *, claim: bool = True) -> bool:
        """One turn: record outcomes and claim more, keep leases, recover. True if it moved."""
        finished = self._collect()
        free = self.concurrency - len(self._inflight) if claim else 0
        claims = self._turn(finished, min(free, self.batch)) if finished or free > 0 else []
        for item in claims:
            self._inflight[item.bean_id] = item
            pool.submit(self._execute, item).add_done_callback(self._on_done)
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._heartbeat()
            self._next_heartbeat = now + self.lease / 3
        if now >= self._next_maintenance:
            self._maintain()
            self._next_maintenance = now + min(self.lease / 2, 5.0)
        return bool(finished or claims)

    def _drain(self, pool: ThreadPoolExecutor) -> None:
        """On stop: record the beans still running, so nothing waits for a lease to expire."""
        deadline = time.monotonic() + self.lease
        while self._inflight and time.monotonic() < deadline:
            self._wake.wait(0.05)
            self._wake.clear()
            self.step(pool, claim=False)

    def _on_done(self, future: Future) -> None:
        self._finished.put(future.result())
        self._wake.set()

    def _collect(self) -> list[Finished]:
        finished = []
        while True:
            try:
                item = self._finished.get_nowait()
            except queue.Empty:
                break
            if item.claim.bean_id in self._abandoned:
                self._abandoned.discard(item.claim.bean_id)
                continue
            finished.append(item)
        now = time.monotonic()
        for bean_id, claim in list(self._inflight.items()):
            if claim.deadline < now and bean_id not in self._abandoned:
                # The thread cannot be stopped; its result is dropped when it comes.
                self._abandoned.add(bean_id)
                timeout = claim.flow.bean(claim.name).timeout
                finished.append(
                    Finished(
                        claim, Retry(0, f"timed out after {timeout:g}s"), utcnow(), error="timeout"
                    )
                )
        for item in finished:
            self._inflight.pop(item.claim.bean_id, None)
        return finished

    # The turn --------------------------------------------------------------------------

    def _turn(self, finished: list[Finished], free: int) -> list[Claim]:
        with self.database.transaction() as session:
            now = utcnow()
            made_ready, recorded = self._record(session, finished, now) if finished else (False, [])
            candidates = self._candidates(session, free * 2, now) if free > 0 else []
            needs = _pool_needs(session, [c.id for c in candidates])
            releases = [f.claim for f in finished if f.claim.bean_id in recorded]
            granted = self._take_slots(session, candidates, needs, releases, free)
            claims = self._mark_running(session, granted, needs, now)
            if made_ready and len(self._inflight) + len(claims) >= self.concurrency:
                service.notify_workers(session)  # more is ready than this worker can take
        return claims

    def _record(
        self, session: Session, finished: list[Finished], now: datetime
    ) -> tuple[bool, set[int]]:
        """Write the outcomes of beans whose lease is still ours.

        Returns whether any bean became ready, and which outcomes were recorded.
        """
        runs = dict(
            session.execute(
                select(Run.id, Run.flow)
                .where(
                    Run.id.in_(sorted({f.claim.run_id for f in finished})),
                    Run.state == RunState.RUNNING,
                )
                .order_by(Run.id)
                .with_for_update()
            ).all()
        )
        rows = session.execute(
            select(
                _beans.c.id,
                _beans.c.run_id,
                _beans.c.name,
                _beans.c.state,
                _beans.c.lease_owner,
                _beans.c.failures,
            )
            .where(_beans.c.run_id.in_(list(runs)))
            .order_by(_beans.c.id)
            .with_for_update()
        ).all()
        by_id = {row.id: row for row in rows}
        recorded = {
            f.claim.bean_id
            for f in finished
            if (row := by_id.get(f.claim.bean_id)) is not None
            and row.state is BeanState.RUNNING
            and row.lease_owner == self.name
        }
        states = {row.id: row.state for row in rows}
        updates, attempts, waits = {}, [], []
        for item in finished:
            if item.claim.bean_id not in recorded:
                continue  # cancelled, or lost to lease expiry: another worker owns it now
            values, outcome_name = _outcome_values(item, now)
            updates[item.claim.bean_id] = values
            states[item.claim.bean_id] = values["state"]
            attempts.append(
                {
                    "bean_id": item.claim.bean_id,
                    "attempt": item.claim.attempt,
                    "worker": self.name,
                    "started_at": item.claim.started_at,
                    "ended_at": item.ended_at,
                    "outcome": outcome_name,
                    "error": item.error,
                }
            )
            if isinstance(item.outcome, Wait):
                waits.append((item.claim.bean_id, item.outcome.key, item.claim.started_at))
        _wake_early(session, waits, updates, states)
        run_updates = _advance(rows, runs, states, updates, self.registry, now)
        if updates:
            session.connection().execute(UPDATE_BEAN, list(updates.values()))
        if run_updates:
            session.execute(update(Run), run_updates)
        if attempts:
            session.execute(insert(BeanAttempt), attempts)
        for item in finished:
            if item.claim.bean_id in recorded:
                for key, payload in item.emitted:
                    service.signal(session, key=key, payload=payload)
        return any(v["state"] is BeanState.READY for v in updates.values()), recorded

    def _candidates(self, session: Session, limit: int, now: datetime) -> list:
        pool_full = (
            select(BeanPool.bean_id)
            .join(Pool, Pool.key == BeanPool.pool_key)
            .where(BeanPool.bean_id == RunBean.id, Pool.in_use >= Pool.size)
        )
        return session.execute(
            select(
                RunBean.id,
                RunBean.run_id,
                RunBean.name,
                RunBean.attempts,
                RunBean.failures,
                RunBean.event,
                Run.flow,
                Run.subject,
                Run.params,
            )
            .join(Run, Run.id == RunBean.run_id)
            .where(RunBean.state == BeanState.READY, RunBean.ready_at <= now, ~exists(pool_full))
            .order_by(RunBean.ready_at, RunBean.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=RunBean)
        ).all()

    def _take_slots(
        self,
        session: Session,
        candidates: list,
        needs: dict[int, list[str]],
        releases: list[Claim],
        limit: int,
    ) -> list:
        """Free the finished beans' slots and take slots for candidates, in one locked pass."""
        deltas: dict[str, int] = {}
        for claim in releases:
            for key in claim.pool_keys:
                deltas[key] = deltas.get(key, 0) - 1
        wanted = sorted({k for keys in needs.values() for k in keys} | set(deltas))
        free = {}
        if wanted:
            free = {
                key: size - in_use
                for key, size, in_use in session.execute(
                    select(Pool.key, Pool.size, Pool.in_use)
                    .where(Pool.key.in_(wanted))
                    .order_by(Pool.key)
                    .with_for_update()
                )
            }
        for key, delta in deltas.items():
            free[key] = free.get(key, 0) - delta
        granted = []
        for row in candidates:
            if len(granted) == limit:
                break
            keys = needs.get(row.id, [])
            if all(free.get(key, 0) > 0 for key in keys):
                for key in keys:
                    free[key] -= 1
                    deltas[key] = deltas.get(key, 0) + 1
                granted.append(row)
        keys = sorted(key for key, delta in deltas.items() if delta)
        if keys:
            table = Pool.__table__
            session.connection().execute(
                update(table)
                .where(table.c.key == bindparam("pool_key"))
                .values(in_use=table.c.in_use + bindparam("delta")),
                [{"pool_key": key, "delta": deltas[key]} for key in keys],
            )
        return granted

    def _mark_running(
        self, session: Session, granted: list, needs: dict[int, list[str]], now: datetime
    ) -> list[Claim]:
        if not granted:
            return []
        session.execute(
            update(RunBean)
            .where(RunBean.id.in_([row.id for row in granted]))
            .values(
                state=BeanState.RUNNING,
                lease_owner=self.name,
                lease_expires=now + timedelta(seconds=self.lease),
                attempts=RunBean.attempts + 1,
                started_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        data = _done_data(session, {row.run_id for row in granted})
        clock = time.monotonic()
        claims = []
        for row in granted:
            flow = self.registry.get(row.flow)
            claims.append(
                Claim(
                    bean_id=row.id,
                    run_id=row.run_id,
                    name=row.name,
                    attempt=row.attempts + 1,
                    failures=row.failures,
                    flow=flow,
                    subject=Subject.parse(row.subject),
                    params=row.params,
                    event=row.event,
                    pool_keys=needs.get(row.id, []),
                    data=data.get(row.run_id, {}),
                    started_at=now,
                    deadline=clock + flow.bean(row.name).timeout,
                )
            )
        return claims

    # Executing -------------------------------------------------------------------------

    def _execute(self, claim: Claim) -> Finished:
        bean = claim.flow.bean(claim.name)
        ctx = BeanContext(
            run_id=claim.run_id,
            bean=claim.name,
            attempt=claim.attempt,
            subject=claim.subject,
            params=claim.params,
            data=claim.data,
            event=claim.event,
            sessions=self.database.sessions,
            drivers=self.drivers,
        )
        error = ""
        try:
            if bean.task.satisfied(ctx):
                outcome: Outcome = Skipped("already satisfied")
            else:
                outcome = bean.task.run(ctx)
            if "session" in ctx.__dict__:
                ctx.session.commit()
        except TransientError as exc:
            outcome, error = Retry(bean.retry.delay(claim.failures + 1), str(exc)), str(exc)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            ctx.log.warning("bean failed: %s", error)
            outcome = Fail(error)
        finally:
            if "session" in ctx.__dict__:
                ctx.session.close()
        self.executed += 1
        return Finished(claim, outcome, utcnow(), error=error, emitted=ctx.emitted)

    # Leases, recovery, waits -----------------------------------------------------------

    def _heartbeat(self) -> None:
        """Renew the leases of beans still running here, and only those."""
        running = [i for i in self._inflight if i not in self._abandoned]
        if not running:
            return
        with self.database.transaction() as session:
            session.execute(
                update(RunBean)
                .where(
                    RunBean.id.in_(running),
                    RunBean.lease_owner == self.name,
                    RunBean.state == BeanState.RUNNING,
                )
                .values(lease_expires=utcnow() + timedelta(seconds=self.lease))
                .execution_options(synchronize_session=False)
            )

    def _maintain(self) -> None:
        recover_expired(self.database, self.registry)
        expire_waits(self.database, self.registry)
        with self.database.transaction() as session:
            service.purge_signals(session)

    def _listen(self) -> threading.Thread:
        """Wake on PostgreSQL NOTIFY, so idle workers react at once without polling hard."""
        import psycopg

        dsn = (
            make_url(self.database.url)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )

        def listen() -> None:
            while not self._stopping.is_set():
                try:
                    with psycopg.connect(dsn, autocommit=True) as connection:
                        connection.execute(f"LISTEN {service.NOTIFY_CHANNEL}")
                        while not self._stopping.is_set():
                            for _ in connection.notifies(timeout=1.0, stop_after=1):
                                self._wake.set()
                except psycopg.Error:
                    log.warning("worker %s: LISTEN connection lost; polling meanwhile", self.name)
                    self._stopping.wait(self.poll)

        thread = threading.Thread(target=listen, name=f"{self.name}-listen", daemon=True)
        thread.start()
        return thread


# Shared by the worker and the recoveries ------------------------------------------------


def _bean_values(
    state: BeanState,
    *,
    reason: str = "",
    data=None,
    failures: int = 0,
    ready_at=None,
    finished_at=None,
    wait_key=None,
    wait_until=None,
    event=None,
) -> dict[str, Any]:
    """A full row for UPDATE_BEAN: the lease always ends when a bean's state moves."""
    return {
        "state": state,
        "reason": reason,
        "data": data,
        "failures": failures,
        "ready_at": ready_at,
        "finished_at": finished_at,
        "wait_key": wait_key,
        "wait_until": wait_until,
        "event": event,
        "lease_owner": None,
        "lease_expires": None,
    }


def _outcome_values(item: Finished, now: datetime) -> tuple[dict[str, Any], str]:
    """The bean row's new values for an outcome, and the outcome's name for the record."""
    claim, outcome = item.claim, item.outcome
    common = {"bean_id": claim.bean_id, "event": claim.event}
    if isinstance(outcome, Done):
        values = _bean_values(
            BeanState.DONE,
            data=outcome.data,
            finished_at=now,
            failures=claim.failures,
            event=claim.event,
        )
        return common | values, "done"
    if isinstance(outcome, Skipped):
        values = _bean_values(
            BeanState.SKIPPED,
            reason=outcome.reason,
            finished_at=now,
            failures=claim.failures,
            event=claim.event,
        )
        return common | values, "skipped"
    if isinstance(outcome, Wait):
        values = _bean_values(
            BeanState.WAITING,
            reason=f"waiting for {outcome.key}",
            wait_key=outcome.key,
            failures=claim.failures,
            wait_until=now + timedelta(seconds=outcome.timeout),
        )
        return common | values | {"event": None}, "wait"
    if isinstance(outcome, Retry):
        values = _retry_or_fail(claim.flow, claim.name, claim.failures, outcome, now)
        return common | values | {"event": claim.event}, "retry"
    values = _bean_values(
        BeanState.FAILED,
        reason=outcome.reason,
        finished_at=now,
        failures=claim.failures,
        event=claim.event,
    )
    return common | values, "fail"


def _retry_or_fail(
    flow: Flow, name: str, failures: int, retry: Retry, now: datetime
) -> dict[str, Any]:
    policy = flow.bean(name).retry
    failures += 1
    if failures >= policy.max_attempts:
        return _bean_values(
            BeanState.FAILED,
            failures=failures,
            finished_at=now,
            reason=f"gave up after {failures} failed attempt(s): {retry.reason}",
        )
    after = retry.after or policy.delay(failures)
    return _bean_values(
        BeanState.READY,
        failures=failures,
        reason=retry.reason,
        ready_at=now + timedelta(seconds=after),
    )


def _pool_needs(session: Session, bean_ids: list[int]) -> dict[int, list[str]]:
    needs: dict[int, list[str]] = {}
    if bean_ids:
        for bean_id, key in session.execute(
            select(BeanPool.bean_id, BeanPool.pool_key).where(BeanPool.bean_id.in_(bean_ids))
        ):
            needs.setdefault(bean_id, []).append(key)
    return needs


def _done_data(session: Session, run_ids: set[int]) -> dict[int, dict[str, dict]]:
    data: dict[int, dict[str, dict]] = {}
    for run_id, name, value in session.execute(
        select(RunBean.run_id, RunBean.name, RunBean.data).where(
            RunBean.run_id.in_(run_ids), RunBean.state == BeanState.DONE
        )
    ):
        data.setdefault(run_id, {})[name] = value or {}
    return data


def _wake_early(
    session: Session,
    waits: list[tuple[int, str, datetime]],
    updates: dict[int, dict],
    states: dict[int, BeanState],
) -> None:
    """A signal that came while the bean was still running wakes it as soon as it parks."""
    if not waits:
        return
    earliest = min(started for _, _, started in waits)
    latest: dict[str, tuple[datetime, dict]] = {}
    for key, payload, at in session.execute(
        select(Signal.key, Signal.payload, Signal.at)
        .where(Signal.key.in_({key for _, key, _ in waits}), Signal.at >= earliest)
        .order_by(Signal.at)
    ):
        latest[key] = (at, payload)
    for bean_id, key, started in waits:
        if key in latest and latest[key][0] >= started:
            updates[bean_id] |= {
                "state": BeanState.READY,
                "ready_at": utcnow(),
                "event": latest[key][1],
                "wait_key": None,
                "wait_until": None,
                "reason": "",
            }
            states[bean_id] = BeanState.READY


def _advance(
    rows: list,
    runs: dict[int, str],
    states: dict[int, BeanState],
    updates: dict[int, dict],
    registry: FlowRegistry,
    now: datetime,
) -> list[dict]:
    """Apply each run's flow to its beans' new states; adds bean changes, returns run ends."""
    names: dict[int, dict[str, int]] = {}
    for row in rows:
        names.setdefault(row.run_id, {})[row.name] = row.id
    run_updates = []
    for run_id, flow_name in runs.items():
        ids = names.get(run_id, {})
        changes, outcome = engine.advance(
            registry.get(flow_name), {name: states[bean_id] for name, bean_id in ids.items()}
        )
        for name, change in changes.items():
            bean_id = ids[name]
            if change.state is BeanState.READY:
                values = _bean_values(BeanState.READY, ready_at=now)
            else:
                values = _bean_values(change.state, reason=change.reason, finished_at=now)
            updates[bean_id] = {"bean_id": bean_id} | values
            states[bean_id] = change.state
        if outcome is not None:
            run_updates.append(
                {"id": run_id, "state": outcome, "finished_at": now, "active_key": None}
            )
    return run_updates


def _lock_runs(session: Session, run_ids: set[int]) -> dict[int, str]:
    """Serialise each run's advance (two of its beans may end at once); returns their flows."""
    return dict(
        session.execute(
            select(Run.id, Run.flow)
            .where(Run.id.in_(sorted(run_ids)), Run.state == RunState.RUNNING)
            .order_by(Run.id)
            .with_for_update()
        ).all()
    )


def _locked_beans(session: Session, run_ids: list[int]) -> list:
    return session.execute(
        select(
            _beans.c.id,
            _beans.c.run_id,
            _beans.c.name,
            _beans.c.state,
            _beans.c.failures,
            _beans.c.lease_owner,
            _beans.c.lease_expires,
            _beans.c.wait_key,
            _beans.c.wait_until,
            _beans.c.attempts,
            _beans.c.started_at,
        )
        .where(_beans.c.run_id.in_(run_ids))
        .order_by(_beans.c.id)
        .with_for_update()
    ).all()


def recover_expired(database: Database, registry: FlowRegistry) -> int:
    """Beans whose worker stopped heartbeating go back to READY (or fail past their retries)."""
    return _sweep(database, registry, BeanState.RUNNING, "lease_expires", "lost")


def expire_waits(database: Database, registry: FlowRegistry) -> int:
    """A wait past its timeout counts as a failed attempt: retried or failed by policy."""
    return _sweep(database, registry, BeanState.WAITING, "wait_until", "")


def _sweep(
    database: Database,
    registry: FlowRegistry,
    state: BeanState,
    deadline: str,
    attempt_outcome: str,
) -> int:
    with database.transaction() as session:
        now = utcnow()
        column = _beans.c[deadline]
        candidates = set(
            session.scalars(
                select(_beans.c.run_id).where(_beans.c.state == state, column < now).limit(500)
            )
        )
        if not candidates:
            return 0
        runs = _lock_runs(session, candidates)
        rows = _locked_beans(session, sorted(runs))
        expired = [r for r in rows if r.state is state and getattr(r, deadline) < now]
        if not expired:
            return 0
        if state is BeanState.RUNNING:
            service.release_pools(session, [r.id for r in expired])
        states = {row.id: row.state for row in rows}
        updates: dict[int, dict] = {}
        attempts = []
        for row in expired:
            if state is BeanState.RUNNING:
                reason = f"lease of worker {row.lease_owner} expired"
                attempts.append(
                    {
                        "bean_id": row.id,
                        "attempt": row.attempts,
                        "worker": row.lease_owner or "",
                        "started_at": row.started_at or now,
                        "ended_at": now,
                        "outcome": attempt_outcome,
                        "error": reason,
                    }
                )
            else:
                reason = f"no {row.wait_key} before the timeout"
            flow = registry.get(runs[row.run_id])
            values = _retry_or_fail(flow, row.name, row.failures, Retry(0.001, reason), now)
            updates[row.id] = {"bean_id": row.id} | values
            states[row.id] = values["state"]
        run_updates = _advance(rows, runs, states, updates, registry, now)
        session.connection().execute(UPDATE_BEAN, list(updates.values()))
        if run_updates:
            session.execute(update(Run), run_updates)
        if attempts:
            session.execute(insert(BeanAttempt), attempts)
        service.notify_workers(session)
        return len(expired)
