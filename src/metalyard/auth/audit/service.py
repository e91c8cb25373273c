"""Writing, querying and verifying the audit log.

Three things make it tamper-evident. Each entry's `hash` (SHA-256 of its fields and of the
hash before it) links the chain. Each entry's `mac` (HMAC-SHA256 of that hash, under a key
derived from the deployment's secret key) shows that a holder of the key wrote it. The seal,
a MAC over the head (seq, hash) rewritten in the same transaction as every entry, shows
where the chain ends. So `verify` names an entry edited (re-hashed or not), one deleted
from the middle or from the end, one added, and a seal replaced, by anyone without the key.

What it cannot show: someone who can write to the database and kept an earlier copy of the
seal row can delete every entry written since and put that copy back; the log then reads
as it did when the copy was taken. Deleting every entry and the seal leaves a log that
reads as new and empty. Anyone holding the secret key can rewrite anything. A copy of the
log, or of its head, kept outside the database is what catches those.

Entries written before entries carried a MAC keep their plain hash; the seal records the
first keyed entry, so stripping a later entry's MAC shows too.
"""

import hashlib
import hmac
import json
import logging
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, bindparam, func, or_, select, text, update
from sqlalchemy.orm import Session

from metalyard.auth.actor import Actor
from metalyard.auth.audit.models import AuditEntry, AuditSeal, Outcome
from metalyard.config import Settings
from metalyard.db import utcnow
from metalyard.db.pagination import Page, SortKey, paginate
from metalyard.errors import InvalidInput
from metalyard.secrets import configured_keys

log = logging.getLogger(__name__)

GENESIS = "0" * 64
# Any constant works; it names the one advisory lock that orders writers of the chain.
_CHAIN_LOCK = 0x6D657461
_SEAL_ID = 1
_KEY_PURPOSE = b"metalyard audit log"


class AuditKeys:
    """MAC keys derived from the secret keys, newest first: the first signs, any verifies,
    so entries stay verifiable while an older key is still in the ring."""

    def __init__(self, secret_keys: list[str]) -> None:
        if not secret_keys:
            raise ValueError("the audit log needs at least one secret key")
        derived = [hmac.digest(key.encode(), _KEY_PURPOSE, "sha256") for key in secret_keys]
        self._keys = {hmac.new(key, b"key id", "sha256").hexdigest()[:16]: key for key in derived}
        self.signing_id = next(iter(self._keys))

    @classmethod
    def from_settings(cls, settings: Settings) -> "AuditKeys":
        """Read each time rather than cached, so a rotated key file is used at once."""
        return cls(configured_keys(settings))

    def sign(self, message: bytes) -> str:
        return hmac.new(self._keys[self.signing_id], message, "sha256").hexdigest()

    def check(self, key_id: str, message: bytes, mac: str) -> bool | None:
        """Whether `mac` is right; None when the key that made it is not in the ring."""
        key = self._keys.get(key_id)
        if key is None:
            return None
        return hmac.compare_digest(hmac.new(key, message, "sha256").hexdigest(), mac)

    def __contains__(self, key_id: str) -> bool:
        return key_id in self._keys


def record(
    session: Session,
    *,
    settings: Settings,
    action: str,
    target: str,
    outcome: Outcome,
    status: int,
    summary: dict[str, Any],
    actor: Actor | None,
    request_id: str,
    client: str,
) -> AuditEntry:
    """Append one entry to the chain and move the seal onto it, in the caller's transaction.

    The chain goes on from the sealed head, not from the last row: after a deleted tail the
    gap stays, and `verify` names it. A seal that does not verify is left as it is, so the
    evidence stays for `verify` too.
    """
    _lock_chain(session)
    keys = AuditKeys.from_settings(settings)  # after the lock: a key rotation has finished
    seal = session.get(AuditSeal, _SEAL_ID, populate_existing=True)
    last = _last_entry(session)
    seq, prev_hash = (last.seq + 1, last.hash) if last else (1, GENESIS)
    sealed = seal is not None and _seal_holds(seal, keys)
    if sealed:
        seq, prev_hash = max(seq, seal.seq + 1), seal.hash
    elif seal is not None and seal.key_id not in keys:
        log.warning(
            "the audit log's seal was signed with key %s, which this process does not have: "
            "every process of the region needs the same METALYARD_SECRET_KEY",
            seal.key_id,
        )
    elif seal is not None:
        log.warning("the audit log's seal does not verify; `metalyard audit verify` says why")
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
    entry.key_id, entry.mac = keys.signing_id, keys.sign(_entry_message(entry.hash))
    session.add(entry)
    if sealed:
        _set_seal(seal, entry.seq, entry.hash, keys)
    elif seal is None and last is None:  # a new log; an unsealed old one waits for seal()
        session.add(_set_seal(AuditSeal(id=_SEAL_ID, keyed_from=seq), seq, entry.hash, keys))
    session.flush()
    return entry


def seal(session: Session, *, settings: Settings, make_key: bool = True) -> AuditSeal | None:
    """Seal the head of a log that has no seal (one written before entries carried a MAC);
    the new seal, or None when there was one already or the log is empty.

    Whoever runs this vouches for the log as it stands: run it on upgrade, not to silence
    `verify` after someone deleted the seal. Without `make_key` a process that has no key
    is refused rather than sealing with one of its own, which every other process of the
    region would then be refused for.
    """
    _lock_chain(session)
    if session.get(AuditSeal, _SEAL_ID) is not None:
        return None
    last = _last_entry(session)
    if last is None:
        return None
    first_keyed = session.scalar(
        select(func.min(AuditEntry.seq)).where(AuditEntry.mac.is_not(None))
    )
    new = AuditSeal(id=_SEAL_ID, keyed_from=first_keyed or last.seq + 1)
    # Only now: upgrading a database with no log to seal needs no key file made.
    keys = configured_keys(settings, make=make_key)
    if not keys:
        raise InvalidInput(
            "the audit log was written before its entries carried a MAC and must be sealed "
            "with the region's secret key, which this process does not have: run this where "
            "METALYARD_SECRET_KEY (or the data directory's key file) holds it"
        )
    session.add(_set_seal(new, last.seq, last.hash, AuditKeys(keys)))
    session.flush()
    return new


def claim(session: Session, *, settings: Settings) -> str | None:
    """`missing_key` for this process's keys, under the log's lock; a new log (no entry, no
    seal) gets its first entry, signed with this process's key (made if there is none).

    A process checks its key at start: two starting at once on a new database would both
    find nothing to check against, and then sign one chain with two keys. The entry makes
    the first one's key the one the second must have.
    """
    _lock_chain(session)
    last = _last_entry(session)  # on SQLite, the first statement takes the write lock
    held = configured_keys(settings, make=False)  # so only now: the first may have made it
    foreign = missing_key(session, keys=AuditKeys(held) if held else None)
    if foreign is None and last is None and not session.get(AuditSeal, _SEAL_ID):
        record(
            session,
            settings=settings,
            action="claim_key",
            target="region",
            outcome=Outcome.SUCCESS,
            status=200,
            summary={"region": settings.region},
            actor=Actor.system("startup"),
            request_id="",
            client=socket.gethostname(),
        )
    return foreign


def missing_key(session: Session, *, keys: AuditKeys | None) -> str | None:
    """The id of the key that signed the log's head when `keys` (None: no key at all) lack
    it, so a process given another key refuses to start instead of forking the chain and
    raising a false alarm; None for an empty or unkeyed log, or one signed with `keys`.

    A seal signed with an unknown key over a newest entry that `keys` vouch for is not a
    missing key but a replaced seal: that is left for `verify` to name.
    """
    seal = session.get(AuditSeal, _SEAL_ID)
    newest = session.execute(
        select(AuditEntry.hash, AuditEntry.key_id, AuditEntry.mac)
        .where(AuditEntry.mac.is_not(None))
        .order_by(AuditEntry.seq.desc())
        .limit(1)
    ).first()
    signer = seal.key_id if seal is not None else newest and newest.key_id
    if keys is None or signer is None:
        return signer
    if newest is not None and keys.check(
        newest.key_id or "", _entry_message(newest.hash), newest.mac
    ):
        return None
    return None if signer in keys else signer


def rotate_key(session: Session, *, keys: AuditKeys, batch: int = 5000) -> int:
    """MAC again with the first key every entry, and the seal, that an older key of the
    ring vouches for, so that key can go; how many. Entries that do not verify keep their
    MAC, so `verify` still names them. Only MACs change: the chain's hashes stay."""
    _lock_chain(session)
    table, count, after = AuditEntry.__table__, 0, 0
    while True:
        rows = session.execute(
            select(table.c.seq, table.c.hash, table.c.key_id, table.c.mac)
            .where(table.c.seq > after, table.c.mac.is_not(None))
            .order_by(table.c.seq)
            .limit(batch)
        ).all()
        stale = [
            {"entry": row.seq, "mac": keys.sign(_entry_message(row.hash))}
            for row in rows
            if row.key_id != keys.signing_id
            and keys.check(row.key_id, _entry_message(row.hash), row.mac)
        ]
        if stale:
            session.connection().execute(
                update(table)
                .where(table.c.seq == bindparam("entry"))
                .values(key_id=keys.signing_id, mac=bindparam("mac")),
                stale,
            )
            count += len(stale)
        if len(rows) < batch:
            break
        after = rows[-1].seq
    current = session.get(AuditSeal, _SEAL_ID)
    if current is not None and current.key_id != keys.signing_id and _seal_holds(current, keys):
        _set_seal(current, current.seq, current.hash, keys)
    session.flush()
    return count


def _last_entry(session: Session) -> Row | None:
    """The (seq, hash) of the newest entry written, sealed or not."""
    return session.execute(
        select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()


def _lock_chain(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        # Two API processes must not both extend the same head. (SQLite's writing
        # transactions take the database's write lock up front: see db.engine.)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK})


def entry_hash(entry: AuditEntry) -> str:
    """Unchanged since the first entry, so entries written before MACs still verify."""
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


# The prefixes keep an entry's MAC from passing for a seal's, and the other way round.
def _entry_message(entry_hash: str) -> bytes:
    return f"entry\0{entry_hash}".encode()


def _seal_message(seal: AuditSeal) -> bytes:
    return f"seal\0{seal.seq}\0{seal.hash}\0{seal.keyed_from}".encode()


def _set_seal(seal: AuditSeal, seq: int, hash_: str, keys: AuditKeys) -> AuditSeal:
    seal.seq, seal.hash, seal.key_id = seq, hash_, keys.signing_id
    seal.mac = keys.sign(_seal_message(seal))
    return seal


def _seal_holds(seal: AuditSeal, keys: AuditKeys) -> bool:
    return bool(keys.check(seal.key_id, _seal_message(seal), seal.mac))


@dataclass
class AuditFilter:
    actor: str | None = None
    target: str | None = None
    """Whole path segments: `assets/SN1` matches `assets/SN1` and `assets/SN1/power`, never
    `assets/SN13`."""
    action: str | None = None
    outcome: Outcome | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise InvalidInput(
                f"since ({self.since.isoformat()}) must be before until "
                f"({self.until.isoformat()}): nothing happened in between",
                details={"field": "since"},
            )


def list_entries(
    session: Session, *, where: AuditFilter, limit: int, cursor: str | None
) -> Page[AuditEntry]:
    stmt = select(AuditEntry)
    if where.actor is not None:
        stmt = stmt.where(AuditEntry.actor == where.actor)
    if where.target is not None:
        target = where.target.rstrip("/")
        escaped = target.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(
            or_(AuditEntry.target == target, AuditEntry.target.like(escaped + "/%", escape="\\"))
        )
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


def verify(session: Session, *, keys: AuditKeys, batch: int = 5000) -> Verification:
    """Walk the chain in order: an edited entry breaks its hash or its MAC, a deleted one the
    links or the seal.

    The seal and the last seq are read in one statement (one snapshot, even on a
    PostgreSQL session without a transaction); entries appended after it are left to the
    next run.
    """
    head = session.execute(
        select(AuditSeal, select(func.max(AuditEntry.seq)).scalar_subquery()).where(
            AuditSeal.id == _SEAL_ID
        )
    ).first()
    current, end = (head[0], head[1]) if head else (None, None)
    if current is None:
        end = session.scalar(select(func.max(AuditEntry.seq)))
    trusted = current is not None and _seal_holds(current, keys)
    problems: list[dict[str, Any]] = []

    def problem(seq: int, kind: str, message: str) -> None:
        problems.append({"seq": seq, "problem": kind, "message": message})

    expected_seq, prev_hash, count, after, last = 1, GENESIS, 0, 0, None
    while end is not None:
        rows = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.seq > after, AuditEntry.seq <= end)
            .order_by(AuditEntry.seq)
            .limit(batch)
        ).all()
        for entry in rows:
            count += 1
            if entry.seq != expected_seq:
                problem(
                    expected_seq, "missing", f"entries {expected_seq}..{entry.seq - 1} are missing"
                )
            elif entry.prev_hash != prev_hash:
                problem(entry.seq, "broken_link", "does not follow the entry before it")
            _check_entry(entry, keys, current if trusted else None, problem)
            expected_seq, prev_hash, last = entry.seq + 1, entry.hash, entry
        if len(rows) < batch:
            break
        after = rows[-1].seq
        session.expunge_all()
    _check_head(current, trusted, last, keys, problem)
    return Verification(entries=count, problems=problems)


def _check_entry(entry: AuditEntry, keys: AuditKeys, seal: AuditSeal | None, problem) -> None:
    if entry_hash(entry) != entry.hash:
        problem(entry.seq, "edited", "its content does not match its hash")
    elif entry.mac is None:
        if seal is not None and entry.seq >= seal.keyed_from:
            problem(
                entry.seq,
                "edited",
                f"it carries no MAC, though every entry from {seal.keyed_from} on does",
            )
    else:
        valid = keys.check(entry.key_id or "", _entry_message(entry.hash), entry.mac)
        if valid is None:
            problem(entry.seq, "unknown_key", _unknown_key(entry.key_id))
        elif not valid:
            problem(entry.seq, "edited", "its hash was recomputed by someone without the key")


def _check_head(
    current: AuditSeal | None, trusted: bool, last: AuditEntry | None, keys: AuditKeys, problem
) -> None:
    if current is None:
        if last is not None:
            problem(
                last.seq,
                "unsealed",
                "no seal vouches for the log's head: it was deleted, or the log was written "
                "before seals and not sealed yet (`metalyard db upgrade` seals it)",
            )
        return
    if not trusted:
        if current.key_id not in keys:
            problem(current.seq, "unknown_key", "the seal: " + _unknown_key(current.key_id))
        else:
            problem(current.seq, "forged_seal", "the seal was replaced by someone without the key")
        return
    end = last.seq if last else 0
    if end < current.seq:
        problem(
            end + 1,
            "missing",
            f"entries {end + 1}..{current.seq} were deleted from the end of the log",
        )
    elif end > current.seq:
        problem(
            current.seq + 1,
            "unsealed",
            f"entries {current.seq + 1}..{end} were added after the sealed head",
        )
    elif last is not None and last.hash != current.hash:
        problem(end, "replaced", "it is not the entry the seal vouches for")


def _unknown_key(key_id: str | None) -> str:
    return (
        f"its MAC was made with key {key_id}, which is not in the key ring: was a key "
        "removed before `metalyard db rotate-key` ran?"
    )
