"""The agent's loop against a real HTTP peer speaking the discovery protocol."""

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from metalyard.agent.facts import DictSource, collect
from metalyard.agent.runtime import Agent, Status

MEMINFO = "MemTotal:       1048576 kB\n"


class FakeMetalyard:
    """Stands in for metalyard's /v1/discovery endpoints until they land: the documented JSON,
    nothing more. ``whoami`` answers ``instructions`` in order, then ``idle``."""

    def __init__(self, port: int = 0) -> None:
        self.calls: list[tuple[str, str, str | None, object]] = []
        self.instructions: list[dict] = []
        self.failures: list[int] = []  # statuses to answer first, whatever is asked
        self.tokens: set[str] = set()
        self.boots = 0
        self.problems = [
            {
                "check": "memory",
                "message": "256 GiB found, 512 GiB expected",
                "fix": "check DIMM seating in slots A1–A8",
            }
        ]
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.answer()

            def do_POST(self):
                self.answer()

            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                token = self.headers.get("X-Agent-Token")
                fake.calls.append((self.command, self.path, token, body))
                status, payload = fake.answer(self.command, self.path, token)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def answer(self, method, path, token):
        if self.failures:
            return self.failures.pop(0), {"code": "unavailable", "message": "starting up"}
        asset = {"serial": "SRV-1", "state": "EVALUATING", "problems": self.problems}
        if (method, path) == ("POST", "/v1/discovery/boot"):
            self.boots += 1
            token = f"token-{self.boots}"
            self.tokens.add(token)
            instruction = {"action": "report", "seconds": 0}
            return 200, {**asset, "state": "DISCOVERED", "token": token, "instruction": instruction}
        if token not in self.tokens:
            return 401, {
                "code": "unauthenticated",
                "message": "unknown agent token",
                "details": None,
            }
        if (method, path) == ("GET", "/v1/discovery/whoami"):
            instruction = self.instructions.pop(0) if self.instructions else {"action": "idle"}
            return 200, {**asset, "instruction": {"seconds": 0, **instruction}}
        if (method, path) == ("POST", "/v1/discovery/report"):
            return 200, {**asset, "instruction": {"action": "wait", "seconds": 30}}
        return 404, {"code": "not_found", "message": path, "details": None}

    def paths(self):
        return [f"{method} {path}" for method, path, _, _ in self.calls]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def metalyard():
    fake = FakeMetalyard()
    yield fake
    fake.stop()


@pytest.fixture
def source():
    return DictSource(
        files={"/sys/class/dmi/id/product_serial": "SRV-1\n", "/proc/meminfo": MEMINFO}
    )


class Recorder:
    def __init__(self):
        self.sleeps: list[float] = []
        self.power_offs = 0
        self.now = 0.0

    def sleep(self, seconds):
        self.sleeps.append(seconds)

    def power_off(self):
        self.power_offs += 1


@pytest.fixture
def rec():
    return Recorder()


def make_agent(url, source, rec, **kwargs):
    options = dict(
        port=9100,
        allowed_networks=["10.0.0.0/8"],
        poll_seconds=10,
        recollect_seconds=600,
        power_off=rec.power_off,
        sleep=rec.sleep,
        clock=lambda: rec.now,
        jitter=lambda: 0.5,
        timeout=5,
    )
    return Agent(url, source, **{**options, **kwargs})


def test_boot_keeps_the_token_then_reports_when_told(metalyard, source, rec):
    agent = make_agent(metalyard.url, source, rec)
    step = agent.run_once()
    assert step.action == "boot" and agent.token == "token-1"
    _, _, token, body = metalyard.calls[0]
    assert token is None
    assert body == {"facts": collect(source).to_dict(), "agent_port": 9100}
    assert (agent.status.serial, agent.status.state) == ("SRV-1", "DISCOVERED")

    metalyard.instructions = [{"action": "report"}]
    step = agent.run_once()
    assert step.action == "report"
    assert metalyard.paths()[1:] == ["GET /v1/discovery/whoami", "POST /v1/discovery/report"]
    assert [token for _, _, token, _ in metalyard.calls[1:]] == ["token-1", "token-1"]
    assert metalyard.calls[2][3] == {"facts": collect(source).to_dict()}
    assert rec.sleeps == [10]
    assert agent.status.state == "EVALUATING"
    assert agent.status.problems[0].fix == "check DIMM seating in slots A1–A8"


def test_wait_sleeps_the_seconds_metalyard_gives(metalyard, source, rec):
    agent = make_agent(metalyard.url, source, rec)
    agent.run_once()
    metalyard.instructions = [{"action": "wait", "seconds": 45}, {"action": "idle"}]
    assert agent.run_once().action == "wait"
    assert agent.run_once().action == "idle"
    assert rec.sleeps == [45, 10]
    assert rec.power_offs == 0


def test_poweroff_calls_power_off(metalyard, source, rec):
    agent = make_agent(metalyard.url, source, rec)
    agent.run_once()
    metalyard.instructions = [{"action": "poweroff"}]
    step = agent.run_once()
    assert (step.action, rec.power_offs) == ("poweroff", 1)


def test_failing_power_off_is_shown_not_raised(metalyard, source, rec):
    def broken():
        raise OSError("poweroff: not found")

    agent = make_agent(metalyard.url, source, rec, power_off=broken)
    agent.run_once()
    metalyard.instructions = [{"action": "poweroff"}]
    step = agent.run_once()
    assert step.action == "poweroff" and "not found" in step.detail
    assert "not found" in agent.status.error


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_metalyard_down_at_first_is_retried_with_backoff_until_it_comes_up(source, rec):
    port = free_port()
    shown: list[Status] = []
    started: list[FakeMetalyard] = []

    def sleep(seconds):
        rec.sleeps.append(seconds)
        if len(rec.sleeps) == 4:
            started.append(FakeMetalyard(port))

    agent = make_agent(
        f"http://127.0.0.1:{port}", source, rec, sleep=sleep, backoff_max=4, display=shown.append
    )
    try:
        steps = [agent.run_once() for _ in range(5)]
    finally:
        for fake in started:
            fake.stop()
    assert [s.action for s in steps] == ["retry"] * 4 + ["boot"]
    # 1, 2, 4, 4 (capped) seconds, with the injected jitter taking 3/4 of each.
    assert rec.sleeps == [0.75, 1.5, 3.0, 3.0]
    assert "connection refused" in steps[0].detail
    retrying = shown[-2]
    assert "retrying" in retrying.doing and "cannot reach" in retrying.error
    assert agent.token == "token-1" and agent.status.error is None


def test_5xx_is_retried_like_an_outage(metalyard, source, rec):
    metalyard.failures = [503, 502]
    agent = make_agent(metalyard.url, source, rec)
    steps = [agent.run_once() for _ in range(3)]
    assert [s.action for s in steps] == ["retry", "retry", "boot"]
    assert "503 unavailable: starting up" in steps[0].detail
    assert rec.sleeps == [0.75, 1.5]


def test_refused_boot_is_retried_and_shown(metalyard, source, rec):
    metalyard.failures = [403]
    shown: list[Status] = []
    agent = make_agent(metalyard.url, source, rec, display=shown.append)
    assert agent.run_once().action == "retry"
    assert "403" in shown[-1].error
    assert agent.run_once().action == "boot"


def test_401_on_whoami_boots_again(metalyard, source, rec):
    agent = make_agent(metalyard.url, source, rec)
    agent.run_once()
    metalyard.tokens.clear()  # metalyard forgot this agent
    assert agent.run_once().action == "token-refused"
    assert agent.token is None
    assert agent.run_once().action == "boot"
    assert agent.token == "token-2"
    assert metalyard.paths() == [
        "POST /v1/discovery/boot",
        "GET /v1/discovery/whoami",
        "POST /v1/discovery/boot",
    ]


def test_changed_facts_are_reported_unchanged_ones_are_not(metalyard, source, rec):
    agent = make_agent(metalyard.url, source, rec)
    agent.run_once()
    rec.now = 700  # past recollect_seconds, nothing changed
    assert agent.run_once().action == "idle"
    assert "POST /v1/discovery/report" not in metalyard.paths()

    source.files["/proc/meminfo"] = "MemTotal:       2097152 kB\n"  # a DIMM came back
    rec.now = 900  # changed, but not due yet
    assert agent.run_once().action == "idle"
    assert "POST /v1/discovery/report" not in metalyard.paths()

    rec.now = 1400
    step = agent.run_once()
    assert (step.action, step.detail) == ("report", "facts changed")
    assert metalyard.calls[-1][3]["facts"]["memory"]["total_bytes"] == 2097152 * 1024
    rec.now = 2100
    assert agent.run_once().action == "idle"  # reported already
    assert metalyard.paths().count("POST /v1/discovery/report") == 1


def test_report_command_reports_at_the_next_step(metalyard, source, rec):
    agent = make_agent(metalyard.url, source, rec)
    agent.run_once()
    agent.request_report()
    step = agent.run_once()
    assert (step.action, step.detail) == ("report", "metalyard asked for a report")
    assert metalyard.paths()[-1] == "POST /v1/discovery/report"


def test_run_forever_takes_commands_and_stops(metalyard, source):
    agent = Agent(
        metalyard.url,
        source,
        port=0,
        bind="127.0.0.1",
        allowed_networks=["127.0.0.0/8"],
        poll_seconds=60,  # so only the command can cause the report
        power_off=lambda: None,
    )
    stop = threading.Event()
    thread = threading.Thread(target=agent.run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while "GET /v1/discovery/whoami" not in metalyard.paths():
            assert time.monotonic() < deadline, metalyard.paths()
            time.sleep(0.01)
        assert metalyard.calls[0][3]["agent_port"] == agent.port != 0
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(
            f"http://127.0.0.1:{agent.port}/command",
            data=json.dumps({"action": "report"}).encode(),
            headers={"X-Agent-Token": agent.token},
            method="POST",
        )
        with opener.open(request, timeout=5) as response:
            assert response.status == 202
        while "POST /v1/discovery/report" not in metalyard.paths():
            assert time.monotonic() < deadline, metalyard.paths()
            time.sleep(0.01)
        status = urllib.request.Request(
            f"http://127.0.0.1:{agent.port}/status", headers={"X-Agent-Token": agent.token}
        )
        with opener.open(status, timeout=5) as response:
            body = json.loads(response.read())
        assert (body["serial"], body["state"]) == ("SRV-1", "EVALUATING")
        assert body["problems"][0]["check"] == "memory"
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_run_help():
    proc = subprocess.run(
        [sys.executable, "-m", "metalyard.agent", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--url" in proc.stdout and "--dry-run" in proc.stdout


def test_url_comes_from_the_kernel_command_line():
    from metalyard.agent.__main__ import kernel_arguments

    line = "BOOT_IMAGE=vmlinuz initrd=initrd.img metalyard.url=http://10.0.0.1:8000 "
    line += "metalyard.mac=52:54:00:12:34:56 ip=dhcp console=tty0 quiet\n"
    args = kernel_arguments(line)
    assert args["metalyard.url"] == "http://10.0.0.1:8000"
    assert args["metalyard.mac"] == "52:54:00:12:34:56"
