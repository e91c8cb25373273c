"""Imports every concept's tables so Base.metadata (and Alembic) sees the whole schema."""

from metalyard.auth import models as auth_models
from metalyard.auth.audit import models as audit_models
from metalyard.auth.changes import models as changes_models
from metalyard.db.base import Base
from metalyard.discovery import models as discovery_models
from metalyard.drivers import models as drivers_models
from metalyard.inventory import models as inventory_models
from metalyard.network import models as network_models
from metalyard.orchestrator import models as orchestrator_models
from metalyard.procurement import models as procurement_models

__all__ = [
    "Base",
    "audit_models",
    "auth_models",
    "changes_models",
    "discovery_models",
    "drivers_models",
    "inventory_models",
    "network_models",
    "orchestrator_models",
    "procurement_models",
]
