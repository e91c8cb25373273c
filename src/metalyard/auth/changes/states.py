"""The states of a change request (no database imports: the SDK uses it too)."""

from enum import StrEnum


class ChangeState(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"
