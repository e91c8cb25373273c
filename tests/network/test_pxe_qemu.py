"""A real (virtual) machine PXE-boots: QEMU's iPXE fetches /boot/ipxe from a running
metalyard, which records the boot request and answers the agent's script."""

import threading
import time

import pytest
import uvicorn

from tests.peers.qemu import pxe_boot, require_qemu

MAC = "52:54:00:5e:00:42"


@pytest.fixture
def served_on_socket(app, tmp_path):
    """The app over HTTP on a Unix socket, the only thing the VM can reach."""
    path = tmp_path / "metalyard.sock"
    server = uvicorn.Server(uvicorn.Config(app, uds=str(path), log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield path
    server.should_exit = True
    thread.join(timeout=10)


def test_a_vm_pxe_boots_and_metalyard_records_its_boot_request(client, served_on_socket, tmp_path):
    qemu = require_qemu()
    vm = pxe_boot(qemu, tmp_path, served_on_socket, MAC)
    try:
        deadline = time.monotonic() + 90
        requests = []
        while not requests and time.monotonic() < deadline and vm.poll() is None:
            time.sleep(0.5)
            requests = client.get("/v1/boot-requests", params={"mac": MAC}).json()["items"]
        log = (tmp_path / "qemu.log").read_text()
        assert requests, f"no boot request from the VM (QEMU exit {vm.poll()}): {log[-2000:]}"
        assert requests[0]["decision"] == "agent" and requests[0]["asset_id"] is None
    finally:
        vm.kill()
        vm.wait()
