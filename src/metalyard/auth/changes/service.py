"""Maker-checker: park a command as a change request, run it when someone else approves."""

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalyard.auth.actor import Actor
from metalyard.auth.changes.models import ChangeRequest
from metalyard.auth.changes.states import ChangeState
from metalyard.auth.models import User
from metalyard.auth.scopes import Scope
from metalyard.db import utcnow
from metalyard.db.lookup import get_by
from metalyard.db.pagination import Page, SortKey, paginate
from metalyard.errors import Conflict, Forbidden, MetalyardError

Executor = Callable[[Session, Actor, dict[str, Any]], dict[str, Any]]
"""Runs an approved action: (session, the requester acting, the stored payload) → result."""

_EXECUTORS: dict[str, Executor] = {}


def action(name: str) -> Callable[[Executor], Executor]:
    """Register the function that carries out `name` once approved."""

    def register(executor: Executor) -> Executor:
        _EXECUTORS[name] = executor
        return executor

    return register


def needs_approval(name: str | None, policy: list[str]) -> bool:
    return name is not None and name in policy


def request_change(
    session: Session,
    *,
    action_name: str,
    target: str,
    payload: dict[str, Any],
    reason: str,
    actor: Actor,
) -> ChangeRequest:
    if actor.user_id is None:
        raise Forbidden("only a user can request a change that needs approval")
    change = ChangeRequest(
        action=action_name,
        target=target,
        payload=payload,
        reason=reason,
        requested_by_id=actor.user_id,
    )
    session.add(change)
    session.flush()
    return change


def get_change(session: Session, *, change_id: int) -> ChangeRequest:
    return get_by(session, ChangeRequest, "change request", id=change_id)


def list_changes(
    session: Session, *, state: ChangeState | None, limit: int, cursor: str | None
) -> Page[ChangeRequest]:
    stmt = select(ChangeRequest)
    if state is not None:
        stmt = stmt.where(ChangeRequest.state == state)
    return paginate(
        session,
        stmt,
        id_column=ChangeRequest.id,
        sort=SortKey(ChangeRequest.id, True),
        limit=limit,
        cursor=cursor,
    )


def approve(session: Session, *, change_id: int, comment: str, actor: Actor) -> ChangeRequest:
    """Run the parked command as its requester; a failure is recorded on the request."""
    change = _decide(session, change_id, comment, actor)
    requester = Actor(
        name=f"{change.requested_by.name} (approved by {actor.name})",
        scope=Scope.WRITE,
        user_id=change.requested_by_id,
        token_id=actor.token_id,
        request_id=actor.request_id,
        client=actor.client,
    )
    savepoint = session.begin_nested()
    try:
        result = _EXECUTORS[change.action](session, requester, change.payload)
    except MetalyardError as error:
        savepoint.rollback()
        change.state, change.result = ChangeState.FAILED, error.to_body()
    else:
        savepoint.commit()
        change.state, change.result = ChangeState.APPROVED, result
    session.flush()
    return change


def reject(session: Session, *, change_id: int, comment: str, actor: Actor) -> ChangeRequest:
    change = _decide(session, change_id, comment, actor)
    change.state = ChangeState.REJECTED
    session.flush()
    return change


def _decide(session: Session, change_id: int, comment: str, actor: Actor) -> ChangeRequest:
    change = get_change(session, change_id=change_id)
    if change.state is not ChangeState.PENDING:
        raise Conflict(
            f"change request {change_id} is already {change.state.value}",
            details={"state": change.state.value},
        )
    if actor.user_id is None or actor.user_id == change.requested_by_id:
        raise Forbidden(
            "a change request must be decided by someone other than its requester",
            details={"requested_by": change.requested_by.name},
        )
    change.decided_by = session.get(User, actor.user_id)
    change.decided_at, change.decision_comment = utcnow(), comment
    return change
