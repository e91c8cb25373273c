"""The audit log against someone who can write to the database but lacks the secret key."""

import itertools
from datetime import UTC, datetime

from cryptography.fernet import Fernet
from sqlalchemy import select, text

from metalyard.auth.audit import service
from metalyard.auth.audit.models import AuditEntry, AuditSeal
from metalyard.secrets import configured_keys


def write_sites(client, count):
    for _ in range(count):
        assert client.post("/v1/sites", json={"name": f"s{next(names)}"}).status_code == 201


names = itertools.count()


def problems(admin):
    result = admin.get("/v1/audit/verify").json()
    return [(p["seq"], p["problem"]) for p in result["problems"]]


def test_deleting_the_newest_entries_is_named(client, admin, database):
    write_sites(client, 5)
    with database.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_entries WHERE seq >= 4"))
    assert problems(admin) == [(4, "missing")]
    write_sites(client, 1)  # the chain goes on from the sealed head: the gap stays
    assert problems(admin) == [(4, "missing")]
    seqs = [e["seq"] for e in admin.get("/v1/audit").json()["items"]]
    assert seqs == [6, 3, 2, 1]


def test_an_edit_rehashed_to_the_end_and_into_the_seal_is_named(client, admin, database):
    """Everything someone without the key can recompute, recomputed: the MACs still fail."""
    write_sites(client, 4)
    with database.transaction() as session:
        chain = session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
        chain[1].actor = "mallory"
        for before, entry in itertools.pairwise(chain):
            entry.prev_hash = before.hash
            entry.hash = service.entry_hash(entry)
        session.get(AuditSeal, 1).hash = chain[-1].hash
    assert problems(admin) == [(2, "edited"), (3, "edited"), (4, "edited"), (4, "forged_seal")]


def test_a_head_seal_replaced_without_the_key_is_named(client, admin, database):
    write_sites(client, 3)
    with database.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_entries WHERE seq = 3"))
        second = "(SELECT hash FROM audit_entries WHERE seq = 2)"
        connection.execute(text(f"UPDATE audit_seal SET seq = 2, hash = {second}"))
    assert problems(admin) == [(2, "forged_seal")]
    write_sites(client, 1)  # a seal that does not verify is left for verify to report
    assert (2, "forged_seal") in problems(admin)


def test_a_deleted_seal_is_named(client, admin, database):
    write_sites(client, 2)
    with database.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_seal"))
    assert problems(admin) == [(2, "unsealed")]
    write_sites(client, 1)  # the next write does not seal a log it did not start
    assert problems(admin) == [(3, "unsealed")]


def test_a_stripped_mac_is_named(client, admin, database):
    write_sites(client, 3)
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE audit_entries SET key_id = NULL, mac = NULL WHERE seq = 2"))
    assert problems(admin) == [(2, "edited")]


def test_an_entry_added_after_the_head_is_named(client, admin, database):
    write_sites(client, 2)
    with database.transaction() as session:
        head = session.get(AuditEntry, 2)
        forged = AuditEntry(
            seq=3,
            at=datetime.now(UTC),
            actor="mallory",
            action="create_site",
            target="sites/x",
            summary={},
            request_id="",
            client="",
            outcome="success",
            status=201,
            prev_hash=head.hash,
        )
        forged.hash = service.entry_hash(forged)
        session.add(forged)
    assert problems(admin) == [(3, "edited"), (3, "unsealed")]


# Upgrading from entries without a MAC ----------------------------------------------------


def write_legacy_entries(database, count):
    """Entries as metalyard wrote them before MACs: a plain hash chain, no seal."""
    with database.transaction() as session:
        prev = service.GENESIS
        for seq in range(1, count + 1):
            entry = AuditEntry(
                seq=seq,
                at=datetime.now(UTC),
                actor="wanda",
                action="create_site",
                target="sites",
                summary={"body": {"name": f"old{seq}"}},
                request_id="",
                client="",
                outcome="success",
                status=201,
                prev_hash=prev,
            )
            entry.hash = prev = service.entry_hash(entry)
            session.add(entry)


def test_entries_from_before_macs_verify_once_the_upgrade_sealed_them(
    client, admin, database, settings
):
    write_legacy_entries(database, 3)
    assert problems(admin) == [(3, "unsealed")]
    with database.transaction() as session:
        sealed = service.seal(session, settings=settings)
    assert (sealed.seq, sealed.keyed_from) == (3, 4)
    write_sites(client, 2)
    assert admin.get("/v1/audit/verify").json() == {"ok": True, "entries": 5, "problems": []}
    with database.engine.begin() as connection:  # an old entry, edited and re-hashed
        connection.execute(text("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 2"))
    with database.transaction() as session:
        entry = session.get(AuditEntry, 2)
        entry.hash = service.entry_hash(entry)
    assert problems(admin) == [(3, "broken_link")]


def test_sealing_is_idempotent(database, settings):
    write_legacy_entries(database, 1)
    with database.transaction() as session:
        assert service.seal(session, settings=settings) is not None
        assert service.seal(session, settings=settings) is None


# Key rotation ----------------------------------------------------------------------------


def test_after_rotation_entries_verify_with_the_new_key_alone(client, database, settings):
    write_sites(client, 3)
    old = service.AuditKeys.from_settings(settings)
    [old_secret] = configured_keys(settings)
    new_secret = Fernet.generate_key().decode()
    with database.transaction() as session:
        assert service.rotate_key(session, keys=service.AuditKeys([new_secret, old_secret])) == 3
    with database.transaction(write=False) as session:
        assert service.verify(session, keys=service.AuditKeys([new_secret])).ok
        unknown = service.verify(session, keys=old).problems
    assert [p["problem"] for p in unknown] == ["unknown_key"] * 3 + ["unknown_key"]


def test_rotation_leaves_an_edited_entry_named(client, database, settings):
    write_sites(client, 2)
    [old_secret] = configured_keys(settings)
    with database.engine.begin() as connection:
        connection.execute(
            text("UPDATE audit_entries SET mac = :mac WHERE seq = 1"), {"mac": "0" * 64}
        )
    new_secret = Fernet.generate_key().decode()
    with database.transaction() as session:
        assert service.rotate_key(session, keys=service.AuditKeys([new_secret, old_secret])) == 1
    with database.transaction(write=False) as session:
        found = service.verify(session, keys=service.AuditKeys([new_secret, old_secret]))
    assert [(p["seq"], p["problem"]) for p in found.problems] == [(1, "edited")]
