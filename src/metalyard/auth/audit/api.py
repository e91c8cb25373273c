"""Audit routes: query the log and verify its chain (admin only)."""

from typing import Annotated

from fastapi import Query
from pydantic import AwareDatetime

from metalyard.api.deps import PageDep, SessionDep, SettingsDep, requires
from metalyard.api.routing import secured_router
from metalyard.auth.audit import service
from metalyard.auth.audit.models import Outcome
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
        str | None,
        Query(max_length=512, description="A path and what is under it: assets/SN1, not SN13"),
    ] = None,
    action: ShortText = None,
    outcome: Outcome | None = None,
    since: AwareDatetime | None = None,
    until: Annotated[
        AwareDatetime | None, Query(description="Entries before this; after since.")
    ] = None,
):
    """Newest first."""
    where = service.AuditFilter(
        actor=actor, target=target, action=action, outcome=outcome, since=since, until=until
    )
    return service.list_entries(session, where=where, limit=page.limit, cursor=page.cursor)


@audit.get("/verify", response_model=AuditVerification, **requires(Scope.ADMIN))
def verify_audit_log(session: SessionDep, settings: SettingsDep):
    """Check every entry's hash, MAC and link, and the seal over the head: names every
    edited entry, every gap and a deleted end (see auth.audit.service for the limits)."""
    keys = service.AuditKeys.from_settings(settings)
    result = service.verify(session, keys=keys)
    return AuditVerification(ok=result.ok, entries=result.entries, problems=result.problems)
