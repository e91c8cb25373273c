"""IPAM routes: prefixes with their reserved ranges, and IP allocations; thin over the service."""

from typing import Annotated

from fastapi import Depends, Path, Query, Request, Response, status
from fastapi.responses import FileResponse, PlainTextResponse

from metalyard.api.deps import IdPath, PageDep, SessionDep, SettingsDep
from metalyard.api.routing import open_router, secured_router
from metalyard.errors import NotFound
from metalyard.network import boot as pxe
from metalyard.network import dhcp, service
from metalyard.network.addressing import PrefixRole
from metalyard.network.schemas import (
    BootRequestOut,
    InterfaceName,
    IpAllocationCreate,
    IpAllocationOut,
    PrefixCreate,
    PrefixOut,
    PrefixUpdate,
    ReservedRangeCreate,
    ReservedRangeOut,
    Serial,
    prefix_out,
)
from metalyard.schemas import ErrorBody, Name, PageOut

prefixes = secured_router(prefix="/prefixes", tags=["prefixes"])
ip_allocations = secured_router(prefix="/ip-allocations", tags=["ip allocations"])
routers = [prefixes, ip_allocations]

AddressPath = Annotated[
    str, Path(max_length=64, description="An IPv4 or IPv6 address, like 10.0.0.5.")
]
PrefixIdQuery = Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Prefix id.")]
SortQuery = Annotated[
    str, Query(max_length=32, description="Field to sort by; `-` for descending.")
]


def keep_dhcp_in_step(session: SessionDep, settings: SettingsDep) -> None:
    """On the host that serves DHCP (`METALYARD_DHCP_INTERFACE` set), dnsmasq's host files
    follow every allocation change as soon as it commits."""
    if settings.dhcp_interface:
        dhcp.sync_hosts_after_commit(session, settings)


KeepDhcpInStep = Annotated[None, Depends(keep_dhcp_in_step)]


# Prefixes ------------------------------------------------------------------------------


@prefixes.get("", response_model=PageOut[PrefixOut])
def list_prefixes(
    session: SessionDep,
    page: PageDep,
    site: Name | None = None,
    role: PrefixRole | None = None,
    cidr: Annotated[str | None, Query(max_length=64, description="Exactly this CIDR.")] = None,
    contains: Annotated[
        str | None, Query(max_length=64, description="The prefix holding this address.")
    ] = None,
    sort: SortQuery = "id",
):
    result = service.list_prefixes(
        session,
        site=site,
        role=role,
        cidr=cidr,
        contains_address=contains,
        sort=sort,
        limit=page.limit,
        cursor=page.cursor,
    )
    return PageOut(items=[prefix_out(p) for p in result.items], next_cursor=result.next_cursor)


@prefixes.post("", response_model=PrefixOut, status_code=status.HTTP_201_CREATED)
def create_prefix(body: PrefixCreate, session: SessionDep):
    """Add a prefix to a site; it may not overlap any other prefix of the region."""
    return prefix_out(service.create_prefix(session, data=body))


@prefixes.get("/{prefix_id}", response_model=PrefixOut)
def get_prefix(prefix_id: IdPath, session: SessionDep):
    return prefix_out(service.get_prefix(session, prefix_id=prefix_id))


@prefixes.patch("/{prefix_id}", response_model=PrefixOut)
def update_prefix(prefix_id: IdPath, body: PrefixUpdate, session: SessionDep):
    """Send the `version` you read: a stale write is refused with 409."""
    return prefix_out(service.update_prefix(session, prefix_id=prefix_id, data=body))


@prefixes.delete("/{prefix_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_prefix(prefix_id: IdPath, session: SessionDep) -> None:
    """Delete a prefix none of whose addresses is allocated (its reserved ranges go with it)."""
    service.delete_prefix(session, prefix_id=prefix_id)


@prefixes.get("/{prefix_id}/reserved-ranges", response_model=list[ReservedRangeOut])
def list_reserved_ranges(prefix_id: IdPath, session: SessionDep):
    """Every reserved range of the prefix, in address order (a prefix has at most 64)."""
    return service.list_reserved_ranges(session, prefix_id=prefix_id)


@prefixes.post(
    "/{prefix_id}/reserved-ranges",
    response_model=ReservedRangeOut,
    status_code=status.HTTP_201_CREATED,
)
def reserve_range(prefix_id: IdPath, body: ReservedRangeCreate, session: SessionDep):
    """Keep addresses out of allocation; refused if one of them is allocated already."""
    return service.reserve_range(session, prefix_id=prefix_id, data=body)


@prefixes.delete("/{prefix_id}/reserved-ranges/{range_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_reserved_range(prefix_id: IdPath, range_id: IdPath, session: SessionDep) -> None:
    service.delete_reserved_range(session, prefix_id=prefix_id, range_id=range_id)


# IP allocations ------------------------------------------------------------------------


@ip_allocations.get("", response_model=PageOut[IpAllocationOut])
def list_ip_allocations(
    session: SessionDep,
    page: PageDep,
    prefix_id: PrefixIdQuery = None,
    serial: Serial | None = None,
    interface: InterfaceName | None = None,
    site: Name | None = None,
    role: PrefixRole | None = None,
    sort: SortQuery = "id",
):
    where = service.AllocationFilter(
        prefix_id=prefix_id, serial=serial, interface=interface, site=site, role=role
    )
    return service.list_allocations(
        session, where=where, sort=sort, limit=page.limit, cursor=page.cursor
    )


@ip_allocations.post(
    "",
    response_model=IpAllocationOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {
            "model": IpAllocationOut,
            "description": "The interface already held an address there: that one",
        }
    },
)
def allocate_ip(
    body: IpAllocationCreate, session: SessionDep, response: Response, _dhcp: KeepDhcpInStep
):
    """An address for an asset's interface, from a prefix or from a site's prefixes of a role.

    Idempotent: an interface that already holds an address there gets it again (200).
    """
    result = service.allocate(session, data=body)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return result.allocation


@ip_allocations.delete("", response_model=list[IpAllocationOut])
def release_interface_ips(
    session: SessionDep,
    _dhcp: KeepDhcpInStep,
    serial: Serial,
    interface: Annotated[
        InterfaceName | None, Query(description="Only this interface's addresses.")
    ] = None,
    prefix_id: PrefixIdQuery = None,
):
    """Release what an asset, or one of its interfaces, holds; answers what was released."""
    return service.release_interface(
        session, serial=serial, interface=interface, prefix_id=prefix_id
    )


@ip_allocations.get("/{address}", response_model=IpAllocationOut)
def get_ip_allocation(address: AddressPath, session: SessionDep):
    return service.get_allocation(session, address=address)


@ip_allocations.delete("/{address}", status_code=status.HTTP_204_NO_CONTENT)
def release_ip(address: AddressPath, session: SessionDep, _dhcp: KeepDhcpInStep) -> None:
    service.release(session, address=address)


# PXE boot ------------------------------------------------------------------------------

boot = open_router(
    prefix="/boot", tags=["boot"], records=True, versioned=False
)  # each iPXE request is kept
"""Served at the root, not under /v1: iPXE asks here, with no token to send."""
boot_requests = secured_router(prefix="/boot-requests", tags=["boot"])
routers.append(boot_requests)

MacQuery = Annotated[
    str,
    Query(
        pattern=r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$",
        description="The booting interface's MAC, as iPXE's `${net0/mac}` gives it.",
    ),
]
AGENT_FILES = frozenset({"vmlinuz", "initrd.img"})


@boot.get(
    "/ipxe",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def ipxe_script(mac: MacQuery, request: Request, session: SessionDep, settings: SettingsDep):
    """The iPXE script for this MAC: the agent (unknown, evaluating, SPARE) or the local disk."""
    answer = pxe.answer_boot(
        session,
        mac=mac.lower().replace("-", ":"),
        base_url=str(request.base_url).rstrip("/"),
        client=request.client.host if request.client else "",
        settings=settings,
    )
    return PlainTextResponse(answer.script)


@boot.get("/agent/{name}", response_class=FileResponse, responses={404: {"model": ErrorBody}})
def agent_file(
    name: Annotated[str, Path(description="vmlinuz or initrd.img")], settings: SettingsDep
):
    """The agent's kernel and initrd, from `<data dir>/agent/`."""
    path = settings.data_dir / "agent" / name
    if name not in AGENT_FILES or not path.is_file():
        raise NotFound(f"no agent file {name!r}: put vmlinuz and initrd.img in {path.parent}")
    return FileResponse(path)


@boot_requests.get("", response_model=PageOut[BootRequestOut])
def list_boot_requests(
    session: SessionDep,
    page: PageDep,
    mac: Annotated[str | None, Query(max_length=17)] = None,
):
    """What booted, newest first: MAC, asset, and what it was told to boot."""
    found = pxe.list_boot_requests(
        session, mac=mac.lower() if mac else None, limit=page.limit, cursor=page.cursor
    )
    return PageOut(
        items=[BootRequestOut.model_validate(r) for r in found.items],
        next_cursor=found.next_cursor,
    )
