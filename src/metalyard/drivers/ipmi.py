"""IPMI through pyghmi: power, boot device, sensors, event log and FRU inventory.

pyghmi shares one RMCP+ session per BMC and credential within the process and keeps it
alive in its own thread, so commands made here reuse sessions across calls.
"""

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from pyghmi import exceptions as pyghmi_errors
from pyghmi.constants import Health as IpmiHealth
from pyghmi.ipmi import command as ipmi_command

from metalyard.drivers.base import (
    BmcTarget,
    Boot,
    BootDevice,
    BootMode,
    BootSetting,
    Driver,
    EventLog,
    EventLogEntry,
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
)
from metalyard.drivers.destinations import checked_host, pinned
from metalyard.errors import BmcAuthFailed, BmcFatal, BmcTransient, InvalidInput, Unsupported

T = TypeVar("T")

DEFAULT_PORT = 623
_POWER = {
    PowerAction.ON: "on",
    PowerAction.OFF: "off",
    PowerAction.SOFT_OFF: "shutdown",
    PowerAction.CYCLE: "boot",  # pyghmi: on if off, else a reset
    PowerAction.RESET: "reset",
}
_BOOT = {BootDevice.PXE: "network", BootDevice.DISK: "hd", BootDevice.CD: "optical"}
_BOOT_BACK = {"network": BootDevice.PXE, "hd": BootDevice.DISK, "optical": BootDevice.CD}
_SENSOR_KINDS = {"Temperature": "temperature", "Fan": "fan", "Power Supply": "power_supply"}
_AUTH_WORDS = ("password", "unauthorized", "privilege", "invalid user", "username")
_UNSUPPORTED_WORDS = ("invalid command", "not supported", "unsupported")


def split_address(address: str) -> tuple[str, int]:
    """(host, port) of `host`, `host:port`, `[v6]:port` or a bare IPv6 address."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else (None if rest else "")
    elif address.count(":") == 1:
        host, _, port = address.partition(":")
    else:
        host, port = address, ""
    if not host or port is None or (port and not (port.isdigit() and 0 < int(port) < 65536)):
        raise InvalidInput(f"an IPMI BMC address is host or host:port, not {address!r}")
    return checked_host(host, address), int(port or DEFAULT_PORT)


class _Sessions:
    """One pyghmi command object per BMC and credential, shared by every driver and thread.

    pyghmi keeps one session per BMC and credential, but a second command object for a
    session that is already logged in waits forever for a login that has happened: so
    commands are cached here, and calls on one are serialised (a BMC answers one at a time).
    """

    def __init__(self) -> None:
        self._commands: dict[tuple, tuple[ipmi_command.Command, threading.Lock]] = {}
        self._lock = threading.Lock()

    def call(self, key: tuple, login: Callable[[], ipmi_command.Command], work: Callable):
        with self._lock:
            entry = self._commands.get(key)
            if entry is None:
                entry = self._commands[key] = (login(), threading.Lock())
        command, lock = entry
        with lock:
            return work(command)

    def drop(self, key: tuple) -> ipmi_command.Command | None:
        with self._lock:
            entry = self._commands.pop(key, None)
        return entry[0] if entry else None


SESSIONS = _Sessions()


class IpmiDriver(Driver, Power, Boot, Inventory, Health, EventLog):
    name = "ipmi"

    def __init__(self, target: BmcTarget) -> None:
        super().__init__(target)
        host, self._port = split_address(target.address)
        # pyghmi resolves a name again for every packet: with networks, it gets the address
        # checked. Commands are cached by what pyghmi is given, as pyghmi shares sessions.
        networks = target.networks
        bmc = host if networks is None else pinned(host, networks)
        self._key = (bmc, self._port, target.username, target.password)

    @classmethod
    def host(cls, address: str) -> str:
        return split_address(address)[0]

    def _login(self) -> ipmi_command.Command:
        return ipmi_command.Command(
            bmc=self._key[0],
            userid=self.target.username,
            password=self.target.password,
            port=self._port,
        )

    def _call(self, work: Callable[[ipmi_command.Command], T]) -> T:
        try:
            return SESSIONS.call(self._key, self._login, work)
        except pyghmi_errors.IpmiException as error:
            translated = self._translate(error)
            if isinstance(translated, BmcTransient):
                SESSIONS.drop(self._key)  # pyghmi has given up on the session: start anew
            raise translated from None
        except pyghmi_errors.PyghmiException as error:
            raise Unsupported(f"BMC {self.target.address}: {error}") from None

    def _translate(self, error: pyghmi_errors.IpmiException) -> Exception:
        text = str(error.args[0]) if error.args and error.args[0] else ""
        lowered = text.lower()
        if not text or "timeout" in lowered or "timed out" in lowered:
            return BmcTransient(f"BMC {self.target.address} did not answer (IPMI timeout)")
        if any(word in lowered for word in _AUTH_WORDS):
            return BmcAuthFailed(f"BMC {self.target.address} refused the credentials: {text}")
        if any(word in lowered for word in _UNSUPPORTED_WORDS):
            return Unsupported(f"BMC {self.target.address} does not offer this: {text}")
        if "busy" in lowered or "resources" in lowered:
            return BmcTransient(f"BMC {self.target.address} is busy: {text}")
        return BmcFatal(f"BMC {self.target.address}: {text}")

    def validate(self) -> None:
        self._call(lambda command: command.get_power())

    def close(self) -> None:
        command = SESSIONS.drop(self._key)
        if command is not None:
            command.ipmi_session.logout()

    # Power --------------------------------------------------------------------------

    def get_power_state(self) -> PowerState:
        state = self._call(lambda command: command.get_power())["powerstate"]
        return PowerState.ON if state == "on" else PowerState.OFF

    def set_power(self, action: PowerAction) -> None:
        def work(command: ipmi_command.Command) -> None:
            now = command.get_power()["powerstate"]
            if (action is PowerAction.ON and now == "on") or (
                action in (PowerAction.OFF, PowerAction.SOFT_OFF) and now == "off"
            ):
                return
            command.set_power(_POWER[action], wait=False)

        self._call(work)

    # Boot ---------------------------------------------------------------------------

    def get_boot(self) -> BootSetting:
        answer = self._call(lambda command: command.get_bootdev())
        device = _BOOT_BACK.get(answer.get("bootdev"))
        return BootSetting(
            device=device,
            persistent=bool(answer.get("persistent")) and device is not None,
            mode=BootMode.UEFI if answer.get("uefimode") else BootMode.LEGACY,
        )

    def set_boot(
        self, device: BootDevice, *, persistent: bool = False, mode: BootMode | None = None
    ) -> None:
        def work(command: ipmi_command.Command) -> None:
            uefi = mode is BootMode.UEFI if mode else bool(command.get_bootdev().get("uefimode"))
            answer = command.set_bootdev(_BOOT[device], persist=persistent, uefiboot=uefi)
            if isinstance(answer, dict) and "error" in answer:
                raise pyghmi_errors.IpmiException(answer["error"])

        self._call(work)

    # Inventory (FRU) ----------------------------------------------------------------

    def get_inventory(self) -> HardwareInventory:
        components = self._call(lambda command: dict(command.get_inventory()))
        system = components.get("System") or {}
        nics = [
            Nic(name=name, mac=str(item.get("MAC Address", "")).lower())
            for name, item in components.items()
            if isinstance(item, dict) and item.get("MAC Address")
        ]
        return HardwareInventory(
            manufacturer=_text(system.get("Manufacturer") or system.get("Board manufacturer")),
            model=_text(system.get("Product name") or system.get("Board product name")),
            serial=_text(system.get("Serial Number") or system.get("Board serial number")),
            cpu_count=None,
            cpu_model=None,
            memory_gib=None,
            nics=nics,
        )

    # Health -------------------------------------------------------------------------

    def get_health(self) -> HealthReport:
        def work(command: ipmi_command.Command) -> HealthReport:
            readings = list(command.get_sensor_data())
            overall = command.get_health().get("health")
            return HealthReport(
                overall=_health(overall),
                sensors=[_sensor(reading) for reading in readings],
            )

        return self._call(work)

    # Event log ----------------------------------------------------------------------

    def read_event_log(self) -> list[EventLogEntry]:
        events = self._call(lambda command: list(command.get_event_log()))
        return [
            EventLogEntry(
                id=str(event.get("recordid", "")),
                created=_timestamp(event.get("timestamp")),
                severity=str(event.get("severity", "")),
                message=" ".join(
                    str(event.get(key, "")) for key in ("component", "event") if event.get(key)
                ),
            )
            for event in events
        ]

    def clear_event_log(self) -> None:
        self._call(lambda command: list(command.get_event_log(clear=True)))


def _text(value: Any) -> str | None:
    return str(value).strip() or None if value is not None else None


def _health(flags: Any) -> HealthStatus:
    """pyghmi reports health as bit flags: 0 ok, 1 warning, 2 critical, 4 failed."""
    if not isinstance(flags, int):
        return HealthStatus.UNKNOWN
    if flags & (IpmiHealth.Critical | IpmiHealth.Failed):
        return HealthStatus.CRITICAL
    return HealthStatus.WARNING if flags & IpmiHealth.Warning else HealthStatus.OK


def _sensor(reading: Any) -> SensorReading:
    return SensorReading(
        kind=_SENSOR_KINDS.get(getattr(reading, "type", ""), "other"),
        name=reading.name,
        value=reading.value,
        unit=reading.units or "",
        status=_health(reading.health),
    )


def _timestamp(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
