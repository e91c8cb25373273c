"""`metalyard vendor …`, `metalyard profile …` and `metalyard machine-class profiles`."""

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from metalyard.cli import parsing
from metalyard.cli.common import Description, Limit, Version, changes, first, page_size
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
def vendor_list(limit: Limit = None, output: OutputOption = Output.table):
    """List vendors."""
    items = connect().vendors.list(page_size=page_size(limit))
    listing(first(items, limit), output, VENDOR_COLUMNS)


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
    output: OutputOption = Output.table,
):
    """List hardware profiles."""
    items = connect().profiles.list(vendor=vendor_name, page_size=page_size(limit))
    listing(first(items, limit), output, PROFILE_COLUMNS)


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
