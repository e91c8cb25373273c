"""Options and helpers several command modules share."""

from collections.abc import Iterator, Sequence
from itertools import islice
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel

from metalyard.auth.changes.schemas import ChangeRequestOut
from metalyard.cli.output import Column, Output, listing, note, show
from metalyard.schemas import MAX_PAGE_SIZE

T = TypeVar("T")

DEFAULT_LIMIT = 100
"""How many a list that may be huge shows unless told otherwise: one page, one request."""

Limit = Annotated[int | None, typer.Option(min=0, help="Show at most this many; 0 for all.")]
PageLimit = Annotated[
    int | None,
    typer.Option(min=0, help=f"Show at most this many (default {DEFAULT_LIMIT}); 0 for all."),
]
All = Annotated[bool, typer.Option("--all", help="Show every match, however many (--limit 0).")]
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


def page_size(limit: int | None) -> int:
    """Big pages, except when only a few items are wanted: one more, to learn if more exist."""
    return min(limit + 1, MAX_PAGE_SIZE) if limit else MAX_PAGE_SIZE


def first(items: Iterator[T], limit: int | None) -> Iterator[T]:
    return islice(items, limit) if limit else items


def limit_of(limit: int | None, everything: bool) -> int:
    """The `--limit` of a list that also takes `--all`: 0 for every item."""
    if everything and limit is not None:
        raise typer.BadParameter("give --all or --limit, not both")
    return 0 if everything else DEFAULT_LIMIT if limit is None else limit


def list_page(
    items: Iterator[BaseModel], limit: int, output: Output, columns: Sequence[Column]
) -> None:
    """The first `limit` items (every one for 0) as a listing; on stderr, whether more exist
    (the page size asked for one more to tell)."""
    taken = list(islice(items, limit + 1) if limit else items)
    listing(taken[: limit or None], output, columns)
    if limit and len(taken) > limit:
        note(f"showing {limit}; more exist: --all or --limit N")


def parked(change: ChangeRequestOut, output: Output) -> None:
    """Say that a command waits for a second person, and how they approve it."""
    note(
        f"waiting for approval: change request {change.id} ({change.action} {change.target}); "
        f"someone else runs: metalyard change approve {change.id}"
    )
    show(change, output)
