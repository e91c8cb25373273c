"""API shapes of the audit log."""

from datetime import datetime
from typing import Any

from metalyard.schemas import OutSchema


class AuditEntryOut(OutSchema):
    seq: int
    at: datetime
    actor: str
    token_id: int | None
    action: str
    target: str
    summary: dict[str, Any]
    request_id: str
    client: str
    outcome: str
    status: int
    prev_hash: str
    hash: str


class AuditProblem(OutSchema):
    seq: int
    problem: str
    message: str


class AuditVerification(OutSchema):
    ok: bool
    entries: int
    problems: list[AuditProblem]
