"""BMC drivers: one interface (base.py), one implementation per protocol."""

import re
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


_PLAIN_ADDRESSES = {
    "redfish": re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?(/redfish/v1/Systems/[!-~]*)?$"),
    "ipmi": re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$"),
}
"""The common forms of an address, matched in a microsecond (an import checks thousands);
the driver parses any other, to accept it or say what is wrong. Connecting parses it anew."""


def check_address(driver: str, address: str) -> None:
    """InvalidInput if `address` is not a BMC address as `driver` writes one."""
    plain = _PLAIN_ADDRESSES.get(driver)
    if address and not (plain and plain.match(address)):
        driver_class(driver).host(address)


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
