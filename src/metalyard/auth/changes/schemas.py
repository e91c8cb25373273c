"""API shapes of change requests."""

from datetime import datetime
from typing import Annotated, Any

from pydantic import StringConstraints

from metalyard.auth.changes.states import ChangeState
from metalyard.schemas import OutSchema, Schema


class ChangeRequestOut(OutSchema):
    id: int
    action: str
    target: str
    payload: dict[str, Any]
    state: ChangeState
    reason: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_comment: str
    result: dict[str, Any] | None


class ChangeDecision(Schema):
    comment: Annotated[str, StringConstraints(max_length=1024)] = ""


def change_out(change: Any) -> ChangeRequestOut:
    return ChangeRequestOut(
        id=change.id,
        action=change.action,
        target=change.target,
        payload=change.payload,
        state=change.state,
        reason=change.reason,
        requested_by=change.requested_by.name,
        requested_at=change.requested_at,
        decided_by=change.decided_by.name if change.decided_by else None,
        decided_at=change.decided_at,
        decision_comment=change.decision_comment,
        result=change.result,
    )
