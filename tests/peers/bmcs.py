"""Real BMC peers for tests and benchmarks: sushy-tools' Redfish emulator and pyghmi's IPMI
simulator, each in a process of its own on 127.0.0.1."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import httpx

from metalyard.drivers import BmcTarget
from metalyard.lab import bmcs as lab
from metalyard.lab.processes import wait_until_started
from tests.peers.tls import self_signed

HERE = Path(__file__).parent
BMC_USER = "admin"
BMC_USERS = (BMC_USER, "operator", "viewer")
"""Accounts of every emulated Redfish BMC, all with BMC_PASSWORD."""
BMC_PASSWORD = "Sup3r-S3cret-BMC-pw"
"""Known to the tests, so a test can prove it never reaches a log."""
LOOPBACK = "127.0.0.0/8"
"""Where every emulated BMC answers: the networks the tests' credentials may be sent into."""


class RedfishEmulator(lab.RedfishEmulator):
    """One sushy-tools emulator serving `count` fake systems, addressed by UUID."""

    def __init__(
        self,
        count: int = 4,
        *,
        max_sessions: int = 16,
        instant_power: bool = True,
        tls: bool = False,
    ) -> None:
        self.uuids = [str(uuid.UUID(int=n + 1)) for n in range(count)]
        systems = [
            {
                "uuid": ident,
                "name": f"node{n:04d}",
                "power_state": "Off",
                "external_notifier": False,
                "nics": [{"mac": f"52:54:00:00:{n // 256:02x}:{n % 256:02x}", "ip": "127.0.0.1"}],
            }
            for n, ident in enumerate(self.uuids)
        ]
        certificate = self_signed(Path(tempfile.mkdtemp(prefix="metalyard-tls-"))) if tls else None
        self.ca_bundle = certificate[0] if certificate else None
        super().__init__(
            systems,
            users={user: BMC_PASSWORD for user in BMC_USERS},
            max_sessions=max_sessions,
            instant_power=instant_power,
            tls=certificate,
        )

    def system_url(self, index: int = 0) -> str:
        return f"{self.base_url}/redfish/v1/Systems/{self.uuids[index]}"

    def target(self, index: int = 0, **changes) -> BmcTarget:
        """How our driver reaches system `index` (with `changes`, e.g. a wrong password)."""
        fields = {"address": self.system_url(index), "username": BMC_USER, **changes}
        return BmcTarget(**{"driver": "redfish", "password": BMC_PASSWORD, **fields})

    def inject_failures(self, status: int, count: int) -> None:
        self._control("post", "faults", json={"status": status, "count": count})

    def add_event(self, index: int, message: str, severity: str = "Warning") -> None:
        self._control(
            "post", f"events/{self.uuids[index]}", json={"message": message, "severity": severity}
        )

    def open_sessions(self) -> list[str]:
        return self._control("get", "sessions").json()

    def _control(self, method: str, path: str, **kwargs) -> httpx.Response:
        answer = httpx.request(method, f"{self.base_url}/_control/{path}", verify=False, **kwargs)
        answer.raise_for_status()
        return answer

    def get(self, path: str) -> dict:
        """A resource as the emulator holds it, read by an independent client."""
        answer = httpx.get(f"{self.base_url}{path}", auth=(BMC_USER, BMC_PASSWORD), verify=False)
        answer.raise_for_status()
        return answer.json()


class IpmiSimulators:
    """`count` IPMI BMCs in one process, each on its own UDP port."""

    def __init__(self, count: int = 2) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="metalyard-ipmi-"))
        self.ports = [_free_udp_port() for _ in range(count)]
        self.process: subprocess.Popen | None = None

    def start(self) -> "IpmiSimulators":
        log = self.root / "simulator.log"
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "ipmi_bmc.py"), str(self.root), *map(str, self.ports)],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "BMC_PASSWORD": BMC_PASSWORD},
        )
        wait_until_started(
            self.process, lambda: "ready" in log.read_text(), log, "the IPMI simulator", 30
        )
        return self

    def address(self, index: int = 0) -> str:
        return f"127.0.0.1:{self.ports[index]}"

    def target(self, index: int = 0, **changes) -> BmcTarget:
        fields = {"address": self.address(index), "username": BMC_USER, **changes}
        return BmcTarget(**{"driver": "ipmi", "password": BMC_PASSWORD, **fields})

    def state(self, index: int = 0) -> dict:
        """What the BMC was told, as the simulator recorded it."""
        return json.loads((self.root / f"{self.ports[index]}.json").read_text())

    def ipmitool(self, index: int, *args: str) -> str:
        """Run Debian's ipmitool against a BMC: a second client, independent of pyghmi."""
        command = [
            "ipmitool", "-I", "lanplus", "-C", "3", "-H", "127.0.0.1",
            "-p", str(self.ports[index]), "-U", BMC_USER, "-E", *args,
        ]  # fmt: skip
        env = {**os.environ, "IPMI_PASSWORD": BMC_PASSWORD}
        return subprocess.run(
            command, capture_output=True, text=True, check=True, timeout=30, env=env
        ).stdout

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
