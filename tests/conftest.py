"""Fixtures: each database-backed test runs on SQLite and on a real PostgreSQL."""

import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import text

from metalyard.api import create_app
from metalyard.auth import service as auth_service
from metalyard.auth.schemas import TokenCreate, UserCreate
from metalyard.auth.scopes import Scope
from metalyard.config import Settings
from metalyard.db import Base, Database, upgrade
from metalyard.db import models as _all_models  # noqa: F401  (registers every table)
from tests.peers.bmcs import IpmiSimulators, RedfishEmulator
from tests.peers.postgres import PostgresCluster, find_bindir, free_port

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if url := os.environ.get("METALYARD_TEST_POSTGRES_URL"):
        yield url
        return
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; .ci/run must install it")
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    cluster = PostgresCluster(bindir)
    cluster.start()
    yield cluster.url
    cluster.stop()


@pytest.fixture(scope="session")
def _databases(tmp_path_factory, request) -> dict[str, Database]:
    return {}


@pytest.fixture(params=BACKENDS)
def database(request, tmp_path_factory, _databases) -> Iterator[Database]:
    """A migrated, empty database; the schema is built once per backend, then emptied."""
    backend = request.param
    if backend not in _databases:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'metalyard.db'}"
        else:
            url = request.getfixturevalue("postgres_url")
        upgrade(url)
        _databases[backend] = Database(url)
    database = _databases[backend]
    yield database
    _empty(database)


def _empty(database: Database) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    # DELETE beats TRUNCATE on tables this small, on PostgreSQL too.
    with database.engine.begin() as connection:
        for table in tables:
            connection.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(region="test-1", data_dir=tmp_path, database_url="unused")


@pytest.fixture
def app(settings, database):
    return create_app(settings, database)


@dataclass
class Tokens:
    admin: str
    write: str
    read: str
    other_write: str
    """A second writer, for maker-checker."""


@pytest.fixture
def tokens(database) -> Tokens:
    with database.transaction() as session:
        admin = auth_service.bootstrap(session)
        secrets = {}
        for name, role in (("wanda", Scope.WRITE), ("rita", Scope.READ), ("otto", Scope.WRITE)):
            user = auth_service.create_user(session, data=UserCreate(name=name, role=role))
            _, secrets[name] = auth_service.create_token(
                session, data=TokenCreate(scope=role), user_id=user.id, ceiling=role
            )
    return Tokens(
        admin=admin, write=secrets["wanda"], read=secrets["rita"], other_write=secrets["otto"]
    )


@pytest.fixture
def client(app, tokens) -> Iterator[TestClient]:
    """An HTTP client with the write token."""
    with TestClient(app, headers={"Authorization": f"Bearer {tokens.write}"}) as test_client:
        yield test_client


@pytest.fixture
def admin(app, tokens) -> Iterator[TestClient]:
    with TestClient(app, headers={"Authorization": f"Bearer {tokens.admin}"}) as test_client:
        yield test_client


@pytest.fixture
def live_server(app) -> Iterator[str]:
    """The app served over real HTTP on 127.0.0.1, for the SDK and the CLI."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    httpx.get(f"{url}/v1/region").raise_for_status()
    yield url
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def redfish() -> Iterator[RedfishEmulator]:
    """sushy-tools' Redfish emulator with 8 systems, one per test process."""
    emulator = RedfishEmulator(count=8).start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def ipmi() -> Iterator[IpmiSimulators]:
    """Four IPMI BMCs simulated by pyghmi, one process per test process."""
    simulators = IpmiSimulators(count=4).start()
    yield simulators
    simulators.stop()


@pytest.fixture(scope="session")
def ipmitool() -> None:
    if shutil.which("ipmitool") is None:
        if os.environ.get("CI"):
            pytest.fail("ipmitool is not installed; .ci/run must install it")
        pytest.skip("ipmitool is not installed (apt-get install ipmitool)")
