"""The lab's BMCs: metalyard's fake driver, or sushy-tools' Redfish emulator. Either way
metalyard drives them through its real drivers, and each BMC tells the simulated datacenter
(over HTTP, as they live in other processes) when it boots a server or powers it off."""

import json
import secrets
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import httpx

from metalyard.drivers import BmcTarget
from metalyard.errors import InvalidInput
from metalyard.lab.machines import SimulatedMachine
from metalyard.lab.processes import free_port, wait_until_started

BMC_USER = "admin"
PowerChanged = Callable[[str, bool], None]
"""(serial, booted): the BMC booted the server (on, cycle, reset), or powered it off."""


class Bmcs:
    """Where each server's BMC answers, and the hook through which BMCs tell the datacenter
    of boots and power-offs."""

    driver = ""
    networks = ("127.0.0.0/8",)
    """Where the lab's BMCs answer: the lab's credential is sent nowhere else."""

    def __init__(self) -> None:
        self.password = secrets.token_urlsafe(16)
        self._hook: ThreadingHTTPServer | None = None

    def start(self, machines: list[SimulatedMachine], power_changed: PowerChanged) -> None:
        serials = {self._hook_key(machine): machine.serial for machine in machines}
        self._hook = _power_hook(lambda key, booted: power_changed(serials[key], booted))

    @property
    def hook_url(self) -> str:
        assert self._hook is not None, "start the BMCs first"
        host, port = self._hook.server_address[:2]
        return f"http://{host}:{port}/power"

    def target(self, machine: SimulatedMachine) -> BmcTarget:
        raise NotImplementedError

    @staticmethod
    def _hook_key(machine: SimulatedMachine) -> str:
        return machine.serial

    def stop(self) -> None:
        if self._hook is not None:
            self._hook.shutdown()
            self._hook.server_close()


class FakeBmcs(Bmcs):
    """metalyard's fake driver: each BMC is made, in metalyard's process, from its address."""

    driver = "fake"

    def target(self, machine: SimulatedMachine) -> BmcTarget:
        query = urlencode({"serial": machine.serial, "notify": self.hook_url})
        return BmcTarget(self.driver, f"lab/{machine.serial}?{query}", BMC_USER, self.password)


class RedfishBmcs(Bmcs):
    """Every server's BMC in one sushy-tools emulator, addressed by the system's UUID."""

    driver = "redfish"

    def __init__(self) -> None:
        super().__init__()
        self.emulator: RedfishEmulator | None = None

    def target(self, machine: SimulatedMachine) -> BmcTarget:
        assert self.emulator is not None, "start the BMCs first"
        address = f"{self.emulator.base_url}/redfish/v1/Systems/{machine.uuid}"
        return BmcTarget(self.driver, address, BMC_USER, self.password)

    @staticmethod
    def _hook_key(machine: SimulatedMachine) -> str:
        return machine.uuid

    def start(self, machines: list[SimulatedMachine], power_changed: PowerChanged) -> None:
        super().start(machines, power_changed)
        systems = [
            {
                "uuid": machine.uuid,
                "name": machine.serial,
                "power_state": "Off",
                "nics": [{"mac": mac, "ip": "127.0.0.1"} for mac in machine.macs],
                "memory_gib": machine.spec.memory_gib,
                "cpus": machine.spec.sockets,
                "versions": {"BiosVersion": machine.spec.bios},
            }
            for machine in machines
        ]
        self.emulator = RedfishEmulator(
            systems, users={BMC_USER: self.password}, max_sessions=32, power_hook=self.hook_url
        ).start()

    def stop(self) -> None:
        if self.emulator is not None:
            self.emulator.stop()
        super().stop()


def _power_hook(told: Callable[[str, bool], None]) -> ThreadingHTTPServer:
    """Where BMCs post `{"serial" or "uuid", "booted"}` at each boot and power-off."""

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            told(body.get("serial") or body.get("uuid"), bool(body["booted"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args) -> None:  # the emulator's requests are not news
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="lab-power-hook", daemon=True).start()
    return server


class RedfishEmulator:
    """sushy-tools' emulator with metalyard's extensions (`redfish_emulator.py`), serving
    `systems` as fake systems on 127.0.0.1."""

    def __init__(
        self,
        systems: list[dict],
        *,
        users: dict[str, str],
        max_sessions: int = 16,
        instant_power: bool = True,
        power_hook: str = "",
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        try:
            import sushy_tools  # noqa: F401
        except ImportError:
            raise InvalidInput(
                "the Redfish BMCs run in sushy-tools' emulator: pip install 'metalyard[lab]'"
            ) from None
        self.root = Path(tempfile.mkdtemp(prefix="metalyard-redfish-"))
        self.port = free_port()
        self.base_url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        config = {
            "SUSHY_EMULATOR_FAKE_DRIVER": True,
            "SUSHY_EMULATOR_STATE_DIR": str(self.root / "state"),
            "SUSHY_EMULATOR_FAKE_SYSTEMS": systems,
            "METALYARD_USERS": users,
            "METALYARD_MAX_SESSIONS": max_sessions,
            "METALYARD_INSTANT_POWER": instant_power,
            "METALYARD_POWER_HOOK": power_hook,
        }
        if tls:
            config["SUSHY_EMULATOR_SSL_CERT"], config["SUSHY_EMULATOR_SSL_KEY"] = map(str, tls)
        lines = [f"{name} = {value!r}" for name, value in config.items()]
        (self.root / "emulator.conf").write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "RedfishEmulator":
        log = self.root / "emulator.log"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "metalyard.lab.redfish_emulator",
                str(self.root / "emulator.conf"),
                str(self.port),
            ],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        wait_until_started(self.process, self._answers, log, "the Redfish emulator", timeout)
        return self

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/redfish/v1/", timeout=1, verify=False).is_success
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
