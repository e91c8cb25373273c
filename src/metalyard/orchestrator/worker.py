"""The worker: records outcomes and claims ready beans in one transaction per turn.

Any number of workers share one PostgreSQL (claims use FOR UPDATE SKIP LOCKED); on SQLite
every write transaction takes the file's write lock first (BEGIN IMMEDIATE). A worker
killed mid-bean loses nothing: its leases expire and another worker runs those beans again.

Lock order everywhere: runs, then run beans, then pools — each sorted — so workers,
cancels and recoveries never deadlock one another.

A turn is a fixed handful of statements whatever its number of beans, as each statement
costs a round trip and server work that its rows barely add to: on PostgreSQL the outcomes
go in one statement, the claims with their pool counts in another, their rows as JSON.
"""

import json
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    ARRAY,
    JSON,
    Column,
    Integer,
    Select,
    any_,
    bindparam,
    column,
    exists,
    func,
    insert,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

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
_runs = Run.__table__
_pools = Pool.__table__
# Every bean update sets the same columns (see _bean_values), so one executemany carries
# a whole turn; the SET clause comes from the parameters' keys.
UPDATE_BEAN = update(_beans).where(_beans.c.id == bindparam("bean_id"))
UPDATE_POOL = (
    update(_pools)
    .where(_pools.c.key == bindparam("pool_key"))
    .values(in_use=_pools.c.in_use + bindparam("delta"))
)


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


Chore = Callable[[Database], Any]

chores: list[Chore] = []
"""Housekeeping of other concepts that every worker runs every few seconds, each on its
own: a failing chore is logged and tried again at the next turn."""


def chore(task: Chore) -> Chore:
    """Register `task` with the workers (at import, like flows)."""
    chores.append(task)
    return task


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
            releases = [f.claim for f in finished if f.claim.bean_id in recorded]
            granted, deltas = self._take_slots(session, candidates, releases, free)
            self._start(session, granted, deltas, now)
            if made_ready and len(self._inflight) + len(granted) >= self.concurrency:
                service.notify_workers(session)  # more is ready than this worker can take
        return self._claims(granted, now)

    def _record(
        self, session: Session, finished: list[Finished], now: datetime
    ) -> tuple[bool, set[int]]:
        """Write the outcomes of beans whose lease is still ours.

        Returns whether any bean became ready, and which outcomes were recorded.
        """
        runs = _lock_runs(session, {f.claim.run_id for f in finished})
        rows = _locked_beans(session, sorted(runs))
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
        _write(session, list(updates.values()), run_updates, attempts)
        for item in finished:
            if item.claim.bean_id in recorded:
                for key, payload in item.emitted:
                    service.signal(session, key=key, payload=payload)
        return any(v["state"] is BeanState.READY for v in updates.values()), recorded

    def _candidates(self, session: Session, limit: int, now: datetime) -> list:
        params = {"now": now, "limit": limit}
        return session.connection().execute(_sql(session).candidates, params).all()

    def _take_slots(
        self,
        session: Session,
        candidates: list,
        releases: list[Claim],
        limit: int,
    ) -> tuple[list, dict[str, int]]:
        """Choose the candidates that get their slots, counting the finished beans' as free.

        Locks the pools involved; returns the chosen and the change of each pool's count.
        """
        deltas: dict[str, int] = {}
        for claim in releases:
            for key in claim.pool_keys:
                deltas[key] = deltas.get(key, 0) - 1
        wanted = sorted({k for row in candidates for k in row.pool_keys or ()} | set(deltas))
        free = {}
        if wanted:
            locked = session.connection().execute(_sql(session).lock_pools, {"keys": wanted})
            free = {key: size - in_use for key, size, in_use in locked}
        for key, delta in deltas.items():
            free[key] = free.get(key, 0) - delta
        granted = []
        for row in candidates:
            if len(granted) == limit:
                break
            keys = row.pool_keys or ()
            if all(free.get(key, 0) > 0 for key in keys):
                for key in keys:
                    free[key] -= 1
                    deltas[key] = deltas.get(key, 0) + 1
                granted.append(row)
        return granted, {key: delta for key, delta in sorted(deltas.items()) if delta}

    def _start(
        self, session: Session, granted: list, deltas: dict[str, int], now: datetime
    ) -> None:
        """Move the pools' counts and mark the granted beans RUNNING under our lease."""
        ids = [row.id for row in granted]
        expires = now + timedelta(seconds=self.lease)
        if _sql(session).postgres:
            if ids or deltas:
                pools = [{"key": key, "delta": delta} for key, delta in deltas.items()]
                params = {"deltas": _json(pools), "keys": list(deltas), "ids": ids}
                session.execute(
                    START_POSTGRES, params | {"owner": self.name, "expires": expires, "now": now}
                )
            return
        if deltas:
            session.connection().execute(
                UPDATE_POOL, [{"pool_key": key, "delta": delta} for key, delta in deltas.items()]
            )
        if ids:
            session.connection().execute(
                update(_beans)
                .where(_beans.c.id.in_(ids))
                .values(
                    state=BeanState.RUNNING,
                    lease_owner=self.name,
                    lease_expires=expires,
                    attempts=_beans.c.attempts + 1,
                    started_at=now,
                )
            )

    def _claims(self, granted: list, now: datetime) -> list[Claim]:
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
                    pool_keys=row.pool_keys or [],
                    data={name: value or {} for name, value in (row.done or {}).items()},
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
            sessions=self.database.writes,  # beans write: SQLite takes its lock up front
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
        except (TransientError, StaleDataError, OperationalError) as exc:
            # A row the bean changed was changed by someone else first, or the database was
            # busy or briefly gone: look again later.
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
        for task in chores:
            try:
                task(self.database)
            except Exception:
                log.exception("worker %s: chore %s failed", self.name, task.__qualname__)

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


# Statements -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Statements:
    postgres: bool
    lock_runs: Select
    lock_beans: Select
    lock_pools: Select
    candidates: Select


def _sql(session: Session) -> _Statements:
    return _statements(session.get_bind().dialect.name == "postgresql")


@cache
def _statements(postgres: bool) -> _Statements:
    """The turn's reads, built once per backend."""

    def one_of(column: Column, name: str):
        # An array on PostgreSQL: the statement's text stays the same whatever the number
        # of values, so psycopg prepares it once, where an IN list would be parsed anew.
        if postgres:
            return column == any_(bindparam(name, type_=ARRAY(column.type)))
        return column.in_(bindparam(name, expanding=True))

    beans = select(
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
    return _Statements(
        postgres=postgres,
        lock_runs=select(_runs.c.id, _runs.c.flow)
        .where(one_of(_runs.c.id, "ids"), _runs.c.state == RunState.RUNNING)
        .order_by(_runs.c.id)
        .with_for_update(),
        lock_beans=beans.where(one_of(_beans.c.run_id, "run_ids"))
        .order_by(_beans.c.id)
        .with_for_update(),
        lock_pools=select(_pools.c.key, _pools.c.size, _pools.c.in_use)
        .where(one_of(_pools.c.key, "keys"))
        .order_by(_pools.c.key)
        .with_for_update(),
        candidates=_candidates_query(postgres),
    )


def _candidates_query(postgres: bool) -> Select:
    """Ready beans, first ready first, with their pool keys and their run's done data.

    Ordered by ready_at alone, so PostgreSQL walks the (state, ready_at) index and stops at
    the limit: a tie-break on id would make it read and sort every ready bean first.
    """
    needs = BeanPool.__table__
    done = _beans.alias("done")
    if postgres:
        array, mapping, value = func.json_agg, func.json_object_agg, done.c.data
    else:
        array, mapping, value = (
            func.json_group_array,
            func.json_group_object,
            func.json(done.c.data),
        )
    pool_full = (
        select(needs.c.bean_id)
        .join(_pools, _pools.c.key == needs.c.pool_key)
        .where(needs.c.bean_id == _beans.c.id, _pools.c.in_use >= _pools.c.size)
    )
    pool_keys = select(array(needs.c.pool_key)).where(needs.c.bean_id == _beans.c.id)
    # DONE is filtered in the aggregate, not the WHERE, so the run's few beans come by the
    # run_id index, never by a walk over every DONE bean.
    done_data = select(mapping(done.c.name, value).filter(done.c.state == BeanState.DONE)).where(
        done.c.run_id == _beans.c.run_id
    )
    return (
        select(
            _beans.c.id,
            _beans.c.run_id,
            _beans.c.name,
            _beans.c.attempts,
            _beans.c.failures,
            _beans.c.event,
            _runs.c.flow,
            _runs.c.subject,
            _runs.c.params,
            type_coerce(pool_keys.scalar_subquery(), JSON).label("pool_keys"),
            type_coerce(done_data.scalar_subquery(), JSON).label("done"),
        )
        .join(_runs, _runs.c.id == _beans.c.run_id)
        .where(
            _beans.c.state == BeanState.READY,
            _beans.c.ready_at <= bindparam("now"),
            ~exists(pool_full),
        )
        .order_by(_beans.c.ready_at)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True, of=_beans)
    )


def _json_rows(name: str, columns: list[Column]) -> str:
    """`json_to_recordset(:name) AS name(…)`: rows sent as one JSON array, typed as `columns`.

    A field missing from a row reads as NULL.
    """
    dialect = postgresql.dialect()
    typed = ", ".join(f"{c.name} {c.type.compile(dialect)}" for c in columns)
    return f"json_to_recordset(CAST(:{name} AS json)) AS {name}({typed})"


def _json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(
        [
            {
                k: v.isoformat() if isinstance(v, datetime) else v
                for k, v in r.items()
                if v is not None
            }
            for r in rows
        ]
    )


_bean_fields = list(_bean_values(BeanState.READY))
_attempt_columns = [c for c in BeanAttempt.__table__.c if c.name != "id"]
_attempt_names = ", ".join(c.name for c in _attempt_columns)
# The "= ANY(...)" beside each join keeps the rows found by primary key even before the
# planner has statistics; the rows are locked already, in order.
RECORD_POSTGRES = text(
    f"""WITH changed AS (
    UPDATE run_beans SET {", ".join(f"{name} = beans.{name}" for name in _bean_fields)}
    FROM {_json_rows("beans", [column("bean_id", Integer), *(_beans.c[n] for n in _bean_fields)])}
    WHERE run_beans.id = beans.bean_id AND run_beans.id = ANY(:bean_ids)
), ended AS (
    UPDATE runs SET state = ends.state, finished_at = ends.finished_at, active_key = NULL
    FROM {_json_rows("ends", [_runs.c.id, _runs.c.state, _runs.c.finished_at])}
    WHERE runs.id = ends.id AND runs.id = ANY(:run_ids)
)
INSERT INTO bean_attempts ({_attempt_names})
SELECT {_attempt_names} FROM {_json_rows("attempts", _attempt_columns)}"""
)
"""Bean changes, run ends and attempts, in one statement."""
START_POSTGRES = text(
    f"""WITH taken AS (
    UPDATE pools SET in_use = pools.in_use + deltas.delta
    FROM {_json_rows("deltas", [_pools.c.key, column("delta", Integer)])}
    WHERE pools.key = deltas.key AND pools.key = ANY(:keys)
)
UPDATE run_beans SET state = '{BeanState.RUNNING.value}', lease_owner = :owner,
    lease_expires = :expires, attempts = run_beans.attempts + 1, started_at = :now
WHERE run_beans.id = ANY(:ids)"""
)
"""Pool counts and claims, in one statement."""


def _write(session: Session, beans: list[dict], runs: list[dict], attempts: list[dict]) -> None:
    """Bean changes, run ends and attempts: one statement on PostgreSQL, executemany on
    SQLite (in process, where a statement costs no round trip)."""
    if _sql(session).postgres:
        if beans or runs or attempts:
            params = {
                "beans": _json(beans),
                "bean_ids": [row["bean_id"] for row in beans],
                "ends": _json(runs),
                "run_ids": [row["id"] for row in runs],
                "attempts": _json(attempts),
            }
            session.execute(RECORD_POSTGRES, params)
        return
    if beans:
        session.connection().execute(UPDATE_BEAN, beans)
    if runs:
        session.execute(update(Run), runs)
    if attempts:
        session.execute(insert(BeanAttempt), attempts)


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
    locked = session.connection().execute(_sql(session).lock_runs, {"ids": sorted(run_ids)})
    return dict(locked.all())


def _locked_beans(session: Session, run_ids: list[int]) -> list:
    return session.connection().execute(_sql(session).lock_beans, {"run_ids": run_ids}).all()


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
        _write(session, list(updates.values()), run_updates, attempts)
        service.notify_workers(session)
        return len(expired)
