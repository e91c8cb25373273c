"""`metalyard serve` and `metalyard db upgrade`, run as a real process."""

import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from metalyard.errors import Unreachable
from metalyard.sdk import Client
from tests.cli.conftest import report_waiting, run_over, wait_for_run
from tests.peers.postgres import free_port
from tests.peers.tls import self_signed

TOKEN_LINE = re.compile(r"^admin token: (my_\S+)$", re.MULTILINE)
REPO = Path(__file__).resolve().parents[2]
TEST_FLOWS = '["tests.orchestrator.flows"]'


class Server:
    def __init__(self, process: subprocess.Popen, url: str) -> None:
        self.process = process
        self.url = url
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:  # type: ignore[union-attr]
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)


def server_env(tmp_path: Path, *, importable: bool = False, **settings: str) -> dict[str, str]:
    """The process's environment; `importable` lets it import the `tests` package."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("METALYARD_")}
    if importable:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    settings = {"data_dir": str(tmp_path / "data"), "region": "lab-1", **settings}
    env.update({f"METALYARD_{k.upper()}": v for k, v in settings.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def metalyard(tmp_path: Path, *args: str, **settings: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "metalyard.cli", *args],
        env=server_env(tmp_path, **settings),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


@contextmanager
def serve(
    tmp_path: Path, scheme: str = "http", *, importable: bool = False, **settings: str
) -> Iterator[Server]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "metalyard.cli", "serve", "--port", str(port)],
        env=server_env(tmp_path, importable=importable, **settings),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = Server(process, f"{scheme}://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                httpx.get(f"{server.url}/v1/region", verify=False, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError(f"serve did not start: {process.stderr.read()}")  # type: ignore[union-attr]
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_first_start_prints_a_working_token_once(tmp_path):
    with serve(tmp_path) as first:
        token = TOKEN_LINE.search(first.output).group(1)
        assert f"metalyard region add lab-1 --url {first.url} --token {token}" in first.output
        assert f"serving region lab-1 at {first.url}" in first.output
        with Client(first.url, token) as client:
            assert client.region().name == "lab-1"
            assert (client.whoami().user, client.whoami().scope) == ("admin", "admin")
    assert (tmp_path / "data" / "metalyard.db").exists()
    with serve(tmp_path) as second:
        assert "serving region lab-1" in second.output
        assert "token" not in second.output
        with Client(second.url, token) as client:
            assert client.whoami().user == "admin"


def test_a_first_start_on_a_taken_port_keeps_the_token_for_the_next_start(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        refused = metalyard(
            tmp_path, "serve", "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(tmp_path / "elsewhere"),
        )  # fmt: skip
    assert refused.returncode == 3
    assert f"cannot listen on 127.0.0.1:{port}" in refused.stderr
    assert "token" not in refused.stdout + refused.stderr
    assert (tmp_path / "elsewhere" / "metalyard.db").exists()  # the --data-dir it was given
    with serve(tmp_path, data_dir=str(tmp_path / "elsewhere")) as first:
        token = TOKEN_LINE.search(first.output).group(1)
        assert f"--url {first.url} --token {token}" in first.output


def test_serve_over_tls_prints_https_and_needs_the_ca(tmp_path):
    cert, key = self_signed(tmp_path)
    with serve(tmp_path, "https", tls_cert=str(cert), tls_key=str(key)) as server:
        assert f"at {server.url}" in server.output and server.url.startswith("https://")
        token = TOKEN_LINE.search(server.output).group(1)
        with Client(server.url, token, verify=cert) as client:
            assert client.whoami().user == "admin"
        with Client(server.url, token, retries=0) as client, pytest.raises(Unreachable) as err:
            client.whoami()
        assert "CERTIFICATE_VERIFY_FAILED" in err.value.message
        plain = server.url.replace("https://", "http://")
        with pytest.raises(httpx.TransportError):  # HTTPS only: plain HTTP gets no answer
            httpx.get(f"{plain}/v1/region", timeout=5).raise_for_status()

        config = {"METALYARD_CONFIG": str(tmp_path / "cli.yaml")}
        cli = [sys.executable, "-m", "metalyard"]
        run = lambda *args: subprocess.run(  # noqa: E731
            [*cli, *args],
            env={**os.environ, **config},
            capture_output=True,
            text=True,
            timeout=60,
        )
        refused = run("region", "add", "lab-1", "--url", server.url, "--token", token)
        assert refused.returncode == 3 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr
        added = run(
            "region",
            "add",
            "lab-1",
            "--url",
            server.url,
            "--token",
            token,
            "--ca-bundle",
            str(cert),
        )
        assert added.returncode == 0, added.stderr
        trusted = run("--region", "lab-1", "whoami")
        assert trusted.returncode == 0 and "admin" in trusted.stdout


def test_serve_refuses_an_unreachable_database_with_exit_3(tmp_path):
    url = f"postgresql+psycopg://postgres:hunter2@127.0.0.1:{free_port()}/metalyard"
    result = metalyard(tmp_path, "serve", "--port", str(free_port()), database_url=url)
    assert result.returncode == 3
    assert "error: cannot use the database postgresql+psycopg://postgres:***@" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_bad_setting_is_invalid_input(tmp_path):
    result = metalyard(tmp_path, "serve", region="Not A Region")
    assert result.returncode == 7
    assert result.stderr.startswith("error: METALYARD_REGION: String should match pattern")


@pytest.fixture
def empty_postgres(postgres_url) -> Iterator[str]:
    """A new, empty PostgreSQL database on the test cluster."""
    name = f"serve_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def test_serve_on_postgresql_waits_for_db_upgrade(tmp_path, empty_postgres):
    refused = metalyard(tmp_path, "serve", "--port", str(free_port()), database_url=empty_postgres)
    assert refused.returncode == 10
    assert "run `metalyard db upgrade` first" in refused.stderr
    upgraded = metalyard(tmp_path, "db", "upgrade", database_url=empty_postgres)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "is at the latest schema revision" in upgraded.stdout
    with serve(tmp_path, database_url=empty_postgres) as server:
        token = TOKEN_LINE.search(server.output).group(1)
        with Client(server.url, token) as client:
            assert client.whoami().user == "admin"


def test_serve_runs_flows_with_its_embedded_worker(tmp_path):
    settings = {"flow_modules": TEST_FLOWS, "worker_concurrency": "8"}
    with serve(tmp_path, importable=True, **settings) as server:
        assert "with an embedded worker " in server.output
        assert (
            "(8 beans at once) running flows: discovery.evaluate, procurement.notify, "
            "test.branch, test.crash" in server.output
        )
        token = TOKEN_LINE.search(server.output).group(1)
        with Client(server.url, token) as client:
            run = client.runs.start("test.crash", "asset:SN1", {"rack": "r1", "sleep": 0})
            wait_for_run(client, run.id, report_waiting, "waited for its report")
            assert client.signals.send("report:SN1") == 1
            done = wait_for_run(client, run.id, run_over, "finished")
    assert done.state == "SUCCEEDED"
    assert server.process.returncode == 0  # SIGTERM stops the server and its worker cleanly
    server.reader.join(timeout=5)
    assert "embedded worker stopped after 5 bean execution(s)" in server.output


def test_serve_without_its_worker_leaves_the_beans_to_worker_processes(tmp_path):
    settings = {"flow_modules": TEST_FLOWS, "embedded_worker": "false"}
    with serve(tmp_path, importable=True, **settings) as server:
        assert "embedded worker" not in server.output
        token = TOKEN_LINE.search(server.output).group(1)
        with Client(server.url, token) as client:
            run = client.runs.start("test.crash", "asset:SN1", {"rack": "r1"})
            time.sleep(1.5)  # an embedded worker would have run `prepare` within this
            assert client.runs.get(run.id).beans[0].state == "READY"
