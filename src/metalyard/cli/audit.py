"""`metalyard audit …`: the hash-chained log of every mutating call (admin)."""

from typing import Annotated

import typer

from metalyard.cli import parsing
from metalyard.cli.common import first, page_size
from metalyard.cli.context import connect
from metalyard.cli.exit_codes import ExitCode
from metalyard.cli.output import Output, OutputOption, listing, note, show

audit = typer.Typer(help="The audit log: who changed what, and whether it was tampered with.")
audit.info.no_args_is_help = True

COLUMNS = ["seq", "at", "actor", "action", "target", "outcome", "status"]
DEFAULT_LIMIT = 100
Time = Annotated[
    str | None,
    typer.Option(help="ISO time (local unless it has an offset), or an age like 2h or 3d."),
]


@audit.command("list")
def audit_list(
    actor: Annotated[str | None, typer.Option(help="Who (user name).")] = None,
    target: Annotated[str | None, typer.Option(help="Path prefix, e.g. assets/SN1.")] = None,
    action: Annotated[str | None, typer.Option(help="Route name, e.g. create_asset.")] = None,
    outcome: Annotated[str | None, typer.Option(help="success, rejected, denied or error.")] = None,
    since: Time = None,
    until: Time = None,
    limit: Annotated[int, typer.Option(min=0, help="Show at most this many; 0 for all.")] = (
        DEFAULT_LIMIT
    ),
    output: OutputOption = Output.table,
):
    """List audit entries, newest first."""
    entries = connect().audit.list(
        actor=actor,
        target=target,
        action=action,
        outcome=outcome,
        since=parsing.moment(since),
        until=parsing.moment(until),
        page_size=page_size(limit),
    )
    listing(first(entries, limit), output, COLUMNS)


@audit.command("verify")
def audit_verify(output: OutputOption = Output.table):
    """Recompute the hash chain; exit 1 and name each problem if any entry was edited or lost."""
    result = connect().audit.verify()
    if output is not Output.table:
        show(result, output)
    elif result.ok:
        note(f"audit log intact: {result.entries} entries")
    if not result.ok:
        note(f"error: audit log has {len(result.problems)} problem(s) in {result.entries} entries")
        for problem in result.problems:
            note(f"  seq {problem.seq}: {problem.problem}: {problem.message}")
        raise typer.Exit(int(ExitCode.PROBLEMS))
