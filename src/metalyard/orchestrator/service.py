"""Runs, signals and pools: what the API (and other concepts) ask of the orchestrator."""

import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, delete, event, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from metalyard.db import utcnow
from metalyard.db.lookup import get_by
from metalyard.db.pagination import Page, SortKey, paginate
from metalyard.errors import Conflict, InvalidInput
from metalyard.orchestrator import engine
from metalyard.orchestrator.beans import Subject
from metalyard.orchestrator.flows import Flow, FlowRegistry, flows
from metalyard.orchestrator.models import (
    BeanAttempt,
    BeanPool,
    Pool,
    Run,
    RunBean,
    Signal,
)
from metalyard.orchestrator.states import TERMINAL, BeanState, RunState

NOTIFY_CHANNEL = "metalyard_beans"
SIGNAL_RETENTION = timedelta(hours=1)


# Starting runs -------------------------------------------------------------------------


def start_run(
    session: Session, *, flow: Flow, subject: Subject, params: dict[str, Any], actor: str
) -> Run:
    """Start `flow` on `subject`; 409 naming the active run if one of its family is running."""
    (run_id,) = start_runs(session, flow=flow, targets=[(subject, params)], actor=actor)
    return get_run(session, run_id=run_id)


def start_runs(
    session: Session,
    *,
    flow: Flow,
    targets: list[tuple[Subject, dict[str, Any]]],
    actor: str,
) -> list[int]:
    """Start many runs of one flow in a few statements (batches, campaigns)."""
    for subject, params in targets:
        missing = [p for p in flow.required_params if p not in params]
        if missing:
            raise InvalidInput(
                f"flow {flow.name!r} needs parameter(s) {', '.join(missing)} for {subject}",
                details={"missing": missing},
            )
    now = utcnow()
    rows = [
        {
            "flow": flow.name,
            "family": flow.family,
            "subject": str(subject),
            "params": params,
            "state": RunState.RUNNING,
            "active_key": _active_key(str(subject), flow.family),
            "created_by": actor,
            "created_at": now,
        }
        for subject, params in targets
    ]
    try:
        with session.begin_nested():
            run_ids = list(
                session.scalars(insert(Run).returning(Run.id, sort_by_parameter_order=True), rows)
            )
    except IntegrityError:
        raise _already_running(session, flow, [str(s) for s, _ in targets]) from None
    initial = engine.initial_states(flow)
    bean_rows = [
        {
            "run_id": run_id,
            "name": name,
            "state": state,
            "ready_at": now if state is BeanState.READY else None,
        }
        for run_id in run_ids
        for name, state in initial.items()
    ]
    # A few statements for all the beans: render_nulls keeps the BLOCKED rows (ready_at
    # NULL) in the READY rows' batches, and ids matched by name need no RETURNING order,
    # which SQLite would keep only by inserting one row per statement.
    inserted = session.execute(
        insert(RunBean)
        .returning(RunBean.id, RunBean.run_id, RunBean.name)
        .execution_options(render_nulls=True),
        bean_rows,
    )
    ids = {(run_id, name): bean_id for bean_id, run_id, name in inserted}
    bean_ids = [ids[row["run_id"], row["name"]] for row in bean_rows]
    _attach_pools(session, flow, [p for _, p in targets], bean_ids)
    _refresh_statistics(session, len(bean_rows))
    notify_workers(session)
    return run_ids


def _refresh_statistics(session: Session, beans: int) -> None:
    """On PostgreSQL, ANALYZE the run tables when a start grows them by a tenth or more.

    Autovacuum would as well, but only at its next pass; until then every worker turn is
    planned for the smaller tables (a scan where an index now wins). SKIP_LOCKED because a
    concurrent start's ANALYZE holds the tables until it commits: waiting could deadlock.
    """
    if beans < 50 or session.get_bind().dialect.name != "postgresql":
        return  # under autovacuum's own threshold
    known = session.scalar(text("SELECT reltuples FROM pg_class WHERE oid = 'run_beans'::regclass"))
    if beans >= 0.1 * known:  # reltuples is -1 until the first ANALYZE
        session.execute(text("ANALYZE (SKIP_LOCKED) runs, run_beans, bean_pools"))


def _attach_pools(session: Session, flow: Flow, params: list[dict], bean_ids: list[int]) -> None:
    """Resolve each bean's pool keys now: a run's parameters never change."""
    names = list(engine.initial_states(flow))
    claims: list[dict[str, Any]] = []
    sizes: dict[str, int] = {}
    for index, run_params in enumerate(params):
        for offset, name in enumerate(names):
            for claim in flow.bean(name).pools:
                key = claim.key(run_params)
                sizes.setdefault(key, claim.size)
                claims.append({"bean_id": bean_ids[index * len(names) + offset], "pool_key": key})
    if not claims:
        return
    existing = set(session.scalars(select(Pool.key).where(Pool.key.in_(list(sizes)))))
    missing = [{"key": k, "size": s, "in_use": 0} for k, s in sizes.items() if k not in existing]
    if missing:
        session.execute(insert(Pool), missing)
    session.execute(insert(BeanPool), claims)


def _already_running(session: Session, flow: Flow, subjects: list[str]) -> Conflict:
    keys = [_active_key(s, flow.family) for s in subjects]
    active = session.execute(
        select(Run.id, Run.subject, Run.flow).where(Run.active_key.in_(keys)).limit(5)
    ).all()
    named = ", ".join(f"run {r.id} ({r.flow} on {r.subject})" for r in active)
    return Conflict(
        f"a {flow.family} run is already active: {named or 'another start won the race'}",
        details={"active_runs": [r.id for r in active]},
    )


def _active_key(subject: str, family: str) -> str:
    return f"{subject}|{family}"


# Reading runs --------------------------------------------------------------------------


@dataclass
class RunFilter:
    state: RunState | None = None
    flow: str | None = None
    subject: str | None = None


def get_run(session: Session, *, run_id: int) -> Run:
    run = get_by(session, Run, "run", id=run_id)
    session.refresh(run, ["beans"])
    return run


def list_runs(session: Session, *, where: RunFilter, limit: int, cursor: str | None) -> Page[Run]:
    stmt = select(Run).options(selectinload(Run.beans))
    if where.state is not None:
        stmt = stmt.where(Run.state == where.state)
    if where.flow is not None:
        stmt = stmt.where(Run.flow == where.flow)
    if where.subject is not None:
        stmt = stmt.where(Run.subject == where.subject)
    return paginate(
        session,
        stmt,
        id_column=Run.id,
        sort=SortKey(Run.id, descending=True),
        limit=limit,
        cursor=cursor,
    )


# Cancel and re-walk --------------------------------------------------------------------


def cancel_run(session: Session, *, run_id: int, reason: str) -> Run:
    """Stop a run: beans not yet ended are cancelled and their pool slots freed."""
    run = _locked_run(session, run_id)
    if run.state is not RunState.RUNNING:
        raise Conflict(f"run {run_id} is already {run.state.value}")
    live = [b for b in run.beans if b.state not in TERMINAL]
    release_pools(session, [b.id for b in live if b.state is BeanState.RUNNING])
    now = utcnow()
    for bean in live:
        bean.state, bean.reason, bean.finished_at = BeanState.CANCELLED, reason, now
        bean.lease_owner = bean.lease_expires = bean.wait_key = None
    finish_run(run, RunState.CANCELLED)
    session.flush()
    return run


def rewalk_run(session: Session, *, run_id: int, registry: FlowRegistry = flows) -> Run:
    """Resume a failed or cancelled run: beans recorded DONE stay done, the rest go again."""
    run = _locked_run(session, run_id)
    if run.state is RunState.RUNNING:
        raise Conflict(f"run {run_id} is still running")
    flow = registry.get(run.flow)
    active_key = _active_key(run.subject, run.family)
    if session.scalar(select(Run.id).where(Run.active_key == active_key)) is not None:
        raise _already_running(session, flow, [run.subject])
    states = engine.initial_states(flow)
    for bean in run.beans:
        if bean.state is BeanState.DONE:
            states[bean.name] = BeanState.DONE
    changes, _ = engine.advance(flow, states)
    now = utcnow()
    for bean in run.beans:
        if bean.state is BeanState.DONE:
            continue
        state = changes.get(bean.name, engine.Change(states[bean.name])).state
        bean.state, bean.reason, bean.failures = state, "", 0
        bean.ready_at = now if state is BeanState.READY else None
        bean.finished_at = None
    run.state, run.finished_at, run.active_key = RunState.RUNNING, None, active_key
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # another start won a race since the check above
        with session.no_autoflush:
            raise _already_running(session, flow, [run.subject]) from None
    notify_workers(session)
    return run


def _locked_run(session: Session, run_id: int) -> Run:
    """The run and its beans, locked in the workers' order: run first, then beans by id."""
    run = get_by(session, Run, "run", id=run_id)
    session.execute(select(Run.id).where(Run.id == run_id).with_for_update()).all()
    session.scalars(
        select(RunBean).where(RunBean.run_id == run_id).order_by(RunBean.id).with_for_update()
    ).all()
    session.refresh(run, ["beans"])
    return run


def finish_run(run: Run, state: RunState) -> None:
    run.state, run.finished_at, run.active_key = state, utcnow(), None


# Signals -------------------------------------------------------------------------------


def signal(session: Session, *, key: str, payload: dict[str, Any]) -> int:
    """Wake exactly the beans waiting on `key`; kept a while for beans about to wait on it."""
    now = utcnow()
    session.add(Signal(key=key, payload=payload, at=now))
    woken = session.execute(
        update(RunBean)
        .where(RunBean.state == BeanState.WAITING, RunBean.wait_key == key)
        .values(
            state=BeanState.READY,
            ready_at=now,
            event=payload,
            wait_key=None,
            wait_until=None,
            reason="",
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if woken:
        notify_workers(session)
    return woken


def purge_signals(session: Session) -> None:
    session.execute(delete(Signal).where(Signal.at < utcnow() - SIGNAL_RETENTION))


# Pools ---------------------------------------------------------------------------------


def set_pool(session: Session, *, key: str, size: int) -> Pool:
    """Resize a pool; slots already held stay held, new claims wait until under the size."""
    if size < 1:
        raise InvalidInput("a pool holds at least one slot", details={"field": "size"})
    pool = session.get(Pool, key, with_for_update=True)
    if pool is None:
        pool = Pool(key=key, size=size, in_use=0)
        session.add(pool)
    elif pool.in_use > size:
        raise Conflict(
            f"pool {key!r} has {pool.in_use} slot(s) in use; wait for them before going to {size}"
        )
    else:
        pool.size = size
    session.flush()
    return pool


def list_pools(
    session: Session, *, prefix: str | None, limit: int, cursor: str | None
) -> Page[Pool]:
    stmt = select(Pool)
    if prefix:
        stmt = stmt.where(Pool.key.startswith(prefix, autoescape=True))
    return paginate(
        session, stmt, id_column=Pool.key, sort=SortKey(Pool.key), limit=limit, cursor=cursor
    )


def release_pools(session: Session, running_bean_ids: list[int]) -> None:
    """Give back the slots of beans leaving RUNNING (a running bean holds all of its pools)."""
    if not running_bean_ids:
        return
    counts: dict[str, int] = {}
    for key in session.scalars(
        select(BeanPool.pool_key).where(BeanPool.bean_id.in_(running_bean_ids))
    ):
        counts[key] = counts.get(key, 0) + 1
    change_pools(session, {key: -count for key, count in counts.items()})


def change_pools(session: Session, deltas: dict[str, int]) -> None:
    """Move slot counts, locking pools in key order so that writers never deadlock."""
    keys = sorted(key for key, delta in deltas.items() if delta)
    if not keys:
        return
    session.execute(
        select(Pool.key).where(Pool.key.in_(keys)).order_by(Pool.key).with_for_update()
    ).all()
    session.connection().execute(
        update(Pool.__table__)
        .where(Pool.__table__.c.key == bindparam("pool_key"))
        .values(in_use=Pool.__table__.c.in_use + bindparam("delta")),
        [{"pool_key": key, "delta": deltas[key]} for key in keys],
    )


local_workers: set[threading.Event] = set()
"""Wake-up events of the workers in this process (the one embedded in `serve`)."""


def notify_workers(session: Session) -> None:
    """Wake idle workers as this transaction commits, instead of at their next poll."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))  # delivered on commit
    if local_workers:
        event.listen(session, "after_commit", _wake_local_workers, once=True)


def _wake_local_workers(session: Session) -> None:
    for wake in list(local_workers):
        wake.set()


def attempts_of(session: Session, *, run_id: int) -> dict[int, list[BeanAttempt]]:
    """Every recorded execution of the run's beans, by bean id, oldest first."""
    history: dict[int, list[BeanAttempt]] = {}
    for attempt in session.scalars(
        select(BeanAttempt)
        .join(RunBean, RunBean.id == BeanAttempt.bean_id)
        .where(RunBean.run_id == run_id)
        .order_by(BeanAttempt.id)
    ):
        history.setdefault(attempt.bean_id, []).append(attempt)
    return history
