"""metalyard itself, as a newcomer would start it: `metalyard serve` on its embedded default
(SQLite in a data directory, a worker in the same process), in a process of its own.

Its own process, so that the control plane and the simulated datacenter each have a core
(and a GIL) to themselves, as they would on real hardware.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from metalyard.lab.processes import free_port, wait_until_started

LOOPBACK = ["127.0.0.0/8", "::1/128"]
"""The lab's agents call from this host: its discovery network."""
TOKEN_LINE = re.compile(r"^admin token: (\S+)$", re.MULTILINE)


class ControlPlane:
    def __init__(self, data_dir: Path, *, port: int = 0) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / "metalyard.log"
        self.token = ""
        self._process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "ControlPlane":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        settings = {
            "METALYARD_REGION": "lab",
            "METALYARD_DATA_DIR": str(self.data_dir),
            "METALYARD_DATABASE_URL": "",
            "METALYARD_HOST": "127.0.0.1",
            "METALYARD_PORT": str(self.port),
            "METALYARD_PUBLIC_URL": self.url,
            "METALYARD_DISCOVERY_NETWORKS": json.dumps(LOOPBACK),
            "METALYARD_EMBEDDED_WORKER": "true",
        }
        with self.log.open("w") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "metalyard", "serve"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **settings},
                cwd=self.data_dir,  # away from any metalyard.env of the caller's directory
            )
        wait_until_started(self._process, self._ready, self.log, "metalyard", timeout)
        return self

    def _ready(self) -> bool:
        """The first start's admin token is printed, and the API answers."""
        if not self.token and (found := TOKEN_LINE.search(self.log.read_text())):
            self.token = found.group(1)
        return bool(self.token) and self._answers()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/v1/region", timeout=1).is_success
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()  # serve stops its worker and closes the database
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
