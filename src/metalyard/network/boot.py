"""iPXE boot scripts: what a PXE-booting server runs, chosen by what metalyard knows of its MAC.

Unknown servers, servers under evaluation and SPAREs boot the agent (which reports, runs
checks, idles or powers off); servers in use boot their local disk. Every request is kept,
so discovery can show what is booting and where.
"""

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalyard.config import Settings
from metalyard.db.pagination import Page, SortKey, paginate
from metalyard.inventory.lifecycle import AssetState
from metalyard.inventory.models import Asset, AssetInterface
from metalyard.network.models import BootRequest

RETRY_SECONDS = 10
"""How long a server waits before rebooting when the agent cannot be fetched."""


class Decision(StrEnum):
    AGENT = "agent"
    LOCAL = "local"
    HALT = "halt"


_BY_STATE = {
    AssetState.DISCOVERED: Decision.AGENT,
    AssetState.EVALUATING: Decision.AGENT,
    AssetState.QUARANTINED: Decision.AGENT,
    AssetState.SPARE: Decision.AGENT,
    AssetState.PROVISIONING: Decision.LOCAL,
    AssetState.BAREMETAL: Decision.LOCAL,
    AssetState.RELEASING: Decision.LOCAL,
    AssetState.DECOMMISSIONED: Decision.HALT,
}


@dataclass(frozen=True)
class BootAnswer:
    decision: Decision
    serial: str | None
    script: str


def answer_boot(
    session: Session, *, mac: str, base_url: str, client: str, settings: Settings
) -> BootAnswer:
    """The script for `mac`, and a record of the request."""
    found = session.execute(
        select(Asset.id, Asset.serial, Asset.state)
        .join(AssetInterface, AssetInterface.asset_id == Asset.id)
        .where(AssetInterface.mac == mac)
    ).first()
    decision = _BY_STATE[found.state] if found else Decision.AGENT
    session.add(
        BootRequest(mac=mac, asset_id=found.id if found else None, decision=decision, client=client)
    )
    session.flush()
    serial = found.serial if found else None
    return BootAnswer(decision, serial, _script(decision, mac, serial, base_url, settings))


def _script(
    decision: Decision, mac: str, serial: str | None, base_url: str, settings: Settings
) -> str:
    who = f"{serial} ({mac})" if serial else mac
    if decision is Decision.LOCAL:
        return f"#!ipxe\necho metalyard: {who} is in use: booting its local disk\nexit\n"
    if decision is Decision.HALT:
        return f"#!ipxe\necho metalyard: {who} is decommissioned\nsleep 30\npoweroff\n"
    kernel = settings.agent_kernel_url or f"{base_url}/boot/agent/vmlinuz"
    initrd = settings.agent_initrd_url or f"{base_url}/boot/agent/initrd.img"
    arguments = f"metalyard.url={base_url} metalyard.mac={mac} ip=dhcp console=tty0"
    return (
        "#!ipxe\n"
        f"echo metalyard: {who}: booting the agent\n"
        f"kernel {kernel} initrd=initrd.img {arguments} || goto retry\n"
        f"initrd --name initrd.img {initrd} || goto retry\n"
        "boot || goto retry\n"
        ":retry\n"
        f"echo metalyard: cannot load the agent; rebooting in {RETRY_SECONDS} s\n"
        f"sleep {RETRY_SECONDS}\n"
        "reboot\n"
    )


def list_boot_requests(
    session: Session, *, mac: str | None, limit: int, cursor: str | None
) -> Page[BootRequest]:
    stmt = select(BootRequest)
    if mac is not None:
        stmt = stmt.where(BootRequest.mac == mac)
    return paginate(
        session,
        stmt,
        id_column=BootRequest.id,
        sort=SortKey(BootRequest.id, True),
        limit=limit,
        cursor=cursor,
    )
