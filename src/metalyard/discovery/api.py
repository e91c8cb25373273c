"""Discovery routes: the agent protocol (no user token; the agent's own), and what people see."""

from typing import Annotated

from fastapi import Depends, Header, Path, Request

from metalyard.api.deps import SessionDep, SettingsDep
from metalyard.api.routing import open_router, secured_router
from metalyard.discovery import service
from metalyard.discovery.schemas import (
    AgentAnswer,
    BootEvent,
    DiscoveryRowOut,
    FactsReport,
    WhyOut,
)
from metalyard.inventory.models import Asset


def from_discovery_network(request: Request, settings: SettingsDep) -> None:
    service.check_source(request.client.host if request.client else "", settings)


def agent_asset(
    session: SessionDep,
    token: Annotated[str | None, Header(alias="X-Agent-Token", max_length=128)] = None,
) -> Asset:
    return service.agent_asset(session, token=token)


AgentAsset = Annotated[Asset, Depends(agent_asset)]

agent = open_router(  # whoami notes when the agent was last seen
    prefix="/discovery",
    tags=["agent"],
    dependencies=[Depends(from_discovery_network)],
    records=True,
)
discovery = secured_router(prefix="/discovery", tags=["discovery"])
assets = secured_router(prefix="/assets", tags=["discovery"])
routers = [agent, discovery, assets]


def _answer(view: service.AgentView) -> AgentAnswer:
    return AgentAnswer.model_validate(view, from_attributes=True)


@agent.post("/boot", response_model=AgentAnswer)
def boot(body: BootEvent, request: Request, session: SessionDep, settings: SettingsDep):
    """The agent's first contact (BOOT_EVENT): who it is, its token, what to do."""
    view = service.boot(
        session,
        facts=body.facts,
        address=request.client.host if request.client else "",
        port=body.agent_port,
        region=settings.region,
    )
    return _answer(view)


@agent.get("/whoami", response_model=AgentAnswer)
def whoami(asset: AgentAsset, session: SessionDep):
    """What the agent should do now, and what is wrong (for its console)."""
    return _answer(service.whoami(session, asset=asset))


@agent.post("/report", response_model=AgentAnswer)
def report(body: FactsReport, asset: AgentAsset, session: SessionDep, settings: SettingsDep):
    """Facts collected again; changed ones are evaluated again."""
    view = service.report(session, asset=asset, facts=body.facts, region=settings.region)
    return _answer(view)


@discovery.get("", response_model=list[DiscoveryRowOut])
def list_discovery(session: SessionDep):
    """What is booting and where it stands."""
    return [
        DiscoveryRowOut.model_validate(row, from_attributes=True)
        for row in service.in_discovery(session)
    ]


@assets.get("/{serial}/why", response_model=WhyOut)
def why(serial: Annotated[str, Path(max_length=64)], session: SessionDep):
    """What the asset waits on or what blocks it, one line per reason."""
    return WhyOut(serial=serial, reasons=service.why(session, serial=serial))
