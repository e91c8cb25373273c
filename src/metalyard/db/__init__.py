"""Database layer: the engine, sessions, the declarative base and migrations."""

from metalyard.db.base import Base, TimestampMixin, VersionedMixin, utcnow
from metalyard.db.engine import Database, upgrade

__all__ = ["Base", "Database", "TimestampMixin", "VersionedMixin", "upgrade", "utcnow"]
