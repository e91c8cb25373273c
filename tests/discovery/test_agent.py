"""The real agent on this machine against a running metalyard: its true facts arrive, the
flow evaluates them, and the agent is told what to do."""

import os
import time
from pathlib import Path

import pytest

from metalyard.agent import LinuxSource
from metalyard.agent.runtime import Agent
from tests.peers.postgres import free_port

pytestmark = pytest.mark.usefixtures("discovery_worker")


def mem_total_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal")


def test_the_agent_reports_this_machines_true_facts_and_follows_instructions(live_server, client):
    powered_off = []
    agent = Agent(
        live_server,
        LinuxSource(),
        port=free_port(),
        allowed_networks=["127.0.0.1/32"],
        poll_seconds=0.2,
        power_off=lambda: powered_off.append(True),
        sleep=lambda seconds: time.sleep(min(seconds, 0.2)),
    )
    steps = [agent.run_once().action for _ in range(2)]
    assert steps[0] == "boot"
    serial = agent.status.serial
    asset = client.get(f"/v1/assets/{serial}").json()
    assert asset["facts"]["memory"]["total_bytes"] == mem_total_bytes()
    assert asset["facts"]["cpu"]["threads"] == os.cpu_count()

    # Nobody ordered this machine: it is raised and quarantined, with the reason on the
    # agent's console.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        agent.run_once()
        if agent.status.state == "QUARANTINED":
            break
    assert agent.status.state == "QUARANTINED"
    assert any("unknown asset" in p.message for p in agent.status.problems)
    assert not powered_off
