"""`metalyard discovery list` and `metalyard asset why SERIAL`."""

from typing import Annotated

import typer

from metalyard.cli.context import connect
from metalyard.cli.output import Output, OutputOption, emit, listing

discovery = typer.Typer(help="Servers booting the agent, and where they stand.")
discovery.info.no_args_is_help = True

COLUMNS = ["serial", "state", "evaluation", "problems", "profile", "agent", "booted_at", "seen_at"]


@discovery.command("list")
def discovery_list(output: OutputOption = Output.table):
    """What is booting and where it stands (newest boot first)."""
    listing(connect().discovery.booting(), output, COLUMNS)


def why(
    serial: Annotated[str, typer.Argument(help="The asset's serial number.")],
    output: OutputOption = Output.table,
):
    """What the asset waits on or what blocks it, one line per reason."""
    found = connect().discovery.why(serial)
    if output is Output.table:
        for reason in found.reasons:
            typer.echo(reason)
    else:
        emit(found.model_dump(mode="json"), output)
