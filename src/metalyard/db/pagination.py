"""Keyset (cursor) pagination: one indexed query per page, however deep the page."""

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Integer, Select, and_, bindparam, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from metalyard.errors import InvalidInput

T = TypeVar("T")
ColumnLike = InstrumentedAttribute | ColumnElement[Any]
"""A mapped attribute (`Site.name`) or a table's column (`Asset.__table__.c.id`)."""


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class SortKey:
    """A sort field name as the API spells it (`-` for descending) and its column."""

    column: ColumnLike
    descending: bool = False


def parse_sort(sort: str, allowed: dict[str, ColumnLike]) -> SortKey:
    name = sort.removeprefix("-")
    if name not in allowed:
        raise InvalidInput(
            f"cannot sort by {name!r}; choose one of: {', '.join(sorted(allowed))}",
            details={"field": "sort", "allowed": sorted(allowed)},
        )
    return SortKey(allowed[name], descending=sort.startswith("-"))


def paginate(
    session: Session,
    stmt: Select,
    *,
    id_column: InstrumentedAttribute,
    sort: SortKey,
    limit: int,
    cursor: str | None,
) -> Page:
    """Run `stmt` for one page, ordered by the sort key then the id (a total order)."""
    stmt = page_query(stmt, id_column=id_column, sort=sort, limit=limit, cursor=cursor)
    rows = session.scalars(stmt).unique().all()
    return page_of(
        rows,
        limit,
        lambda row: (getattr(row, sort.column.key), getattr(row, id_column.key)),
        id_column=id_column,
        sort=sort,
    )


def page_query(
    stmt: Select, *, id_column: ColumnLike, sort: SortKey, limit: int, cursor: str | None
) -> Select:
    """`stmt` narrowed to one page: the rows after the cursor's, ordered by the sort key then
    the id, and one more than `limit` (to learn whether another page follows)."""
    narrowed = keyset(stmt, id_column=id_column, sort=sort, after=bool(cursor))
    return narrowed.params(page_params(id_column=id_column, sort=sort, limit=limit, cursor=cursor))


def keyset(stmt: Select, *, id_column: ColumnLike, sort: SortKey, after: bool) -> Select:
    """`page_query` with the cursor and the limit left as parameters (`page_params` gives
    them), for a statement built once and run for many pages."""
    column = sort.column
    if after:
        last_value = bindparam("after_value", type_=column.type)
        last_id = bindparam("after_id", type_=id_column.type)
        if column is id_column:
            later = id_column < last_id if sort.descending else id_column > last_id
        else:
            beyond = column < last_value if sort.descending else column > last_value
            tie = and_(
                column == last_value,
                id_column < last_id if sort.descending else id_column > last_id,
            )
            later = or_(beyond, tie)
        stmt = stmt.where(later)
    order = [column.desc() if sort.descending else column.asc()]
    if column is not id_column:
        order.append(id_column.desc() if sort.descending else id_column.asc())
    # The limit goes into the SQL as a literal: as a parameter, PostgreSQL could not tell
    # how many rows a prepared page wants and planned every execution anew (a millisecond
    # and more for an asset page's joins) instead of settling on one generic plan.
    return stmt.order_by(*order).limit(bindparam("limit", type_=Integer, literal_execute=True))


def page_params(
    *, id_column: ColumnLike, sort: SortKey, limit: int, cursor: str | None
) -> dict[str, Any]:
    """The values of `keyset`'s parameters for one page."""
    values: dict[str, Any] = {"limit": limit + 1}
    if cursor:
        values["after_value"], values["after_id"] = _decode(cursor, id_column, sort)
    return values


def page_of(
    rows: Sequence[T],
    limit: int,
    key: Callable[[T], tuple[Any, Any]],
    *,
    id_column: ColumnLike,
    sort: SortKey,
) -> Page[T]:
    """The page in the rows `page_query` fetched; `key` gives a row's sort value and id."""
    if len(rows) <= limit:
        return Page(list(rows), None)
    return Page(list(rows[:limit]), _encode(*key(rows[limit - 1]), _listing(id_column, sort)))


def _listing(id_column: ColumnLike, sort: SortKey) -> str:
    """What a cursor continues: the table and the sort. A cursor is a position in one
    ordering; taken to another sort or another list it would silently skip or repeat rows."""
    return f"{id_column.table.name}:{'-' if sort.descending else ''}{sort.column.key}"


def _encode(value: Any, row_id: int, listing: str) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = json.dumps([value, row_id, listing], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, id_column: ColumnLike, sort: SortKey) -> tuple[Any, Any]:
    column = sort.column
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, row_id, listing = json.loads(raw)
    except (ValueError, TypeError):
        raise _not_issued() from None
    expected = _listing(id_column, sort)
    if listing != expected:
        table, _, issued_sort = str(listing).partition(":")
        if table != id_column.table.name:
            raise InvalidInput(
                "this cursor continues another list; start again without a cursor",
                details={"field": "cursor"},
            )
        raise InvalidInput(
            f"this cursor continues the list sorted by {issued_sort!r}, not "
            f"{expected.partition(':')[2]!r}: repeat that sort, or start again without a cursor",
            details={"field": "cursor", "sort": issued_sort},
        )
    try:
        if column.type.python_type is datetime:
            value = datetime.fromisoformat(value)
        if not (_fits(value, column) and _fits(row_id, id_column)):
            raise ValueError
    except (ValueError, TypeError):
        raise _not_issued() from None
    return value, row_id


def _not_issued() -> InvalidInput:
    return InvalidInput("the cursor is not one this server issued", details={"field": "cursor"})


def _fits(value: Any, column: ColumnLike) -> bool:
    """Whether a value from a cursor can be compared with the column (else the cursor is forged)."""
    expected = column.type.python_type
    if expected is int:
        return type(value) is int and -(2**63) <= value < 2**63
    if issubclass(expected, Enum):
        return value in {member.value for member in expected}
    return isinstance(value, expected)
