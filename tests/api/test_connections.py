"""Pooled PostgreSQL connections: checked for free, pinged after a rest, replaced when dead."""

import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from metalyard.db import engine as engine_module


@pytest.fixture
def pings(database, monkeypatch):
    if database.is_sqlite:
        pytest.skip("SQLite has no server to lose connections to")
    seen = []
    dialect = database.engine.dialect
    real_ping = dialect.do_ping

    def ping(dbapi_connection):
        seen.append(dbapi_connection)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", ping)
    monkeypatch.setattr(engine_module, "IDLE_BEFORE_PING", 60.0)  # however slow the machine
    # A fresh pool: one left invalidated by an earlier test would hand out new connections,
    # which are never pinged.
    database.engine.dispose()
    return seen


def drop_connections(database) -> None:
    """Terminate every other session of the database, as a server restart would."""
    outsider = create_engine(database.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with outsider.connect() as connection:
        others = "datname = current_database() AND pid <> pg_backend_pid()"
        connection.execute(
            text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {others}")
        )
        deadline = time.monotonic() + 10
        while connection.execute(
            text(f"SELECT count(*) FROM pg_stat_activity WHERE {others}")
        ).scalar():
            assert time.monotonic() < deadline, "the sessions did not end"
            time.sleep(0.01)
    outsider.dispose()


def test_a_connection_in_use_is_not_pinged(client, pings):
    for _ in range(3):
        assert client.get("/v1/sites").status_code == 200
    assert pings == []


def test_a_connection_the_server_closed_is_replaced_without_a_failed_request(
    client, database, pings
):
    assert client.get("/v1/sites").status_code == 200
    drop_connections(database)
    for _ in range(3):
        assert client.get("/v1/sites").status_code == 200
    assert pings == []


def test_a_rested_connection_is_pinged(client, pings, monkeypatch):
    assert client.get("/v1/sites").status_code == 200
    monkeypatch.setattr(engine_module, "IDLE_BEFORE_PING", 0.0)
    assert client.get("/v1/sites").status_code == 200
    assert pings
