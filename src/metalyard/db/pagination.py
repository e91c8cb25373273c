"""Keyset (cursor) pagination: one indexed query per page, however deep the page."""

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from metalyard.errors import InvalidInput

T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class SortKey:
    """A sort field name as the API spells it (`-` for descending) and its column."""

    column: InstrumentedAttribute
    descending: bool = False


def parse_sort(sort: str, allowed: dict[str, InstrumentedAttribute]) -> SortKey:
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
    column = sort.column
    if cursor:
        last_value, last_id = _decode(cursor, column, id_column)
        if column is id_column:
            after = id_column < last_id if sort.descending else id_column > last_id
        else:
            beyond = column < last_value if sort.descending else column > last_value
            tie = and_(
                column == last_value,
                id_column < last_id if sort.descending else id_column > last_id,
            )
            after = or_(beyond, tie)
        stmt = stmt.where(after)
    order = [column.desc() if sort.descending else column.asc()]
    if column is not id_column:
        order.append(id_column.desc() if sort.descending else id_column.asc())
    rows = session.scalars(stmt.order_by(*order).limit(limit + 1)).unique().all()
    if len(rows) <= limit:
        return Page(list(rows), None)
    last = rows[limit - 1]
    return Page(
        list(rows[:limit]), _encode(getattr(last, column.key), getattr(last, id_column.key))
    )


def _encode(value: Any, row_id: int) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = json.dumps([value, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(
    cursor: str, column: InstrumentedAttribute, id_column: InstrumentedAttribute
) -> tuple[Any, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, row_id = json.loads(raw)
        if column.type.python_type is datetime:
            value = datetime.fromisoformat(value)
        if not (_fits(value, column) and _fits(row_id, id_column)):
            raise ValueError
    except (ValueError, TypeError):
        raise InvalidInput(
            "the cursor is not one this server issued", details={"field": "cursor"}
        ) from None
    return value, row_id


def _fits(value: Any, column: InstrumentedAttribute) -> bool:
    """Whether a value from a cursor can be compared with the column (else the cursor is forged)."""
    expected = column.type.python_type
    if expected is int:
        return type(value) is int and -(2**63) <= value < 2**63
    if issubclass(expected, Enum):
        return value in {member.value for member in expected}
    return isinstance(value, expected)
