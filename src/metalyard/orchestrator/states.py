"""States of runs and of their beans (no database imports: the SDK uses them too)."""

from enum import StrEnum


class RunState(StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class BeanState(StrEnum):
    BLOCKED = "BLOCKED"
    """Waiting for the beans it depends on."""
    READY = "READY"
    RUNNING = "RUNNING"
    WAITING = "WAITING"
    """Parked until a signal or its timeout."""
    DONE = "DONE"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TERMINAL = frozenset({BeanState.DONE, BeanState.SKIPPED, BeanState.FAILED, BeanState.CANCELLED})
