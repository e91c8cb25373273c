"""DHCP through dnsmasq: its configuration, and one host file per known MAC in its hostsdir.

A machine is *known* when one of its asset's interfaces holds an IPv4 address (IPAM
allocation) in a prefix of role `provisioning`, `production` or `bmc`: its MAC gets that
fixed address with the long lease. Every other MAC is *unknown* and leases an address from
the discovery prefixes for minutes, then boots the agent. A `discovery` prefix is for leases
only: dnsmasq hands out its free part (the host addresses outside its reserved ranges and
gateway), so never allocate addresses from it, and give the dnsmasq host an address there that
is the gateway or reserved. IPv6 prefixes are left out: DHCPv6 does not identify machines by
MAC reliably.

Every PXE client, known or not, is chained to iPXE and then to `/boot/ipxe?mac=…` on
metalyard, which decides by MAC what it boots (the agent for an unknown machine).

dnsmasq's quirks (2.90) that shape this module: it reads a host file while it is being
written (so files are written beside the directory and renamed in); it notices new and edited
files by itself but forgets deleted files and replaced lines only on SIGHUP; `set:` tags in
host files crash it on SIGHUP (its own `known` tag is all we need).
"""

import fcntl
import logging
import os
import re
import signal
import socket
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

from sqlalchemy import Row, Select, event, select
from sqlalchemy.orm import Session, selectinload

from metalyard.config import Settings
from metalyard.db.lookup import get_by
from metalyard.errors import InvalidInput
from metalyard.inventory.models import Asset, AssetInterface, Site
from metalyard.network.addressing import (
    PrefixRole,
    Span,
    address_at,
    free_segments,
    host_span,
    offset_of,
    parse_address,
    parse_network,
)
from metalyard.network.models import IpAllocation, Prefix

log = logging.getLogger(__name__)

KNOWN_ROLES = (PrefixRole.PROVISIONING, PrefixRole.PRODUCTION, PrefixRole.BMC)
"""Roles whose allocations make a MAC known, in the order a MAC's file lists them."""
BIOS_BOOT_FILE = "undionly.kpxe"
UEFI_BOOT_FILE = "ipxe.efi"
UEFI_ARCHES = (7, 9)
"""Client architectures (DHCP option 93) of x86-64 UEFI, which Debian's ipxe.efi is built for."""
LEASE_FILE = "dnsmasq.leases"
"""Beside the hosts directory."""

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_NOT_IN_LABEL = re.compile(r"[^a-z0-9-]+")
_READ_AS_KEYWORD = re.compile(r"^([0-9]+[smhdw]?|infinite|ignore)$")
"""Host file fields dnsmasq reads as a lease time or as `ignore`, never as a hostname."""


# Configuration -------------------------------------------------------------------------


def server_url(settings: Settings) -> str:
    """How machines reach metalyard: METALYARD_PUBLIC_URL, or this server's scheme://host:port."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = settings.host
    if host in ("", "0.0.0.0", "::"):
        host = socket.getfqdn()
    if ":" in host:
        host = f"[{host}]"
    return f"{settings.scheme}://{host}:{settings.port}"


def boot_url(settings: Settings) -> str:
    """The iPXE script of a machine; iPXE expands `${net0/mac}` itself."""
    return f"{server_url(settings)}/boot/ipxe?mac=${{net0/mac}}"


def render_config(
    settings: Settings, prefixes: Sequence[Prefix], *, site: str | None = None
) -> str:
    """dnsmasq's configuration: the prefixes it serves, the hostsdir, and the boot chain.

    Pure: `prefixes` (with their reserved ranges loaded) may be built without a database.
    dnsmasq serves a prefix only if its interface holds an address there (or a relay forwards).
    """
    if not settings.dhcp_interface:
        raise InvalidInput(
            "METALYARD_DHCP_INTERFACE is not set: name the interface on the provisioning "
            "network that dnsmasq should answer on (for example eth1)",
            details={"field": "dhcp_interface"},
        )
    hosts_dir = settings.dhcp_hosts_dir
    scope = f"site {site}" if site else "every site"
    lines = [
        f"# dnsmasq configuration of metalyard region {settings.region}, {scope}.",
        "# Rendered by `metalyard dhcp render`: re-render and restart dnsmasq after prefixes",
        "# change. Known machines are the files of dhcp-hostsdir, which `metalyard dhcp sync`",
        "# keeps in step with IPAM without a restart. Run dnsmasq as a user that can read them",
        "# and that metalyard may signal.",
        "port=0",
        f"interface={settings.dhcp_interface}",
        "bind-interfaces",
        "no-resolv",
        "no-hosts",
        "# Without it, the first offer to a new unknown MAC is lost while dnsmasq pings.",
        "no-ping",
        "# The only DHCP server of these networks: answer a lease it does not know at once.",
        "dhcp-authoritative",
        f"pid-file={settings.dhcp_pid_file}",
        f"dhcp-leasefile={hosts_dir.parent / LEASE_FILE}",
        f"dhcp-hostsdir={hosts_dir}",
    ]
    ordered = sorted(prefixes, key=lambda p: (p.site.name if p.site else "", p.role, p.cidr))
    known = [p for p in ordered if p.role in KNOWN_ROLES]
    discovery = [p for p in ordered if p.role == PrefixRole.DISCOVERY]
    lines += ["", "# Known machines: the fixed addresses of the host files."]
    for prefix in known:
        network = _served(prefix, lines)
        if network is not None:
            lines.append(
                f"dhcp-range=set:{_tag(prefix)},{network.network_address},static,"
                f"{network.netmask},{settings.dhcp_known_lease}"
            )
            lines += _options(prefix)
    if not known:
        lines.append("# (no provisioning, production or bmc prefix)")
    lines += ["", "# Unknown machines: short leases from the free part of the discovery prefixes."]
    for prefix in discovery:
        network = _served(prefix, lines)
        if network is None:
            continue
        ranges = discovery_ranges(prefix)
        if not ranges:
            lines.append("# no free address outside its reserved ranges: unknown machines get none")
        for first, last in ranges:
            lines.append(
                f"dhcp-range=tag:!known,set:{_tag(prefix)},{first},{last},{network.netmask},"
                f"{settings.dhcp_discovery_lease}"
            )
        lines += _options(prefix)
    if not discovery:
        lines.append("# (no discovery prefix: unknown machines get no address)")
    lines += [
        "",
        "# Boot: PXE firmware gets iPXE over TFTP; iPXE (option 175) gets its script from",
        "# metalyard, which decides by MAC what the machine boots.",
        "enable-tftp",
        f"tftp-root={settings.tftp_root}",
        "dhcp-match=set:ipxe,175",
        *(f"dhcp-match=set:efi64,option:client-arch,{arch}" for arch in UEFI_ARCHES),
        f"dhcp-boot=tag:ipxe,{boot_url(settings)}",
        f"dhcp-boot=tag:!ipxe,tag:efi64,{UEFI_BOOT_FILE}",
        f"dhcp-boot=tag:!ipxe,tag:!efi64,{BIOS_BOOT_FILE}",
    ]
    return "\n".join(lines) + "\n"


def discovery_ranges(prefix: Prefix) -> list[tuple[str, str]]:
    """The first and last address of each free stretch of a discovery prefix: its host
    addresses less the reserved ranges and the gateway (dnsmasq takes several ranges in one
    subnet)."""
    network = parse_network(prefix.cidr)
    never = [
        Span(offset_of(network, parse_address(r.start)), offset_of(network, parse_address(r.end)))
        for r in prefix.reserved_ranges
    ]
    if prefix.gateway:
        gateway = offset_of(network, parse_address(prefix.gateway))
        never.append(Span(gateway, gateway))
    return [
        (str(address_at(network, segment.first)), str(address_at(network, segment.last)))
        for segment in free_segments(host_span(network), never)
    ]


def _served(prefix: Prefix, lines: list[str]) -> IPv4Network | None:
    """The prefix's network when dnsmasq serves it; a comment line either way."""
    network = parse_network(prefix.cidr)
    where = f"site {prefix.site.name}, " if prefix.site else ""
    if not isinstance(network, IPv4Network):
        lines.append(f"# {network} ({where}{prefix.role}): IPv6, not served")
        return None
    lines.append(f"# {network} ({where}{prefix.role}, prefix {prefix.id})")
    return network


def _tag(prefix: Prefix) -> str:
    return f"p{prefix.id}"


def _options(prefix: Prefix) -> list[str]:
    # Without a gateway, an empty router option: dnsmasq would otherwise offer itself.
    router = f",{prefix.gateway}" if prefix.gateway else ""
    options = [f"dhcp-option=tag:{_tag(prefix)},option:router{router}"]
    if prefix.dns_servers:
        options.append(
            f"dhcp-option=tag:{_tag(prefix)},option:dns-server,{','.join(prefix.dns_servers)}"
        )
    return options


def config_prefixes(session: Session, *, site: str | None = None) -> list[Prefix]:
    """The prefixes a configuration serves: those of one site, or of every site."""
    stmt = select(Prefix).options(selectinload(Prefix.reserved_ranges)).order_by(Prefix.id)
    if site is not None:
        stmt = stmt.where(Prefix.site_id == get_by(session, Site, "site", name=site).id)
    return list(session.scalars(stmt))


def render(session: Session, settings: Settings, *, site: str | None = None) -> str:
    """dnsmasq's configuration for the prefixes in the database."""
    return render_config(settings, config_prefixes(session, site=site), site=site)


# Host files ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HostEntry:
    """One line of a host file: a MAC's fixed address in one prefix."""

    mac: str
    address: str
    hostname: str | None
    lease: str

    def line(self) -> str:
        fields = [self.mac, self.address, self.hostname, self.lease]
        return ",".join(field for field in fields if field)


def known_hosts_query() -> Select:
    """Every known MAC with its addresses: one query, whatever the size of the fleet."""
    return (
        select(
            AssetInterface.mac,
            Asset.hostname,
            Asset.serial,
            IpAllocation.address,
            Prefix.role,
        )
        .join(Asset, Asset.id == AssetInterface.asset_id)
        .join(
            IpAllocation,
            (IpAllocation.asset_id == AssetInterface.asset_id)
            & (IpAllocation.interface == AssetInterface.name),
        )
        .join(Prefix, Prefix.id == IpAllocation.prefix_id)
        .where(Prefix.role.in_(KNOWN_ROLES), Prefix.family == 4)
        .order_by(AssetInterface.mac, Prefix.id)
    )


def host_entries(rows: Iterable[Row], *, lease: str) -> list[HostEntry]:
    """The host file lines of the rows of `known_hosts_query`."""
    entries = []
    for row in rows:
        name = dns_label(row.hostname.split(".", 1)[0]) or dns_label(row.serial)
        if name and row.role == PrefixRole.BMC:
            name = f"{name[:59]}-bmc"
        entries.append(HostEntry(row.mac.lower(), row.address, name, lease))
    return entries


def host_files(entries: Iterable[HostEntry]) -> dict[str, str]:
    """File name (the MAC) → content: a MAC's addresses in several prefixes share its file,
    and dnsmasq picks the one in the subnet the request came from."""
    lines: dict[str, list[str]] = {}
    for entry in entries:
        lines.setdefault(entry.mac, []).append(entry.line())
    return {
        mac: "".join(f"{line}\n" for line in dict.fromkeys(each)) for mac, each in lines.items()
    }


def dns_label(text: str) -> str | None:
    """`text` as one DNS label (a-z, 0-9, '-', at most 63), or None when nothing is left.

    A label dnsmasq would read as a lease time or a keyword (`600`, `12h`, `ignore`) gets a
    `host-` in front."""
    label = _NOT_IN_LABEL.sub("-", text.strip().lower()).strip("-")[:63].rstrip("-")
    if not label:
        return None
    if _READ_AS_KEYWORD.match(label):
        label = f"host-{label}"[:63].rstrip("-")
    return label


@dataclass(frozen=True)
class SyncResult:
    """MACs whose host file was written anew, rewritten or deleted, and whether dnsmasq was
    told (SIGHUP) to forget what it read before."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    hupped: bool
    problem: str = ""
    """Why dnsmasq was not told although hosts were removed or changed."""


def sync_hosts(session: Session, settings: Settings) -> SyncResult:
    """Make the hosts directory say what IPAM says, then SIGHUP dnsmasq if it must forget.

    Only files named after a MAC are managed; others are left alone. Syncs on one host take
    turns (a lock file) and each reads the database after its turn came, so the last one
    leaves the latest state. New files need no signal: dnsmasq watches the directory.
    """
    directory = settings.dhcp_hosts_dir
    directory.mkdir(parents=True, exist_ok=True)
    with _sync_lock(directory):
        rows = session.execute(known_hosts_query())
        wanted = host_files(host_entries(rows, lease=settings.dhcp_known_lease))
        present = _read_host_files(directory)
        added = sorted(wanted.keys() - present.keys())
        changed = sorted(n for n in wanted.keys() & present.keys() if wanted[n] != present[n])
        removed = sorted(present.keys() - wanted.keys())
        for name in (*added, *changed):
            # Staged outside the directory: dnsmasq would read the partial file.
            write_atomically(directory / name, wanted[name], staging=directory.parent)
        for name in removed:
            (directory / name).unlink(missing_ok=True)
        hupped, problem = False, ""
        if changed or removed:
            problem = signal_dnsmasq(settings.dhcp_pid_file)
            hupped = not problem
    return SyncResult(tuple(added), tuple(changed), tuple(removed), hupped, problem)


def signal_dnsmasq(pid_file: Path) -> str:
    """SIGHUP the dnsmasq of the pid file: empty when sent, else why not.

    A stale pid file may name another process by now; on Linux only a process named dnsmasq
    is signalled (SIGHUP would end most others)."""
    try:
        pid = int(pid_file.read_text().strip())
    except FileNotFoundError:
        return f"no pid file {pid_file}: dnsmasq reads every host file when it starts"
    except ValueError:
        return f"pid file {pid_file} holds no process id"
    proc = Path("/proc")
    if proc.is_dir():
        try:
            name = (proc / str(pid) / "comm").read_text().strip()
        except OSError:
            return f"no process {pid} (pid file {pid_file}): dnsmasq is not running"
        if name != "dnsmasq":
            return f"process {pid} of pid file {pid_file} is {name!r}, not dnsmasq: not signalled"
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return f"no process {pid} (pid file {pid_file}): dnsmasq is not running"
    except PermissionError:
        return f"not allowed to signal dnsmasq (pid {pid}): run it as metalyard's user"
    return ""


def write_atomically(path: Path, text: str, *, staging: Path | None = None) -> None:
    """Write a file in `staging` (default: beside it), then rename it into place: a reader
    never sees half of it. Readable by all: dnsmasq drops its privileges to nobody."""
    fd, temporary = tempfile.mkstemp(dir=staging or path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read_host_files(directory: Path) -> dict[str, str]:
    present = {}
    for entry in os.scandir(directory):
        if _MAC.match(entry.name) and entry.is_file():
            try:
                present[entry.name] = Path(entry.path).read_text()
            except FileNotFoundError:
                continue  # removed meanwhile by hand
    return present


@contextmanager
def _sync_lock(directory: Path) -> Iterator[None]:
    with open(directory.with_name(f"{directory.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# Keeping in step -----------------------------------------------------------------------

_SYNC_AFTER_COMMIT = "metalyard.dhcp.sync_after_commit"


def sync_hosts_after_commit(session: Session, settings: Settings) -> None:
    """Sync the host files once this session's transaction commits; call it after changing
    what `known_hosts_query` reads (allocations, interfaces, hostnames, prefix roles).

    Several calls in one transaction sync once. The sync reads in a session of its own (the
    committed state) and a failure is logged, never raised: the request that changed the
    inventory has succeeded, and the next sync repairs the files.
    """
    session.info[_SYNC_AFTER_COMMIT] = settings
    if not event.contains(session, "after_commit", _sync_committed):
        event.listen(session, "after_commit", _sync_committed)


def _sync_committed(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint's commit (SQLAlchemy fires after_commit for those too)
    settings = session.info.pop(_SYNC_AFTER_COMMIT, None)
    if settings is None:
        return
    try:
        with Session(session.get_bind()) as fresh, fresh.begin():
            result = sync_hosts(fresh, settings)
    except Exception:
        log.exception("DHCP host files not synced; the next sync repairs them")
        return
    if result.problem:
        log.warning("DHCP host files synced, but %s", result.problem)
