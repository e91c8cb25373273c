"""Audit routes: query the log and verify its chain (admin only)."""

from typing import Annotated

from fastapi import Query
from pydantic import AwareDatetime

from metalyard.api.deps import PageDep, SessionDep, requires
from metalyard.api.routing import secured_router
from metalyard.auth.audit import service
from metalyard.auth.audit.schemas import AuditEntryOut, AuditVerification
from metalyard.auth.scopes import Scope
from metalyard.schemas import PageOut

audit = secured_router(prefix="/audit", tags=["audit"])
routers = [audit]
ShortText = Annotated[str | None, Query(max_length=512)]


@audit.get("", response_model=PageOut[AuditEntryOut], **requires(Scope.ADMIN))
def list_audit_entries(
    session: SessionDep,
    page: PageDep,
    actor: ShortText = None,
    target: Annotated[
        str | None, Query(max_length=512, description="Prefix, e.g. assets/SN1")
    ] = None,
    action: ShortText = None,
    outcome: ShortText = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
):
    """Newest first."""
    where = service.AuditFilter(
        actor=actor, target=target, action=action, outcome=outcome, since=since, until=until
    )
    return service.list_entries(session, where=where, limit=page.limit, cursor=page.cursor)


@audit.get("/verify", response_model=AuditVerification, **requires(Scope.ADMIN))
def verify_audit_log(session: SessionDep):
    """Recompute the hash chain: names every edited entry and every gap."""
    result = service.verify(session)
    return AuditVerification(ok=result.ok, entries=result.entries, problems=result.problems)
