"""Named BMC credentials; assets point at one by name (many BMCs often share one)."""

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from metalyard.db import Base, TimestampMixin, VersionedMixin


class BmcCredential(TimestampMixin, VersionedMixin, Base):
    __tablename__ = "bmc_credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    username: Mapped[str] = mapped_column(String(128))
    password_encrypted: Mapped[str] = mapped_column(Text)
    """Fernet token (see metalyard.secrets); the plain password is never stored or returned."""
    networks: Mapped[list[str]] = mapped_column(JSON, default=list)
    """The CIDR prefixes this credential may be sent into; a BMC address outside them is
    refused before any connection, so whoever may edit an asset cannot redirect the password."""
