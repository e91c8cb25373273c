"""Discovery tables: the agent on each booted server, and each asset's last evaluation."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from metalyard.db import Base, utcnow


class AgentSession(Base):
    """The agent running on an asset, and the token it was given on first contact."""

    __tablename__ = "agent_sessions"

    asset_id: Mapped[int] = mapped_column(
        ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    address: Mapped[str] = mapped_column(String(64), default="")
    port: Mapped[int | None]
    booted_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class Evaluation(Base):
    """The outcome of the asset's last evaluation: the profile it was held to and problems."""

    __tablename__ = "evaluations"

    asset_id: Mapped[int] = mapped_column(
        ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True
    )
    profile: Mapped[str] = mapped_column(String(256), default="")
    """`vendor/name@version`, or empty when no profile was known (health rules only)."""
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    evaluated_at: Mapped[datetime] = mapped_column(default=utcnow)
