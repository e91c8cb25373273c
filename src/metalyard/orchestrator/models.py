"""Runs, the state of each of their beans, every attempt, pools and recent signals."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from metalyard.db import Base, utcnow
from metalyard.orchestrator.states import BeanState, RunState


def _enum(cls) -> Enum:
    return Enum(cls, native_enum=False, length=16, validate_strings=True)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    flow: Mapped[str] = mapped_column(String(64))
    family: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(256), index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[RunState] = mapped_column(_enum(RunState), default=RunState.RUNNING, index=True)
    active_key: Mapped[str | None] = mapped_column(String(330), unique=True)
    """`subject|family` while the run is active, else NULL: the database allows one active run."""
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    beans: Mapped[list["RunBean"]] = relationship(
        back_populates="run", order_by="RunBean.id", cascade="all, delete-orphan"
    )


class RunBean(Base):
    """One bean of one run; workers claim these rows."""

    __tablename__ = "run_beans"
    __table_args__ = (
        Index("ix_run_beans_state_ready_at", "state", "ready_at"),
        Index("ix_run_beans_run_id_name", "run_id", "name", unique=True),
        Index("ix_run_beans_wait_key", "wait_key"),
        Index("ix_run_beans_state_lease_expires", "state", "lease_expires"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    state: Mapped[BeanState] = mapped_column(_enum(BeanState))
    attempts: Mapped[int] = mapped_column(default=0)
    failures: Mapped[int] = mapped_column(default=0)
    """Failed attempts (errors, timeouts, lost leases), counted against the retry policy."""
    ready_at: Mapped[datetime | None]
    """Not to be claimed before this time (backoff)."""
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires: Mapped[datetime | None]
    wait_key: Mapped[str | None] = mapped_column(String(256))
    wait_until: Mapped[datetime | None]
    event: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text, default="")
    """Why it was skipped, why it waits, or its last error."""
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    run: Mapped[Run] = relationship(back_populates="beans")


class BeanAttempt(Base):
    """One execution of a bean by a worker, whatever its outcome."""

    __tablename__ = "bean_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    bean_id: Mapped[int] = mapped_column(ForeignKey("run_beans.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int]
    worker: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str] = mapped_column(Text, default="")


class Pool(Base):
    """A keyed concurrency limit; the CHECK makes exceeding it impossible, not just unlikely."""

    __tablename__ = "pools"
    __table_args__ = (CheckConstraint("in_use >= 0 AND in_use <= size", name="within_size"),)

    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    size: Mapped[int]
    in_use: Mapped[int] = mapped_column(default=0)


class BeanPool(Base):
    """A pool slot a bean needs (keys resolved when the run starts); held while it RUNS."""

    __tablename__ = "bean_pools"

    bean_id: Mapped[int] = mapped_column(
        ForeignKey("run_beans.id", ondelete="CASCADE"), primary_key=True
    )
    pool_key: Mapped[str] = mapped_column(ForeignKey("pools.key"), primary_key=True, index=True)


class Signal(Base):
    """Recent signals, so a bean that parks just after its event arrived still sees it."""

    __tablename__ = "signals"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(256), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
