"""Peer processes the lab starts (metalyard itself, the Redfish emulator): a port for each,
and a wait until each answers."""

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_started(
    process: subprocess.Popen, ready: Callable[[], bool], log: Path, what: str, timeout: float
) -> None:
    """Return once `ready()`; if the process exits or the time runs out, stop it and raise
    with the end of its log."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
                process.wait()
            raise RuntimeError(f"{what} did not start: {log.read_text()[-3000:]}")
        time.sleep(0.05)
