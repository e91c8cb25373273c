"""Which key signed the log's head, so a process given another key refuses to start."""

from cryptography.fernet import Fernet
from sqlalchemy import text

from metalyard.auth.audit import service
from metalyard.secrets import configured_keys
from tests.auth.test_audit_seal import write_sites


def missing(database, keys):
    with database.transaction(write=False) as session:
        return service.missing_key(session, keys=service.AuditKeys(keys) if keys else None)


def test_an_empty_log_needs_no_key(database):
    assert missing(database, None) is None


def test_a_log_signed_with_another_key_names_it(client, database, settings):
    write_sites(client, 2)
    mine = configured_keys(settings)
    signer = service.AuditKeys(mine).signing_id
    assert missing(database, mine) is None
    assert missing(database, [Fernet.generate_key().decode()]) == signer
    assert missing(database, None) == signer
    # an older key still in the ring is enough: that is a rotation under way
    assert missing(database, [Fernet.generate_key().decode(), *mine]) is None


def test_a_replaced_seal_over_entries_this_key_signed_is_not_a_missing_key(
    client, database, settings
):
    write_sites(client, 2)
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE audit_seal SET key_id = 'ffffffffffffffff'"))
    assert missing(database, configured_keys(settings)) is None  # left for verify to name
