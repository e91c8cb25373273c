"""Audit entries, each carrying the hash of the one before it, and the seal over the head."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from metalyard.db import Base, utcnow


class Outcome(StrEnum):
    SUCCESS = "success"
    REJECTED = "rejected"
    DENIED = "denied"
    ERROR = "error"


class AuditEntry(Base):
    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("ix_audit_entries_actor_seq", "actor", "seq"),
        Index("ix_audit_entries_target_seq", "target", "seq"),
        Index("ix_audit_entries_at", "at"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    """Position in the chain, 1, 2, 3…; a gap means a deleted entry."""
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(128), default="")
    token_id: Mapped[int | None]
    action: Mapped[str] = mapped_column(String(128))
    target: Mapped[str] = mapped_column(String(512), default="")
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    request_id: Mapped[str] = mapped_column(String(64), default="")
    client: Mapped[str] = mapped_column(String(64), default="")
    outcome: Mapped[str] = mapped_column(String(32))
    status: Mapped[int]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the fields above: anyone can recompute it, so it only links the chain."""
    key_id: Mapped[str | None] = mapped_column(String(16))
    """Which secret key made `mac`; NULL on entries written before entries carried one."""
    mac: Mapped[str | None] = mapped_column(String(64))
    """HMAC-SHA256 of `hash` under a key derived from the secret key: only a holder of the
    key can write an entry that verifies."""


class AuditSeal(Base):
    """The one row that vouches for the chain's head, so a deleted tail shows."""

    __tablename__ = "audit_seal"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    keyed_from: Mapped[int] = mapped_column(BigInteger)
    """The first entry that carries a MAC; every later one must too."""
    key_id: Mapped[str] = mapped_column(String(16))
    mac: Mapped[str] = mapped_column(String(64))
