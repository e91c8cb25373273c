"""The IPMI driver against pyghmi's BMC simulator, with ipmitool as a second client."""

import pytest

from metalyard.drivers import BmcTarget, BootDevice, BootMode, PowerAction, PowerState, connect
from metalyard.errors import BmcAuthFailed, BmcTransient, InvalidInput, Unsupported


def test_power_on_and_off_reach_the_bmc(ipmi, ipmitool):
    driver = connect(ipmi.target(0))
    driver.set_power(PowerAction.ON)
    assert driver.get_power_state() is PowerState.ON
    assert ipmi.state(0)["power"] == "on"
    assert "Chassis Power is on" in ipmi.ipmitool(0, "power", "status")
    driver.set_power(PowerAction.OFF)
    assert driver.get_power_state() is PowerState.OFF
    assert "Chassis Power is off" in ipmi.ipmitool(0, "power", "status")


def test_power_set_by_ipmitool_is_read_by_the_driver(ipmi, ipmitool):
    ipmi.ipmitool(1, "power", "on")
    assert connect(ipmi.target(1)).get_power_state() is PowerState.ON


def test_pxe_boot_set_by_the_driver_is_read_back_by_ipmitool(ipmi, ipmitool):
    driver = connect(ipmi.target(2))
    driver.set_boot(BootDevice.PXE, mode=BootMode.UEFI)
    flags = ipmi.ipmitool(2, "chassis", "bootparam", "get", "5")
    assert "Force PXE" in flags
    assert "Options apply to only next boot" in flags
    assert "BIOS EFI boot" in flags
    boot = driver.get_boot()
    assert (boot.device, boot.persistent, boot.mode) == (BootDevice.PXE, False, BootMode.UEFI)

    driver.set_boot(BootDevice.DISK, persistent=True)
    flags = ipmi.ipmitool(2, "chassis", "bootparam", "get", "5")
    assert "Force Boot from default Hard-Drive" in flags
    assert "Options apply to all future boots" in flags


def test_a_wrong_password_is_fatal(ipmi):
    with pytest.raises(BmcAuthFailed, match="refused the credentials"):
        connect(ipmi.target(3, password="wrong")).get_power_state()


def test_a_bmc_that_does_not_answer_is_transient(ipmi):
    silent = f"127.0.0.1:{ipmi.ports[0] + 7}"
    with pytest.raises(BmcTransient, match="did not answer"):
        connect(ipmi.target(3, address=silent)).get_power_state()


def test_what_the_bmc_lacks_is_unsupported_with_its_reason(ipmi):
    driver = connect(ipmi.target(3))
    with pytest.raises(Unsupported, match="Invalid command"):
        driver.read_event_log()
    with pytest.raises(Unsupported, match="no firmware interface"):
        driver.list_firmware()


@pytest.mark.parametrize("address", ["", "host:port", "10.0.0.1:70000"])
def test_a_malformed_address_is_invalid_input(address):
    with pytest.raises(InvalidInput):
        connect(BmcTarget("ipmi", address, "admin", "x"))
