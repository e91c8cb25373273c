"""`metalyard vendor|profile|purchase-request|order|procurement …` and
`metalyard machine-class profiles`."""

from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from metalyard.auth.changes.schemas import ChangeRequestOut
from metalyard.cli import parsing
from metalyard.cli.common import (
    Cursor,
    Description,
    Limit,
    Version,
    changes,
    list_page,
    paging,
    parked,
)
from metalyard.cli.context import connect
from metalyard.cli.output import Output, OutputOption, listing, note, show
from metalyard.errors import InvalidInput

vendor = typer.Typer(help="Vendors servers are bought from.", no_args_is_help=True)
profile = typer.Typer(
    help="Hardware profiles, named VENDOR/NAME, each change a new numbered version.",
    no_args_is_help=True,
)

VENDOR_COLUMNS = ["name", "contact", "description", "version"]
PROFILE_COLUMNS = ["vendor", "name", "latest_version", "description"]
CHANGE_COLUMNS = ["field", "old", "new"]
CLASS_COLUMNS = ["vendor", "profile", "number", "note"]

Contact = Annotated[str | None, typer.Option(help="Who to call: name, e-mail, phone.")]
ProfileName = Annotated[str, typer.Argument(metavar="VENDOR/NAME", help="The profile.")]
SpecFile = Annotated[
    Path,
    typer.Option(
        "--spec", exists=True, dir_okay=False, help="YAML or JSON: cpu, memory_gib, disks, nics…"
    ),
]
Note = Annotated[str, typer.Option("--note", help="Why this version exists.")]


def _split(name: str) -> tuple[str, str]:
    vendor_name, sep, profile_name = name.partition("/")
    if not sep or not vendor_name or not profile_name:
        raise typer.BadParameter(f"a profile is named VENDOR/NAME, not {name!r}")
    return vendor_name, profile_name


def _spec(path: Path) -> dict[str, Any]:
    try:
        spec = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise InvalidInput(f"{path}: cannot read the spec: {error}") from None
    if not isinstance(spec, dict):
        raise InvalidInput(f"{path}: a spec is a mapping (cpu, memory_gib, disks, nics…)")
    return spec


# Vendors -------------------------------------------------------------------------------


@vendor.command("list")
def vendor_list(limit: Limit = None, cursor: Cursor = None, output: OutputOption = Output.table):
    """List vendors."""
    items = connect().vendors.list(**paging(limit, cursor))
    list_page(items, output, VENDOR_COLUMNS)


@vendor.command("show")
def vendor_show(name: str, output: OutputOption = Output.table):
    """Show one vendor."""
    show(connect().vendors.get(name), output)


@vendor.command("create")
def vendor_create(
    name: str,
    contact: Contact = None,
    description: Description = None,
    output: OutputOption = Output.table,
):
    """Add a vendor."""
    fields = parsing.drop_none(contact=contact, description=description)
    show(connect().vendors.create(name=name, **fields), output)


@vendor.command("update")
def vendor_update(
    name: str,
    contact: Contact = None,
    description: Description = None,
    version: Version = None,
    output: OutputOption = Output.table,
):
    """Change a vendor's contact or description."""
    fields = changes(parsing.drop_none(contact=contact, description=description))
    show(connect().vendors.update(name, version=version, **fields), output)


@vendor.command("delete")
def vendor_delete(name: str):
    """Delete a vendor that has no hardware profiles."""
    connect().vendors.delete(name)
    note(f"deleted vendor {name}")


# Profiles ------------------------------------------------------------------------------


@profile.command("list")
def profile_list(
    vendor_name: Annotated[str | None, typer.Option("--vendor", help="Only this vendor's.")] = None,
    limit: Limit = None,
    cursor: Cursor = None,
    output: OutputOption = Output.table,
):
    """List hardware profiles."""
    items = connect().profiles.list(vendor=vendor_name, **paging(limit, cursor))
    list_page(items, output, PROFILE_COLUMNS)


@profile.command("show")
def profile_show(
    name: ProfileName,
    version: Annotated[int | None, typer.Option(min=1, help="Show this version's spec.")] = None,
    output: OutputOption = Output.table,
):
    """Show a profile, or one of its versions with its spec."""
    vendor_name, profile_name = _split(name)
    client = connect()
    if version is None:
        show(client.profiles.get(vendor_name, profile_name), output)
    else:
        show(client.profiles.version(vendor_name, profile_name, version), output)


@profile.command("create")
def profile_create(
    name: ProfileName,
    spec: SpecFile,
    description: Description = None,
    output: OutputOption = Output.table,
):
    """Add a hardware profile; its spec becomes version 1."""
    vendor_name, profile_name = _split(name)
    created = connect().profiles.create(
        vendor_name, profile_name, spec=_spec(spec), description=description or ""
    )
    show(created, output)


@profile.command("add-version")
def profile_add_version(
    name: ProfileName, spec: SpecFile, note_text: Note = "", output: OutputOption = Output.table
):
    """Add the next version: a new generation or configuration of the profile."""
    vendor_name, profile_name = _split(name)
    added = connect().profiles.add_version(
        vendor_name, profile_name, spec=_spec(spec), note=note_text
    )
    show(added, output)


@profile.command("diff")
def profile_diff(
    name: ProfileName,
    old: Annotated[int, typer.Argument(min=1, help="The older version.")],
    new: Annotated[int, typer.Argument(min=1, help="The newer version.")],
    output: OutputOption = Output.table,
):
    """What changed between two versions, field by field."""
    vendor_name, profile_name = _split(name)
    listing(connect().profiles.diff(vendor_name, profile_name, old, new), output, CHANGE_COLUMNS)


def class_profiles(
    machine_class: Annotated[str, typer.Argument(help="The machine class.")],
    set_versions: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="VENDOR/NAME@N", help="Replace the mapping; repeatable."),
    ] = None,
    output: OutputOption = Output.table,
):
    """Show, or with --set replace, the profile versions a machine class stands for."""
    client = connect()
    if set_versions is None:
        listing(client.profiles.of_class(machine_class), output, CLASS_COLUMNS)
        return
    refs = []
    for text in set_versions:
        name, sep, number = text.rpartition("@")
        if not sep or not number.isdigit():
            raise typer.BadParameter(f"give a profile version as VENDOR/NAME@N, not {text!r}")
        refs.append((*_split(name), int(number)))
    listing(client.profiles.set_for_class(machine_class, refs), output, CLASS_COLUMNS)


# Requests, orders, stages --------------------------------------------------------------

purchase_request = typer.Typer(
    help="Purchase requests: approved by a second person, they become orders.",
    no_args_is_help=True,
)
order = typer.Typer(help="Purchase orders (PO-…), their stages and packing lists.")
order.info.no_args_is_help = True
stage = typer.Typer(help="Delivery stages of an order.", no_args_is_help=True)
order.add_typer(stage, name="stage")
procurement = typer.Typer(help="Matching, the reconciliation report, webhooks.")
procurement.info.no_args_is_help = True

REQUEST_COLUMNS = ["id", "title", "region", "state", "requested_by", "orders"]
ORDER_COLUMNS = ["number", "vendor", "region", "state", "request_id"]
EVENT_COLUMNS = ["at", "actor", "kind", "subject", "from_state", "to_state", "reason"]
REPORT_COLUMNS = [
    "order",
    "vendor",
    "region",
    "state",
    "ordered",
    "delivered",
    "racked",
    "discovered",
    "passed",
    "spare",
    "overdue",
]
WEBHOOK_COLUMNS = ["id", "url", "order", "created_by"]

Lines = Annotated[
    list[str],
    typer.Option("--line", metavar="VENDOR/NAME@N=QTY", help="A profile version and quantity."),
]
Reason = Annotated[str, typer.Option(help="Why; kept with the event.")]


def _lines(values: list[str]) -> list[dict[str, Any]]:
    lines = []
    for text in values:
        ref, sep, quantity = text.rpartition("=")
        name, at, number = ref.rpartition("@")
        if not sep or not at or not number.isdigit() or not quantity.isdigit():
            raise typer.BadParameter(f"give a line as VENDOR/NAME@N=QTY, not {text!r}")
        vendor_name, profile_name = _split(name)
        lines.append(
            {
                "vendor": vendor_name,
                "profile": profile_name,
                "version": int(number),
                "quantity": int(quantity),
            }
        )
    return lines


@purchase_request.command("create")
def request_create(title: str, line: Lines, output: OutputOption = Output.table):
    """Ask for servers for this region."""
    show(connect().purchase_requests.create(title, _lines(line)), output)


@purchase_request.command("list")
def request_list(limit: Limit = None, cursor: Cursor = None, output: OutputOption = Output.table):
    """List purchase requests, newest first."""
    items = connect().purchase_requests.list(**paging(limit, cursor))
    list_page(items, output, REQUEST_COLUMNS)


@purchase_request.command("show")
def request_show(request_id: int, output: OutputOption = Output.table):
    """Show a purchase request and the orders made from it."""
    show(connect().purchase_requests.get(request_id), output)


@purchase_request.command("approve")
def request_approve(request_id: int, reason: Reason = "", output: OutputOption = Output.table):
    """Approve (by default this waits for a second person: metalyard change approve)."""
    result = connect().purchase_requests.approve(request_id, reason)
    if isinstance(result, ChangeRequestOut):
        parked(result, output)
    else:
        show(result, output)


@purchase_request.command("reject")
def request_reject(request_id: int, output: OutputOption = Output.table):
    """Reject a purchase request."""
    show(connect().purchase_requests.reject(request_id), output)


@order.command("list")
def order_list(
    state: Annotated[str | None, typer.Option(help="Only orders in this state.")] = None,
    limit: Limit = None,
    cursor: Cursor = None,
    output: OutputOption = Output.table,
):
    """List purchase orders, newest first."""
    items = connect().purchase_orders.list(state=state, **paging(limit, cursor))
    list_page(items, output, ORDER_COLUMNS)


@order.command("show")
def order_show(number: str, output: OutputOption = Output.table):
    """Show an order with its lines (and their counts) and stages."""
    found = connect().purchase_orders.get(number)
    if output is not Output.table:
        show(found, output)
        return
    show(found.model_copy(update={"lines": [], "stages": []}), output)
    listing(
        found.lines,
        output,
        ["id", "profile", "version", "quantity", "expected_serials", "discovered", "passed"],
    )
    listing(found.stages, output, ["number", "quantity", "expected_on", "state"])


@order.command("create")
def order_create(vendor_name: str, line: Lines, output: OutputOption = Output.table):
    """A draft order for one vendor, by hand."""
    show(connect().purchase_orders.create(vendor_name, _lines(line)), output)


@order.command("transition")
def order_transition(
    number: str,
    to: Annotated[str, typer.Argument(help="approved, ordered or cancelled.")],
    reason: Reason = "",
    version: Version = None,
    output: OutputOption = Output.table,
):
    """Approve a draft, place an approved order with the vendor, or cancel."""
    moved = connect().purchase_orders.transition(number, to, reason=reason, version=version)
    show(moved, output)


@order.command("import-serials")
def order_import_serials(
    number: str,
    packing_list: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV file.")],
):
    """Expected serials from the vendor's packing list (CSV: serial[,profile]); all or none."""
    result = connect().purchase_orders.import_serials(number, packing_list.read_text())
    note(f"imported {result.imported} expected serial(s) into {number}")


@order.command("events")
def order_events(number: str, output: OutputOption = Output.table):
    """Every transition of the order and its stages, and its alerts."""
    listing(connect().purchase_orders.events(number), output, EVENT_COLUMNS)


@stage.command("add")
def stage_add(
    number: str,
    quantity: Annotated[int, typer.Argument(min=1)],
    expected_on: Annotated[str, typer.Argument(metavar="YYYY-MM-DD")],
    output: OutputOption = Output.table,
):
    """Split the delivery: so many units, expected on a date."""
    try:
        when = date.fromisoformat(expected_on)
    except ValueError:
        raise typer.BadParameter(f"a date reads YYYY-MM-DD, not {expected_on!r}") from None
    show(connect().purchase_orders.add_stage(number, quantity, when), output)


@stage.command("move")
def stage_move(
    number: str,
    stage_number: Annotated[int, typer.Argument(min=1)],
    to: Annotated[str, typer.Argument(help="shipped, delivered or racked.")],
    reason: Reason = "",
    output: OutputOption = Output.table,
):
    """Move a stage one step: planned → shipped → delivered → racked."""
    show(connect().purchase_orders.move_stage(number, stage_number, to, reason), output)


# Matching, report, webhooks ------------------------------------------------------------


@procurement.command("match")
def procurement_match(
    serial: str,
    profile_version: Annotated[
        str | None, typer.Option("--profile", metavar="VENDOR/NAME@N", help="As evaluated.")
    ] = None,
    output: OutputOption = Output.table,
):
    """Match a discovered asset to an order line (discovery does this on every boot)."""
    ref = None
    if profile_version:
        name, _, number = profile_version.rpartition("@")
        if not number.isdigit():
            raise typer.BadParameter(f"give VENDOR/NAME@N, not {profile_version!r}")
        ref = (*_split(name), int(number))
    show(connect().procurement.match(serial, profile=ref), output)


@procurement.command("passed")
def procurement_passed(serial: str, output: OutputOption = Output.table):
    """Record that an asset passed evaluation (its order closes once all units have)."""
    show(connect().procurement.passed(serial), output)


@procurement.command("report")
def procurement_report(
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV for a spreadsheet.")] = False,
    output: OutputOption = Output.table,
):
    """Ordered vs delivered vs racked vs SPARE, overdue units and unknown assets."""
    client = connect()
    if as_csv:
        typer.echo(client.procurement.report_csv(), nl=False)
        return
    found = client.procurement.report()
    if output is not Output.table:
        show(found, output)
        return
    listing(found.orders, output, REPORT_COLUMNS)
    for region in found.regions:
        unknown = ", ".join(region.unknown_assets) or "none"
        note(
            f"region {region.region or '-'}: {region.ordered} ordered, {region.delivered} "
            f"delivered, {region.spare} SPARE, {region.overdue} overdue; unknown assets: "
            f"{unknown}"
        )


webhook = typer.Typer(help="Where order events are posted (Slack-compatible).")
webhook.info.no_args_is_help = True
procurement.add_typer(webhook, name="webhook")


@webhook.command("add")
def webhook_add(
    url: str,
    order_number: Annotated[
        str | None, typer.Option("--order", help="Only this order's events.")
    ] = None,
    output: OutputOption = Output.table,
):
    """Post order events to a URL."""
    show(connect().procurement.add_webhook(url, order=order_number), output)


@webhook.command("list")
def webhook_list(output: OutputOption = Output.table):
    """List webhook subscriptions."""
    listing(connect().procurement.webhooks(), output, WEBHOOK_COLUMNS)


@webhook.command("delete")
def webhook_delete(hook_id: int):
    """Stop posting to a webhook."""
    connect().procurement.delete_webhook(hook_id)
    note(f"deleted webhook {hook_id}")
