"""Every process of a region needs the same secret key: one without it refuses to start."""

import subprocess
import sys
import time

import pytest

from metalyard.sdk import Client
from tests.cli.test_serve import (  # noqa: F401
    TOKEN_LINE,
    empty_postgres,
    metalyard,
    serve,
    server_env,
)
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


@pytest.fixture
def upgraded_postgres(tmp_path, empty_postgres):  # noqa: F811
    upgraded = metalyard(tmp_path, "db", "upgrade", database_url=empty_postgres)
    assert upgraded.returncode == 0, upgraded.stderr
    return empty_postgres


def test_a_new_database_takes_the_key_of_the_first_process_started_on_it(
    tmp_path, upgraded_postgres
):
    """Nothing written yet, not even by a user: the first process's start claims the
    database for its key, so a second one with another key cannot sign the same log."""
    url = {"database_url": upgraded_postgres, "embedded_worker": "false"}
    with serve(tmp_path, data_dir=str(tmp_path / "a"), **url):
        pass
    refused = metalyard(tmp_path, "worker", data_dir=str(tmp_path / "b"), **url)
    assert refused.returncode == 7, refused.stderr
    assert REFUSED in refused.stderr
    assert not (tmp_path / "b" / "secret.key").exists()


def test_of_two_processes_started_at_once_on_a_new_database_one_keeps_it(
    tmp_path, upgraded_postgres
):
    def start(data_dir: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "metalyard.cli", "serve", "--port", str(free_port())],
            env=server_env(tmp_path, data_dir=data_dir, database_url=upgraded_postgres),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    processes = [start(str(tmp_path / name)) for name in ("a", "b")]
    try:
        deadline = time.monotonic() + 60
        while all(process.poll() is None for process in processes):
            assert time.monotonic() < deadline, "neither process was refused"
            time.sleep(0.1)
        time.sleep(2)  # the other one, had it been refused too
        (refused,) = [process for process in processes if process.poll() is not None]
        assert refused.returncode == 7
        stderr = refused.stderr.read()  # type: ignore[union-attr]
        assert REFUSED in stderr and "its audit log is signed" in stderr
    finally:
        for process in processes:
            process.terminate()
            process.communicate(timeout=30)


def test_the_uvicorn_factory_checks_the_key_and_settings_as_serve_does(tmp_path, written_postgres):
    def factory(**settings: str) -> subprocess.CompletedProcess:
        command = ["-m", "uvicorn", "--factory", "metalyard.api.app:app_from_environment"]
        return subprocess.run(
            [sys.executable, *command, "--port", str(free_port())],
            env=server_env(tmp_path, data_dir=str(tmp_path / "b"), **settings),
            capture_output=True,
            text=True,
            timeout=60,
        )

    refused = factory(database_url=written_postgres[0])
    assert refused.returncode != 0
    assert REFUSED in refused.stderr and "Traceback" not in refused.stderr
    wrong = factory(database_url="mysql://db/metalyard")
    assert wrong.returncode != 0 and "METALYARD_DATABASE_URL" in wrong.stderr
    assert "Traceback" not in wrong.stderr


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
