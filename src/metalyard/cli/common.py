"""Options and helpers several command modules share."""

from collections.abc import Sequence
from typing import Annotated, Any

import typer

from metalyard.auth.changes.schemas import ChangeRequestOut
from metalyard.cli.output import Column, Output, note, page, show
from metalyard.schemas import MAX_PAGE_SIZE
from metalyard.sdk import Listing

DEFAULT_LIMIT = 100
"""How many a list that may be huge shows unless told otherwise: one page, one request."""

Limit = Annotated[int | None, typer.Option(min=0, help="Show at most this many; 0 for all.")]
PageLimit = Annotated[
    int | None,
    typer.Option(min=0, help=f"Show at most this many (default {DEFAULT_LIMIT}); 0 for all."),
]
All = Annotated[bool, typer.Option("--all", help="Show every match, however many (--limit 0).")]
Cursor = Annotated[
    str | None,
    typer.Option(
        help="Go on where a list stopped, with the cursor it gave; repeat its filters and sort."
    ),
]
Sort = Annotated[str | None, typer.Option(help="Field to sort by; prefix it with - to reverse.")]
Version = Annotated[
    int | None,
    typer.Option(help="Refuse the change if the object changed since this version."),
]
Description = Annotated[str | None, typer.Option(help="Free text.")]


def changes(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields of an update, refusing an empty one (it would only bump the version)."""
    if not fields:
        raise typer.BadParameter("nothing to change: give at least one option to set")
    return fields


def paging(limit: int | None, cursor: str | None) -> dict[str, Any]:
    """The SDK's arguments for `--limit` (0 or none: all) and `--cursor`: pages as large as
    the API serves, the last one ending at the limit, so the cursor after it skips nothing."""
    return {"limit": limit or None, "cursor": cursor, "page_size": MAX_PAGE_SIZE}


def limit_of(limit: int | None, everything: bool) -> int:
    """The `--limit` of a list that also takes `--all`: 0 for every item."""
    if everything and limit is not None:
        raise typer.BadParameter("give --all or --limit, not both")
    return 0 if everything else DEFAULT_LIMIT if limit is None else limit


def list_page(
    items: Listing[Any], output: Output, columns: Sequence[Column], *, every: str = "--limit 0"
) -> None:
    """The items as a listing, or the API's page (json, yaml), with the cursor to go on from;
    on stderr, if more exist, how to see them (`every`: the option that shows all)."""
    shown = list(items)
    page(shown, items.next_cursor, output, columns)
    if items.next_cursor:
        note(
            f"showing {len(shown)}; more exist: the next with --cursor {items.next_cursor}, "
            f"all with {every}"
        )


def parked(change: ChangeRequestOut, output: Output) -> None:
    """Say that a command waits for a second person, and how they approve it."""
    note(
        f"waiting for approval: change request {change.id} ({change.action} {change.target}); "
        f"someone else runs: metalyard change approve {change.id}"
    )
    show(change, output)
