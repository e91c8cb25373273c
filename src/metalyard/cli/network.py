"""`metalyard prefix …` and `metalyard ip …`: IP address management."""

from typing import Annotated, Any

import typer

from metalyard.cli.common import (
    Cursor,
    Description,
    Limit,
    Sort,
    Version,
    changes,
    list_page,
    paging,
)
from metalyard.cli.context import connect
from metalyard.cli.output import Output, OutputOption, listing, note, show
from metalyard.network.addressing import PrefixRole
from metalyard.sdk import Client

prefix = typer.Typer(help="IP prefixes of the sites, by id or CIDR.", no_args_is_help=True)
ip = typer.Typer(help="IP addresses allocated to asset interfaces.", no_args_is_help=True)

PREFIX_COLUMNS = ["id", "site", "cidr", "role", "gateway", "vlan", "description"]
RANGE_COLUMNS = ["id", "start", "end", "reason"]
ALLOCATION_COLUMNS = ["address", ("cidr", "PREFIX"), "site", "role", "serial", "interface"]

PrefixRef = Annotated[str, typer.Argument(help="The prefix's id, or its CIDR.", metavar="PREFIX")]
PrefixOption = Annotated[
    str | None, typer.Option("--prefix", help="The prefix's id, or its CIDR.", metavar="PREFIX")
]
Role = Annotated[PrefixRole | None, typer.Option(case_sensitive=False, help="What it is for.")]
SiteOption = Annotated[str | None, typer.Option("--site", help="The site's name.")]
Gateway = Annotated[str | None, typer.Option(help="The gateway address, inside the prefix.")]
Dns = Annotated[
    list[str] | None, typer.Option("--dns", help="A DNS server address; repeat for several.")
]
Vlan = Annotated[int | None, typer.Option(min=1, max=4094, help="The VLAN id.")]


def prefix_id(client: Client, ref: str) -> int:
    if ref.isdigit():
        return int(ref)
    if "/" not in ref:
        raise typer.BadParameter(f"{ref!r}: give a prefix as its id or as a CIDR like 10.0.0.0/24")
    return client.prefixes.find(ref).id


# Prefixes ------------------------------------------------------------------------------


@prefix.command("list")
def prefix_list(
    site: SiteOption = None,
    role: Role = None,
    contains: Annotated[
        str | None, typer.Option(help="Only the prefix holding this address.")
    ] = None,
    sort: Sort = None,
    limit: Limit = None,
    cursor: Cursor = None,
    output: OutputOption = Output.table,
):
    """List prefixes."""
    prefixes = connect().prefixes.list(
        site=site, role=role, contains=contains, sort=sort, **paging(limit, cursor)
    )
    list_page(prefixes, output, PREFIX_COLUMNS)


@prefix.command("show")
def prefix_show(ref: PrefixRef, output: OutputOption = Output.table):
    """Show one prefix."""
    client = connect()
    show(client.prefixes.get(prefix_id(client, ref)), output)


@prefix.command("create")
def prefix_create(
    cidr: Annotated[str, typer.Argument(help="Like 10.0.0.0/24 or 2001:db8::/64.")],
    site: Annotated[str, typer.Option(help="The site the prefix serves.")],
    role: Annotated[PrefixRole, typer.Option(case_sensitive=False, help="What it is for.")],
    gateway: Gateway = None,
    dns: Dns = None,
    vlan: Vlan = None,
    description: Description = None,
    output: OutputOption = Output.table,
):
    """Create a prefix in a site; it may not overlap any prefix of the region."""
    fields: dict[str, Any] = {"gateway": gateway, "vlan": vlan, "description": description}
    fields = {k: v for k, v in fields.items() if v is not None}
    if dns:
        fields["dns_servers"] = dns
    show(connect().prefixes.create(cidr=cidr, site=site, role=role, **fields), output)


@prefix.command("update")
def prefix_update(
    ref: PrefixRef,
    role: Role = None,
    gateway: Gateway = None,
    no_gateway: Annotated[bool, typer.Option("--no-gateway", help="Remove the gateway.")] = False,
    dns: Dns = None,
    no_dns: Annotated[bool, typer.Option("--no-dns", help="Remove every DNS server.")] = False,
    vlan: Vlan = None,
    no_vlan: Annotated[bool, typer.Option("--no-vlan", help="Remove the VLAN.")] = False,
    description: Description = None,
    version: Version = None,
    output: OutputOption = Output.table,
):
    """Change a prefix's role, gateway, DNS servers, VLAN or description (--dns replaces all)."""
    fields: dict[str, Any] = {"role": role, "gateway": gateway, "vlan": vlan}
    fields["description"] = description
    fields = {k: v for k, v in fields.items() if v is not None}
    if dns or no_dns:
        fields["dns_servers"] = [] if no_dns else dns
    for flag, name in ((no_gateway, "gateway"), (no_vlan, "vlan")):
        if flag:
            fields[name] = None
    client = connect()
    updated = client.prefixes.update(prefix_id(client, ref), version=version, **changes(fields))
    show(updated, output)


@prefix.command("delete")
def prefix_delete(ref: PrefixRef):
    """Delete a prefix with no allocated address (its reserved ranges go with it)."""
    client = connect()
    client.prefixes.delete(prefix_id(client, ref))
    note(f"deleted prefix {ref}")


@prefix.command("reserve")
def prefix_reserve(
    ref: PrefixRef,
    start: Annotated[str, typer.Argument(help="The first reserved address.")],
    end: Annotated[str, typer.Argument(help="The last reserved address (included).")],
    reason: Annotated[str, typer.Option(help="Why: what uses these addresses.")],
    output: OutputOption = Output.table,
):
    """Keep a range of a prefix's addresses out of allocation."""
    client = connect()
    show(client.prefixes.reserve(prefix_id(client, ref), start, end, reason=reason), output)


@prefix.command("reserved")
def prefix_reserved(ref: PrefixRef, output: OutputOption = Output.table):
    """List a prefix's reserved ranges."""
    client = connect()
    listing(client.prefixes.reserved_ranges(prefix_id(client, ref)), output, RANGE_COLUMNS)


@prefix.command("unreserve")
def prefix_unreserve(
    ref: PrefixRef,
    range_id: Annotated[int, typer.Argument(help="The reserved range's id.", min=1)],
):
    """Give a reserved range back to allocation."""
    client = connect()
    client.prefixes.unreserve(prefix_id(client, ref), range_id)
    note(f"deleted reserved range {range_id} of prefix {ref}")


# IP allocations ------------------------------------------------------------------------


@ip.command("allocate")
def ip_allocate(
    serial: Annotated[str, typer.Argument(help="The asset's serial number.")],
    interface: Annotated[str, typer.Argument(help="The interface's name, like eno1.")],
    prefix_ref: PrefixOption = None,
    site: SiteOption = None,
    role: Role = None,
    address: Annotated[
        str | None, typer.Option(help="This address rather than the lowest free one.")
    ] = None,
    output: OutputOption = Output.table,
):
    """Give an interface an address from a prefix (--prefix) or a site's (--site --role).

    An interface that already holds one there gets the same one again.
    """
    if (prefix_ref is None) == (site is None and role is None):
        raise typer.BadParameter("give either --prefix, or --site and --role")
    if prefix_ref is None and (site is None or role is None):
        raise typer.BadParameter("--site and --role go together")
    client = connect()
    chosen = prefix_id(client, prefix_ref) if prefix_ref is not None else None
    allocation = client.ip_allocations.allocate(
        serial, interface, prefix_id=chosen, site=site, role=role, address=address
    )
    show(allocation, output)


@ip.command("release")
def ip_release(
    address: Annotated[str | None, typer.Argument(help="The address to release.")] = None,
    serial: Annotated[
        str | None, typer.Option(help="Instead: release what this asset holds.")
    ] = None,
    interface: Annotated[
        str | None, typer.Option(help="With --serial: only this interface's addresses.")
    ] = None,
    prefix_ref: PrefixOption = None,
    output: OutputOption = Output.table,
):
    """Release an address, or what an asset (or one of its interfaces) holds."""
    if (address is None) == (serial is None):
        raise typer.BadParameter("give either an ADDRESS, or --serial (with --interface)")
    client = connect()
    if address is not None:
        if interface is not None or prefix_ref is not None:
            raise typer.BadParameter("--interface and --prefix go with --serial")
        client.ip_allocations.release(address)
        note(f"released {address}")
        return
    chosen = prefix_id(client, prefix_ref) if prefix_ref is not None else None
    released = client.ip_allocations.release_interface(serial, interface, prefix_id=chosen)
    note(f"released {len(released)} address(es)")
    listing(released, output, ALLOCATION_COLUMNS)


@ip.command("list")
def ip_list(
    prefix_ref: PrefixOption = None,
    serial: Annotated[str | None, typer.Option(help="Only this asset's addresses.")] = None,
    interface: Annotated[str | None, typer.Option(help="Only this interface's.")] = None,
    site: SiteOption = None,
    role: Role = None,
    sort: Sort = None,
    limit: Limit = None,
    cursor: Cursor = None,
    output: OutputOption = Output.table,
):
    """List allocated addresses."""
    client = connect()
    chosen = prefix_id(client, prefix_ref) if prefix_ref is not None else None
    allocations = client.ip_allocations.list(
        prefix_id=chosen,
        serial=serial,
        interface=interface,
        site=site,
        role=role,
        sort=sort,
        **paging(limit, cursor),
    )
    list_page(allocations, output, ALLOCATION_COLUMNS)


@ip.command("show")
def ip_show(address: str, output: OutputOption = Output.table):
    """Show who holds an address."""
    show(connect().ip_allocations.get(address), output)
