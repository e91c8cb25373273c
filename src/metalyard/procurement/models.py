"""Procurement tables: vendors, versioned hardware profiles, requests, orders, deliveries."""

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from metalyard.db import Base, TimestampMixin, VersionedMixin, utcnow
from metalyard.procurement.states import MatchOutcome, OrderState, RequestState, StageState


def _enum(cls) -> Enum:
    return Enum(cls, native_enum=False, length=32, validate_strings=True)


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


# Purchases -----------------------------------------------------------------------------


class PurchaseRequest(TimestampMixin, VersionedMixin, Base):
    """What someone wants bought; approved (by a second person), it becomes orders."""

    __tablename__ = "purchase_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(256))
    region: Mapped[str] = mapped_column(String(64))
    state: Mapped[RequestState] = mapped_column(_enum(RequestState), default=RequestState.OPEN)
    requested_by: Mapped[str] = mapped_column(String(128))
    lines: Mapped[list["RequestLine"]] = relationship(
        cascade="all, delete-orphan", order_by="RequestLine.id", lazy="selectin"
    )


class RequestLine(Base):
    __tablename__ = "purchase_request_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("purchase_requests.id", ondelete="CASCADE"), index=True
    )
    profile_version_id: Mapped[int] = mapped_column(
        ForeignKey("profile_versions.id", ondelete="RESTRICT")
    )
    quantity: Mapped[int]

    profile_version: Mapped[ProfileVersion] = relationship(lazy="joined")


class PurchaseOrder(TimestampMixin, VersionedMixin, Base):
    """One vendor, one region; its state follows from its stages and lines (see service)."""

    __tablename__ = "purchase_orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    vendor_id: Mapped[int] = mapped_column(ForeignKey("vendors.id", ondelete="RESTRICT"))
    region: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("purchase_requests.id", ondelete="RESTRICT")
    )
    state: Mapped[OrderState] = mapped_column(_enum(OrderState), default=OrderState.DRAFT)

    vendor: Mapped[Vendor] = relationship(lazy="joined")
    lines: Mapped[list["OrderLine"]] = relationship(
        cascade="all, delete-orphan", order_by="OrderLine.id", lazy="selectin"
    )
    stages: Mapped[list["DeliveryStage"]] = relationship(
        cascade="all, delete-orphan", order_by="DeliveryStage.number", lazy="selectin"
    )


class OrderLine(Base):
    __tablename__ = "purchase_order_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("purchase_orders.id", ondelete="CASCADE"), index=True
    )
    profile_version_id: Mapped[int] = mapped_column(
        ForeignKey("profile_versions.id", ondelete="RESTRICT"), index=True
    )
    quantity: Mapped[int]

    profile_version: Mapped[ProfileVersion] = relationship(lazy="joined")


class ExpectedSerial(Base):
    """A serial number the vendor's packing list promises for a line."""

    __tablename__ = "expected_serials"

    id: Mapped[int] = mapped_column(primary_key=True)
    line_id: Mapped[int] = mapped_column(
        ForeignKey("purchase_order_lines.id", ondelete="CASCADE"), index=True
    )
    serial: Mapped[str] = mapped_column(String(64), unique=True)


class DeliveryStage(Base):
    __tablename__ = "delivery_stages"
    __table_args__ = (UniqueConstraint("order_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("purchase_orders.id", ondelete="CASCADE"))
    number: Mapped[int]
    quantity: Mapped[int]
    expected_on: Mapped[date]
    state: Mapped[StageState] = mapped_column(_enum(StageState), default=StageState.PLANNED)


class OrderEvent(Base):
    """Every transition of an order or its stages, and every alert: who, when, why."""

    __tablename__ = "purchase_order_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("purchase_orders.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    """`order`, `stage`, `match` or `alert`."""
    subject: Mapped[str] = mapped_column(String(128), default="")
    from_state: Mapped[str] = mapped_column(String(32), default="")
    to_state: Mapped[str] = mapped_column(String(32), default="")
    reason: Mapped[str] = mapped_column(Text, default="")


class AssetMatch(Base):
    """How a discovered asset met procurement: matched to a line, or raised as unknown."""

    __tablename__ = "asset_matches"

    asset_id: Mapped[int] = mapped_column(
        ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True
    )
    line_id: Mapped[int | None] = mapped_column(
        ForeignKey("purchase_order_lines.id", ondelete="RESTRICT"), index=True
    )
    outcome: Mapped[MatchOutcome] = mapped_column(_enum(MatchOutcome))
    matched_at: Mapped[datetime] = mapped_column(default=utcnow)
    passed_at: Mapped[datetime | None]
    """When the asset passed evaluation; the order closes once every unit has."""


class WebhookSubscription(TimestampMixin, Base):
    """Where order events are posted: one order's stakeholders, or every order's (no order)."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("purchase_orders.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(2048))
    created_by: Mapped[str] = mapped_column(String(128), default="")
