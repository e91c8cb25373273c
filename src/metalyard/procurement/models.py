"""Procurement tables: vendors, hardware profiles and their immutable versions."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from metalyard.db import Base, TimestampMixin, VersionedMixin, utcnow


class Vendor(TimestampMixin, VersionedMixin, Base):
    __tablename__ = "vendors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(1024), default="")
    contact: Mapped[str] = mapped_column(String(1024), default="")


class HardwareProfile(TimestampMixin, Base):
    """A line of servers from one vendor; what it is exactly lives in its versions."""

    __tablename__ = "hardware_profiles"
    __table_args__ = (UniqueConstraint("vendor_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    vendor_id: Mapped[int] = mapped_column(ForeignKey("vendors.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(1024), default="")

    vendor: Mapped[Vendor] = relationship(lazy="joined")
    versions: Mapped[list["ProfileVersion"]] = relationship(
        back_populates="profile", order_by="ProfileVersion.number"
    )


class ProfileVersion(Base):
    """One hardware generation or configuration; frozen once anything uses it."""

    __tablename__ = "profile_versions"
    __table_args__ = (UniqueConstraint("profile_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("hardware_profiles.id", ondelete="CASCADE"))
    number: Mapped[int]
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    profile: Mapped[HardwareProfile] = relationship(back_populates="versions", lazy="joined")


class MachineClassProfile(Base):
    """Which profile versions a machine class stands for."""

    __tablename__ = "machine_class_profiles"

    machine_class_id: Mapped[int] = mapped_column(
        ForeignKey("machine_classes.id", ondelete="CASCADE"), primary_key=True
    )
    profile_version_id: Mapped[int] = mapped_column(
        ForeignKey("profile_versions.id", ondelete="RESTRICT"), primary_key=True, index=True
    )
