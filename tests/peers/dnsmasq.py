"""dnsmasq on one end of a veth pair, busybox's udhcpc on the other, each end in a network
namespace of its own that the test creates (and deletes): no traffic leaves them.

Namespace names carry the test process's pid and a counter, so xdist workers never collide;
the veth ends are created inside the namespaces, so their names are the same in every pair.
"""

import itertools
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SERVER_IF = "s0"
CLIENT_IF = "c0"
TOOLS = {"ip": "iproute2", "dnsmasq": "dnsmasq-base", "udhcpc": "udhcpc", "busybox": "busybox"}

_pairs = itertools.count()

CLIENT_SCRIPT = """#!/bin/sh
# udhcpc calls this with the event as $1; a lease sets $ip, $lease and $boot_file.
[ "$1" = bound ] && echo "lease $ip $lease $boot_file"
exit 0
"""


def missing() -> str | None:
    """Why this peer cannot run on this machine, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool, package in TOOLS.items():
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install {package})"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"`ip netns` does not work here: {probe.stderr.strip()}"
    return None


@dataclass(frozen=True)
class Lease:
    """What udhcpc was given."""

    address: str
    seconds: int
    boot_file: str


class DhcpPair:
    """Two namespaces joined by a veth: the server end holds `server_addresses` (CIDR)."""

    def __init__(self, root: Path, server_addresses: list[str]) -> None:
        n = next(_pairs)
        self.server = f"metalyard-dhcp-s-{os.getpid()}-{n}"
        self.client = f"metalyard-dhcp-c-{os.getpid()}-{n}"
        self.root = root
        self.server_addresses = server_addresses
        self.script = root / "udhcpc.sh"
        self.log = root / "dnsmasq.log"
        self.dnsmasq: subprocess.Popen | None = None

    def create(self) -> "DhcpPair":
        _ip("netns", "add", self.server)
        try:
            _ip("netns", "add", self.client)
            _ip(
                "link", "add", SERVER_IF, "netns", self.server, "type", "veth",
                "peer", "name", CLIENT_IF, "netns", self.client,
            )  # fmt: skip
            for address in self.server_addresses:
                _ip("-n", self.server, "addr", "add", address, "dev", SERVER_IF)
            _ip("-n", self.server, "link", "set", SERVER_IF, "up")
            _ip("-n", self.client, "link", "set", CLIENT_IF, "up")
        except BaseException:
            self.delete()
            raise
        self.script.write_text(CLIENT_SCRIPT)
        self.script.chmod(0o755)
        return self

    def start_dnsmasq(self, config: Path, pid_file: Path, timeout: float = 10) -> int:
        """dnsmasq in the server namespace with `config`; its pid once it serves."""
        command = [
            "ip", "netns", "exec", self.server, "dnsmasq", f"--conf-file={config}",
            "--keep-in-foreground", f"--pid-file={pid_file}", f"--log-facility={self.log}",
            "--log-dhcp",
        ]  # fmt: skip
        self.dnsmasq = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.dnsmasq.poll() is not None:
                raise RuntimeError(f"dnsmasq exited: {self.dnsmasq.stderr.read()}")
            if self._pid(pid_file) == self.dnsmasq.pid and "DHCP, " in self.log_text():
                return self.dnsmasq.pid
            time.sleep(0.02)
        raise RuntimeError(f"dnsmasq did not start: {self.log_text()[-2000:]}")

    @staticmethod
    def _pid(pid_file: Path) -> int | None:
        try:
            return int(pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def lease(self, mac: str, *options: str) -> Lease | None:
        """One DHCP exchange as `mac` (udhcpc `-x` options like `0x5d:0007`), or None when
        no server answered."""
        _ip("-n", self.client, "link", "set", CLIENT_IF, "address", mac)
        command = [
            "ip", "netns", "exec", self.client, "udhcpc", "-i", CLIENT_IF, "-f", "-q", "-n",
            "-t", "3", "-T", "1", "-s", str(self.script),
        ]  # fmt: skip
        for option in options:
            command += ["-x", option]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        for line in done.stdout.splitlines():
            if line.startswith("lease "):
                fields = line.split(" ", 3)
                return Lease(fields[1], int(fields[2]), fields[3] if len(fields) > 3 else "")
        return None

    def client_run(self, *command: str) -> subprocess.CompletedProcess:
        """A command in the client namespace."""
        return subprocess.run(
            ["ip", "netns", "exec", self.client, *command],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def stop_dnsmasq(self) -> None:
        if self.dnsmasq is not None and self.dnsmasq.poll() is None:
            self.dnsmasq.terminate()
            try:
                self.dnsmasq.wait(10)
            except subprocess.TimeoutExpired:
                self.dnsmasq.kill()
                self.dnsmasq.wait(10)

    def delete(self) -> None:
        """Stop dnsmasq and delete both namespaces (and the veth with them)."""
        self.stop_dnsmasq()
        for namespace in (self.server, self.client):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
