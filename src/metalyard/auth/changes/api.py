"""Maker-checker routes: list, show, approve, reject."""

from fastapi import Request, status

from metalyard.api.deps import ActorDep, IdPath, PageDep, SessionDep
from metalyard.api.routing import secured_router
from metalyard.auth.changes import service
from metalyard.auth.changes.schemas import ChangeDecision, ChangeRequestOut, change_out
from metalyard.auth.changes.states import ChangeState
from metalyard.schemas import PageOut

changes = secured_router(prefix="/change-requests", tags=["change requests"])
routers = [changes]


@changes.get("", response_model=PageOut[ChangeRequestOut])
def list_change_requests(session: SessionDep, page: PageDep, state: ChangeState | None = None):
    result = service.list_changes(session, state=state, limit=page.limit, cursor=page.cursor)
    return PageOut(items=[change_out(c) for c in result.items], next_cursor=result.next_cursor)


@changes.get("/{change_id}", response_model=ChangeRequestOut)
def get_change_request(change_id: IdPath, session: SessionDep):
    return change_out(service.get_change(session, change_id=change_id))


@changes.post(
    "/{change_id}/approve", response_model=ChangeRequestOut, status_code=status.HTTP_200_OK
)
def approve_change_request(
    change_id: IdPath, body: ChangeDecision, session: SessionDep, actor: ActorDep, request: Request
):
    """Run the change as its requester; someone other than the requester must approve."""
    change = service.approve(session, change_id=change_id, comment=body.comment, actor=actor)
    request.state.audit_target = change.target  # the asset's history shows what was done to it
    return change_out(change)


@changes.post("/{change_id}/reject", response_model=ChangeRequestOut)
def reject_change_request(
    change_id: IdPath, body: ChangeDecision, session: SessionDep, actor: ActorDep
):
    return change_out(
        service.reject(session, change_id=change_id, comment=body.comment, actor=actor)
    )
