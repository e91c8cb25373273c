"""Maker-checker: park a command as a change request, run it when someone else approves."""

from collections.abc import Callable
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from metalyard.auth.actor import Actor
from metalyard.auth.changes.actions import ACTIONS
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

# Any constant works; with the hash of action and target it names the advisory lock that
# lets only one of two identical requests see no pending one.
_REQUEST_LOCK = 0x6D6B6368


def action(name: str) -> Callable[[Executor], Executor]:
    """Register the function that carries out `name` once approved (one of ACTIONS, the
    names the settings accept)."""
    if name not in ACTIONS:
        raise ValueError(f"{name!r} is not in metalyard.auth.changes.actions.ACTIONS")

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
    """Park the command, unless the same one already waits (it would only fail once the first
    ran); a different command on the same target may wait beside it (release or quarantine:
    whichever is approved first wins, the other fails then)."""
    if actor.user_id is None:
        raise Forbidden("only a user can request a change that needs approval")
    if session.get_bind().dialect.name == "postgresql":  # SQLite's writers take turns already
        session.execute(
            text("SELECT pg_advisory_xact_lock(CAST(:space AS integer), hashtext(:key))"),
            {"space": _REQUEST_LOCK, "key": f"{action_name} {target}"},
        )
    waiting = session.scalars(
        select(ChangeRequest)
        .where(
            ChangeRequest.action == action_name,
            ChangeRequest.target == target,
            ChangeRequest.state == ChangeState.PENDING,
        )
        .order_by(ChangeRequest.id)
    ).all()
    for pending in waiting:
        if _command(pending.payload) == _command(payload):
            raise Conflict(
                f"change request {pending.id} already asks for {action_name} of {target}: "
                f"approve or reject it (metalyard change show {pending.id})",
                details={"change_request": pending.id},
            )
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


def _command(payload: dict[str, Any]) -> dict[str, Any]:
    """What a request would do: its payload but for the free-text reason."""
    return {key: value for key, value in payload.items() if key != "reason"}


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
        name=change.requested_by.name,
        approved_by=actor.name,
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
