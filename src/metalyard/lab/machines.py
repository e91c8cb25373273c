"""Simulated servers: what the agent's fact collectors read on them, built from the profile
the server was ordered as plus the faults injected into it.

The machine is a `FactSource` like the real Linux one: it answers the same files and
commands (`/sys/class/dmi/id/*`, `/proc/cpuinfo`, `dmidecode -t 17`, `lsblk`, `smartctl`,
`ip -j link`, `lldpctl`, `ipmitool lan print`), so the agent runs its real collectors on it
and metalyard judges the result with its real rules.
"""

import json
import threading
from dataclasses import dataclass, field
from enum import StrEnum

from metalyard.agent.facts import (
    DMIDECODE_MEMORY,
    IP_ADDR,
    IP_LINK,
    IPMITOOL_LAN,
    LLDPCTL,
    LSBLK,
    LSCPU,
    CommandFailed,
    DictSource,
)

GIB = 1024**3
DIMM_GIB = 32
NIC_NAMES = ("eno1", "eno2")


class Fault(StrEnum):
    """What can be wrong with a delivered server, and what evaluation must then say."""

    MISSING_DIMM = "missing-dimm"
    NIC_DOWN = "nic-down"
    WRONG_CPU = "wrong-cpu"
    FAILING_DISK = "failing-disk"
    UNKNOWN_SERIAL = "unknown-serial"
    """Its serial is on no packing list: nobody could scan it in, and no order accounts
    for it."""

    @property
    def check(self) -> str:
        """The evaluation check that must name this fault."""
        return {
            Fault.MISSING_DIMM: "memory",
            Fault.NIC_DOWN: f"nic:{NIC_NAMES[-1]}",
            Fault.WRONG_CPU: "cpu",
            Fault.FAILING_DISK: "disk:sdb",
            Fault.UNKNOWN_SERIAL: "procurement",
        }[self]


@dataclass(frozen=True)
class Spec:
    """What the server was ordered as: the shape of a profile version's spec."""

    cpu_model: str = "Intel(R) Xeon(R) Gold 6338"
    sockets: int = 2
    cores_per_socket: int = 16
    memory_gib: int = 256
    disk_gb: int = 960
    disks: int = 2
    nic_gbps: int = 25
    bios: str = "2.1.0"
    manufacturer: str = "Acme"
    product: str = "R650"

    def profile(self) -> dict:
        """The profile version's spec, as `POST /v1/profiles` takes it."""
        return {
            "cpu": {"model": self.cpu_model, "count": self.sockets},
            "memory_gib": self.memory_gib,
            "disks": [{"count": self.disks, "size_gb": self.disk_gb, "kind": "ssd"}],
            "nics": [{"count": len(NIC_NAMES), "speed_gbps": self.nic_gbps}],
            "firmware": {"bios": self.bios},
        }


WRONG_CPU_MODEL = "AMD EPYC 7313 16-Core Processor"


@dataclass
class SimulatedMachine:
    """One server in a rack: its identity, where it sits, and what is wrong with it."""

    serial: str
    index: int
    rack: str
    position: int
    switch: str
    spec: Spec = field(default_factory=Spec)
    faults: set[Fault] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def macs(self) -> list[str]:
        return [_mac(self.index, port) for port in range(len(NIC_NAMES))]

    @property
    def bmc_mac(self) -> str:
        return _mac(self.index, 0xFF)

    @property
    def uuid(self) -> str:
        return f"4c4c4544-0000-4000-8000-{self.index:012x}"

    def repair(self) -> None:
        """A technician fixes the hardware; the serial is procurement's to put on a list."""
        with self._lock:
            self.faults = set()

    def source(self) -> DictSource:
        """What the agent's collectors read on this machine now."""
        with self._lock:
            faults = set(self.faults)
        return DictSource(files=self._files(faults), commands=self._commands(faults))

    def _files(self, faults: set[Fault]) -> dict[str, str]:
        spec = self.spec
        dmi = {
            "sys_vendor": spec.manufacturer,
            "product_name": spec.product,
            "product_serial": self.serial,
            "product_uuid": self.uuid,
            "bios_vendor": spec.manufacturer,
            "bios_version": spec.bios,
            "bios_date": "03/14/2026",
            "board_serial": f"MB{self.serial}",
        }
        files = {f"/sys/class/dmi/id/{name}": f"{value}\n" for name, value in dmi.items()}
        files["/proc/cpuinfo"] = _cpuinfo(self._cpu_model(faults), spec)
        usable_kib = self._dimms(faults) * DIMM_GIB * GIB * 0.98 // 1024  # the kernel keeps some
        files["/proc/meminfo"] = f"MemTotal:       {usable_kib:.0f} kB\n"
        files["/sys/class/net/lo/address"] = "00:00:00:00:00:00\n"
        for name, mac, up in self._nics(faults):
            base = f"/sys/class/net/{name}"
            files[f"{base}/address"] = f"{mac}\n"
            files[f"{base}/operstate"] = "up\n" if up else "down\n"
            files[f"{base}/speed"] = f"{spec.nic_gbps * 1000}\n" if up else "-1\n"
            files[f"{base}/device/vendor"] = "0x8086\n"
        return files

    def _commands(self, faults: set[Fault]) -> dict[str, str | BaseException]:
        spec = self.spec
        disks = [f"sd{chr(ord('a') + n)}" for n in range(spec.disks)]
        commands: dict[str, str | BaseException] = {
            " ".join(DMIDECODE_MEMORY): _dmidecode_memory(self._dimms(faults)),
            " ".join(LSCPU): json.dumps({"lscpu": []}),
            " ".join(LSBLK): json.dumps(
                {
                    "blockdevices": [
                        {
                            "name": name,
                            "size": spec.disk_gb * 10**9,
                            "model": "SAMSUNG MZ7L3960",
                            "serial": f"S{self.index:06d}{name}",
                            "rota": False,
                            "type": "disk",
                            "tran": "sata",
                        }
                        for name in disks
                    ]
                }
            ),
            " ".join(IP_LINK): json.dumps(
                [
                    {"ifname": name, "address": mac, "operstate": "UP" if up else "DOWN"}
                    for name, mac, up in self._nics(faults)
                ]
            ),
            " ".join(IP_ADDR): json.dumps([{"ifname": name} for name in NIC_NAMES]),
            " ".join(LLDPCTL): json.dumps(
                {
                    "lldp": {
                        "interface": [
                            {
                                name: {
                                    "chassis": {self.switch: {"id": {"value": self.switch}}},
                                    "port": {"id": {"value": f"Ethernet{self.position}/{port}"}},
                                }
                            }
                            for port, (name, _, up) in enumerate(self._nics(faults), start=1)
                            if up
                        ]
                    }
                }
            ),
            " ".join(IPMITOOL_LAN): (
                "IP Address Source       : DHCP Address\n"
                f"IP Address              : 10.255.{self.index // 250}.{self.index % 250 + 1}\n"
                f"MAC Address             : {self.bmc_mac}\n"
            ),
        }
        for name in disks:
            argv = ["smartctl", "-H", "-j", f"/dev/{name}"]
            failing = Fault.FAILING_DISK in faults and f"disk:{name}" == Fault.FAILING_DISK.check
            answer = json.dumps({"smart_status": {"passed": not failing}})
            # smartctl's exit status is a bit mask: 8 says the disk is failing.
            commands[" ".join(argv)] = CommandFailed(argv, 8, answer) if failing else answer
        return commands

    def _cpu_model(self, faults: set[Fault]) -> str:
        if Fault.WRONG_CPU in faults:
            return WRONG_CPU_MODEL
        return f"{self.spec.cpu_model} CPU @ 2.00GHz"

    def _dimms(self, faults: set[Fault]) -> int:
        dimms = self.spec.memory_gib // DIMM_GIB
        return dimms - 1 if Fault.MISSING_DIMM in faults else dimms

    def _nics(self, faults: set[Fault]) -> list[tuple[str, str, bool]]:
        down = Fault.NIC_DOWN.check.removeprefix("nic:") if Fault.NIC_DOWN in faults else None
        return [(name, mac, name != down) for name, mac in zip(NIC_NAMES, self.macs, strict=True)]


def _mac(index: int, port: int) -> str:
    return f"52:54:{index >> 16 & 0xFF:02x}:{index >> 8 & 0xFF:02x}:{index & 0xFF:02x}:{port:02x}"


def _cpuinfo(model: str, spec: Spec) -> str:
    """Two threads per core, as with hyper-threading on."""
    per_socket = spec.cores_per_socket
    cores = spec.sockets * per_socket
    return "\n".join(
        f"processor\t: {n}\nmodel name\t: {model}\n"
        f"physical id\t: {n % cores // per_socket}\ncore id\t\t: {n % per_socket}\n"
        for n in range(2 * cores)
    )


def _dmidecode_memory(dimms: int) -> str:
    blocks = ["# dmidecode 3.4\n"]
    for slot in range(dimms):
        blocks.append(
            f"Handle 0x{0x1100 + slot:04X}, DMI type 17, 92 bytes\nMemory Device\n"
            f"\tSize: {DIMM_GIB} GB\n\tLocator: DIMM_{chr(ord('A') + slot // 2)}{slot % 2 + 1}\n"
            "\tType: DDR4\n\tSpeed: 3200 MT/s\n\tManufacturer: Samsung\n"
        )
    return "\n".join(blocks)
