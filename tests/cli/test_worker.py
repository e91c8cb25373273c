"""`metalyard worker` as a real process: it runs the beans of runs started over the API."""

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from metalyard.sdk import Client
from metalyard.startup import redacted
from tests.cli.conftest import report_waiting, run_over, wait_for_run

REPO = Path(__file__).resolve().parents[2]


class Process:
    """A child process whose output is read as it comes (so a full pipe never blocks it)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            args,
            cwd=REPO,  # so that `tests.orchestrator.flows` can be imported
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [
            threading.Thread(target=self._read, args=(self.popen.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.popen.stderr, self.err), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def wait_for_output(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stdout:
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r}:\n{self.stdout}\n{self.stderr}")
            time.sleep(0.05)

    def finish(self, timeout: float) -> int:
        code = self.popen.wait(timeout=timeout)
        for reader in self.readers:
            reader.join(timeout=5)
        return code


def worker_process(database_url: str, data_dir: Path, *args: str) -> Process:
    """A worker with the API's data dir, so both sign the audit log with its key file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("METALYARD_")}
    env.update(
        {
            "METALYARD_DATABASE_URL": database_url,
            "METALYARD_DATA_DIR": str(data_dir),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return Process([sys.executable, "-m", "metalyard.cli", "worker", *args], env)


def test_a_worker_process_runs_flows_and_stops_cleanly_on_sigterm(
    database, live_server, tokens, settings
):
    name = f"worker-{uuid.uuid4().hex[:6]}"
    process = worker_process(
        database.url,
        settings.data_dir,
        "--flows",
        "tests.orchestrator.flows",
        "--name",
        name,
        "--concurrency",
        "4",
    )
    try:
        process.wait_for_output(f"worker {name} on database")
        started = process.stdout.splitlines()[0]
        assert f"on database {redacted(database.url)} (4 beans at once)" in started
        assert "running flows: discovery.evaluate, procurement.notify, test.branch, " in started
        with Client(live_server, tokens.write) as client:
            run = client.runs.start("test.crash", "asset:SN1", {"rack": "r1", "sleep": 0})
            wait_for_run(client, run.id, report_waiting, "waited for its report")
            assert client.signals.send("report:SN1", {"ok": True}) == 1
            done = wait_for_run(client, run.id, run_over, "finished")
            assert done.state == "SUCCEEDED"
            workers = {attempt.worker for bean in done.beans for attempt in bean.history}
            assert workers == {name}

            # Stopped while a bean runs, the worker records how it ended before it exits.
            slow = client.runs.start("test.crash", "asset:SN2", {"rack": "r1", "sleep": 1.5})
            wait_for_run(client, slow.id, flash_running, "flashed")
            asked = time.monotonic()
            process.popen.send_signal(signal.SIGTERM)
            assert process.finish(timeout=15) == 0, process.stderr
            assert time.monotonic() - asked < 5
            flash = next(b for b in client.runs.get(slow.id).beans if b.name == "flash")
        assert flash.state == "DONE" and [a.worker for a in flash.history] == [name]
    finally:
        if process.popen.poll() is None:
            process.popen.kill()
            process.popen.wait()
    assert f"worker {name}: SIGTERM; finishing the beans it runs" in process.stderr
    assert process.stdout.splitlines()[-1].startswith(f"worker {name} stopped after ")


def flash_running(run) -> bool:
    return any(b.name == "flash" and b.state == "RUNNING" for b in run.beans)
