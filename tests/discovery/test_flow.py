"""Discovery end to end on the orchestrator: boot → match → evaluate → SPARE and power off,
quarantine and the way back, unknown servers, re-walk idempotence, the agent's token."""

import time

import pytest
from fastapi.testclient import TestClient

from metalyard.drivers import PowerState
from metalyard.drivers.fake import FLEET
from tests.discovery.facts import machine_facts
from tests.procurement.test_orders import approved_order

pytestmark = pytest.mark.usefixtures("discovery_worker")


@pytest.fixture
def other(app, tokens):
    with TestClient(app, headers={"Authorization": f"Bearer {tokens.other_write}"}) as c:
        yield c


@pytest.fixture
def ordered(client, other):
    """An order of 3 acme/r750 placed with the vendor, SN-D1..3 on its packing list."""
    number = approved_order(client, other, quantity=3)
    client.post(f"/v1/purchase-orders/{number}/transition", json={"to": "ordered"})
    packing = "serial\nSN-D1\nSN-D2\nSN-D3\n"
    client.post(
        f"/v1/purchase-orders/{number}/serials",
        content=packing,
        headers={"Content-Type": "text/csv"},
    )
    return number


def racked(client, *serials: str, **fields) -> None:
    """Site-ops scan the servers in at racking, with the BMC they are reached by."""
    for serial in serials:
        body = {"serial": serial, "bmc_driver": "fake", **fields}
        assert client.post("/v1/assets", json=body).status_code == 201


def with_bmc(facts: dict, address: str) -> dict:
    """The facts with the BMC address `ipmitool lan print` read in-band."""
    return {**facts, "bmc": {"ip_address": address, "ip_source": "dhcp"}}


def power_off_bean(client, serial: str) -> dict:
    (run,) = client.get("/v1/runs", params={"subject": f"asset:{serial}"}).json()["items"]
    return next(bean for bean in run["beans"] if bean["name"] == "power_off") | {"run": run}


def boot(agent, facts) -> dict:
    answer = agent.post("/v1/discovery/boot", json={"facts": facts, "agent_port": 9100})
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_for_state(client, serial: str, state: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        asset = client.get(f"/v1/assets/{serial}").json()
        runs = client.get("/v1/runs", params={"subject": f"asset:{serial}"}).json()["items"]
        if asset["state"] == state and all(run["state"] != "RUNNING" for run in runs):
            return asset
        time.sleep(0.05)
    why = client.get(f"/v1/assets/{serial}/why").json()
    raise AssertionError(f"{serial} is {asset['state']}, not {state}: {why}")


def test_a_server_as_ordered_becomes_spare_is_powered_off_and_counted(client, agent, ordered):
    racked(client, "SN-D1")
    FLEET.machine("SN-D1").power = PowerState.ON
    answer = boot(agent, machine_facts("SN-D1"))
    assert answer["serial"] == "SN-D1" and answer["token"]
    wait_for_state(client, "SN-D1", "SPARE")
    assert FLEET.machine("SN-D1").power is PowerState.OFF
    assert power_off_bean(client, "SN-D1")["state"] == "DONE"
    whoami = agent.get("/v1/discovery/whoami", headers={"X-Agent-Token": answer["token"]})
    assert whoami.json()["instruction"] == {"action": "poweroff", "seconds": 0}
    line = client.get(f"/v1/purchase-orders/{ordered}").json()["lines"][0]
    assert (line["discovered"], line["passed"]) == (1, 1)
    history = client.get("/v1/assets/SN-D1/history").json()["items"]
    assert [h["to_state"] for h in history] == ["DISCOVERED", "EVALUATING", "SPARE"]


def test_a_faulty_server_is_quarantined_with_reasons_and_comes_back_when_clean(
    client, agent, ordered
):
    racked(client, "SN-D2")
    boot(agent, machine_facts("SN-D2", memory_gib=256, disks_gb=(960,)))
    asset = wait_for_state(client, "SN-D2", "QUARANTINED")
    assert asset["tags"]["error.memory"] == "memory: 256 GiB found, 512 GiB expected"
    assert asset["tags"]["error.disks"] == "disks: 1 found, 2 expected"
    reasons = client.get("/v1/assets/SN-D2/why").json()["reasons"]
    assert any(r.startswith("memory: 256 GiB found, 512 GiB expected (fix:") for r in reasons)
    answer = boot(agent, machine_facts("SN-D2", memory_gib=256, disks_gb=(960,)))
    assert {p["check"] for p in answer["problems"]} == {"memory", "disks"}

    boot(agent, machine_facts("SN-D2"))  # DIMMs reseated, disk fitted, rebooted
    asset = wait_for_state(client, "SN-D2", "SPARE")
    assert not any(key.startswith("error.") for key in asset["tags"])
    assert client.get("/v1/assets/SN-D2/why").json()["reasons"] == [
        "nothing blocks it: it is SPARE"
    ]


def test_a_second_boot_of_a_spare_changes_nothing(client, agent, ordered):
    boot(agent, machine_facts("SN-D3"))
    before = wait_for_state(client, "SN-D3", "SPARE")
    boot(agent, machine_facts("SN-D3"))
    after = wait_for_state(client, "SN-D3", "SPARE")
    assert after["version"] == before["version"]
    history = client.get("/v1/assets/SN-D3/history").json()["items"]
    assert len(history) == 3  # DISCOVERED, EVALUATING, SPARE: nothing more
    line = client.get(f"/v1/purchase-orders/{ordered}").json()["lines"][0]
    assert line["discovered"] == 1


def test_a_server_nobody_ordered_is_raised_and_not_adopted(client, agent, ordered):
    boot(agent, machine_facts("SN-STRANGER"))
    asset = wait_for_state(client, "SN-STRANGER", "QUARANTINED")
    assert (
        asset["tags"]["error.procurement"]
        == "procurement: unknown asset, no purchase order expects it"
    )
    report = client.get("/v1/procurement/report").json()
    assert "SN-STRANGER" in report["regions"][0]["unknown_assets"]
    listed = {row["serial"]: row for row in client.get("/v1/discovery").json()}
    assert (
        listed["SN-STRANGER"]["state"] == "QUARANTINED" and listed["SN-STRANGER"]["problems"] == 1
    )


def test_a_known_asset_is_recognised_by_its_mac(client, agent, ordered):
    client.post(
        "/v1/assets",
        json={"serial": "SN-D1", "interfaces": [{"name": "eno1", "mac": "52:54:00:10:00:01"}]},
    )
    facts = machine_facts("")  # no serial readable from DMI
    answer = boot(agent, facts)
    assert answer["serial"] == "SN-D1"


def test_the_agent_protocol_refuses_strangers(app, agent, settings):
    assert agent.get("/v1/discovery/whoami").status_code == 401
    assert agent.get("/v1/discovery/whoami", headers={"X-Agent-Token": "forged"}).status_code == 401
    settings.discovery_networks = ["10.99.0.0/16"]
    refused = agent.post("/v1/discovery/boot", json={"facts": machine_facts("SN-X")})
    assert refused.status_code == 403 and "not on a discovery network" in refused.json()["message"]


def test_three_ordered_servers_discovered_through_the_flow_close_their_order(
    client, agent, ordered
):
    for n, serial in enumerate(("SN-D1", "SN-D2", "SN-D3")):
        nics = (
            (f"eno{n}a", f"52:54:00:20:00:{n}1", 25000, True),
            (f"eno{n}b", f"52:54:00:20:00:{n}2", 25000, True),
        )
        boot(agent, machine_facts(serial, nics=nics))
    for serial in ("SN-D1", "SN-D2", "SN-D3"):
        wait_for_state(client, serial, "SPARE")
    assert client.get(f"/v1/purchase-orders/{ordered}").json()["state"] == "closed"
    (row,) = client.get("/v1/procurement/report").json()["orders"]
    assert (row["state"], row["discovered"], row["passed"], row["spare"]) == ("closed", 3, 3, 3)


def test_a_spare_with_no_bmc_on_record_stays_on_and_says_what_to_set(client, agent, ordered):
    boot(agent, machine_facts("SN-D1"))  # not scanned in; its agent reads no BMC address
    asset = wait_for_state(client, "SN-D1", "SPARE")
    assert {i["mac"] for i in asset["interfaces"]} == {"52:54:00:10:00:01", "52:54:00:10:00:02"}
    assert asset["bmc_driver"] is None and asset["bmc_address"] == ""
    bean = power_off_bean(client, "SN-D1")
    assert bean["run"]["state"] == "SUCCEEDED"
    assert bean["state"] == "SKIPPED"
    assert bean["reason"].startswith(
        "left it on: asset 'SN-D1' has no BMC driver, address or credential on record"
    )
    assert (
        "`metalyard asset update SN-D1 --bmc-driver … --bmc-address … --bmc-credential …`"
        in bean["reason"]
    )
    (reason,) = client.get("/v1/assets/SN-D1/why").json()["reasons"]
    assert reason == f"evaluation run {bean['run']['id']} {bean['reason']}"


def test_the_bmc_address_the_agent_reads_is_recorded_with_the_ipmi_driver(client, agent, ordered):
    boot(agent, with_bmc(machine_facts("SN-D1"), "10.255.0.7"))
    asset = wait_for_state(client, "SN-D1", "SPARE")
    assert (asset["bmc_driver"], asset["bmc_address"]) == ("ipmi", "10.255.0.7")
    assert asset["bmc_credential"] == ""
    assert "discovery.bmc-address" not in asset["tags"]
    bean = power_off_bean(client, "SN-D1")
    assert bean["state"] == "SKIPPED"
    assert bean["reason"] == (
        "left it on: asset 'SN-D1' has no BMC credential; set one with "
        "`metalyard asset update SN-D1 --bmc-credential …`"
    )

    racked(client, "SN-D2", bmc_driver="redfish")  # the driver is known, not the address
    boot(agent, with_bmc(machine_facts("SN-D2"), "fd00::8"))
    asset = wait_for_state(client, "SN-D2", "SPARE")
    assert (asset["bmc_driver"], asset["bmc_address"]) == ("redfish", "https://[fd00::8]")


def test_an_agent_cannot_give_an_asset_another_assets_bmc_or_one_in_service(client, agent, ordered):
    """The agent speaks for a server not yet trusted: what it reads is learned only in
    discovery, and never onto another server's BMC."""
    racked(client, "SN-D2", bmc_driver="ipmi", bmc_address="10.0.0.5")
    boot(agent, with_bmc(machine_facts("SN-D1"), "10.0.0.5"))
    asset = wait_for_state(client, "SN-D1", "SPARE")
    assert (asset["bmc_driver"], asset["bmc_address"]) == (None, "")
    assert asset["tags"]["discovery.bmc-address"] == (
        "the agent reads 10.0.0.5, where asset SN-D2's BMC is: not recorded"
    )

    racked(client, "SN-D3", bmc_driver=None)
    for state in ("EVALUATING", "SPARE", "PROVISIONING", "BAREMETAL"):
        moved = client.post("/v1/assets/SN-D3/transition", json={"to": state, "reason": "x"})
        assert moved.status_code == 200, moved.text
    boot(agent, with_bmc(machine_facts("SN-D3"), "10.0.0.7"))
    assert client.get("/v1/assets/SN-D3").json()["bmc_address"] == ""


@pytest.mark.parametrize("reported", ["0.0.0.0", "", "127.0.0.1", "169.254.0.9", "not an ip"])
def test_a_bmc_address_no_bmc_is_reached_at_is_not_recorded(client, agent, reported):
    answer = boot(agent, with_bmc(machine_facts("SN-X1"), reported))
    asset = client.get(f"/v1/assets/{answer['serial']}").json()
    assert (asset["bmc_driver"], asset["bmc_address"]) == (None, "")


def test_a_bmc_address_on_record_is_never_replaced_a_different_one_is_tagged(
    client, agent, ordered
):
    racked(client, "SN-D1", bmc_driver="ipmi", bmc_address="10.0.0.5:623")
    token = boot(agent, with_bmc(machine_facts("SN-D1"), "10.0.0.5"))["token"]
    assert "discovery.bmc-address" not in wait_for_state(client, "SN-D1", "SPARE")["tags"]
    reported = agent.post(
        "/v1/discovery/report",
        json={"facts": with_bmc(machine_facts("SN-D1"), "10.0.0.9")},
        headers={"X-Agent-Token": token},
    )
    assert reported.status_code == 200, reported.text
    asset = wait_for_state(client, "SN-D1", "SPARE")
    assert (asset["bmc_driver"], asset["bmc_address"]) == ("ipmi", "10.0.0.5:623")
    assert asset["tags"]["discovery.bmc-address"] == (
        "the agent reads 10.0.0.9; the BMC address on record is at 10.0.0.5"
    )

    client.patch("/v1/assets/SN-D1", json={"bmc_address": "10.0.0.9"}).raise_for_status()
    boot(agent, with_bmc(machine_facts("SN-D1"), "10.0.0.9"))  # the operator's fix agrees
    asset = client.get("/v1/assets/SN-D1").json()
    assert asset["bmc_address"] == "10.0.0.9"
    assert "discovery.bmc-address" not in asset["tags"]

    racked(client, "SN-D2")  # the fake driver is no network address to compare
    boot(agent, with_bmc(machine_facts("SN-D2"), "10.0.0.10"))
    asset = client.get("/v1/assets/SN-D2").json()
    assert (asset["bmc_driver"], asset["bmc_address"]) == ("fake", "")
    assert "discovery.bmc-address" not in asset["tags"]


def test_a_learned_address_gets_no_credential_outside_its_networks(client, admin, agent, ordered):
    credential = {
        "name": "fleet", "username": "root", "password": "calvin", "networks": ["10.0.0.0/16"],
    }  # fmt: skip
    admin.post("/v1/bmc-credentials", json=credential).raise_for_status()
    racked(client, "SN-D1", bmc_driver=None, bmc_credential="fleet")
    boot(agent, with_bmc(machine_facts("SN-D1"), "10.255.0.7"))
    wait_for_state(client, "SN-D1", "SPARE")
    bean = power_off_bean(client, "SN-D1")
    assert bean["run"]["state"] == "FAILED"
    assert "10.255.0.7 is outside the networks BMC credential 'fleet'" in bean["reason"]
