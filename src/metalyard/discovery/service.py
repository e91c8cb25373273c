"""The agent's side of discovery: first contact (BOOT_EVENT), whoami, reports; and what
discovery shows people (what is booting, why an asset waits).

An agent is recognised by the serial it reads from DMI, else by one of its MACs; a server
nobody knows is created as DISCOVERED (procurement then raises it as an unknown asset). Each
boot starts the evaluation flow, or wakes the one already running.
"""

import hashlib
import ipaddress
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from metalyard.auth.actor import Actor
from metalyard.config import Settings
from metalyard.db import utcnow
from metalyard.db.lookup import get_by
from metalyard.discovery import flows
from metalyard.discovery.models import AgentSession, Evaluation
from metalyard.drivers import service as bmcs
from metalyard.errors import Conflict, Forbidden, InvalidInput, Unauthenticated
from metalyard.inventory import service as inventory
from metalyard.inventory.lifecycle import AssetState
from metalyard.inventory.models import Asset, AssetInterface
from metalyard.inventory.schemas import AssetCreate, AssetUpdate, TagChange
from metalyard.orchestrator import service as orchestrator
from metalyard.orchestrator.beans import Subject
from metalyard.orchestrator.models import Run
from metalyard.orchestrator.states import RunState

logger = logging.getLogger(__name__)

AGENT = Actor.system("discovery")
UNKNOWN_TAG = "discovery.unknown"
"""On assets discovery created itself: they must match an order before they may serve."""
BMC_TAG = "discovery.bmc-address"
"""On assets whose agent reads a BMC address other than the one on record. Which is right
is for a person to say: a Redfish endpoint may serve the system from elsewhere."""
WAIT_SECONDS = {AssetState.DISCOVERED: 5, AssetState.EVALUATING: 5, AssetState.QUARANTINED: 60}
IN_DISCOVERY = (AssetState.DISCOVERED, AssetState.EVALUATING, AssetState.QUARANTINED)


@dataclass(frozen=True)
class AgentView:
    """What an agent is told: who it is, what to do, and what is wrong."""

    serial: str
    state: AssetState
    instruction: dict[str, Any]
    problems: list[dict[str, str]]
    token: str | None = None


def check_source(address: str, settings: Settings) -> None:
    """Agents call from the discovery networks only: their first contact has no token."""
    try:
        source = ipaddress.ip_address(address)
    except ValueError:
        raise Forbidden(f"cannot tell where {address!r} is: agents call from an IP") from None
    networks = [ipaddress.ip_network(n, strict=False) for n in settings.discovery_networks]
    if not any(source in network for network in networks if network.version == source.version):
        raise Forbidden(f"{address} is not on a discovery network")


def boot(
    session: Session, *, facts: dict[str, Any], address: str, port: int | None, region: str
) -> AgentView:
    """First contact: recognise or create the asset, keep its facts, issue a token and start
    (or wake) its evaluation."""
    asset = _recognise(session, facts)
    if asset.facts != facts:
        asset.facts = facts
    token = secrets.token_urlsafe(32)
    agent = session.get(AgentSession, asset.id)
    if agent is None:
        agent = AgentSession(asset_id=asset.id)
        session.add(agent)
    agent.token_hash = _hash(token)
    agent.address, agent.port = address, port
    agent.booted_at = agent.seen_at = utcnow()
    session.flush()
    _learn_bmc(session, asset, facts)
    _evaluate(session, asset, region)
    return _view(session, asset, token=token)


def agent_asset(session: Session, *, token: str | None) -> Asset:
    if not token:
        raise Unauthenticated("send the agent token from the boot answer as X-Agent-Token")
    agent = session.scalar(select(AgentSession).where(AgentSession.token_hash == _hash(token)))
    if agent is None:
        raise Unauthenticated("unknown agent token: boot again")
    agent.seen_at = utcnow()
    return session.scalar(_locked(select(Asset).where(Asset.id == agent.asset_id)))


def whoami(session: Session, *, asset: Asset) -> AgentView:
    return _view(session, asset)


def report(session: Session, *, asset: Asset, facts: dict[str, Any], region: str) -> AgentView:
    """New facts: kept, and evaluated again if they changed."""
    if facts != asset.facts:
        asset.facts = facts
        session.flush()
        _learn_bmc(session, asset, facts)
        _evaluate(session, asset, region)
    return _view(session, asset)


def _recognise(session: Session, facts: dict[str, Any]) -> Asset:
    serial = ((facts.get("system") or {}).get("serial") or "").strip()
    macs = [n["mac"].lower() for n in facts.get("nics") or [] if n.get("mac")]
    asset = None
    if serial:
        asset = session.scalar(_locked(select(Asset).where(Asset.serial == serial)))
    if asset is None and macs:
        asset = session.scalar(
            _locked(select(Asset).join(AssetInterface).where(AssetInterface.mac.in_(macs)).limit(1))
        )
    if asset is not None:
        return asset
    interfaces = [
        {"name": n["name"], "mac": n["mac"].lower(), "speed_mbps": n.get("speed_mbps")}
        for n in facts.get("nics") or []
        if n.get("mac") and n.get("name")
    ]
    system = facts.get("system") or {}
    data = AssetCreate(
        serial=serial or f"UNKNOWN-{(macs or ['no-mac'])[0].replace(':', '')}",
        vendor=system.get("manufacturer") or "",
        model=system.get("product") or "",
        interfaces=interfaces,
        tags={UNKNOWN_TAG: "first seen by the agent; no asset had its serial or MACs"},
    )
    return inventory.create_asset(session, data=data, actor=AGENT)


def _learn_bmc(session: Session, asset: Asset, facts: dict[str, Any]) -> None:
    """Record the BMC address the agent read where the asset has none: with the driver
    "ipmi" if it has none either (the agent read it over IPMI). Only while the asset is in
    discovery, and never an address another asset's BMC is at: an agent speaks for a server
    that is not yet trusted. One on record is never replaced; a different one is tagged. A
    credential is still sent only inside its networks (drivers.service.AssetBmc.connect)."""
    reported = _reported_bmc_ip(facts)
    if reported is None:
        return
    note = None
    if not asset.bmc_address and asset.bmc_driver != "fake" and asset.state in IN_DISCOVERY:
        driver = asset.bmc_driver or "ipmi"
        address = bmcs.address_at(driver, reported)
        taken = session.scalar(
            select(Asset.serial).where(
                Asset.id != asset.id,
                Asset.bmc_address.in_({reported, address, bmcs.address_at("redfish", reported)}),
            )
        )
        if taken is None:
            learned = {"bmc_driver": driver} if asset.bmc_driver is None else {}
            change = AssetUpdate(bmc_address=address, **learned)
            inventory.update_asset(session, serial=asset.serial, data=change)
            logger.info("asset %s: BMC address %s read by its agent", asset.serial, reported)
        else:
            note = f"the agent reads {reported}, where asset {taken}'s BMC is: not recorded"
    recorded = bmcs.address_ip(asset.bmc_driver, asset.bmc_address)
    if recorded is not None and recorded != reported and not _loopback(recorded):
        note = f"the agent reads {reported}; the BMC address on record is at {recorded}"
    if note != next((tag.value for tag in asset.tags if tag.key == BMC_TAG), None):
        change = TagChange(set={BMC_TAG: note}) if note else TagChange(remove=[BMC_TAG])
        try:
            inventory.change_tags(session, serial=asset.serial, change=change)
        except InvalidInput as error:  # a full set of tags must not fail the agent's call
            logger.warning("asset %s: cannot tag %s: %s", asset.serial, BMC_TAG, error.message)


def _loopback(ip: str) -> bool:
    """A BMC on this host: an emulator (the lab), which the agent cannot see as such."""
    return ipaddress.ip_address(ip).is_loopback


def _reported_bmc_ip(facts: dict[str, Any]) -> str | None:
    """The BMC's IP address as the agent read it, if one a BMC can be reached at
    (`ipmitool lan print` shows 0.0.0.0 for a BMC that has none)."""
    bmc = facts.get("bmc")
    text = bmc.get("ip_address") if isinstance(bmc, dict) else None
    try:
        ip = ipaddress.ip_address(text) if isinstance(text, str) else None
    except ValueError:
        return None
    if ip is None or any(
        (ip.is_unspecified, ip.is_loopback, ip.is_link_local, ip.is_multicast, ip.is_reserved)
    ):
        return None
    return str(ip)


def _locked(query: Select) -> Select:
    """The asset row locked until this transaction ends (PostgreSQL; SQLite writes one at a
    time anyway): the evaluation flow writes the same asset, and an agent's boot or report
    must then wait for it rather than fail as a stale write."""
    return query.with_for_update(of=Asset)


def _evaluate(session: Session, asset: Asset, region: str) -> None:
    """Start the evaluation flow; if one is still running, it has the facts already."""
    savepoint = session.begin_nested()
    try:
        orchestrator.start_run(
            session,
            flow=flows.evaluate_flow,
            subject=Subject("asset", asset.serial),
            params={"region": region},
            actor=AGENT.name,
        )
    except Conflict:
        savepoint.rollback()
    else:
        savepoint.commit()


def _view(session: Session, asset: Asset, *, token: str | None = None) -> AgentView:
    if asset.state is AssetState.SPARE:
        instruction = {"action": "poweroff", "seconds": 0}
    elif asset.state in WAIT_SECONDS:
        instruction = {"action": "wait", "seconds": WAIT_SECONDS[asset.state]}
    else:
        instruction = {"action": "idle", "seconds": 300}
    evaluation = session.get(Evaluation, asset.id)
    return AgentView(
        serial=asset.serial,
        state=asset.state,
        instruction=instruction,
        problems=evaluation.problems if evaluation else [],
        token=token,
    )


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# What people see -----------------------------------------------------------------------


@dataclass(frozen=True)
class DiscoveryRow:
    serial: str
    state: AssetState
    booted_at: Any
    seen_at: Any
    agent: str
    profile: str
    problems: int
    evaluation: str


def in_discovery(session: Session) -> list[DiscoveryRow]:
    """Assets an agent has booted on that are not in service yet, with where they stand."""
    rows = session.execute(
        select(Asset, AgentSession, Evaluation)
        .join(AgentSession, AgentSession.asset_id == Asset.id)
        .outerjoin(Evaluation, Evaluation.asset_id == Asset.id)
        .where(Asset.state.in_([*IN_DISCOVERY, AssetState.SPARE]))
        .order_by(AgentSession.booted_at.desc())
    ).all()
    runs = _latest_runs(session, [asset.serial for asset, _, _ in rows])
    return [
        DiscoveryRow(
            serial=asset.serial,
            state=asset.state,
            booted_at=agent.booted_at,
            seen_at=agent.seen_at,
            agent=f"{agent.address}:{agent.port}" if agent.port else agent.address,
            profile=evaluation.profile if evaluation else "",
            problems=len(evaluation.problems) if evaluation else 0,
            evaluation=runs.get(asset.serial, "not started"),
        )
        for asset, agent, evaluation in rows
    ]


def _latest_runs(session: Session, serials: list[str]) -> dict[str, str]:
    if not serials:
        return {}
    subjects = [f"asset:{serial}" for serial in serials]
    found: dict[str, str] = {}
    for subject, state in session.execute(
        select(Run.subject, Run.state)
        .where(Run.flow == flows.evaluate_flow.name, Run.subject.in_(subjects))
        .order_by(Run.id)
    ):
        found[subject.removeprefix("asset:")] = state.value
    return found


def why(session: Session, *, serial: str) -> list[str]:
    """What the asset waits on or what blocks it, one line per reason."""
    asset = get_by(session, Asset, "asset", serial=serial)
    evaluation = session.get(Evaluation, asset.id)
    reasons = [
        f"{problem['message']} (fix: {problem['fix']})"
        for problem in (evaluation.problems if evaluation else [])
    ]
    run = session.scalar(
        select(Run)
        .where(Run.flow == flows.evaluate_flow.name, Run.subject == f"asset:{serial}")
        .order_by(Run.id.desc())
        .limit(1)
    )
    if run is not None and run.state is RunState.RUNNING:
        waiting = [b for b in run.beans if b.state.value in ("READY", "RUNNING", "WAITING")]
        for bean in waiting:
            detail = f": {bean.reason}" if bean.reason else ""
            reasons.append(
                f"evaluation run {run.id} is at {bean.name} ({bean.state.value}){detail}"
            )
    elif run is not None and run.state is RunState.FAILED:
        failed = [b for b in run.beans if b.state.value == "FAILED"]
        reasons += [f"evaluation run {run.id} failed at {b.name}: {b.reason}" for b in failed]
    elif run is not None and run.state is RunState.SUCCEEDED:
        left_on = [b for b in run.beans if b.reason.startswith(flows.LEFT_ON)]
        reasons += [f"evaluation run {run.id} {b.reason}" for b in left_on]
    if session.get(AgentSession, asset.id) is None and asset.state in IN_DISCOVERY:
        reasons.append("no agent has booted on it yet: power it on to PXE-boot the agent")
    if not reasons:
        reasons.append(f"nothing blocks it: it is {asset.state.value}")
    return reasons
