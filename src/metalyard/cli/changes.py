"""`metalyard change …`: commands waiting for a second person (maker-checker)."""

from typing import Annotated

import typer

from metalyard.auth.changes.schemas import ChangeRequestOut
from metalyard.auth.changes.states import ChangeState
from metalyard.cli.common import Cursor, Limit, list_page, paging
from metalyard.cli.context import connect, fail
from metalyard.cli.exit_codes import exit_code_for_code
from metalyard.cli.output import Output, OutputOption, note, show

change = typer.Typer(
    help="Change requests: commands that wait for someone else's approval.", no_args_is_help=True
)

COLUMNS = ["id", "state", "action", "target", "requested_by", "requested_at", "reason"]
Comment = Annotated[str, typer.Option(help="Why, recorded with the decision.")]


@change.command("list")
def change_list(
    state: Annotated[
        ChangeState | None, typer.Option(case_sensitive=False, help="Only in this state.")
    ] = None,
    limit: Limit = None,
    cursor: Cursor = None,
    output: OutputOption = Output.table,
):
    """List change requests, newest first."""
    changes = connect().change_requests.list(state=state, **paging(limit, cursor))
    list_page(changes, output, COLUMNS)


@change.command("show")
def change_show(change_id: int, output: OutputOption = Output.table):
    """Show one change request."""
    show(connect().change_requests.get(change_id), output)


@change.command("approve")
def change_approve(change_id: int, comment: Comment = "", output: OutputOption = Output.table):
    """Approve, and so run, someone else's change request."""
    decided(connect().change_requests.approve(change_id, comment), output)


@change.command("reject")
def change_reject(change_id: int, comment: Comment = "", output: OutputOption = Output.table):
    """Reject someone else's change request."""
    decided(connect().change_requests.reject(change_id, comment), output)


def decided(request: ChangeRequestOut, output: Output) -> None:
    show(request, output)
    if request.state is ChangeState.FAILED:
        result = request.result or {}
        fail(
            f"change request {request.id} was approved but failed: {result.get('message', '?')}",
            exit_code_for_code(result.get("code")),
        )
    note(f"change request {request.id} is {request.state.value}")
