"""The fake driver behaves like a BMC, including the faults the lab and benchmarks inject."""

import time

import pytest

from metalyard.drivers import (
    BmcTarget,
    BootDevice,
    Capability,
    PowerAction,
    PowerState,
    UpdateState,
    connect,
)
from metalyard.drivers.fake import FakeDriver, FakeFleet, log_event
from metalyard.errors import BmcAuthFailed, BmcFatal, BmcTransient, Unsupported


@pytest.fixture
def fleet() -> FakeFleet:
    return FakeFleet()


def fake(fleet: FakeFleet, address: str, password: str = "") -> FakeDriver:
    return FakeDriver(BmcTarget("fake", address, "admin", password), fleet)


def test_fake_driver_offers_every_capability():
    assert FakeDriver.capabilities() == frozenset(Capability)


def test_a_one_time_pxe_boot_is_consumed_by_the_next_boot(fleet):
    driver = fake(fleet, "n1")
    driver.set_boot(BootDevice.PXE)
    assert driver.get_boot().device is BootDevice.PXE
    driver.set_power(PowerAction.ON)
    assert driver.get_power_state() is PowerState.ON
    assert driver.get_boot().device is None


def test_bios_changes_apply_at_the_next_boot(fleet):
    driver = fake(fleet, "n2")
    driver.set_bios({"ProcTurboMode": "Disabled"})
    assert driver.get_bios()["ProcTurboMode"] == "Enabled"
    driver.set_power(PowerAction.CYCLE)
    assert driver.get_bios()["ProcTurboMode"] == "Disabled"
    with pytest.raises(BmcFatal, match="no BIOS attribute 'Nope'"):
        driver.set_bios({"Nope": 1})


def test_firmware_update_takes_the_version_of_the_image(fleet):
    driver = fake(fleet, "n3")
    handle = driver.start_update("http://images/bmc-2.4.1.bin", components=["bmc"])
    assert driver.poll_update(handle).state is UpdateState.COMPLETED
    assert {c.name: c.version for c in driver.list_firmware()}["bmc"] == "2.4.1"


def test_a_stuck_task_never_completes(fleet):
    driver = fake(fleet, "n4?stuck_task=1")
    handle = driver.start_update("http://images/bios.bin")
    assert [driver.poll_update(handle).state for _ in range(3)] == [UpdateState.RUNNING] * 3


def test_latency_is_configurable(fleet):
    driver = fake(fleet, "n5?latency=0.05")
    started = time.perf_counter()
    driver.get_power_state()
    assert time.perf_counter() - started >= 0.05


def test_transient_failures_come_at_the_configured_rate(fleet):
    driver = fake(fleet, "n6?transient_rate=0.3")
    failures = 0
    for _ in range(1000):
        try:
            driver.get_power_state()
        except BmcTransient:
            failures += 1
    assert 200 < failures < 400


def test_fatal_faults_and_passwords(fleet):
    with pytest.raises(BmcFatal, match="BMC firmware corrupted"):
        fake(fleet, "n7?fatal=BMC firmware corrupted").get_power_state()
    with pytest.raises(BmcAuthFailed):
        fake(fleet, "n8?password=right", password="wrong").get_power_state()
    assert fake(fleet, "n8?password=right", password="right").get_power_state() is PowerState.OFF


def test_faults_can_be_repaired_in_place(fleet):
    driver = fake(fleet, "n9?fatal=dead")
    with pytest.raises(BmcFatal):
        driver.validate()
    fleet.machine("n9?fatal=dead").faults.fatal = ""
    driver.validate()


def test_event_log(fleet):
    driver = fake(fleet, "n10")
    log_event(fleet.machine("n10"), "Critical", "DIMM A1 uncorrectable error")
    assert [e.message for e in driver.read_event_log()] == ["DIMM A1 uncorrectable error"]
    driver.clear_event_log()
    assert driver.read_event_log() == []


def test_an_unsupported_capability_names_driver_and_capability():
    driver = connect(BmcTarget("ipmi", "127.0.0.1:1623", "admin", "x"))
    with pytest.raises(Unsupported, match="ipmi driver has no bios interface"):
        driver.get_bios()
    with pytest.raises(AttributeError):
        driver.no_such_method  # noqa: B018
