"""`metalyard bmc-credential …`, and `metalyard asset power|boot|bmc|firmware|sensors`."""

import sys
import time
from typing import Annotated

import typer

from metalyard.cli.common import Cursor, Limit, Version, changes, list_page, paging
from metalyard.cli.context import connect
from metalyard.cli.output import Output, OutputOption, listing, note, show
from metalyard.drivers.base import BootDevice, BootMode, PowerAction, PowerState
from metalyard.errors import BmcTransient

credential = typer.Typer(help="BMC logins, by name; assets point at one.", no_args_is_help=True)
power = typer.Typer(help="Power an asset on or off through its BMC.", no_args_is_help=True)
bmc = typer.Typer(help="An asset's BMC itself.", no_args_is_help=True)

CREDENTIAL_COLUMNS = ["name", "username", "networks", "updated_at", "version"]
FIRMWARE_COLUMNS = ["name", "version", "updatable"]
SENSOR_COLUMNS = ["kind", "name", "value", "unit", "status"]

Serial = Annotated[str, typer.Argument(help="The asset's serial number.")]
Username = Annotated[str | None, typer.Option(help="The BMC user name.")]
NETWORK_HELP = (
    "A prefix the credential may be sent into, like 10.20.0.0/16; repeat for more. A BMC "
    "address outside them is refused. 0.0.0.0/0 and ::/0 allow anywhere."
)
Networks = Annotated[list[str], typer.Option("--network", help=NETWORK_HELP)]
NewNetworks = Annotated[
    list[str] | None, typer.Option("--network", help=f"{NETWORK_HELP} Replaces the list.")
]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from standard input instead of a prompt."
    ),
]
Wait = Annotated[
    float,
    typer.Option(help="Seconds to wait for the BMC to report the new state; 0 to not wait."),
]

POLL_SECONDS = 1.0


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return typer.prompt("BMC password", hide_input=True, confirmation_prompt=True, err=True)


# Credentials ---------------------------------------------------------------------------


@credential.command("list")
def credential_list(
    limit: Limit = None, cursor: Cursor = None, output: OutputOption = Output.table
):
    """List BMC credentials (never their passwords)."""
    items = connect().bmc_credentials.list(**paging(limit, cursor))
    list_page(items, output, CREDENTIAL_COLUMNS)


@credential.command("show")
def credential_show(name: str, output: OutputOption = Output.table):
    """Show one BMC credential (never its password)."""
    show(connect().bmc_credentials.get(name), output)


@credential.command("create")
def credential_create(
    name: str,
    username: Annotated[str, typer.Option(help="The BMC user name.")],
    network: Networks,
    password_stdin: PasswordStdin = False,
    output: OutputOption = Output.table,
):
    """Store a BMC login (admin) and the networks its BMCs are in; the password is asked
    for, encrypted, never shown again."""
    password = _password(password_stdin)
    created = connect().bmc_credentials.create(
        name, username=username, password=password, networks=network
    )
    show(created, output)


@credential.command("update")
def credential_update(
    name: str,
    username: Username = None,
    password: Annotated[bool, typer.Option("--password", help="Ask for a new password.")] = False,
    password_stdin: PasswordStdin = False,
    network: NewNetworks = None,
    version: Version = None,
    output: OutputOption = Output.table,
):
    """Change a BMC credential's user name, password or networks (admin)."""
    secret = _password(password_stdin) if password or password_stdin else None
    fields = {"username": username, "password": secret, "networks": network}
    changes({k: v for k, v in fields.items() if v})
    updated = connect().bmc_credentials.update(
        name, username=username, password=secret, networks=network, version=version
    )
    show(updated, output)


@credential.command("delete")
def credential_delete(name: str):
    """Delete a BMC credential no asset uses any more (admin)."""
    connect().bmc_credentials.delete(name)
    note(f"deleted BMC credential {name}")


# Power ---------------------------------------------------------------------------------


@power.command("status")
def power_status(serial: Serial, output: OutputOption = Output.table):
    """Show the power state the BMC reports."""
    show(connect().bmc.power_state(serial), output)


def _power_command(action: PowerAction, expect: PowerState | None):
    def command(serial: Serial, wait: Wait = 60.0, output: OutputOption = Output.table):
        client = connect()
        state = client.bmc.power(serial, action)
        deadline = time.monotonic() + wait
        while expect and state.state is not expect and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            state = client.bmc.power_state(serial)
        if expect and wait and state.state is not expect:
            raise BmcTransient(
                f"asked {serial}'s BMC to power {action.value}; after {wait:g} s it still "
                f"reports {state.state.value}"
            )
        show(state, output)

    command.__doc__ = f"Power {action.value.replace('_', ' ')} through the BMC."
    return command


for _action, _expect in (
    (PowerAction.ON, PowerState.ON),
    (PowerAction.OFF, PowerState.OFF),
    (PowerAction.SOFT_OFF, PowerState.OFF),
    (PowerAction.CYCLE, PowerState.ON),
    (PowerAction.RESET, PowerState.ON),
):
    power.command(_action.value.replace("_", "-"))(_power_command(_action, _expect))


# Boot, BMC check, firmware, sensors ----------------------------------------------------


def boot(
    device: Annotated[BootDevice, typer.Argument(case_sensitive=False, help="pxe, disk or cd.")],
    serial: Serial,
    persistent: Annotated[
        bool, typer.Option(help="Every boot from now on, not only the next one.")
    ] = False,
    mode: Annotated[
        BootMode | None,
        typer.Option(case_sensitive=False, help="uefi or legacy; kept if left out."),
    ] = None,
    output: OutputOption = Output.table,
):
    """Boot from a device next time (or every time, with --persistent)."""
    show(connect().bmc.set_boot(serial, device, persistent=persistent, mode=mode), output)


@bmc.command("check")
def bmc_check(serial: Serial, output: OutputOption = Output.table):
    """Log in to the BMC: are address and credentials right, and what can its driver do?"""
    show(connect().bmc.check(serial), output)


def firmware(serial: Serial, output: OutputOption = Output.table):
    """List firmware components and their versions, as the BMC reports them."""
    listing(connect().bmc.firmware(serial), output, FIRMWARE_COLUMNS)


def sensors(serial: Serial, output: OutputOption = Output.table):
    """Show overall health and each sensor (temperatures, fans, power supplies)."""
    report = connect().bmc.sensors(serial)
    if output is not Output.table:
        show(report, output)
        return
    note(f"overall health: {report.overall.value}")
    listing(report.sensors, output, SENSOR_COLUMNS)
