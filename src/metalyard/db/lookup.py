"""Small helpers every service uses to fetch by name and to apply versioned updates."""

from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalyard.errors import NotFound, StaleVersion

M = TypeVar("M")


def get_by(
    session: Session, model: type[M], label: str, *, for_update: bool = False, **where: Any
) -> M:
    """The one row matching `where`, or NotFound naming what was looked for.

    `for_update` is for the writers of the row: it stays locked until the transaction ends,
    and is read as the writer before left it (PostgreSQL waits for that writer to finish;
    SQLite's writers take turns anyway). Concurrent changes then apply one after the other,
    so one that names no version never fails on the version another one bumped.
    """
    stmt = select(model).filter_by(**where)
    if for_update:
        # OF the row's own table: PostgreSQL cannot lock the outer side of the joins that
        # load its relations. Populate, as the row may be in the session from an older read.
        stmt = stmt.with_for_update(of=model).execution_options(populate_existing=True)
    row = session.scalars(stmt).first()
    if row is None:
        wanted = ", ".join(f"{key} {value!r}" for key, value in where.items())
        raise NotFound(f"no {label} with {wanted}", details=where)
    return row


def check_version(row: Any, expected: int | None, label: str) -> None:
    """Optimistic concurrency: a write based on an old read is refused.

    Check a row read `for_update` (see get_by): a row read without the lock may be changed
    by another writer before this one flushes, which then fails (StaleDataError) although
    its caller named no version.
    """
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
