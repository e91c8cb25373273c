"""IPAM tables: prefixes per site and role, their reserved ranges, and allocated addresses."""

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Enum,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    UniqueConstraint,
    event,
    exists,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from metalyard.db import Base, TimestampMixin, VersionedMixin, utcnow
from metalyard.errors import Conflict
from metalyard.inventory.models import Site
from metalyard.network.addressing import PrefixRole


class Prefix(TimestampMixin, VersionedMixin, Base):
    """A subnet of one site, for one role; prefixes of a region never overlap."""

    __tablename__ = "prefixes"
    __table_args__ = (
        Index("ix_prefixes_family_range_start", "family", "range_start"),
        Index("ix_prefixes_site_id_role", "site_id", "role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    cidr: Mapped[str] = mapped_column(String(64), unique=True)
    """Normalised by `ipaddress` (`2001:db8::/64`), so equal prefixes are equal strings."""
    family: Mapped[int]
    range_start: Mapped[bytes] = mapped_column(LargeBinary)
    range_end: Mapped[bytes] = mapped_column(LargeBinary)
    """First and last address as 16 big-endian bytes (addressing.bounds_key): overlap and
    containment tests are byte comparisons, which order the same on SQLite and PostgreSQL."""
    role: Mapped[PrefixRole] = mapped_column(
        # The values (`bmc`) as the API spells them, stored as plain strings.
        Enum(
            PrefixRole,
            native_enum=False,
            length=32,
            validate_strings=True,
            values_callable=lambda roles: [role.value for role in roles],
        )
    )
    gateway: Mapped[str | None] = mapped_column(String(64))
    dns_servers: Mapped[list[str]] = mapped_column(JSON, default=list)
    vlan: Mapped[int | None]
    description: Mapped[str] = mapped_column(String(1024), default="")

    site: Mapped[Site] = relationship(lazy="joined")
    reserved_ranges: Mapped[list["ReservedRange"]] = relationship(
        back_populates="prefix", cascade="all, delete-orphan", order_by="ReservedRange.id"
    )


class ReservedRange(Base):
    """Addresses of a prefix that are never allocated (switches, VIPs, a DHCP pool)."""

    __tablename__ = "reserved_ranges"
    __table_args__ = (Index("ix_reserved_ranges_prefix_id_id", "prefix_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix_id: Mapped[int] = mapped_column(ForeignKey("prefixes.id", ondelete="CASCADE"))
    start: Mapped[str] = mapped_column(String(64))
    end: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    prefix: Mapped[Prefix] = relationship(back_populates="reserved_ranges")


class IpAllocation(Base):
    """One address held by one interface of an asset.

    Two unique constraints make the guarantees, whatever the number of concurrent writers:
    an address is allocated once in the region (`address`, and `prefix_id, host_offset`,
    which is also the index the lowest-free search walks), and an interface holds at most one
    address per prefix. The interface is kept by name, so editing an asset's interfaces
    (which replaces their rows) keeps its addresses; deleting the asset releases them.
    """

    __tablename__ = "ip_allocations"
    __table_args__ = (
        UniqueConstraint("prefix_id", "host_offset"),
        UniqueConstraint("prefix_id", "asset_id", "interface"),
        Index("ix_ip_allocations_asset_id_interface", "asset_id", "interface"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix_id: Mapped[int] = mapped_column(ForeignKey("prefixes.id", ondelete="RESTRICT"))
    address: Mapped[str] = mapped_column(String(64), unique=True)
    host_offset: Mapped[int] = mapped_column(BigInteger)
    """The address minus the prefix's network address (addressing.offset_of)."""
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"))
    interface: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


@event.listens_for(Site, "before_delete")
def _site_without_prefixes(mapper, connection, site: Site) -> None:
    """A site's prefixes hold its addresses: refuse to delete it under them, saying so (the
    foreign key alone would refuse with a message that names neither)."""
    if connection.scalar(select(exists().where(Prefix.site_id == site.id))):
        raise Conflict(
            f"site {site.name!r} still has IP prefixes; delete them first "
            f"(metalyard prefix list --site {site.name})"
        )


class BootRequest(Base):
    """An iPXE client asked what to boot: which MAC, which asset it is, what it was told."""

    __tablename__ = "boot_requests"
    __table_args__ = (Index("ix_boot_requests_mac_id", "mac", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mac: Mapped[str] = mapped_column(String(17))
    asset_id: Mapped[int | None] = mapped_column(
        ForeignKey("assets.id", ondelete="SET NULL"), index=True
    )
    decision: Mapped[str] = mapped_column(String(16))
    """`agent` (unknown, under evaluation or SPARE), `local` (boot the disk) or `halt`."""
    client: Mapped[str] = mapped_column(String(64), default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)
