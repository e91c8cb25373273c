"""`metalyard site|rack|machine-class|asset …`: the inventory."""

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from metalyard.auth.changes.schemas import ChangeRequestOut
from metalyard.cli import importing, parsing
from metalyard.cli.common import (
    All,
    Cursor,
    Description,
    Limit,
    PageLimit,
    Sort,
    Version,
    changes,
    limit_of,
    list_page,
    paging,
    parked,
)
from metalyard.cli.context import connect
from metalyard.cli.output import Output, OutputOption, note, show
from metalyard.errors import InvalidInput, NotFound
from metalyard.inventory.lifecycle import AssetState, Health
from metalyard.sdk import Client

site = typer.Typer(help="Sites: the places racks stand in.", no_args_is_help=True)
rack = typer.Typer(help="Racks, named by id or as SITE/NAME.", no_args_is_help=True)
machine_class = typer.Typer(help="Machine classes: the names SPAREs are picked by.")
asset = typer.Typer(help="Assets: physical servers, by serial number.", no_args_is_help=True)
machine_class.info.no_args_is_help = True

SITE_COLUMNS = ["name", "description", "address", "version", "updated_at"]
RACK_COLUMNS = ["id", "site", "name", "height_u", "mgmt_switch", "bmc_capacity", "version"]
CLASS_COLUMNS = ["name", "description", "version", "updated_at"]
ASSET_COLUMNS = [
    "serial",
    "hostname",
    "state",
    "health",
    ("machine_class", "CLASS"),
    "site",
    "rack",
    ("owner_team", "TEAM"),
    "tags",
]
HISTORY_COLUMNS = [
    "at",
    ("from_state", "FROM"),
    ("to_state", "TO"),
    "actor",
    "approved_by",
    "reason",
]


# Sites ---------------------------------------------------------------------------------

Address = Annotated[str | None, typer.Option(help="Postal address.")]


@site.command("list")
def site_list(
    sort: Sort = None,
    limit: Limit = None,
    cursor: Cursor = None,
    output: OutputOption = Output.table,
):
    """List sites."""
    sites = connect().sites.list(sort=sort, **paging(limit, cursor))
    list_page(sites, output, SITE_COLUMNS)


@site.command("show")
def site_show(name: str, output: OutputOption = Output.table):
    """Show one site."""
    show(connect().sites.get(name), output)


@site.command("create")
def site_create(
    name: str,
    description: Description = None,
    address: Address = None,
    output: OutputOption = Output.table,
):
    """Create a site."""
    fields = parsing.drop_none(description=description, address=address)
    show(connect().sites.create(name=name, **fields), output)


@site.command("update")
def site_update(
    name: str,
    description: Description = None,
    address: Address = None,
    version: Version = None,
    output: OutputOption = Output.table,
):
    """Change a site's description or address."""
    fields = parsing.drop_none(description=description, address=address)
    show(connect().sites.update(name, version=version, **changes(fields)), output)


@site.command("delete")
def site_delete(name: str):
    """Delete a site that has no racks left."""
    connect().sites.delete(name)
    note(f"deleted site {name!r}")


# Racks ---------------------------------------------------------------------------------

RackRef = Annotated[str, typer.Argument(help="The rack's id, or SITE/NAME.", metavar="RACK")]
HeightU = Annotated[int | None, typer.Option(min=1, max=100, help="Height in rack units.")]
MgmtSwitch = Annotated[str | None, typer.Option(help="The rack's management switch.")]
BmcCapacity = Annotated[
    int | None, typer.Option(min=1, help="How many BMC-heavy operations may run at once.")
]


def rack_id(client: Client, ref: str) -> int:
    if ref.isdigit():
        return int(ref)
    site_name, slash, name = ref.partition("/")
    if not slash:
        raise typer.BadParameter(f"{ref!r}: give a rack as its id or as SITE/NAME")
    for found in client.racks.list(site=site_name):
        if found.name == name:
            return found.id
    raise NotFound(f"no rack {name!r} in site {site_name!r}")


@rack.command("list")
def rack_list(
    site: Annotated[str | None, typer.Option(help="Only the racks of this site.")] = None,
    sort: Sort = None,
    limit: Limit = None,
    cursor: Cursor = None,
    output: OutputOption = Output.table,
):
    """List racks."""
    racks = connect().racks.list(site=site, sort=sort, **paging(limit, cursor))
    list_page(racks, output, RACK_COLUMNS)


@rack.command("show")
def rack_show(ref: RackRef, output: OutputOption = Output.table):
    """Show one rack."""
    client = connect()
    show(client.racks.get(rack_id(client, ref)), output)


@rack.command("create")
def rack_create(
    name: str,
    site: Annotated[str, typer.Option(help="The site the rack stands in.")],
    height_u: HeightU = None,
    mgmt_switch: MgmtSwitch = None,
    bmc_capacity: BmcCapacity = None,
    output: OutputOption = Output.table,
):
    """Create a rack in a site."""
    fields = parsing.drop_none(
        height_u=height_u, mgmt_switch=mgmt_switch, bmc_capacity=bmc_capacity
    )
    show(connect().racks.create(site=site, name=name, **fields), output)


@rack.command("update")
def rack_update(
    ref: RackRef,
    height_u: HeightU = None,
    mgmt_switch: MgmtSwitch = None,
    bmc_capacity: BmcCapacity = None,
    version: Version = None,
    output: OutputOption = Output.table,
):
    """Change a rack."""
    client = connect()
    fields = parsing.drop_none(
        height_u=height_u, mgmt_switch=mgmt_switch, bmc_capacity=bmc_capacity
    )
    show(client.racks.update(rack_id(client, ref), version=version, **changes(fields)), output)


@rack.command("delete")
def rack_delete(ref: RackRef):
    """Delete an empty rack."""
    client = connect()
    client.racks.delete(rack_id(client, ref))
    note(f"deleted rack {ref}")


# Machine classes -----------------------------------------------------------------------


@machine_class.command("list")
def machine_class_list(
    sort: Sort = None,
    limit: Limit = None,
    cursor: Cursor = None,
    output: OutputOption = Output.table,
):
    """List machine classes."""
    classes = connect().machine_classes.list(sort=sort, **paging(limit, cursor))
    list_page(classes, output, CLASS_COLUMNS)


@machine_class.command("show")
def machine_class_show(name: str, output: OutputOption = Output.table):
    """Show one machine class."""
    show(connect().machine_classes.get(name), output)


@machine_class.command("create")
def machine_class_create(
    name: str, description: Description = None, output: OutputOption = Output.table
):
    """Create a machine class."""
    fields = parsing.drop_none(description=description)
    show(connect().machine_classes.create(name=name, **fields), output)


@machine_class.command("update")
def machine_class_update(
    name: str,
    description: Description = None,
    version: Version = None,
    output: OutputOption = Output.table,
):
    """Change a machine class's description."""
    fields = parsing.drop_none(description=description)
    show(connect().machine_classes.update(name, version=version, **changes(fields)), output)


@machine_class.command("delete")
def machine_class_delete(name: str):
    """Delete a machine class no asset uses."""
    connect().machine_classes.delete(name)
    note(f"deleted machine class {name!r}")


# Assets --------------------------------------------------------------------------------


class BmcDriverName(StrEnum):
    fake = "fake"
    redfish = "redfish"
    ipmi = "ipmi"


Serial = Annotated[str, typer.Argument(help="The asset's serial number.")]
Hostname = Annotated[str | None, typer.Option(help="Host name (FQDN).")]
Vendor = Annotated[str | None, typer.Option(help="Hardware vendor.")]
Model = Annotated[str | None, typer.Option(help="Hardware model.")]
MachineClass = Annotated[str | None, typer.Option(help="Machine class name.")]
SiteName = Annotated[str | None, typer.Option("--site", help="Site name (give --rack too).")]
RackName = Annotated[str | None, typer.Option("--rack", help="Rack name within the site.")]
Position = Annotated[int | None, typer.Option(min=1, max=100, help="Rack unit (1 = bottom).")]
BmcDriverOption = Annotated[
    BmcDriverName | None,
    typer.Option(help="How to talk to the BMC; until it is set, BMC calls are refused."),
]
BmcAddress = Annotated[str | None, typer.Option(help="BMC host or URL.")]
BmcCredential = Annotated[str | None, typer.Option(help="Name of the BMC credential.")]
HealthOption = Annotated[Health | None, typer.Option(case_sensitive=False, help="Health.")]
Maintenance = Annotated[
    bool | None, typer.Option("--maintenance/--no-maintenance", help="In maintenance.")
]
OwnerTeam = Annotated[str | None, typer.Option(help="Team that owns the asset.")]
Project = Annotated[str | None, typer.Option(help="Project the asset serves.")]
Interfaces = Annotated[
    list[str] | None,
    typer.Option("--interface", help="NAME=MAC, repeatable.", metavar="NAME=MAC"),
]
Tags = Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE, repeatable.")]
Reason = Annotated[str, typer.Option(help="Why: recorded with the change.")]

NULLABLE = {"machine_class", "site", "rack", "rack_position_u", "owner_team", "project"}


def asset_fields(options: dict[str, Any]) -> dict[str, Any]:
    """The API fields from an asset command's options (its `locals()`), leaving out unset ones."""
    renamed = {"position": "rack_position_u"}
    fields = {
        renamed.get(key, key): value
        for key, value in options.items()
        if key not in ("serial", "interface", "tag", "version", "output", "unset", "state")
        and value is not None
    }
    if options.get("interface"):
        fields["interfaces"] = parsing.interfaces(options["interface"])
    if options.get("tag"):
        fields["tags"] = parsing.pairs(options["tag"])
    for name in options.get("unset") or []:
        key = renamed.get(name.replace("-", "_"), name.replace("-", "_"))
        if key not in NULLABLE:
            raise typer.BadParameter(f"--unset takes one of: {', '.join(sorted(NULLABLE))}")
        fields[key] = None
    return fields


@asset.command("list")
def asset_list(
    state: Annotated[
        list[AssetState] | None,
        typer.Option(case_sensitive=False, help="Lifecycle state; repeat for any of several."),
    ] = None,
    site: Annotated[str | None, typer.Option(help="Site name.")] = None,
    rack: Annotated[str | None, typer.Option(help="Rack name.")] = None,
    machine_class: MachineClass = None,
    owner_team: OwnerTeam = None,
    project: Project = None,
    health: HealthOption = None,
    maintenance: Maintenance = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE, or KEY for any value; repeat to AND.")
    ] = None,
    search: Annotated[
        str | None, typer.Option("--search", "-q", help="Text in the serial or host name.")
    ] = None,
    sort: Sort = None,
    limit: PageLimit = None,
    cursor: Cursor = None,
    everything: All = False,
    output: OutputOption = Output.table,
):
    """List assets, filtered."""
    limit = limit_of(limit, everything)
    assets = connect().assets.list(
        state=state,
        site=site,
        rack=rack,
        machine_class=machine_class,
        owner_team=owner_team,
        project=project,
        health=health,
        maintenance=maintenance,
        tag=tag,
        q=search,
        sort=sort,
        **paging(limit, cursor),
    )
    list_page(assets, output, ASSET_COLUMNS, every="--all")


@asset.command("show")
def asset_show(serial: Serial, output: OutputOption = Output.table):
    """Show one asset."""
    show(connect().assets.get(serial), output)


@asset.command("create")
def asset_create(
    serial: Serial,
    hostname: Hostname = None,
    vendor: Vendor = None,
    model: Model = None,
    machine_class: MachineClass = None,
    site: SiteName = None,
    rack: RackName = None,
    position: Position = None,
    bmc_driver: BmcDriverOption = None,
    bmc_address: BmcAddress = None,
    bmc_credential: BmcCredential = None,
    health: HealthOption = None,
    maintenance: Maintenance = None,
    owner_team: OwnerTeam = None,
    project: Project = None,
    interface: Interfaces = None,
    tag: Tags = None,
    state: Annotated[
        AssetState | None,
        typer.Option(case_sensitive=False, help="Initial state (default DISCOVERED)."),
    ] = None,
    output: OutputOption = Output.table,
):
    """Enrol an asset."""
    fields = asset_fields(locals())
    show(connect().assets.create(serial=serial, **parsing.drop_none(state=state), **fields), output)


@asset.command("update")
def asset_update(
    serial: Serial,
    hostname: Hostname = None,
    vendor: Vendor = None,
    model: Model = None,
    machine_class: MachineClass = None,
    site: SiteName = None,
    rack: RackName = None,
    position: Position = None,
    bmc_driver: BmcDriverOption = None,
    bmc_address: BmcAddress = None,
    bmc_credential: BmcCredential = None,
    health: HealthOption = None,
    maintenance: Maintenance = None,
    owner_team: OwnerTeam = None,
    project: Project = None,
    interface: Annotated[
        list[str] | None,
        typer.Option(help="NAME=MAC, repeatable; replaces all interfaces.", metavar="NAME=MAC"),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option(help="KEY=VALUE, repeatable; replaces all tags (see `asset tag`)."),
    ] = None,
    unset: Annotated[
        list[str] | None,
        typer.Option(help="Clear a field: machine-class, rack, position, owner-team, project."),
    ] = None,
    version: Version = None,
    output: OutputOption = Output.table,
):
    """Change an asset's fields (its state moves only with `asset transition`)."""
    fields = asset_fields(locals())
    show(connect().assets.update(serial, version=version, **changes(fields)), output)


@asset.command("delete")
def asset_delete(serial: Serial, reason: Reason, output: OutputOption = Output.table):
    """Delete an asset (by default this waits for a second person's approval)."""
    change = connect().assets.delete(serial, reason=reason)
    if change is None:
        note(f"deleted asset {serial!r}")
    else:
        parked(change, output)


@asset.command("transition")
def asset_transition(
    serial: Serial,
    state: Annotated[AssetState, typer.Argument(case_sensitive=False, help="The new state.")],
    reason: Reason,
    version: Version = None,
    output: OutputOption = Output.table,
):
    """Move an asset along its lifecycle; some moves wait for a second person's approval."""
    result = connect().assets.transition(serial, state, reason, version=version)
    if isinstance(result, ChangeRequestOut):
        parked(result, output)
    else:
        show(result, output)


@asset.command("history")
def asset_history(
    serial: Serial, limit: Limit = None, cursor: Cursor = None, output: OutputOption = Output.table
):
    """Every state change of an asset, oldest first."""
    moves = connect().assets.history(serial, **paging(limit, cursor))
    list_page(moves, output, HISTORY_COLUMNS)


@asset.command("tag")
def asset_tag(
    serial: Serial,
    tags: Annotated[list[str] | None, typer.Argument(help="KEY=VALUE to set.")] = None,
    remove: Annotated[list[str] | None, typer.Option(help="A key to remove; repeatable.")] = None,
    output: OutputOption = Output.table,
):
    """Set and remove tags, leaving the others as they are."""
    if not tags and not remove:
        raise typer.BadParameter("give KEY=VALUE to set or --remove KEY")
    changed = connect().assets.tag(serial, set=parsing.pairs(tags or []), remove=remove)
    show(changed, output)


@asset.command("import")
def asset_import(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="A .csv, .json or .yaml file."
        ),
    ],
    output: OutputOption = Output.table,
):
    """Enrol many assets at once, all or nothing.

    A CSV has a header row naming the fields (serial, hostname, site, rack, …); its
    interfaces column reads eno1=MAC;eno2=MAC and its tags column key=value;key2=value2.
    JSON and YAML files hold a list of assets.
    """
    rows = importing.read(file)
    try:
        result = connect().assets.import_([row.fields for row in rows])
    except InvalidInput as error:
        importing.report(error.message, importing.server_problems(error, rows))
    if output is Output.table:
        note(f"imported {result.created} asset(s) from {file}")
    else:
        show(result, output)
