"""The `metalyard` command: one sub-command per noun of the API, over the SDK.

Exit codes are listed in metalyard.cli.exit_codes.
"""

from typing import Annotated

import typer

import metalyard
from metalyard.cli import (
    audit,
    auth,
    changes,
    dhcp,
    discovery,
    drivers,
    inventory,
    lab,
    network,
    orchestrator,
    procurement,
    regions,
    server,
)
from metalyard.cli.context import Group, begin
from metalyard.cli.exit_codes import ExitCode

app = typer.Typer(
    name="metalyard",
    cls=Group,
    help="metalyard: the control plane of a fleet of physical servers, one region at a time.",
    epilog="Exit codes: "
    + ", ".join(f"{code.value} {code.name.lower().replace('_', ' ')}" for code in ExitCode)
    + ".",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"metalyard {metalyard.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    context: typer.Context,
    region: Annotated[
        str | None,
        typer.Option("--region", "-r", metavar="NAME", help="Use this region for one command."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
):
    """metalyard: the control plane of a fleet of physical servers, one region at a time."""
    begin(context, region=region)


INVENTORY, PROCUREMENT, FLOWS = "Inventory", "Procurement", "Flows"
ACCESS = "People and access"
SETUP = "Regions and server"
NETWORK = "Network"
app.add_typer(inventory.site, name="site", rich_help_panel=INVENTORY)
app.add_typer(inventory.rack, name="rack", rich_help_panel=INVENTORY)
app.add_typer(inventory.machine_class, name="machine-class", rich_help_panel=INVENTORY)
app.add_typer(inventory.asset, name="asset", rich_help_panel=INVENTORY)
inventory.asset.add_typer(drivers.power, name="power")
inventory.asset.command("boot")(drivers.boot)
inventory.asset.add_typer(drivers.bmc, name="bmc")
inventory.asset.command("firmware")(drivers.firmware)
inventory.asset.command("sensors")(drivers.sensors)
inventory.asset.command("why")(discovery.why)
app.add_typer(discovery.discovery, name="discovery", rich_help_panel=INVENTORY)
app.add_typer(drivers.credential, name="bmc-credential", rich_help_panel=INVENTORY)
app.add_typer(network.prefix, name="prefix", rich_help_panel=NETWORK)
app.add_typer(network.ip, name="ip", rich_help_panel=NETWORK)
app.add_typer(dhcp.dhcp, name="dhcp", rich_help_panel=NETWORK)
app.add_typer(procurement.vendor, name="vendor", rich_help_panel=PROCUREMENT)
app.add_typer(procurement.profile, name="profile", rich_help_panel=PROCUREMENT)
app.add_typer(procurement.purchase_request, name="purchase-request", rich_help_panel=PROCUREMENT)
app.add_typer(procurement.order, name="order", rich_help_panel=PROCUREMENT)
app.add_typer(procurement.procurement, name="procurement", rich_help_panel=PROCUREMENT)
inventory.machine_class.command("profiles")(procurement.class_profiles)
app.add_typer(orchestrator.flow, name="flow", rich_help_panel=FLOWS)
app.add_typer(orchestrator.run, name="run", rich_help_panel=FLOWS)
app.add_typer(orchestrator.pool, name="pool", rich_help_panel=FLOWS)
app.command("signal", rich_help_panel=FLOWS)(orchestrator.signal)
app.add_typer(auth.user, name="user", rich_help_panel=ACCESS)
app.add_typer(auth.team, name="team", rich_help_panel=ACCESS)
app.add_typer(auth.project, name="project", rich_help_panel=ACCESS)
app.add_typer(auth.token, name="token", rich_help_panel=ACCESS)
app.add_typer(changes.change, name="change", rich_help_panel=ACCESS)
app.add_typer(audit.audit, name="audit", rich_help_panel=ACCESS)
app.command("whoami", rich_help_panel=ACCESS)(auth.whoami)
app.add_typer(regions.region, name="region", rich_help_panel=SETUP)
app.command("lab", rich_help_panel=SETUP)(lab.lab)
app.command("serve", rich_help_panel=SETUP)(server.serve)
app.command("worker", rich_help_panel=SETUP)(server.worker)
app.add_typer(server.db, name="db", rich_help_panel=SETUP)

if __name__ == "__main__":
    app(prog_name="metalyard")
