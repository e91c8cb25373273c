"""Change requests waiting for, or decided by, a second person."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from metalyard.auth.changes.states import ChangeState
from metalyard.auth.models import User
from metalyard.db import Base, VersionedMixin, utcnow


class ChangeRequest(VersionedMixin, Base):
    __tablename__ = "change_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(256))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The arguments of the action, replayed on approval."""
    state: Mapped[ChangeState] = mapped_column(
        Enum(ChangeState, native_enum=False, length=16), default=ChangeState.PENDING, index=True
    )
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(String(1024), default="")
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    decided_at: Mapped[datetime | None]
    decision_comment: Mapped[str] = mapped_column(String(1024), default="")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """What the action returned on approval, or the error that stopped it."""

    requested_by: Mapped[User] = relationship(foreign_keys=[requested_by_id], lazy="joined")
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id], lazy="joined")
