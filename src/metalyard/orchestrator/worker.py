"""The worker: claims ready beans in batches, runs them on a thread pool, records outcomes.

Any number of workers share one PostgreSQL (claims use FOR UPDATE SKIP LOCKED); on SQLite
every write transaction takes the file's write lock first (BEGIN IMMEDIATE). A worker
killed mid-bean loses nothing: its leases expire and another worker runs those beans again.

Lock order everywhere: runs, then run beans, then pools — each by key — so two workers
never deadlock.
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

from sqlalchemy import exists, insert, select, update
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
from metalyard.orchestrator.models import (
    BeanAttempt,
    BeanPool,
    Pool,
    Run,
    RunBean,
    Signal,
)
from metalyard.orchestrator.states import BeanState, RunState

log = logging.getLogger(__name__)


@dataclass
class Claim:
    """A bean this worker holds the lease on."""

    bean_id: int
    run_id: int
    name: str
    attempt: int
    failures: int
    flow: Flow
    subject: Subject
    params: dict[str, Any]
    event: dict[str, Any] | None
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
        concurrency: int = 16,
        batch: int = 64,
        lease: float = 30.0,
        poll: float = 1.0,
        drivers=None,
    ) -> None:
        self.database = database
        self.registry = registry
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.concurrency = concurrency
        self.batch = batch
        self.lease = lease
        self.poll = poll
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
                        log.exception("worker %s: step failed; retrying", self.name)
                        busy = False
                        time.sleep(self.poll)
                    if not busy:
                        self._wake.wait(self.poll)
                        self._wake.clear()
                self._drain()
        finally:
            service.local_workers.discard(self._wake)
            if listener is not None:
                listener.join(timeout=5)

    def step(self, pool: ThreadPoolExecutor) -> bool:
        """One turn: record outcomes, keep leases, recover, claim. True if anything moved."""
        finished = self._collect()
        if finished:
            self._complete(finished)
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._heartbeat()
            self._next_heartbeat = now + self.lease / 3
        if now >= self._next_maintenance:
            self._maintain()
            self._next_maintenance = now + min(self.lease / 2, 5.0)
        free = self.concurrency - len(self._inflight)
        claims = self._claim(min(free, self.batch)) if free > 0 else []
        for claim in claims:
            self._inflight[claim.bean_id] = claim
            future = pool.submit(self._execute, claim)
            future.add_done_callback(self._on_done)
        return bool(finished or claims)

    def _drain(self) -> None:
        """On stop: wait for running beans and record them, so nothing waits for a lease."""
        deadline = time.monotonic() + self.lease
        while self._inflight and time.monotonic() < deadline:
            self._wake.wait(0.05)
            self._wake.clear()
            finished = self._collect()
            if finished:
                self._complete(finished)

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
                # The thread cannot be stopped; its result will be ignored when it comes.
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

    # Claiming --------------------------------------------------------------------------

    def _claim(self, limit: int) -> list[Claim]:
        with self.database.transaction() as session:
            now = utcnow()
            pool_full = (
                select(BeanPool.bean_id)
                .join(Pool, Pool.key == BeanPool.pool_key)
                .where(BeanPool.bean_id == RunBean.id, Pool.in_use >= Pool.size)
            )
            rows = session.execute(
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
                .where(
                    RunBean.state == BeanState.READY, RunBean.ready_at <= now, ~exists(pool_full)
                )
                .order_by(RunBean.ready_at, RunBean.id)
                .limit(limit * 2)
                .with_for_update(skip_locked=True, of=RunBean)
            ).all()
            if not rows:
                return []
            granted = self._take_pool_slots(session, rows, limit)
            if not granted:
                return []
            ids = [row.id for row in granted]
            session.execute(
                update(RunBean)
                .where(RunBean.id.in_(ids))
                .values(
                    state=BeanState.RUNNING,
                    lease_owner=self.name,
                    lease_expires=now + timedelta(seconds=self.lease),
                    attempts=RunBean.attempts + 1,
                    started_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            data = self._done_data(session, {row.run_id for row in granted})
        deadline_base = time.monotonic()
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
                    data=data.get(row.run_id, {}),
                    started_at=now,
                    deadline=deadline_base + flow.bean(row.name).timeout,
                )
            )
        return claims

    def _take_pool_slots(self, session: Session, rows: list, limit: int) -> list:
        needs: dict[int, list[str]] = {}
        for bean_id, key in session.execute(
            select(BeanPool.bean_id, BeanPool.pool_key).where(
                BeanPool.bean_id.in_([r.id for r in rows])
            )
        ):
            needs.setdefault(bean_id, []).append(key)
        if not needs:
            return rows[:limit]
        keys = sorted({k for ks in needs.values() for k in ks})
        free = {
            key: size - in_use
            for key, size, in_use in session.execute(
                select(Pool.key, Pool.size, Pool.in_use)
                .where(Pool.key.in_(keys))
                .order_by(Pool.key)
                .with_for_update()
            )
        }
        taken: dict[str, int] = {}
        granted = []
        for row in rows:
            wanted = needs.get(row.id, [])
            if all(free.get(key, 0) > 0 for key in wanted):
                for key in wanted:
                    free[key] -= 1
                    taken[key] = taken.get(key, 0) + 1
                granted.append(row)
                if len(granted) == limit:
                    break
        for key in sorted(taken):
            session.execute(
                update(Pool)
                .where(Pool.key == key)
                .values(in_use=Pool.in_use + taken[key])
                .execution_options(synchronize_session=False)
            )
        holding = [row.id for row in granted if row.id in needs]
        if holding:
            session.execute(
                update(BeanPool)
                .where(BeanPool.bean_id.in_(holding))
                .values(held=True)
                .execution_options(synchronize_session=False)
            )
        return granted

    @staticmethod
    def _done_data(session: Session, run_ids: set[int]) -> dict[int, dict[str, dict]]:
        data: dict[int, dict[str, dict]] = {}
        for run_id, name, value in session.execute(
            select(RunBean.run_id, RunBean.name, RunBean.data).where(
                RunBean.run_id.in_(run_ids), RunBean.state == BeanState.DONE
            )
        ):
            data.setdefault(run_id, {})[name] = value or {}
        return data

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

    # Recording outcomes ----------------------------------------------------------------

    def _complete(self, finished: list[Finished]) -> None:
        with self.database.transaction() as session:
            _lock_runs(session, {f.claim.run_id for f in finished})
            ids = sorted(f.claim.bean_id for f in finished)
            ours = set(
                session.scalars(
                    select(RunBean.id)
                    .where(
                        RunBean.id.in_(ids),
                        RunBean.state == BeanState.RUNNING,
                        RunBean.lease_owner == self.name,
                    )
                    .order_by(RunBean.id)
                    .with_for_update()
                )
            )
            finished = [f for f in finished if f.claim.bean_id in ours]
            if not finished:
                return
            service.release_pools(session, sorted(ours))
            now = utcnow()
            updates, attempts, waits = [], [], []
            for item in finished:
                row, outcome_name = self._apply(item, now)
                updates.append(row)
                if isinstance(item.outcome, Wait):
                    waits.append((item.claim.bean_id, item.outcome.key, item.claim.started_at))
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
            session.execute(update(RunBean), updates)
            session.execute(insert(BeanAttempt), attempts)
            _deliver_early_signals(session, waits)
            advance_runs(session, {f.claim.run_id for f in finished}, self.registry)
            for item in finished:
                for key, payload in item.emitted:
                    service.signal(session, key=key, payload=payload)
            service.notify_workers(session)

    @staticmethod
    def _apply(item: Finished, now: datetime) -> tuple[dict[str, Any], str]:
        """The bean row's new values for an outcome, and the outcome's name for the record."""
        claim, outcome = item.claim, item.outcome
        row: dict[str, Any] = {"id": claim.bean_id, "lease_owner": None, "lease_expires": None}
        if isinstance(outcome, Done):
            row |= {"state": BeanState.DONE, "data": outcome.data, "finished_at": now, "reason": ""}
            return row, "done"
        if isinstance(outcome, Skipped):
            row |= {"state": BeanState.SKIPPED, "reason": outcome.reason, "finished_at": now}
            return row, "skipped"
        if isinstance(outcome, Wait):
            row |= {
                "state": BeanState.WAITING,
                "wait_key": outcome.key,
                "wait_until": now + timedelta(seconds=outcome.timeout),
                "reason": f"waiting for {outcome.key}",
            }
            return row, "wait"
        if isinstance(outcome, Retry):
            retry = _retry_or_fail(claim.flow, claim.name, claim.failures, outcome, now)
            return row | retry, "retry"
        row |= {"state": BeanState.FAILED, "reason": outcome.reason, "finished_at": now}
        return row, "fail"

    # Leases, recovery and wait timeouts --------------------------------------------------

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


def _retry_or_fail(
    flow: Flow, name: str, failures: int, retry: Retry, now: datetime
) -> dict[str, Any]:
    policy = flow.bean(name).retry
    failures += 1
    if failures >= policy.max_attempts:
        return {
            "state": BeanState.FAILED,
            "failures": failures,
            "finished_at": now,
            "reason": f"gave up after {failures} failed attempt(s): {retry.reason}",
        }
    after = retry.after or policy.delay(failures)
    return {
        "state": BeanState.READY,
        "failures": failures,
        "reason": retry.reason,
        "ready_at": now + timedelta(seconds=after),
    }


def _lock_runs(session: Session, run_ids: set[int]) -> None:
    """Serialise the advance of each run: two beans of one run may end at once."""
    session.execute(
        select(Run.id).where(Run.id.in_(sorted(run_ids))).order_by(Run.id).with_for_update()
    ).all()


def _deliver_early_signals(session: Session, waits: list[tuple[int, str, datetime]]) -> None:
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
    woken = [
        {
            "id": bean_id,
            "state": BeanState.READY,
            "ready_at": utcnow(),
            "event": latest[key][1],
            "wait_key": None,
            "wait_until": None,
            "reason": "",
        }
        for bean_id, key, started in waits
        if key in latest and latest[key][0] >= started
    ]
    if woken:
        session.execute(update(RunBean), woken)


def advance_runs(session: Session, run_ids: set[int], registry: FlowRegistry) -> None:
    """Apply the flow's rule to each run: unblock, skip, and finish runs whose beans all ended."""
    if not run_ids:
        return
    states: dict[int, dict[str, tuple[int, BeanState]]] = {}
    for bean_id, run_id, name, state in session.execute(
        select(RunBean.id, RunBean.run_id, RunBean.name, RunBean.state).where(
            RunBean.run_id.in_(run_ids)
        )
    ):
        states.setdefault(run_id, {})[name] = (bean_id, state)
    now = utcnow()
    bean_updates, run_updates = [], []
    for run_id, flow_name in session.execute(
        select(Run.id, Run.flow).where(Run.id.in_(run_ids), Run.state == RunState.RUNNING)
    ):
        beans = states[run_id]
        changes, outcome = engine.advance(
            registry.get(flow_name), {name: state for name, (_, state) in beans.items()}
        )
        for name, change in changes.items():
            row = {"id": beans[name][0], "state": change.state, "reason": change.reason}
            if change.state is BeanState.READY:
                row["ready_at"] = now
            else:
                row["finished_at"] = now
            bean_updates.append(row)
        if outcome is not None:
            run_updates.append(
                {"id": run_id, "state": outcome, "finished_at": now, "active_key": None}
            )
    if bean_updates:
        session.execute(update(RunBean), bean_updates)
    if run_updates:
        session.execute(update(Run), run_updates)


def recover_expired(database: Database, registry: FlowRegistry) -> int:
    """Beans whose worker stopped heartbeating go back to READY (or fail past their retries)."""
    with database.transaction() as session:
        now = utcnow()
        candidates = (
            session.execute(
                select(RunBean.run_id)
                .where(RunBean.state == BeanState.RUNNING, RunBean.lease_expires < now)
                .limit(500)
            )
            .scalars()
            .all()
        )
        if not candidates:
            return 0
        _lock_runs(session, set(candidates))
        rows = session.execute(
            select(
                RunBean.id,
                RunBean.run_id,
                RunBean.name,
                RunBean.failures,
                RunBean.lease_owner,
                RunBean.attempts,
                RunBean.started_at,
                Run.flow,
            )
            .join(Run, Run.id == RunBean.run_id)
            .where(
                RunBean.run_id.in_(set(candidates)),
                RunBean.state == BeanState.RUNNING,
                RunBean.lease_expires < now,
            )
            .order_by(RunBean.id)
            .with_for_update(skip_locked=True, of=RunBean)
        ).all()
        if not rows:
            return 0
        service.release_pools(session, [r.id for r in rows])
        updates, attempts = [], []
        for row in rows:
            reason = f"lease of worker {row.lease_owner} expired"
            retry = _retry_or_fail(
                registry.get(row.flow), row.name, row.failures, Retry(0.001, reason), now
            )
            updates.append({"id": row.id, "lease_owner": None, "lease_expires": None, **retry})
            attempts.append(
                {
                    "bean_id": row.id,
                    "attempt": row.attempts,
                    "worker": row.lease_owner or "",
                    "started_at": row.started_at or now,
                    "ended_at": now,
                    "outcome": "lost",
                    "error": reason,
                }
            )
        session.execute(update(RunBean), updates)
        session.execute(insert(BeanAttempt), attempts)
        advance_runs(session, {r.run_id for r in rows}, registry)
        service.notify_workers(session)
        return len(rows)


def expire_waits(database: Database, registry: FlowRegistry) -> int:
    """A wait past its timeout counts as a failed attempt: retried or failed by policy."""
    with database.transaction() as session:
        now = utcnow()
        candidates = (
            session.execute(
                select(RunBean.run_id)
                .where(RunBean.state == BeanState.WAITING, RunBean.wait_until < now)
                .limit(500)
            )
            .scalars()
            .all()
        )
        if not candidates:
            return 0
        _lock_runs(session, set(candidates))
        rows = session.execute(
            select(
                RunBean.id,
                RunBean.run_id,
                RunBean.name,
                RunBean.failures,
                RunBean.wait_key,
                Run.flow,
            )
            .join(Run, Run.id == RunBean.run_id)
            .where(
                RunBean.run_id.in_(set(candidates)),
                RunBean.state == BeanState.WAITING,
                RunBean.wait_until < now,
            )
            .order_by(RunBean.id)
            .with_for_update(skip_locked=True, of=RunBean)
        ).all()
        updates = [
            {
                "id": row.id,
                "wait_key": None,
                "wait_until": None,
                **_retry_or_fail(
                    registry.get(row.flow),
                    row.name,
                    row.failures,
                    Retry(0, f"no {row.wait_key} before the timeout"),
                    now,
                ),
            }
            for row in rows
        ]
        if updates:
            session.execute(update(RunBean), updates)
            advance_runs(session, {r.run_id for r in rows}, registry)
            service.notify_workers(session)
        return len(updates)
