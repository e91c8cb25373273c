"""The iPXE endpoint: what a PXE-booting server is told, by what metalyard knows of its MAC."""

import pytest
from fastapi.testclient import TestClient

MAC = "52:54:00:aa:00:01"


@pytest.fixture
def ipxe(app):
    """iPXE sends no token."""
    with TestClient(app) as anonymous:
        yield anonymous


def enrol(client, serial: str, state: str, mac: str = MAC) -> None:
    body = {"serial": serial, "state": state, "interfaces": [{"name": "eno1", "mac": mac}]}
    assert client.post("/v1/assets", json=body).status_code == 201


def test_an_unknown_mac_boots_the_agent_and_is_recorded(ipxe, client):
    answer = ipxe.get("/boot/ipxe", params={"mac": MAC})
    assert answer.status_code == 200
    script = answer.text
    assert script.startswith("#!ipxe\n")
    assert "kernel http://testserver/boot/agent/vmlinuz" in script
    assert f"metalyard.url=http://testserver metalyard.mac={MAC}" in script
    assert "reboot" in script  # a missing agent is retried, not a dead end
    (request,) = client.get("/v1/boot-requests").json()["items"]
    assert (request["mac"], request["asset_id"], request["decision"]) == (MAC, None, "agent")


@pytest.mark.parametrize(
    ("state", "decision", "says"),
    [
        ("EVALUATING", "agent", "booting the agent"),
        ("SPARE", "agent", "booting the agent"),
        ("BAREMETAL", "local", "booting its local disk"),
        ("DECOMMISSIONED", "halt", "poweroff"),
    ],
)
def test_known_assets_boot_by_their_state(ipxe, client, state, decision, says):
    enrol(client, "SN-PXE", state)
    script = ipxe.get("/boot/ipxe", params={"mac": MAC.upper()}).text
    assert says in script and "SN-PXE" in script
    (request,) = client.get("/v1/boot-requests", params={"mac": MAC}).json()["items"]
    assert request["decision"] == decision and request["asset_id"] is not None


def test_agent_urls_come_from_settings(app, ipxe, settings):
    settings.agent_kernel_url = "http://images.example/agent/vmlinuz"
    script = ipxe.get("/boot/ipxe", params={"mac": MAC}).text
    assert "kernel http://images.example/agent/vmlinuz" in script


def test_a_bad_mac_is_refused_and_agent_files_are_served(ipxe, settings):
    assert ipxe.get("/boot/ipxe", params={"mac": "nope"}).status_code == 422
    missing = ipxe.get("/boot/agent/vmlinuz")
    assert missing.status_code == 404 and "put vmlinuz and initrd.img" in missing.json()["message"]
    (settings.data_dir / "agent").mkdir()
    (settings.data_dir / "agent" / "vmlinuz").write_bytes(b"kernel")
    assert ipxe.get("/boot/agent/vmlinuz").content == b"kernel"
    assert ipxe.get("/boot/agent/..%2Fsecret.key").status_code == 404
