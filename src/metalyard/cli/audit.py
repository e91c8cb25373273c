"""`metalyard audit …`: the tamper-evident log of every mutating call (admin)."""

from typing import Annotated

import typer

from metalyard.auth.audit.models import Outcome
from metalyard.cli import parsing
from metalyard.cli.common import All, Cursor, PageLimit, limit_of, list_page, paging
from metalyard.cli.context import connect
from metalyard.cli.exit_codes import ExitCode
from metalyard.cli.output import Output, OutputOption, note, show

audit = typer.Typer(help="The audit log: who changed what, and whether it was tampered with.")
audit.info.no_args_is_help = True

COLUMNS = ["seq", "at", "actor", "action", "target", "outcome", "status"]
Time = Annotated[
    str | None,
    typer.Option(help="ISO time (local unless it has an offset), or an age like 2h or 3d."),
]


@audit.command("list")
def audit_list(
    actor: Annotated[str | None, typer.Option(help="Who (user name).")] = None,
    target: Annotated[
        str | None, typer.Option(help="A path and what is under it: assets/SN1, not SN13.")
    ] = None,
    action: Annotated[str | None, typer.Option(help="Route name, e.g. create_asset.")] = None,
    outcome: Annotated[Outcome | None, typer.Option(case_sensitive=False)] = None,
    since: Time = None,
    until: Time = None,
    limit: PageLimit = None,
    cursor: Cursor = None,
    everything: All = False,
    output: OutputOption = Output.table,
):
    """List audit entries, newest first."""
    limit = limit_of(limit, everything)
    entries = connect().audit.list(
        actor=actor,
        target=target,
        action=action,
        outcome=outcome,
        since=parsing.moment(since),
        until=parsing.moment(until),
        **paging(limit, cursor),
    )
    list_page(entries, output, COLUMNS, every="--all")


@audit.command("verify")
def audit_verify(output: OutputOption = Output.table):
    """Check every entry's hash, MAC and link, and the seal over the newest; exit 1 and name
    each problem if any entry was edited, added or lost."""
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
