"""CLI fixtures: the command run in-process against live servers, with its own config file."""

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from metalyard.cli.main import app
from tests.orchestrator.conftest import worker  # noqa: F401  (also registers test flows)
from tests.peers.postgres import free_port


@pytest.fixture
def config_file(tmp_path) -> Path:
    return tmp_path / "home" / ".config" / "metalyard" / "config.yaml"


@pytest.fixture
def cli(config_file):
    """Run `metalyard ARGS…` with a fresh config file and no METALYARD_URL/TOKEN around."""
    runner = CliRunner()

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None):
        environment = {
            "METALYARD_CONFIG": str(config_file),
            "METALYARD_URL": None,
            "METALYARD_TOKEN": None,
            "METALYARD_DEBUG": None,
            "COLUMNS": "200",
            **(env or {}),
        }
        return runner.invoke(app, list(args), input=input, env=environment)

    return run


@pytest.fixture
def writer_cli(cli, live_server, tokens):
    """The CLI with region `test-1` in use, holding the write token."""
    result = cli("region", "add", "test-1", "--url", live_server, "--token", tokens.write)
    assert result.exit_code == 0, result.output
    return cli


@contextmanager
def serving(app) -> Iterator[str]:
    """Serve an app over HTTP on a free port in a thread, like the `live_server` fixture."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    httpx.get(f"{url}/v1/region").raise_for_status()
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def items(result) -> list:
    """The items of the page a list command printed with `-o json`, once it succeeded."""
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["items"]


def wait_for_run(client, run_id: int, ready, what: str, timeout: float = 30.0):
    """Poll a run over the SDK until `ready(run)` holds; the run as it was then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.runs.get(run_id)
        if ready(run):
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never {what}: {run.model_dump(mode='json')}")


def report_waiting(run) -> bool:
    """test.crash has parked its `report` bean until `report:<subject id>` is signalled."""
    return any(b.name == "report" and b.state == "WAITING" for b in run.beans)


def run_over(run) -> bool:
    return run.state != "RUNNING"
