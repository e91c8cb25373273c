"""Every process of a region needs the same secret key: one without it refuses to start."""

import pytest

from metalyard.sdk import Client
from tests.cli.test_serve import TOKEN_LINE, empty_postgres, metalyard, serve  # noqa: F401
from tests.peers.postgres import free_port

REFUSED = "was written with a secret key this process does not have"


@pytest.fixture
def written_postgres(tmp_path, empty_postgres):  # noqa: F811
    """A PostgreSQL region that process A (data dir `a`, its own key file) has written to."""
    upgraded = metalyard(tmp_path, "db", "upgrade", database_url=empty_postgres)
    assert upgraded.returncode == 0, upgraded.stderr
    first = {"database_url": empty_postgres, "embedded_worker": "false"}
    with serve(tmp_path, data_dir=str(tmp_path / "a"), **first) as server:
        token = TOKEN_LINE.search(server.output).group(1)
        with Client(server.url, token) as client:
            client.sites.create(name="dub1")
    return empty_postgres, token


def test_a_second_process_without_the_key_refuses_to_start(tmp_path, written_postgres):
    other = {"database_url": written_postgres[0], "data_dir": str(tmp_path / "b")}
    for command in (("serve", "--port", str(free_port())), ("worker",), ("db", "upgrade")):
        refused = metalyard(tmp_path, *command, embedded_worker="false", **other)
        assert refused.returncode == 7, refused.stderr
        assert REFUSED in refused.stderr and "its audit log is signed with key" in refused.stderr
        assert "same METALYARD_SECRET_KEY" in refused.stderr
        assert "token" not in refused.stdout
    assert not (tmp_path / "b" / "secret.key").exists()  # it made no key of its own

    wrong = metalyard(
        tmp_path, "serve", secret_key="KjpMIqfH1mmD8Nc9s0gJ2MzEPvD9OpG5cy7pWy5QEnw=", **other
    )
    assert wrong.returncode == 7 and "METALYARD_SECRET_KEY does not hold that key" in wrong.stderr


def test_processes_sharing_the_key_share_one_verified_log(tmp_path, written_postgres):
    url, token = written_postgres
    key = (tmp_path / "a" / "secret.key").read_text().strip()
    settings = {"database_url": url, "embedded_worker": "false", "secret_key": key}
    with (
        serve(tmp_path, data_dir=str(tmp_path / "a"), **settings) as first,
        serve(tmp_path, data_dir=str(tmp_path / "b"), **settings) as second,
        Client(first.url, token) as a,
        Client(second.url, token) as b,
    ):
        a.sites.create(name="dub2")
        b.sites.create(name="dub3")
        assert a.audit.verify().problems == []
        assert b.audit.verify().problems == []


def test_sqlite_refuses_a_replaced_key_file(tmp_path):
    with serve(tmp_path) as server:
        token = TOKEN_LINE.search(server.output).group(1)
        with Client(server.url, token) as client:
            client.sites.create(name="dub1")
    key_file = tmp_path / "data" / "secret.key"
    key_file.write_text("KjpMIqfH1mmD8Nc9s0gJ2MzEPvD9OpG5cy7pWy5QEnw=\n")
    refused = metalyard(tmp_path, "serve", "--port", str(free_port()))
    assert refused.returncode == 7
    assert f"the key file {key_file} does not hold that key" in refused.stderr
