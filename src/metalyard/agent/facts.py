"""What the machine is: hardware facts read through a replaceable source.

A fact that cannot be read is ``None`` (or the whole record is) and ``Facts.missing`` holds
the reason under the dotted path of that value (``system.serial``, ``disks.sda.healthy``,
``nics.eth0.speed_mbps``, ``lldp``). Collection never raises: a server booted into the agent
image has nobody to read a traceback, and a partial report is still worth sending.

Standard library only: this module runs in a minimal PXE image.
"""

from __future__ import annotations

import abc
import errno
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Self, TypeVar

DEFAULT_TIMEOUT = 10.0
"""Seconds a command may run; a hung smartctl or ipmitool must not stall the report."""

DMI_DIR = "/sys/class/dmi/id"
NET_DIR = "/sys/class/net"
LSBLK = ["lsblk", "-J", "-b", "-d", "-o", "NAME,SIZE,MODEL,SERIAL,ROTA,TYPE,TRAN"]
IP_LINK = ["ip", "-j", "-d", "link", "show"]
IP_ADDR = ["ip", "-j", "addr", "show"]
LSCPU = ["lscpu", "-J"]
DMIDECODE_MEMORY = ["dmidecode", "-t", "17"]
LLDPCTL = ["lldpctl", "-f", "json"]
IPMITOOL_LAN = ["ipmitool", "lan", "print"]


# --- errors -----------------------------------------------------------------------------


class SourceError(Exception):
    """A source could not deliver a command's output; ``str(error)`` is the reported reason.

    Unreadable files raise ``OSError`` (``FileNotFoundError``, ``PermissionError``) instead,
    as ``open`` does.
    """


class CommandNotFound(SourceError):
    def __init__(self, command: str) -> None:
        super().__init__(f"{command} not installed")
        self.command = command


class CommandTimeout(SourceError):
    def __init__(self, argv: Sequence[str], timeout: float) -> None:
        super().__init__(f"command timed out after {timeout:g} s: {' '.join(argv)}")
        self.argv = list(argv)
        self.timeout = timeout


class CommandFailed(SourceError):
    """The command exited non-zero.

    Its stdout is kept: smartctl reports a failing disk through its exit status and still
    prints a complete answer.
    """

    def __init__(
        self, argv: Sequence[str], returncode: int, stdout: str = "", stderr: str = ""
    ) -> None:
        detail = _first_line(stderr) or _first_line(stdout)
        message = f"{' '.join(argv)} exited {returncode}"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


# --- sources ----------------------------------------------------------------------------


class FactSource(abc.ABC):
    """Where facts come from: the real machine, or a simulated one (the lab, tests)."""

    @abc.abstractmethod
    def read_file(self, path: str) -> str:
        """Return the file's text; raise ``OSError`` if it cannot be read."""

    @abc.abstractmethod
    def run(self, argv: Sequence[str]) -> str:
        """Return the command's stdout; raise CommandNotFound, CommandTimeout or CommandFailed."""

    @abc.abstractmethod
    def list_dir(self, path: str) -> list[str]:
        """Return the entry names in a directory; raise ``OSError`` if it cannot be listed."""


# dmidecode, smartctl and ipmitool live in sbin, which a non-root PATH often lacks.
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


class LinuxSource(FactSource):
    """The machine this process runs on. Commands run without a shell, under a timeout."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        path = os.environ.get("PATH", os.defpath).split(os.pathsep)
        self._path = os.pathsep.join([*path, *(d for d in _SBIN if d not in path)])
        # The parsers read the C locale's output.
        self._env = {**os.environ, "LC_ALL": "C"}

    def read_file(self, path: str) -> str:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def list_dir(self, path: str) -> list[str]:
        return sorted(os.listdir(path))

    def run(self, argv: Sequence[str]) -> str:
        executable = shutil.which(argv[0], path=self._path)
        if executable is None:
            raise CommandNotFound(argv[0])
        try:
            proc = subprocess.run(
                [executable, *argv[1:]],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                env=self._env,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise CommandTimeout(argv, self.timeout) from None
        except OSError as exc:
            raise CommandFailed(argv, 126, stderr=str(exc)) from exc
        if proc.returncode != 0:
            raise CommandFailed(argv, proc.returncode, proc.stdout, proc.stderr)
        return proc.stdout


class DictSource(FactSource):
    """A machine described by its files and command outputs (keyed by the space-joined argv).

    A value that is an exception is raised instead of returned. Directories are implied by
    the paths below them. A command whose program appears in no key is not installed.
    """

    def __init__(
        self,
        files: Mapping[str, str | BaseException] | None = None,
        commands: Mapping[str, str | BaseException] | None = None,
    ) -> None:
        self.files = dict(files or {})
        self.commands = dict(commands or {})

    def read_file(self, path: str) -> str:
        if path not in self.files:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        return _answer(self.files[path])

    def list_dir(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        names = {p[len(prefix) :].split("/")[0] for p in self.files if p.startswith(prefix)}
        if not names:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        return sorted(names)

    def run(self, argv: Sequence[str]) -> str:
        key = " ".join(argv)
        if key in self.commands:
            return _answer(self.commands[key])
        if any(k.split(" ")[0] == argv[0] for k in self.commands):
            raise CommandFailed(argv, 1, stderr="no output recorded for this command")
        raise CommandNotFound(argv[0])


def _answer(value: str | BaseException) -> str:
    if isinstance(value, BaseException):
        raise value
    return value


# --- facts ------------------------------------------------------------------------------


class _Record:
    """JSON-ready dataclass; ``from_dict`` ignores unknown keys so that a newer agent can
    report to an older control plane."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class SystemFacts(_Record):
    """The chassis as SMBIOS describes it."""

    manufacturer: str | None = None
    product: str | None = None
    serial: str | None = None
    uuid: str | None = None
    bios_vendor: str | None = None
    bios_version: str | None = None
    bios_date: str | None = None
    board_serial: str | None = None


@dataclass
class CpuFacts(_Record):
    model: str | None = None
    sockets: int | None = None
    cores: int | None = None
    """Physical cores over all sockets."""
    threads: int | None = None
    """Logical CPUs online."""


@dataclass
class Dimm(_Record):
    """One installed memory module (SMBIOS type 17); empty slots are not listed."""

    locator: str | None = None
    bank_locator: str | None = None
    size_bytes: int | None = None
    type: str | None = None
    speed_mts: int | None = None
    manufacturer: str | None = None
    serial: str | None = None
    part_number: str | None = None


@dataclass
class MemoryFacts(_Record):
    total_bytes: int | None = None
    """What the kernel can use (MemTotal), a little less than the sum of the DIMMs."""
    dimms: list[Dimm] | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        dimms = data.get("dimms")
        return cls(
            total_bytes=data.get("total_bytes"),
            dimms=None if dimms is None else [Dimm.from_dict(d) for d in dimms],
        )


@dataclass
class Disk(_Record):
    """A whole block device; model, serial and transport are None where the device has none."""

    name: str
    path: str
    size_bytes: int | None = None
    model: str | None = None
    serial: str | None = None
    rotational: bool | None = None
    transport: str | None = None
    healthy: bool | None = None
    """SMART overall health: True passed, False failing, None unknown (see ``missing``)."""


@dataclass
class Nic(_Record):
    """A physical network interface (one backed by a device, not veth, bridge or bond)."""

    name: str
    mac: str | None = None
    """The burned-in MAC, the one PXE and DHCP see, even when a bond has changed it."""
    link_up: bool | None = None
    speed_mbps: int | None = None
    vlan_ids: list[int] | None = None
    """VLANs of the sub-interfaces configured on top of this one."""
    ipv4: list[str] | None = None
    ipv6: list[str] | None = None


@dataclass
class LldpNeighbour(_Record):
    """The switch port at the other end of a cable, as it announces itself."""

    interface: str
    switch_name: str | None = None
    switch_id: str | None = None
    switch_mgmt_ip: str | None = None
    port_id: str | None = None
    port_description: str | None = None
    vlan_id: int | None = None
    """The port's native VLAN if announced, else the first one announced."""


@dataclass
class Bmc(_Record):
    """The BMC's LAN settings as the host sees them through IPMI."""

    ip_address: str | None = None
    ip_source: str | None = None
    """``static``, ``dhcp``, ``bios``, ``other``, or the raw text for anything else."""
    mac: str | None = None
    netmask: str | None = None
    gateway: str | None = None
    vlan_id: int | None = None


@dataclass
class Facts(_Record):
    system: SystemFacts = field(default_factory=SystemFacts)
    cpu: CpuFacts = field(default_factory=CpuFacts)
    memory: MemoryFacts = field(default_factory=MemoryFacts)
    disks: list[Disk] | None = None
    nics: list[Nic] | None = None
    lldp: list[LldpNeighbour] | None = None
    bmc: Bmc | None = None
    missing: dict[str, str] = field(default_factory=dict)
    """Dotted path of each fact that could not be read → why."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        bmc = data.get("bmc")
        return cls(
            system=SystemFacts.from_dict(data.get("system") or {}),
            cpu=CpuFacts.from_dict(data.get("cpu") or {}),
            memory=MemoryFacts.from_dict(data.get("memory") or {}),
            disks=_many(Disk, data.get("disks")),
            nics=_many(Nic, data.get("nics")),
            lldp=_many(LldpNeighbour, data.get("lldp")),
            bmc=None if bmc is None else Bmc.from_dict(bmc),
            missing=dict(data.get("missing") or {}),
        )


R = TypeVar("R", bound=_Record)


def _many(cls: type[R], items: Sequence[Mapping[str, Any]] | None) -> list[R] | None:
    return None if items is None else [cls.from_dict(item) for item in items]


# --- parsers: text in, values out -------------------------------------------------------

# Values vendors leave in SMBIOS fields they never filled, and lscpu's "not known".
_PLACEHOLDERS = frozenset(
    {
        "",
        "-",
        "n/a",
        "none",
        "unknown",
        "not specified",
        "not provided",
        "not applicable",
        "not available",
        "not installed",
        "no dimm",
        "default string",
        "to be filled by o.e.m.",
        "system manufacturer",
        "system product name",
        "system serial number",
        "0123456789",
    }
)


def clean(value: object) -> str | None:
    """Strip a reported string; None for nothing or a vendor placeholder."""
    if value is None:
        return None
    text = str(value).strip()
    return None if text.lower() in _PLACEHOLDERS else text


def _int(value: object) -> int | None:
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isdigit() else None


def _bool(value: object) -> bool | None:
    # lsblk before util-linux 2.33 prints "0"/"1" strings, later ones JSON booleans.
    if isinstance(value, bool):
        return value
    return {"1": True, "0": False}.get(str(value).strip())


def parse_meminfo(text: str) -> int:
    """Bytes of MemTotal in ``/proc/meminfo``."""
    match = re.search(r"^MemTotal:\s+(\d+)\s*kB", text, re.MULTILINE)
    if match is None:
        raise ValueError("no MemTotal line")
    return int(match.group(1)) * 1024


def parse_cpuinfo(text: str) -> CpuFacts:
    """CPU facts from ``/proc/cpuinfo``; None where the architecture does not say (ARM)."""
    processors: list[dict[str, str]] = []
    for block in re.split(r"\n\s*\n", text):
        entry = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                entry[key.strip()] = value.strip()
        if "processor" in entry:
            processors.append(entry)
    ids = [(p.get("physical id"), p.get("core id")) for p in processors]
    has_sockets = bool(ids) and all(s is not None for s, _ in ids)
    has_cores = has_sockets and all(c is not None for _, c in ids)
    return CpuFacts(
        model=next((m for p in processors if (m := clean(p.get("model name")))), None),
        sockets=len({s for s, _ in ids}) if has_sockets else None,
        cores=len(set(ids)) if has_cores else None,
        threads=len(processors) or None,
    )


def parse_lscpu(text: str) -> CpuFacts:
    """CPU facts from ``lscpu -J`` (flat before util-linux 2.38, nested in children after)."""
    values: dict[str, str] = {}

    def walk(entries: Sequence[Mapping[str, Any]]) -> None:
        for entry in entries:
            values.setdefault(str(entry["field"]).strip().rstrip(":"), entry.get("data"))
            walk(entry.get("children") or [])

    walk(json.loads(text)["lscpu"])
    sockets = _int(values.get("Socket(s)"))
    per_socket = _int(values.get("Core(s) per socket"))
    return CpuFacts(
        model=clean(values.get("Model name")),
        sockets=sockets,
        cores=sockets * per_socket if sockets and per_socket else None,
        threads=_int(values.get("CPU(s)")),
    )


def parse_dmidecode_string(text: str) -> str | None:
    """The value printed by ``dmidecode -s KEYWORD`` (comment lines skipped)."""
    lines = [line.strip() for line in text.splitlines() if not line.startswith("#")]
    return next((line for line in lines if line), None)


def _dmidecode_blocks(text: str, title: str) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Handle "):
            current = None
            if i + 1 < len(lines) and lines[i + 1].strip() == title:
                current = {}
                blocks.append(current)
        elif current is not None and line.startswith("\t") and not line.startswith("\t\t"):
            key, sep, value = line.strip().partition(":")
            if sep:
                current[key.strip()] = value.strip()
    return blocks


# dmidecode's units are binary: "16 GB" is 16 GiB.
_UNITS = {"bytes": 1, "kB": 1 << 10, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def _dmi_size(text: str | None) -> int | None:
    match = re.fullmatch(r"(\d+)\s*(bytes|kB|KB|MB|GB|TB)", (text or "").strip())
    if match is None:
        return None
    return int(match.group(1)) * _UNITS[match.group(2)] or None


def _dmi_speed(text: str | None) -> int | None:
    # Older dmidecode prints MHz where it means transfers per second.
    match = re.fullmatch(r"(\d+)\s*(MT/s|MHz)", (text or "").strip())
    return int(match.group(1)) if match else None


def parse_dmidecode_memory(text: str) -> list[Dimm]:
    """Installed DIMMs from ``dmidecode -t 17``."""
    blocks = _dmidecode_blocks(text, "Memory Device")
    if not blocks:
        # dmidecode explains an absent SMBIOS table in comment lines after its version line.
        notes = [
            line.lstrip("#").strip()
            for line in text.splitlines()
            if line.startswith("#") and not re.match(r"#\s*dmidecode \d", line)
        ]
        reason = "no Memory Device entries"
        raise ValueError(f"{reason}: {' '.join(notes)}" if notes else reason)
    dimms = []
    for block in blocks:
        size = _dmi_size(block.get("Size"))
        if size is None:  # "No Module Installed"
            continue
        dimms.append(
            Dimm(
                locator=clean(block.get("Locator")),
                bank_locator=clean(block.get("Bank Locator")),
                size_bytes=size,
                type=clean(block.get("Type")),
                speed_mts=_dmi_speed(block.get("Speed")),
                manufacturer=clean(block.get("Manufacturer")),
                serial=clean(block.get("Serial Number")),
                part_number=clean(block.get("Part Number")),
            )
        )
    return dimms


# zram is swap in memory; loop and ram devices are files and RAM disks, never hardware.
_NOT_HARDWARE = ("loop", "ram", "zram")


def parse_lsblk(text: str) -> list[Disk]:
    """Whole hardware disks from ``lsblk -J -b -d -o NAME,SIZE,MODEL,SERIAL,ROTA,TYPE,TRAN``."""
    disks = []
    for dev in json.loads(text)["blockdevices"]:
        name = str(dev["name"])
        if dev.get("type") != "disk" or name.startswith(_NOT_HARDWARE):
            continue
        disks.append(
            Disk(
                name=name,
                path=f"/dev/{name}",
                size_bytes=_int(dev.get("size")),
                model=clean(dev.get("model")),
                serial=clean(dev.get("serial")),
                rotational=_bool(dev.get("rota")),
                transport=clean(dev.get("tran")),
            )
        )
    return disks


def parse_smartctl_health(text: str) -> bool:
    """SMART overall health from ``smartctl -H -j``; ValueError with smartctl's own words
    when it gives no verdict (device without SMART, unknown device type)."""
    data = json.loads(text)
    status = data.get("smart_status")
    if isinstance(status, dict) and isinstance(status.get("passed"), bool):
        return status["passed"]
    messages = data.get("smartctl", {}).get("messages") or []
    words = [str(m["string"]) for m in messages if isinstance(m, dict) and m.get("string")]
    raise ValueError("; ".join(words) or "smartctl gave no SMART verdict")


@dataclass(frozen=True)
class IpLink:
    """One interface as ``ip -j -d link`` shows it."""

    name: str
    mac: str | None
    operstate: str | None
    parent: str | None
    vlan_id: int | None


def parse_ip_link(text: str) -> list[IpLink]:
    links = []
    for entry in json.loads(text):
        if "ifname" not in entry:
            continue
        name = str(entry["ifname"])
        parent = entry.get("link")
        vlan_id = None
        info = entry.get("linkinfo")
        if info is not None:
            if info.get("info_kind") == "vlan":
                vlan_id = _int((info.get("info_data") or {}).get("id"))
        elif parent and (match := re.fullmatch(r".+\.(\d+)", name)):
            # Without -d a VLAN shows only as <parent>.<id> linked to its parent.
            vlan_id = int(match.group(1))
        # A bond's members show the bond's MAC in "address"; "permaddr" is the burned-in one.
        mac = entry.get("permaddr") or entry.get("address")
        links.append(
            IpLink(
                name=name,
                mac=str(mac).lower() if mac else None,
                operstate=entry.get("operstate"),
                parent=str(parent) if parent else None,
                vlan_id=vlan_id,
            )
        )
    return links


def parse_ip_addr(text: str) -> dict[str, tuple[list[str], list[str]]]:
    """Interface → (IPv4, IPv6) addresses in CIDR form, from ``ip -j addr``."""
    result: dict[str, tuple[list[str], list[str]]] = {}
    for entry in json.loads(text):
        if "ifname" not in entry:  # ip prints {} for interfaces a filter left out
            continue
        ipv4: list[str] = []
        ipv6: list[str] = []
        for addr in entry.get("addr_info") or []:
            cidr = f"{addr['local']}/{addr['prefixlen']}"
            if addr.get("family") == "inet":
                ipv4.append(cidr)
            elif addr.get("family") == "inet6":
                ipv6.append(cidr)
        result[str(entry["ifname"])] = (ipv4, ipv6)
    return result


def parse_speed(text: str) -> int | None:
    """Mbit/s from ``/sys/class/net/<if>/speed``; None when the kernel does not know."""
    value = text.strip()
    speed = int(value) if re.fullmatch(r"-?\d+", value) else -1
    # -1 is SPEED_UNKNOWN; some drivers print it unsigned, old ones print 65535.
    return None if speed <= 0 or speed in (65535, 4294967295) else speed


def _one(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _text(value: Any) -> str | None:
    value = _one(value)
    if isinstance(value, dict):
        value = value.get("value")
    return clean(value)


def parse_lldpctl(text: str) -> list[LldpNeighbour]:
    """Neighbours from ``lldpctl -f json`` (or the stable ``-f json0``).

    lldpctl's json collapses one-element lists into objects and keys interfaces and chassis
    by name, so each level is normalised before use.
    """
    lldp = _one(json.loads(text).get("lldp")) or {}
    interfaces = lldp.get("interface") or []
    if isinstance(interfaces, dict):
        interfaces = [interfaces]
    neighbours = []
    for entry in interfaces:
        if isinstance(entry.get("name"), str):  # json0: {"name": "eth0", "chassis": ...}
            items = [(entry["name"], entry)]
        else:  # json: {"eth0": {"chassis": ...}}
            items = list(entry.items())
        for ifname, body in items:
            chassis = _one(body.get("chassis")) or {}
            if "id" in chassis:  # unnamed chassis (json) or json0
                switch_name, chassis_body = _text(chassis.get("name")), chassis
            elif chassis:
                switch_name, chassis_body = next(iter(chassis.items()))
            else:
                switch_name, chassis_body = None, {}
            port = _one(body.get("port")) or {}
            vlans = body.get("vlan") or []
            vlans = vlans if isinstance(vlans, list) else [vlans]
            vlan = next((v for v in vlans if v.get("pvid")), _one(vlans)) or {}
            neighbours.append(
                LldpNeighbour(
                    interface=str(ifname),
                    switch_name=clean(switch_name),
                    switch_id=_text(chassis_body.get("id")),
                    switch_mgmt_ip=_text(chassis_body.get("mgmt-ip")),
                    port_id=_text(port.get("id")),
                    port_description=_text(port.get("descr")),
                    vlan_id=_int(vlan.get("vlan-id")),
                )
            )
    return neighbours


_IP_SOURCES = {
    "static address": "static",
    "dhcp address": "dhcp",
    "bios assigned address": "bios",
    "other protocol": "other",
}


def parse_ipmitool_lan(text: str) -> Bmc:
    """The BMC's address from ``ipmitool lan print``."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():  # continuation lines start with ":" and carry no key
            values.setdefault(key.strip(), value.strip())
    if "IP Address" not in values and "MAC Address" not in values:
        raise ValueError("no IP Address or MAC Address line")
    source = clean(values.get("IP Address Source"))
    mac = clean(values.get("MAC Address"))
    return Bmc(
        ip_address=clean(values.get("IP Address")),
        ip_source=_IP_SOURCES.get(source.lower(), source) if source else None,
        mac=mac.lower() if mac else None,
        netmask=clean(values.get("Subnet Mask")),
        gateway=clean(values.get("Default Gateway IP")),
        vlan_id=_int(values.get("802.1q VLAN ID")),  # "Disabled" when untagged
    )


# --- collection -------------------------------------------------------------------------

_PARSE_ERRORS = (ValueError, KeyError, TypeError, AttributeError, IndexError)
Missing = dict[str, str]


def _file_reason(exc: OSError, path: str) -> str:
    if isinstance(exc, PermissionError):
        return f"permission denied reading {path}"
    if isinstance(exc, FileNotFoundError):
        return f"{path} not found"
    return f"cannot read {path}: {exc.strerror or exc}"


def _parse_reason(argv: Sequence[str] | str, exc: Exception) -> str:
    where = argv if isinstance(argv, str) else " ".join(argv)
    return f"could not parse {where} output: {exc}"


def _placeholder_reason(where: str, raw: str) -> str:
    value = raw.strip()
    return f"{where} is empty" if not value else f"{where} holds the placeholder {value!r}"


# The sysfs file and the dmidecode -s keyword of each SystemFacts field.
_DMI_FIELDS = {
    "manufacturer": ("sys_vendor", "system-manufacturer"),
    "product": ("product_name", "system-product-name"),
    "serial": ("product_serial", "system-serial-number"),
    "uuid": ("product_uuid", "system-uuid"),
    "bios_vendor": ("bios_vendor", "bios-vendor"),
    "bios_version": ("bios_version", "bios-version"),
    "bios_date": ("bios_date", "bios-release-date"),
    "board_serial": ("board_serial", "baseboard-serial-number"),
}


def _collect_system(source: FactSource, missing: Missing) -> SystemFacts:
    values: dict[str, str] = {}
    dmidecode_down: str | None = None  # absent or hung once: the same for every field
    for name, (filename, keyword) in _DMI_FIELDS.items():
        path = f"{DMI_DIR}/{filename}"
        reasons = []
        try:
            raw = source.read_file(path)
        except OSError as exc:
            reasons.append(_file_reason(exc, path))
        else:
            if value := clean(raw):
                values[name] = value
                continue
            reasons.append(_placeholder_reason(path, raw))
        argv = ["dmidecode", "-s", keyword]
        if dmidecode_down is not None:
            reasons.append(dmidecode_down)
        else:
            try:
                raw = source.run(argv)
            except (CommandNotFound, CommandTimeout) as exc:
                dmidecode_down = str(exc)
                reasons.append(dmidecode_down)
            except SourceError as exc:
                reasons.append(str(exc))
            else:
                if value := clean(parse_dmidecode_string(raw)):
                    values[name] = value
                    continue
                reasons.append(_placeholder_reason(" ".join(argv), raw))
        missing[f"system.{name}"] = "; ".join(reasons)
    if "uuid" in values:
        values["uuid"] = values["uuid"].lower()
    return SystemFacts(**values)


def _collect_cpu(source: FactSource, missing: Missing) -> CpuFacts:
    reasons = []
    cpu = CpuFacts()
    try:
        cpu = parse_cpuinfo(source.read_file("/proc/cpuinfo"))
    except OSError as exc:
        reasons.append(_file_reason(exc, "/proc/cpuinfo"))
    # /proc/cpuinfo counts the CPUs online, so its answers win; lscpu fills what it lacks.
    if None in (cpu.model, cpu.sockets, cpu.cores, cpu.threads):
        try:
            extra = parse_lscpu(source.run(LSCPU))
        except SourceError as exc:
            reasons.append(str(exc))
        except _PARSE_ERRORS as exc:
            reasons.append(_parse_reason(LSCPU, exc))
        else:
            cpu = CpuFacts(
                **{k: v if v is not None else getattr(extra, k) for k, v in asdict(cpu).items()}
            )
    for name, value in asdict(cpu).items():
        if value is None:
            missing[f"cpu.{name}"] = "; ".join(reasons) or "not reported by /proc/cpuinfo or lscpu"
    return cpu


def _collect_memory(source: FactSource, missing: Missing) -> MemoryFacts:
    memory = MemoryFacts()
    try:
        memory.total_bytes = parse_meminfo(source.read_file("/proc/meminfo"))
    except OSError as exc:
        missing["memory.total_bytes"] = _file_reason(exc, "/proc/meminfo")
    except ValueError as exc:
        missing["memory.total_bytes"] = _parse_reason("/proc/meminfo", exc)
    try:
        memory.dimms = parse_dmidecode_memory(source.run(DMIDECODE_MEMORY))
    except SourceError as exc:
        missing["memory.dimms"] = str(exc)
    except _PARSE_ERRORS as exc:
        missing["memory.dimms"] = _parse_reason(DMIDECODE_MEMORY, exc)
    return memory


def _collect_disks(source: FactSource, missing: Missing) -> list[Disk] | None:
    try:
        disks = parse_lsblk(source.run(LSBLK))
    except SourceError as exc:
        missing["disks"] = str(exc)
        return None
    except _PARSE_ERRORS as exc:
        missing["disks"] = _parse_reason(LSBLK, exc)
        return None
    smartctl_down: str | None = None
    for disk in disks:
        key = f"disks.{disk.name}.healthy"
        if smartctl_down is not None:
            missing[key] = smartctl_down
            continue
        argv = ["smartctl", "-H", "-j", disk.path]
        failure: CommandFailed | None = None
        try:
            output = source.run(argv)
        except CommandNotFound as exc:
            smartctl_down = missing[key] = str(exc)
            continue
        except CommandFailed as exc:
            # smartctl's exit status is a bit mask: a failing disk exits 8 with a full answer.
            output, failure = exc.stdout, exc
        except SourceError as exc:
            missing[key] = str(exc)
            continue
        try:
            disk.healthy = parse_smartctl_health(output)
        except json.JSONDecodeError as exc:
            missing[key] = str(failure) if failure else _parse_reason(argv, exc)
        except _PARSE_ERRORS as exc:
            missing[key] = str(exc)
    return disks


def _collect_nics(source: FactSource, missing: Missing) -> list[Nic] | None:
    try:
        names = source.list_dir(NET_DIR)
    except OSError as exc:
        missing["nics"] = _file_reason(exc, NET_DIR)
        return None
    links: dict[str, IpLink] = {}
    links_reason: str | None = None
    try:
        links = {link.name: link for link in parse_ip_link(source.run(IP_LINK))}
    except SourceError as exc:
        links_reason = str(exc)
    except _PARSE_ERRORS as exc:
        links_reason = _parse_reason(IP_LINK, exc)
    addresses: dict[str, tuple[list[str], list[str]]] = {}
    addresses_reason: str | None = None
    try:
        addresses = parse_ip_addr(source.run(IP_ADDR))
    except SourceError as exc:
        addresses_reason = str(exc)
    except _PARSE_ERRORS as exc:
        addresses_reason = _parse_reason(IP_ADDR, exc)
    vlans: dict[str, list[int]] = {}
    for link in links.values():
        if link.parent and link.vlan_id is not None:
            vlans.setdefault(link.parent, []).append(link.vlan_id)

    nics = []
    for name in names:
        if name == "lo" or not _is_physical(source, name):
            continue
        nic = Nic(name=name)
        link = links.get(name)
        prefix = f"nics.{name}"
        nic.mac, reason = _nic_mac(source, name, link)
        if nic.mac is None:
            missing[f"{prefix}.mac"] = reason
        nic.link_up, reason = _nic_link_up(source, name, link)
        if nic.link_up is None:
            missing[f"{prefix}.link_up"] = reason
        nic.speed_mbps, reason = _nic_speed(source, name)
        if nic.speed_mbps is None:
            missing[f"{prefix}.speed_mbps"] = reason
        if links_reason is None:
            nic.vlan_ids = sorted(vlans.get(name, []))
        else:
            missing[f"{prefix}.vlan_ids"] = links_reason
        if addresses_reason is None:
            nic.ipv4, nic.ipv6 = addresses.get(name, ([], []))
        else:
            missing[f"{prefix}.ipv4"] = missing[f"{prefix}.ipv6"] = addresses_reason
        nics.append(nic)
    return nics


def _is_physical(source: FactSource, name: str) -> bool:
    # Only interfaces backed by a device have a "device" link: veth, bridges, bonds, taps,
    # VLAN sub-interfaces and dummies have none.
    try:
        return "device" in source.list_dir(f"{NET_DIR}/{name}")
    except OSError:
        return False


def _nic_mac(source: FactSource, name: str, link: IpLink | None) -> tuple[str | None, str]:
    if link is not None and link.mac:
        return link.mac, ""
    path = f"{NET_DIR}/{name}/address"
    try:
        mac = clean(source.read_file(path))
    except OSError as exc:
        return None, _file_reason(exc, path)
    return (mac.lower(), "") if mac else (None, f"{path} is empty")


def _nic_link_up(source: FactSource, name: str, link: IpLink | None) -> tuple[bool | None, str]:
    path = f"{NET_DIR}/{name}/operstate"
    try:
        state = source.read_file(path).strip().lower()
    except OSError as exc:
        if link is None or not link.operstate:
            return None, _file_reason(exc, path)
        state = link.operstate.lower()
    if state != "unknown":
        return state == "up", ""
    # Drivers that do not track operstate still report carrier; the kernel refuses to
    # answer (EINVAL) while the interface is administratively down.
    carrier_path = f"{NET_DIR}/{name}/carrier"
    try:
        return source.read_file(carrier_path).strip() == "1", ""
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return False, ""
        return None, f"operstate unknown and {_file_reason(exc, carrier_path)}"


def _nic_speed(source: FactSource, name: str) -> tuple[int | None, str]:
    path = f"{NET_DIR}/{name}/speed"
    try:
        raw = source.read_file(path)
    except OSError as exc:
        return None, _file_reason(exc, path)
    speed = parse_speed(raw)
    return speed, "" if speed is not None else f"the kernel reports no link speed ({raw.strip()})"


def _collect_lldp(source: FactSource, missing: Missing) -> list[LldpNeighbour] | None:
    try:
        return parse_lldpctl(source.run(LLDPCTL))
    except SourceError as exc:
        missing["lldp"] = str(exc)
    except _PARSE_ERRORS as exc:
        missing["lldp"] = _parse_reason(LLDPCTL, exc)
    return None


def _collect_bmc(source: FactSource, missing: Missing) -> Bmc | None:
    try:
        return parse_ipmitool_lan(source.run(IPMITOOL_LAN))
    except SourceError as exc:
        missing["bmc"] = str(exc)
    except _PARSE_ERRORS as exc:
        missing["bmc"] = _parse_reason(IPMITOOL_LAN, exc)
    return None


def collect(source: FactSource) -> Facts:
    """Read every fact from ``source``; never raises."""
    missing: Missing = {}

    def guarded(name: str, collector: Callable[[FactSource, Missing], Any], default: Any) -> Any:
        try:
            return collector(source, missing)
        except Exception as exc:  # a bug in one collector must not cost the whole report
            missing[name] = f"unexpected error: {exc!r}"
            return default

    return Facts(
        system=guarded("system", _collect_system, SystemFacts()),
        cpu=guarded("cpu", _collect_cpu, CpuFacts()),
        memory=guarded("memory", _collect_memory, MemoryFacts()),
        disks=guarded("disks", _collect_disks, None),
        nics=guarded("nics", _collect_nics, None),
        lldp=guarded("lldp", _collect_lldp, None),
        bmc=guarded("bmc", _collect_bmc, None),
        missing=missing,
    )
