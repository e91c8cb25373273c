"""The lab end to end: `metalyard serve` in its own process, simulated servers running the
real agent, and an outcome that must match the faults injected, server by server."""

import subprocess
import sys

import pytest

from metalyard.lab.machines import Fault
from metalyard.lab.runner import Lab, Options


@pytest.fixture
def lab(request, tmp_path):
    running = Lab(Options(data_dir=tmp_path / "lab", timeout=180, **request.param)).start()
    yield running
    running.stop()


def assert_outcome_matches_the_faults(summary, servers: int) -> None:
    faulty = {serial for serial, faults in summary.injected.items() if faults}
    assert summary.states == {"SPARE": servers - len(faulty), "QUARANTINED": len(faulty)}
    assert set(summary.reasons) == faulty
    for fault, serials in summary.by_fault().items():
        assert summary.caught(fault) == serials, (fault, {s: summary.reasons[s] for s in serials})
    unknown = summary.by_fault().get(Fault.UNKNOWN_SERIAL, [])
    assert sorted(summary.unknown_assets) == unknown


@pytest.mark.parametrize("lab", [{"servers": 50, "fault_rate": 0.1}], indirect=True)
def test_fifty_servers_with_ten_percent_faults_settle_as_injected_then_all_reach_spare(lab):
    lab.power_on()
    lab.settle()
    summary = lab.summary()
    assert len(summary.injected) == 5
    assert set(summary.by_fault()) == set(Fault)  # one of each kind
    assert_outcome_matches_the_faults(summary, 50)
    assert len(summary.seconds_to_spare) == 45  # each SPARE was powered off by metalyard
    assert summary.order_state == "delivered"  # five units have not passed yet

    repaired = lab.fix()
    assert sorted(repaired) == sorted(summary.injected)
    lab.settle()
    after = lab.summary()
    assert after.states == {"SPARE": 50}
    assert after.unknown_assets == []
    assert after.order_state == "closed"
    assert sorted(after.reasons) == []
    for serial in repaired:
        history = [c.to_state for c in lab.client.assets.history(serial)]
        assert history[-3:] == ["QUARANTINED", "EVALUATING", "SPARE"]  # the re-walk


@pytest.mark.parametrize(
    "lab", [{"servers": 10, "fault_rate": 0.5, "redfish": True, "seed": 3}], indirect=True
)
def test_with_redfish_bmcs_the_servers_are_powered_through_sushy_tools(lab):
    lab.power_on()
    lab.settle()
    summary = lab.summary()
    assert_outcome_matches_the_faults(summary, 10)
    spare = next(s for s in lab.machines if not s.faults)
    assert lab.client.bmc.power_state(spare.serial).state == "off"
    assert lab.client.assets.get(spare.serial).bmc_driver == "redfish"


def test_the_command_runs_headless_and_fixes(tmp_path):
    command = [sys.executable, "-m", "metalyard", "lab", "--servers", "6", "--faults", "0.5"]
    command += ["--fix", "--no-live", "--no-wait", "--data-dir", str(tmp_path / "lab")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6/6 settled" in done.stdout
    assert "closed" in done.stdout  # the order, once every unit passed


def test_a_rack_holds_forty_servers():
    done = subprocess.run(
        [sys.executable, "-m", "metalyard", "lab", "--servers", "100", "--racks", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "use --racks 3 or more" in done.stdout + done.stderr
