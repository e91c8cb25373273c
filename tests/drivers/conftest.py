"""BMC peers for driver tests: one Redfish emulator and one IPMI simulator per test process."""

import os
import shutil
from collections.abc import Iterator

import pytest

from metalyard.drivers import BmcTarget
from tests.peers.bmcs import BMC_PASSWORD, BMC_USER, IpmiSimulators, RedfishEmulator


@pytest.fixture(scope="session")
def redfish() -> Iterator[RedfishEmulator]:
    emulator = RedfishEmulator(count=8).start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def ipmi() -> Iterator[IpmiSimulators]:
    simulators = IpmiSimulators(count=4).start()
    yield simulators
    simulators.stop()


@pytest.fixture(scope="session")
def ipmitool() -> None:
    if shutil.which("ipmitool") is None:
        if os.environ.get("CI"):
            pytest.fail("ipmitool is not installed; .ci/run must install it")
        pytest.skip("ipmitool is not installed (apt-get install ipmitool)")


def redfish_target(emulator: RedfishEmulator, index: int, **changes) -> BmcTarget:
    fields = {
        "driver": "redfish",
        "address": emulator.system_url(index),
        "username": BMC_USER,
        "password": BMC_PASSWORD,
        **changes,
    }
    return BmcTarget(**fields)


def ipmi_target(simulators: IpmiSimulators, index: int, **changes) -> BmcTarget:
    fields = {
        "driver": "ipmi",
        "address": simulators.address(index),
        "username": BMC_USER,
        "password": BMC_PASSWORD,
        **changes,
    }
    return BmcTarget(**fields)
