"""Writing, querying and verifying the hash-chained audit log."""

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from metalyard.auth.actor import Actor
from metalyard.auth.audit.models import AuditEntry
from metalyard.db import utcnow
from metalyard.db.pagination import Page, SortKey, paginate

GENESIS = "0" * 64
# Any constant works; it names the one advisory lock that orders writers of the chain.
_CHAIN_LOCK = 0x6D657461


def record(
    session: Session,
    *,
    action: str,
    target: str,
    outcome: str,
    status: int,
    summary: dict[str, Any],
    actor: Actor | None,
    request_id: str,
    client: str,
) -> AuditEntry:
    """Append one entry to the chain, inside the caller's transaction."""
    if session.get_bind().dialect.name == "postgresql":
        # Two API processes must not both extend the same head.
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK})
    head = session.execute(
        select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    seq, prev_hash = (head.seq + 1, head.hash) if head else (1, GENESIS)
    entry = AuditEntry(
        seq=seq,
        at=utcnow(),
        actor=actor.name if actor else "",
        token_id=actor and actor.token_id,
        action=action,
        target=target,
        summary=summary,
        request_id=request_id,
        client=client,
        outcome=outcome,
        status=status,
        prev_hash=prev_hash,
    )
    entry.hash = entry_hash(entry)
    session.add(entry)
    session.flush()
    return entry


def entry_hash(entry: AuditEntry) -> str:
    fields = {
        "seq": entry.seq,
        "at": entry.at.astimezone(UTC).isoformat(),
        "actor": entry.actor,
        "token_id": entry.token_id,
        "action": entry.action,
        "target": entry.target,
        "summary": entry.summary,
        "request_id": entry.request_id,
        "client": entry.client,
        "outcome": entry.outcome,
        "status": entry.status,
        "prev_hash": entry.prev_hash,
    }
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class AuditFilter:
    actor: str | None = None
    target: str | None = None
    """A prefix: `assets/SN1` matches every call on that asset."""
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_entries(
    session: Session, *, where: AuditFilter, limit: int, cursor: str | None
) -> Page[AuditEntry]:
    stmt = select(AuditEntry)
    if where.actor is not None:
        stmt = stmt.where(AuditEntry.actor == where.actor)
    if where.target is not None:
        escaped = where.target.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(AuditEntry.target.like(escaped + "%", escape="\\"))
    if where.action is not None:
        stmt = stmt.where(AuditEntry.action == where.action)
    if where.outcome is not None:
        stmt = stmt.where(AuditEntry.outcome == where.outcome)
    if where.since is not None:
        stmt = stmt.where(AuditEntry.at >= where.since)
    if where.until is not None:
        stmt = stmt.where(AuditEntry.at < where.until)
    return paginate(
        session,
        stmt,
        id_column=AuditEntry.seq,
        sort=SortKey(AuditEntry.seq, descending=True),
        limit=limit,
        cursor=cursor,
    )


@dataclass
class Verification:
    entries: int
    problems: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(session: Session, *, batch: int = 5000) -> Verification:
    """Walk the chain in order: an edited entry breaks its hash, a deleted one the links."""
    problems: list[dict[str, Any]] = []
    expected_seq, prev_hash, count, after = 1, GENESIS, 0, 0
    while True:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.seq > after).order_by(AuditEntry.seq).limit(batch)
        ).all()
        for entry in rows:
            count += 1
            if entry.seq != expected_seq:
                problems.append(
                    {
                        "seq": expected_seq,
                        "problem": "missing",
                        "message": f"entries {expected_seq}..{entry.seq - 1} are missing",
                    }
                )
            elif entry.prev_hash != prev_hash:
                problems.append(
                    {
                        "seq": entry.seq,
                        "problem": "broken_link",
                        "message": "does not follow the entry before it",
                    }
                )
            if entry_hash(entry) != entry.hash:
                problems.append(
                    {
                        "seq": entry.seq,
                        "problem": "edited",
                        "message": "its content does not match its hash",
                    }
                )
            expected_seq, prev_hash = entry.seq + 1, entry.hash
        if len(rows) < batch:
            break
        after = rows[-1].seq
        session.expunge_all()
    return Verification(entries=count, problems=problems)
