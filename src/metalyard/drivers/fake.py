"""A BMC driver without hardware, shipped for the lab, benchmarks and tests.

Machines live in this process (`FLEET`), keyed by the asset's BMC address. Their behaviour
comes from the address's query (`fake://node1?latency=0.05&transient_rate=0.1`) or from
code that holds the machine (tests inject and repair faults that way):
- `latency`: seconds every call takes;
- `transient_rate`: the share of calls that fail as a busy BMC would (retry succeeds);
- `fatal`: every call fails with this message, as a broken BMC would;
- `stuck_task`: firmware updates never finish;
- `password`: the only password the BMC accepts (by default any);
- `serial`: the machine's serial (by default the address's name, upper case);
- `notify`: a loopback URL told of each boot and power-off (`{"serial", "booted"}`), as a
  motherboard is by its BMC: the lab's simulated servers listen there.

A credential given to a fake BMC counts as sent to this machine (127.0.0.1), since its
machines live here: else its `password` option would test guesses of any credential.
"""

import functools
import itertools
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from ipaddress import ip_address
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from metalyard.drivers.base import (
    Bios,
    BmcTarget,
    Boot,
    BootDevice,
    BootMode,
    BootSetting,
    Driver,
    EventLog,
    EventLogEntry,
    Firmware,
    FirmwareComponent,
    HardwareInventory,
    Health,
    HealthReport,
    HealthStatus,
    Inventory,
    Nic,
    Power,
    PowerAction,
    PowerState,
    SensorReading,
    UpdateState,
    UpdateStatus,
)
from metalyard.errors import BmcAuthFailed, BmcFatal, BmcTransient, InvalidInput

_VERSION = re.compile(r"\d+(?:\.\d+)+")


@dataclass
class Faults:
    latency: float = 0.0
    transient_rate: float = 0.0
    fatal: str = ""
    stuck_task: bool = False


@dataclass
class FakeMachine:
    serial: str
    manufacturer: str = "Metalyard"
    model: str = "Fake Server"
    cpu_count: int = 2
    cpu_model: str = "Fake CPU @ 2.0GHz"
    memory_gib: float = 64.0
    nics: list[Nic] = field(default_factory=list)
    password: str | None = field(default=None, repr=False)
    faults: Faults = field(default_factory=Faults)
    power: PowerState = PowerState.OFF
    boot: BootSetting = field(default_factory=lambda: BootSetting(None, False, BootMode.UEFI))
    firmware: dict[str, str] = field(default_factory=lambda: {"bios": "1.0.0", "bmc": "1.0.0"})
    bios: dict[str, Any] = field(
        default_factory=lambda: {"BootMode": "Uefi", "ProcTurboMode": "Enabled"}
    )
    pending_bios: dict[str, Any] = field(default_factory=dict)
    temperatures: dict[str, float] = field(default_factory=lambda: {"inlet": 24.0, "cpu0": 48.0})
    events: list[EventLogEntry] = field(default_factory=list)
    updates: dict[str, "_Update"] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    on_power: Callable[[bool], None] | None = field(default=None, repr=False)
    """Told of each power change: True when the machine booted, False when it went off."""


@dataclass
class _Update:
    components: list[str]
    version: str | None
    done: bool = False


class FakeFleet:
    """The machines behind every fake address of this process."""

    def __init__(self) -> None:
        self._machines: dict[str, FakeMachine] = {}
        self._lock = threading.Lock()
        self._handles = itertools.count(1)

    def add(self, address: str, machine: FakeMachine) -> FakeMachine:
        with self._lock:
            self._machines[address] = machine
        return machine

    def machine(self, address: str) -> FakeMachine:
        """The machine at `address`, made from the address's options on first use."""
        machine = self._machines.get(address)
        if machine is not None:
            return machine
        with self._lock:
            if address not in self._machines:
                self._machines[address] = _machine_from_address(address)
            return self._machines[address]

    def next_handle(self) -> str:
        return f"fake-task-{next(self._handles)}"

    def clear(self) -> None:
        with self._lock:
            self._machines.clear()


FLEET = FakeFleet()


def _machine_from_address(address: str) -> FakeMachine:
    parts = urlsplit(address if "://" in address else f"fake://{address}")
    options = dict(parse_qsl(parts.query))
    name = (parts.netloc + parts.path).strip("/") or "fake"
    try:
        faults = Faults(
            latency=float(options.get("latency", 0)),
            transient_rate=float(options.get("transient_rate", 0)),
            fatal=options.get("fatal", ""),
            stuck_task=options.get("stuck_task", "") in ("1", "true", "yes"),
        )
    except ValueError:
        raise InvalidInput(f"fake BMC address {address!r} has a non-numeric option") from None
    serial = options.get("serial", name.upper())
    notify = options.get("notify")
    if notify and not _loopback(notify):
        raise InvalidInput(
            f"a fake BMC tells only this machine of power changes: its notify URL is a "
            f"loopback one, like http://127.0.0.1:8000/power, not {notify!r}"
        )
    return FakeMachine(
        serial=serial,
        password=options.get("password"),
        faults=faults,
        on_power=_notifier(notify, serial) if notify else None,
    )


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@functools.cache
def _notifications() -> httpx.Client:
    """One pool of keep-alive connections for every machine's notifications, made on first
    use: most processes importing this driver never notify."""
    return httpx.Client(timeout=10)


def _notifier(url: str, serial: str) -> Callable[[bool], None]:
    def notify(booted: bool) -> None:
        _notifications().post(url, json={"serial": serial, "booted": booted}).raise_for_status()

    return notify


class FakeDriver(Driver, Power, Boot, Inventory, Firmware, Bios, Health, EventLog):
    name = "fake"

    def __init__(self, target: BmcTarget, fleet: FakeFleet = FLEET) -> None:
        super().__init__(target)
        self._fleet = fleet

    @classmethod
    def host(cls, address: str) -> str:
        return "127.0.0.1"  # its machines live in this process (see the module docstring)

    def _machine(self) -> FakeMachine:
        """The machine, after the latency and faults a real BMC would show."""
        machine = self._fleet.machine(self.target.address)
        faults = machine.faults
        if faults.latency:
            time.sleep(faults.latency)
        if faults.fatal:
            raise BmcFatal(f"BMC {self.target.address}: {faults.fatal}")
        if faults.transient_rate and random.random() < faults.transient_rate:
            raise BmcTransient(f"BMC {self.target.address} is busy, try again later")
        if machine.password is not None and machine.password != self.target.password:
            raise BmcAuthFailed(f"BMC {self.target.address} refused the credentials")
        return machine

    def validate(self) -> None:
        self._machine()

    # Power --------------------------------------------------------------------------

    def get_power_state(self) -> PowerState:
        return self._machine().power

    def set_power(self, action: PowerAction) -> None:
        machine = self._machine()
        with machine.lock:
            was_on = machine.power is PowerState.ON
            if action in (PowerAction.ON, PowerAction.CYCLE, PowerAction.RESET):
                booted = not was_on or action is not PowerAction.ON
                if booted:
                    self._booted(machine)
                machine.power = PowerState.ON
                change = True if booted else None
            else:
                machine.power = PowerState.OFF
                change = False if was_on else None
        if change is not None and machine.on_power is not None:
            machine.on_power(change)

    @staticmethod
    def _booted(machine: FakeMachine) -> None:
        """A boot applies staged BIOS settings and consumes a one-time boot override."""
        machine.bios.update(machine.pending_bios)
        machine.pending_bios.clear()
        if not machine.boot.persistent:
            machine.boot = replace(machine.boot, device=None)

    # Boot ---------------------------------------------------------------------------

    def get_boot(self) -> BootSetting:
        return self._machine().boot

    def set_boot(
        self, device: BootDevice, *, persistent: bool = False, mode: BootMode | None = None
    ) -> None:
        machine = self._machine()
        with machine.lock:
            machine.boot = BootSetting(device, persistent, mode or machine.boot.mode)

    # Inventory ----------------------------------------------------------------------

    def get_inventory(self) -> HardwareInventory:
        machine = self._machine()
        return HardwareInventory(
            manufacturer=machine.manufacturer,
            model=machine.model,
            serial=machine.serial,
            cpu_count=machine.cpu_count,
            cpu_model=machine.cpu_model,
            memory_gib=machine.memory_gib,
            nics=list(machine.nics),
        )

    # Firmware -----------------------------------------------------------------------

    def list_firmware(self) -> list[FirmwareComponent]:
        machine = self._machine()
        return [FirmwareComponent(name, version) for name, version in machine.firmware.items()]

    def start_update(self, image_url: str, *, components: list[str] | None = None) -> str:
        machine = self._machine()
        wanted = components or ["bios"]
        unknown = sorted(set(wanted) - set(machine.firmware))
        if unknown:
            raise BmcFatal(f"BMC {self.target.address} has no firmware component {unknown[0]!r}")
        found = _VERSION.search(image_url.rsplit("/", 1)[-1])
        handle = self._fleet.next_handle()
        with machine.lock:
            machine.updates[handle] = _Update(wanted, found.group() if found else None)
        return handle

    def poll_update(self, handle: str) -> UpdateStatus:
        machine = self._machine()
        with machine.lock:
            update = machine.updates.get(handle)
            if update is None:
                raise BmcFatal(f"BMC {self.target.address} knows no update task {handle!r}")
            if machine.faults.stuck_task:
                return UpdateStatus(UpdateState.RUNNING, 50, "flashing")
            if not update.done:
                for name in update.components:
                    machine.firmware[name] = update.version or _bump(machine.firmware[name])
                update.done = True
        return UpdateStatus(UpdateState.COMPLETED, 100, "update completed")

    # BIOS ---------------------------------------------------------------------------

    def get_bios(self) -> dict[str, Any]:
        return dict(self._machine().bios)

    def set_bios(self, attributes: dict[str, Any]) -> None:
        machine = self._machine()
        unknown = sorted(set(attributes) - set(machine.bios))
        if unknown:
            raise BmcFatal(f"BMC {self.target.address} has no BIOS attribute {unknown[0]!r}")
        with machine.lock:
            machine.pending_bios.update(attributes)

    # Health and event log -----------------------------------------------------------

    def get_health(self) -> HealthReport:
        machine = self._machine()
        sensors = [
            SensorReading("temperature", name, value, "Cel", _temperature_status(value))
            for name, value in machine.temperatures.items()
        ]
        sensors += [
            SensorReading("fan", "fan0", 6000.0, "RPM", HealthStatus.OK),
            SensorReading("power_supply", "psu0", None, "", HealthStatus.OK),
        ]
        worst = max((s.status for s in sensors), key=_SEVERITY.index, default=HealthStatus.OK)
        return HealthReport(overall=worst, sensors=sensors)

    def read_event_log(self) -> list[EventLogEntry]:
        return list(self._machine().events)

    def clear_event_log(self) -> None:
        machine = self._machine()
        with machine.lock:
            machine.events.clear()


_SEVERITY = [HealthStatus.UNKNOWN, HealthStatus.OK, HealthStatus.WARNING, HealthStatus.CRITICAL]


def _temperature_status(celsius: float) -> HealthStatus:
    if celsius >= 90:
        return HealthStatus.CRITICAL
    return HealthStatus.WARNING if celsius >= 75 else HealthStatus.OK


def _bump(version: str) -> str:
    head, _, last = version.rpartition(".")
    return f"{head}.{int(last) + 1}" if last.isdigit() else f"{version}.1"


def log_event(machine: FakeMachine, severity: str, message: str) -> None:
    """Add an entry to a fake machine's event log, as hardware would."""
    with machine.lock:
        entry = EventLogEntry(str(len(machine.events) + 1), datetime.now(UTC), severity, message)
        machine.events.append(entry)
