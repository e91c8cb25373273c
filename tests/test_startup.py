"""A process's start-up checks of its secret key: what they claim, and what a refusal leaves."""

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from metalyard import startup
from metalyard.auth.audit.models import AuditEntry
from metalyard.config import Settings
from metalyard.drivers import service as bmcs
from metalyard.drivers.schemas import BmcCredentialCreate
from metalyard.errors import InvalidInput
from metalyard.secrets import Keyring


def entries(database) -> int:
    with database.transaction(write=False) as session:
        return session.scalar(select(func.count()).select_from(AuditEntry))


def keyed(tmp_path, name: str, key: str | None = None) -> Settings:
    return Settings(region="test-1", data_dir=tmp_path / name, secret_key=key or "")


def test_a_process_refused_for_its_key_leaves_no_claim_and_no_key_file(database, tmp_path):
    """An audit log emptied (or restored without its entries) beside BMC passwords: a process
    with another key must not claim the log on its way out, or the right one is refused."""
    first = Fernet.generate_key().decode()
    with database.transaction() as session:
        credential = BmcCredentialCreate(
            name="ops", username="root", password="calvin", networks=["10.0.0.0/8"]
        )
        bmcs.create_credential(session, data=credential, keyring=Keyring([first]))
    for stranger in (
        keyed(tmp_path, "other", Fernet.generate_key().decode()),
        keyed(tmp_path, "none"),
    ):
        with pytest.raises(InvalidInput, match="BMC passwords are encrypted with another key"):
            startup.check_secret_key(database, stranger, claim=True)
        assert entries(database) == 0
    assert not (tmp_path / "none" / "secret.key").exists()
    startup.check_secret_key(database, keyed(tmp_path, "right", first), claim=True)
    assert entries(database) == 1


def test_only_a_claiming_process_claims_a_new_database(database, tmp_path):
    """`dhcp` and `user recover-admin` run on other hosts: they must not make the region's
    key there."""
    startup.check_secret_key(database, keyed(tmp_path, "dnsmasq-host"))
    assert entries(database) == 0 and not (tmp_path / "dnsmasq-host" / "secret.key").exists()
    server = keyed(tmp_path, "server")
    startup.check_secret_key(database, server, claim=True)
    assert entries(database) == 1 and (tmp_path / "server" / "secret.key").exists()
    with pytest.raises(InvalidInput, match="its audit log is signed with key"):
        startup.check_secret_key(database, keyed(tmp_path, "dnsmasq-host"))
