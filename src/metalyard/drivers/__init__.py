"""BMC drivers: one interface (base.py), one implementation per protocol."""

import sys

from metalyard.drivers.base import (
    INTERFACES,
    Bios,
    BmcTarget,
    Boot,
    BootDevice,
    BootMode,
    BootSetting,
    Capability,
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


def driver_class(name: str) -> type[Driver]:
    """The class of a driver by name; protocol libraries load only when first asked for."""
    if name == "fake":
        from metalyard.drivers.fake import FakeDriver

        return FakeDriver
    if name == "redfish":
        from metalyard.drivers.redfish import RedfishDriver

        return RedfishDriver
    if name == "ipmi":
        from metalyard.drivers.ipmi import IpmiDriver

        return IpmiDriver
    raise KeyError(name)


def connect(target: BmcTarget) -> Driver:
    """A driver for the BMC at `target`; cheap, sessions are made on first use and shared."""
    return driver_class(target.driver)(target)


def release_sessions() -> None:
    """Log out of every idle BMC session this process holds (at shutdown)."""
    redfish = sys.modules.get("metalyard.drivers.redfish")
    if redfish is not None:
        redfish.SESSIONS.logout_idle()


__all__ = [
    "INTERFACES",
    "Bios",
    "BmcTarget",
    "Boot",
    "BootDevice",
    "BootMode",
    "BootSetting",
    "Capability",
    "Driver",
    "EventLog",
    "EventLogEntry",
    "Firmware",
    "FirmwareComponent",
    "HardwareInventory",
    "Health",
    "HealthReport",
    "HealthStatus",
    "Inventory",
    "Nic",
    "Power",
    "PowerAction",
    "PowerState",
    "SensorReading",
    "UpdateState",
    "UpdateStatus",
    "connect",
    "driver_class",
    "release_sessions",
]
