"""The device-agnostic BMC interface: flows speak this and never a protocol.

One small abstract class per capability, in the style of Ironic's driver interfaces. A
driver inherits the interfaces its protocol can serve; calling a method of one it lacks
raises `Unsupported` naming the driver and the capability. Every method is blocking (the
worker runs beans in threads) and every setter is idempotent: asking for the state the
machine is already in succeeds.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from metalyard.errors import Unsupported


class Capability(StrEnum):
    POWER = "power"
    BOOT = "boot"
    INVENTORY = "inventory"
    FIRMWARE = "firmware"
    BIOS = "bios"
    HEALTH = "health"
    EVENT_LOG = "event_log"


class PowerState(StrEnum):
    ON = "on"
    OFF = "off"


class PowerAction(StrEnum):
    ON = "on"
    OFF = "off"
    SOFT_OFF = "soft_off"
    CYCLE = "cycle"
    RESET = "reset"


class BootDevice(StrEnum):
    PXE = "pxe"
    DISK = "disk"
    CD = "cd"


class BootMode(StrEnum):
    UEFI = "uefi"
    LEGACY = "legacy"


class HealthStatus(StrEnum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"


class UpdateState(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True)
class BmcTarget:
    """Where a BMC answers and how to log in; built from an asset and its credential."""

    driver: str
    address: str
    """Redfish: base URL plus system path (`https://10.0.0.5/redfish/v1/Systems/1`, one
    endpoint can serve many systems); IPMI: `host[:port]`; fake: any name, options as a query."""
    username: str = ""
    password: str = field(default="", repr=False)
    verify: bool | str = True
    """TLS verification: on, off, or a CA bundle path."""
    networks: tuple[str, ...] | None = None
    """The prefixes the credential may be sent into: every connection the driver opens is
    checked against them before it sends a byte (see destinations). None where nothing
    limits it: the lab's and the tests' own BMCs."""


@dataclass(frozen=True)
class BootSetting:
    device: BootDevice | None
    """None when no override is set (the machine boots from its own order)."""
    persistent: bool
    mode: BootMode | None = None


@dataclass(frozen=True)
class Nic:
    name: str
    mac: str
    speed_mbps: int | None = None


@dataclass(frozen=True)
class HardwareInventory:
    manufacturer: str | None
    model: str | None
    serial: str | None
    cpu_count: int | None
    cpu_model: str | None
    memory_gib: float | None
    nics: list[Nic]


@dataclass(frozen=True)
class FirmwareComponent:
    name: str
    """`bios`, `bmc`, or the component's own name on the BMC."""
    version: str
    updatable: bool = True


@dataclass(frozen=True)
class UpdateStatus:
    state: UpdateState
    percent: int | None = None
    message: str = ""


@dataclass(frozen=True)
class SensorReading:
    kind: str
    """`temperature`, `fan`, `power_supply` or `other`."""
    name: str
    value: float | None
    unit: str
    status: HealthStatus


@dataclass(frozen=True)
class HealthReport:
    overall: HealthStatus
    sensors: list[SensorReading]


@dataclass(frozen=True)
class EventLogEntry:
    id: str
    created: datetime | None
    severity: str
    message: str


# Interfaces ----------------------------------------------------------------------------


class Interface(ABC):
    capability: ClassVar[Capability]


class Power(Interface):
    capability = Capability.POWER

    @abstractmethod
    def get_power_state(self) -> PowerState: ...

    @abstractmethod
    def set_power(self, action: PowerAction) -> None:
        """Ask for the change and return; the BMC may take seconds to apply it (poll)."""


class Boot(Interface):
    capability = Capability.BOOT

    @abstractmethod
    def get_boot(self) -> BootSetting: ...

    @abstractmethod
    def set_boot(
        self, device: BootDevice, *, persistent: bool = False, mode: BootMode | None = None
    ) -> None:
        """Boot from `device` next time (or every time); `mode` None keeps the current one."""


class Inventory(Interface):
    capability = Capability.INVENTORY

    @abstractmethod
    def get_inventory(self) -> HardwareInventory: ...


class Firmware(Interface):
    capability = Capability.FIRMWARE

    @abstractmethod
    def list_firmware(self) -> list[FirmwareComponent]: ...

    @abstractmethod
    def start_update(self, image_url: str, *, components: list[str] | None = None) -> str:
        """Start flashing and return a handle for `poll_update`; keep it, the flash outlives us."""

    @abstractmethod
    def poll_update(self, handle: str) -> UpdateStatus: ...


class Bios(Interface):
    capability = Capability.BIOS

    @abstractmethod
    def get_bios(self) -> dict[str, Any]: ...

    @abstractmethod
    def set_bios(self, attributes: dict[str, Any]) -> None:
        """Stage attributes; the machine applies them at its next boot."""


class Health(Interface):
    capability = Capability.HEALTH

    @abstractmethod
    def get_health(self) -> HealthReport: ...


class EventLog(Interface):
    capability = Capability.EVENT_LOG

    @abstractmethod
    def read_event_log(self) -> list[EventLogEntry]: ...

    @abstractmethod
    def clear_event_log(self) -> None: ...


INTERFACES: tuple[type[Interface], ...] = (Power, Boot, Inventory, Firmware, Bios, Health, EventLog)
_DECLARED_BY = {
    name: interface
    for interface in INTERFACES
    for name in interface.__abstractmethods__  # type: ignore[attr-defined]
}


class Driver:
    """One protocol's implementation of the interfaces it inherits, for one BMC."""

    name: ClassVar[str]

    def __init__(self, target: BmcTarget) -> None:
        self.target = target

    @classmethod
    def host(cls, address: str) -> str:
        """The host a BMC address connects to, checked to be a plain name or IP address."""
        raise NotImplementedError

    @classmethod
    def capabilities(cls) -> frozenset[Capability]:
        return frozenset(i.capability for i in INTERFACES if issubclass(cls, i))

    def validate(self) -> None:
        """Check address and credentials quickly (one round trip); raise what is wrong."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what this driver holds on the BMC (sessions); later calls reconnect."""

    def __getattr__(self, name: str) -> Any:
        interface = _DECLARED_BY.get(name)
        if interface is None:
            raise AttributeError(name)
        raise Unsupported(
            f"the {self.name} driver has no {interface.capability.value} interface "
            f"({name} is not available)",
            details={"driver": self.name, "capability": interface.capability.value},
        )
