"""The Redfish driver against sushy-tools' emulator (see tests/peers/redfish_emulator.py)."""

import httpx
import pytest

from metalyard.drivers import (
    BootDevice,
    HealthStatus,
    PowerAction,
    PowerState,
    UpdateState,
    connect,
)
from metalyard.drivers.redfish import RedfishDriver, SessionCache
from metalyard.errors import BmcAuthFailed, BmcFatal, BmcTransient, InvalidInput
from tests.peers.bmcs import BMC_PASSWORD, RedfishEmulator


def test_power_on_and_off_reach_the_system(redfish):
    driver = connect(redfish.target(0))
    driver.set_power(PowerAction.ON)
    assert driver.get_power_state() is PowerState.ON
    assert redfish.get(f"/redfish/v1/Systems/{redfish.uuids[0]}")["PowerState"] == "On"
    driver.set_power(PowerAction.ON)  # idempotent: already on is fine
    driver.set_power(PowerAction.OFF)
    assert driver.get_power_state() is PowerState.OFF
    # The other systems behind the same endpoint are untouched.
    assert redfish.get(f"/redfish/v1/Systems/{redfish.uuids[1]}")["PowerState"] == "Off"


def test_pxe_boot_override_is_set_on_the_bmc(redfish):
    driver = connect(redfish.target(1))
    driver.set_boot(BootDevice.PXE, persistent=True)
    boot = redfish.get(f"/redfish/v1/Systems/{redfish.uuids[1]}")["Boot"]
    assert boot["BootSourceOverrideTarget"] == "Pxe"
    assert boot["BootSourceOverrideEnabled"] == "Continuous"
    assert driver.get_boot().device is BootDevice.PXE
    driver.set_boot(BootDevice.DISK, persistent=True)
    assert driver.get_boot().device is BootDevice.DISK


def test_inventory_reports_what_the_bmc_knows(redfish):
    inventory = connect(redfish.target(2)).get_inventory()
    assert inventory.manufacturer == "Sushy Emulator"
    assert inventory.memory_gib == 256
    assert [nic.mac for nic in inventory.nics] == ["52:54:00:00:00:02"]


def test_firmware_update_through_simple_update_and_its_task(redfish):
    driver = connect(redfish.target(3))
    before = {c.name: c.version for c in driver.list_firmware()}
    assert before["bios"] == "1.0.0" and "bmc" in before
    handle = driver.start_update("http://images.example/bios-1.1.0.bin")
    assert driver.poll_update(handle).state is UpdateState.COMPLETED
    after = {c.name: c.version for c in driver.list_firmware()}
    assert after["bios"] == "1.1.0"
    assert redfish.get(f"/redfish/v1/Systems/{redfish.uuids[3]}")["BiosVersion"] == "1.1.0"


def test_bios_attributes_are_staged_and_read_back(redfish):
    driver = connect(redfish.target(4))
    assert driver.get_bios()["ProcTurboMode"] == "Enabled"
    driver.set_bios({"ProcTurboMode": "Disabled"})
    assert driver.get_bios()["ProcTurboMode"] == "Disabled"


def test_sensors_and_overall_health(redfish):
    health = connect(redfish.target(4)).get_health()
    assert health.overall is HealthStatus.OK
    kinds = {sensor.kind for sensor in health.sensors}
    assert {"temperature", "fan"} <= kinds
    assert all(s.value is not None for s in health.sensors if s.kind == "temperature")


def test_event_log_is_read_and_cleared(redfish):
    driver = connect(redfish.target(5))
    redfish.add_event(5, "PSU 1 lost input", severity="Critical")
    entries = driver.read_event_log()
    assert [(e.severity, e.message) for e in entries] == [("Critical", "PSU 1 lost input")]
    driver.clear_event_log()
    assert driver.read_event_log() == []


def test_one_session_is_reused_across_calls_and_systems_and_logged_out_on_close(redfish):
    sessions = SessionCache()
    drivers = [RedfishDriver(redfish.target(i), sessions) for i in range(4)]
    for driver in drivers * 3:
        driver.get_power_state()
    assert len(sessions) == 1
    assert redfish.open_sessions().count("admin") >= 1
    before = len(redfish.open_sessions())
    assert sessions.logout_idle() == 1
    assert len(redfish.open_sessions()) == before - 1


def test_a_full_session_table_is_retried_after_logging_out_idle_sessions():
    emulator = RedfishEmulator(count=1, max_sessions=2).start()
    try:
        sessions = SessionCache()
        for user in ("admin", "operator"):
            RedfishDriver(emulator.target(0, username=user), sessions).validate()
        assert sorted(emulator.open_sessions()) == ["admin", "operator"]
        viewer = RedfishDriver(emulator.target(0, username="viewer"), sessions)
        assert viewer.get_power_state() is PowerState.OFF
        assert emulator.open_sessions() == ["viewer"]

        # Sessions held by someone else cannot be freed: a transient error, retried later.
        sessions.logout_idle()
        for user in ("admin", "operator"):
            httpx.post(
                f"{emulator.base_url}/redfish/v1/SessionService/Sessions",
                json={"UserName": user, "Password": BMC_PASSWORD},
            ).raise_for_status()
        with pytest.raises(BmcTransient, match="no free session"):
            RedfishDriver(emulator.target(0), sessions).validate()
    finally:
        emulator.stop()


def test_a_short_burst_of_5xx_is_retried(redfish):
    driver = connect(redfish.target(6))
    redfish.inject_failures(500, 2)
    assert driver.get_power_state() is PowerState.OFF


def test_a_lasting_5xx_is_a_transient_error(redfish):
    driver = connect(redfish.target(6))
    redfish.inject_failures(503, 10)
    try:
        with pytest.raises(BmcTransient, match="failed"):
            driver.get_power_state()
    finally:
        redfish.inject_failures(503, 0)


def test_a_bmc_that_is_down_is_a_transient_error():
    target = RedfishEmulator(count=1).target(0)  # never started: nothing listens
    with pytest.raises(BmcTransient, match="cannot be reached"):
        connect(target).get_power_state()


def test_a_wrong_password_is_fatal_and_says_so(redfish):
    driver = connect(redfish.target(0, password="not-the-password"))
    with pytest.raises(BmcAuthFailed, match="refused the credentials"):
        driver.get_power_state()


def test_a_missing_system_is_fatal(redfish):
    address = f"{redfish.base_url}/redfish/v1/Systems/no-such-system"
    with pytest.raises(BmcFatal, match="no such resource"):
        connect(redfish.target(0, address=address)).get_power_state()


@pytest.mark.parametrize(
    "address", ["10.0.0.5", "ftp://10.0.0.5", "http://127.0.0.1:9/redfish/v1/x"]
)
def test_a_malformed_address_is_invalid_input(address):
    with pytest.raises(InvalidInput):
        connect(RedfishEmulator(count=1).target(0, address=address))


def test_tls_is_verified_by_default_and_a_ca_bundle_is_honoured():
    emulator = RedfishEmulator(count=1, tls=True).start()
    try:
        with pytest.raises(BmcFatal, match="TLS verification"):
            connect(emulator.target(0)).get_power_state()
        trusted = emulator.target(0, verify=str(emulator.ca_bundle))
        assert connect(trusted).get_power_state() is PowerState.OFF
    finally:
        emulator.stop()
