"""Routes for flows, runs, signals and pools: thin wrappers over orchestrator.service."""

from typing import Annotated, Any

from fastapi import Path, Query, status

from metalyard.api.deps import ActorDep, IdPath, PageDep, SessionDep, requires
from metalyard.api.routing import secured_router
from metalyard.auth.scopes import Scope
from metalyard.orchestrator import service
from metalyard.orchestrator.beans import Subject
from metalyard.orchestrator.flows import Flow, flows
from metalyard.orchestrator.schemas import (
    AttemptOut,
    BeanSpecOut,
    FlowOut,
    PoolOut,
    PoolUpdate,
    RunBeanOut,
    RunCreate,
    RunOut,
    SignalIn,
    SignalResult,
)
from metalyard.orchestrator.states import RunState
from metalyard.schemas import PageOut

flow_routes = secured_router(prefix="/flows", tags=["flows"])
run_routes = secured_router(prefix="/runs", tags=["runs"])
signal_routes = secured_router(prefix="/signals", tags=["runs"])
pool_routes = secured_router(prefix="/pools", tags=["pools"])
routers = [flow_routes, run_routes, signal_routes, pool_routes]

FlowName = Annotated[str, Path(max_length=64)]


def flow_out(flow: Flow) -> FlowOut:
    return FlowOut(
        name=flow.name,
        family=flow.family,
        description=flow.description,
        required_params=list(flow.required_params),
        text=flow.render(),
        beans=[
            BeanSpecOut(
                name=b.name,
                depends_on={k: v.value for k, v in b.depends_on.items()},
                ignore_failure=b.ignore_failure,
                max_attempts=b.retry.max_attempts,
                timeout=b.timeout,
                pools=[
                    f"{p.name}:{{{p.key_param}}}" if p.key_param else f"{p.name}:global"
                    for p in b.pools
                ],
            )
            for b in flow.beans
        ],
    )


def run_out(run: Any, history: dict[int, list] | None = None) -> RunOut:
    return RunOut(
        id=run.id,
        flow=run.flow,
        family=run.family,
        subject=run.subject,
        params=run.params,
        state=run.state,
        created_by=run.created_by,
        created_at=run.created_at,
        finished_at=run.finished_at,
        beans=[
            RunBeanOut(
                name=b.name,
                state=b.state,
                attempts=b.attempts,
                failures=b.failures,
                reason=b.reason,
                wait_key=b.wait_key,
                data=b.data,
                started_at=b.started_at,
                finished_at=b.finished_at,
                duration=(b.finished_at - b.started_at).total_seconds()
                if b.finished_at and b.started_at
                else None,
                history=[AttemptOut.model_validate(a) for a in (history or {}).get(b.id, [])],
            )
            for b in run.beans
        ],
    )


@flow_routes.get("", response_model=list[FlowOut])
def list_flows():
    return [flow_out(flow) for flow in flows]


@flow_routes.get("/{name}", response_model=FlowOut)
def get_flow(name: FlowName):
    return flow_out(flows.get(name))


@run_routes.post("", response_model=RunOut, status_code=status.HTTP_201_CREATED)
def start_run(body: RunCreate, session: SessionDep, actor: ActorDep):
    """Start a flow on a subject; 409 names the run already active for it."""
    run = service.start_run(
        session,
        flow=flows.get(body.flow),
        subject=Subject.parse(body.subject),
        params=body.params,
        actor=actor.name,
    )
    return run_out(run)


@run_routes.get("", response_model=PageOut[RunOut])
def list_runs(
    session: SessionDep,
    page: PageDep,
    state: RunState | None = None,
    flow: Annotated[str | None, Query(max_length=64)] = None,
    subject: Annotated[str | None, Query(max_length=256)] = None,
):
    where = service.RunFilter(state=state, flow=flow, subject=subject)
    result = service.list_runs(session, where=where, limit=page.limit, cursor=page.cursor)
    return PageOut(items=[run_out(r) for r in result.items], next_cursor=result.next_cursor)


@run_routes.get("/{run_id}", response_model=RunOut)
def get_run(run_id: IdPath, session: SessionDep):
    """The run with each bean's state, attempts, duration, last error and every execution."""
    run = service.get_run(session, run_id=run_id)
    return run_out(run, service.attempts_of(session, run_id=run_id))


@run_routes.post("/{run_id}/cancel", response_model=RunOut)
def cancel_run(run_id: IdPath, session: SessionDep, actor: ActorDep):
    return run_out(service.cancel_run(session, run_id=run_id, reason=f"cancelled by {actor.name}"))


@run_routes.post("/{run_id}/rewalk", response_model=RunOut)
def rewalk_run(run_id: IdPath, session: SessionDep):
    """Resume a failed or cancelled run: what is done stays done, the rest runs again."""
    return run_out(service.rewalk_run(session, run_id=run_id))


@signal_routes.post("", response_model=SignalResult)
def send_signal(body: SignalIn, session: SessionDep):
    """Wake the beans waiting on this key (e.g. `agent.report:SN0001`)."""
    return SignalResult(woken=service.signal(session, key=body.key, payload=body.payload))


@pool_routes.get("", response_model=PageOut[PoolOut])
def list_pools(
    session: SessionDep,
    page: PageDep,
    prefix: Annotated[str | None, Query(max_length=256)] = None,
):
    """Each pool's size and the slots in use now."""
    return service.list_pools(session, prefix=prefix, limit=page.limit, cursor=page.cursor)


@pool_routes.put("/{key}", response_model=PoolOut, **requires(Scope.ADMIN))
def set_pool(key: Annotated[str, Path(max_length=256)], body: PoolUpdate, session: SessionDep):
    return service.set_pool(session, key=key, size=body.size)
