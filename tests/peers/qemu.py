"""A virtual machine that PXE-boots with QEMU's iPXE ROM, isolated from every network.

User-mode networking with `restrict=on` gives the guest DHCP and TFTP from QEMU itself and
nothing else; one address (10.0.2.100:80) is forwarded to a Unix socket where the test
serves metalyard. Debian's iPXE ROM prints to VGA only, so tests assert on what the server
received, never on the console.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
METALYARD = "10.0.2.100"


def require_qemu() -> str:
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        if os.environ.get("CI"):
            pytest.fail("qemu-system-x86_64 is not installed; .ci/run must install it")
        pytest.skip("QEMU is not installed (apt-get install qemu-system-x86 ipxe-qemu)")
    return qemu


def pxe_boot(qemu: str, directory: Path, socket_path: Path, mac: str) -> subprocess.Popen:
    """Start a VM whose NIC has `mac`; iPXE chains to metalyard's /boot/ipxe for it."""
    tftp = directory / "tftp"
    tftp.mkdir(exist_ok=True)
    (tftp / "boot.ipxe").write_text(
        f"#!ipxe\ndhcp\nchain http://{METALYARD}/boot/ipxe?mac=${{net0/mac}}\n"
    )
    relay = f"{sys.executable} {HERE / 'uds_relay.py'} {socket_path}"
    netdev = (
        f"user,id=n0,restrict=on,tftp={tftp},bootfile=boot.ipxe,"
        f"guestfwd=tcp:{METALYARD}:80-cmd:{relay}"
    )
    return subprocess.Popen(
        [
            qemu,
            "-accel",
            "tcg",
            "-display",
            "none",
            "-no-reboot",
            "-m",
            "256",
            "-netdev",
            netdev,
            "-device",
            f"virtio-net-pci,netdev=n0,mac={mac}",
            "-boot",
            "n",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(directory / "qemu.log").open("w"),
    )
