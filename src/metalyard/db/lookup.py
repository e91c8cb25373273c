"""Small helpers every service uses to fetch by name and to apply versioned updates."""

from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalyard.errors import NotFound, StaleVersion

M = TypeVar("M")


def get_by(session: Session, model: type[M], label: str, **where: Any) -> M:
    """The one row matching `where`, or NotFound naming what was looked for."""
    row = session.scalars(select(model).filter_by(**where)).first()
    if row is None:
        wanted = ", ".join(f"{key} {value!r}" for key, value in where.items())
        raise NotFound(f"no {label} with {wanted}", details=where)
    return row


def check_version(row: Any, expected: int | None, label: str) -> None:
    """Optimistic concurrency: a write based on an old read is refused."""
    if expected is None or expected == row.version:
        return
    what = (
        f"changed since version {expected}"
        if expected < row.version
        else f"has never been at version {expected}"
    )
    raise StaleVersion(
        f"{label} {what} (now version {row.version}); read it again and retry",
        details={"expected": expected, "current": row.version},
    )


def apply_fields(row: Any, changes: dict[str, Any]) -> None:
    for field, value in changes.items():
        setattr(row, field, value)
