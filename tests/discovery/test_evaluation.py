"""Each kind of mismatch between what the agent found and the profile, and health rules."""

import pytest

from metalyard.discovery.evaluation import evaluate
from tests.discovery.facts import machine_facts
from tests.procurement.test_profiles import SPEC


def messages(facts) -> list[str]:
    return [problem.message for problem in evaluate(facts, SPEC)]


def test_a_server_as_ordered_has_no_problems():
    assert messages(machine_facts("SN1")) == []


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (machine_facts("SN1", memory_gib=256), "memory: 256 GiB found, 512 GiB expected"),
        (
            machine_facts("SN1", cpu_model="AMD EPYC 7543"),
            "cpu: AMD EPYC 7543 found, Intel(R) Xeon(R) Gold 6338 expected",
        ),
        (machine_facts("SN1", sockets=1), "cpu: 1 socket(s) populated, 2 expected"),
        (machine_facts("SN1", disks_gb=(960,)), "disks: 1 found, 2 expected"),
        (machine_facts("SN1", disks_gb=(960, 480)), "disk sdb: 480 GB found, 960 GB expected"),
        (
            machine_facts(
                "SN1",
                nics=(
                    ("eno1", "52:54:00:10:00:01", 25000, True),
                    ("eno2", "52:54:00:10:00:02", 0, False),
                ),
            ),
            "nic eno2: link down",
        ),
        (
            machine_facts(
                "SN1",
                nics=(
                    ("eno1", "52:54:00:10:00:01", 10000, True),
                    ("eno2", "52:54:00:10:00:02", 10000, True),
                ),
            ),
            "nics: 0 at 25 Gb/s found, 2 expected",
        ),
        (machine_facts("SN1", bios="1.9.0"), "firmware bios: 1.9.0 found, 2.1.0 expected"),
        (machine_facts("SN1", failing_disk="sda"), "disk sda: SMART health check failed"),
    ],
)
def test_each_mismatch_is_named_precisely(facts, expected):
    assert expected in messages(facts)


def test_memory_without_dimm_details_allows_for_what_the_kernel_keeps():
    facts = machine_facts("SN1")
    facts["memory"]["dimms"] = []
    assert messages(facts) == []
    facts["memory"]["total_bytes"] //= 2
    assert messages(facts) == ["memory: 254 GiB usable found, 512 GiB expected"]


def test_every_problem_says_how_to_fix_it_and_health_applies_without_a_profile():
    problems = evaluate(machine_facts("SN1", failing_disk="sdb", memory_gib=256), None)
    assert [p.check for p in problems] == ["disk:sdb"]
    assert all(p.fix for p in evaluate(machine_facts("SN1", memory_gib=64), SPEC))
