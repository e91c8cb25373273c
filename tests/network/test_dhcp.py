"""DHCP through dnsmasq: the rendered configuration, the host files, and real exchanges with
dnsmasq 2.90 and busybox's udhcpc in a pair of network namespaces."""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event
from typer.testing import CliRunner

from metalyard.auth.actor import Actor
from metalyard.auth.scopes import Scope
from metalyard.cli.main import app as cli_app
from metalyard.config import Settings
from metalyard.errors import InvalidInput, NotFound
from metalyard.inventory import service as inventory
from metalyard.inventory.models import Site
from metalyard.inventory.schemas import AssetCreate, SiteCreate
from metalyard.network import dhcp, service
from metalyard.network.addressing import PrefixRole
from metalyard.network.models import Prefix, ReservedRange
from metalyard.network.schemas import IpAllocationCreate, PrefixCreate, ReservedRangeCreate
from tests.peers import dnsmasq as peer

ACTOR = Actor(name="test", scope=Scope.ADMIN, user_id=None, token_id=None)
IPXE_DIR = Path("/usr/lib/ipxe")
NODE01 = "52:54:00:aa:00:01"
NODE01_BMC = "52:54:00:aa:00:0b"
NODE02 = "52:54:00:aa:00:02"
STRANGER = "52:54:00:bb:00:01"
GHOST = "52:54:00:cc:00:01"
PXE_UEFI = "0x5d:0007"  # client architecture (option 93): x86-64 UEFI
IPXE = "0xaf:0101"  # option 175, which only iPXE sends
BOOT_URL = "http://10.77.0.1:8080/boot/ipxe?mac=${net0/mac}"
KNOWN_LEASE, DISCOVERY_LEASE = 12 * 3600, 120


@pytest.fixture
def root() -> Iterator[Path]:
    """Not under pytest's tmp_path: dnsmasq drops to user nobody, who must read the files."""
    path = Path(tempfile.mkdtemp(prefix="metalyard-dhcp-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def dhcp_settings(root) -> Settings:
    tftp_root = IPXE_DIR
    if not (IPXE_DIR / dhcp.BIOS_BOOT_FILE).exists():  # outside CI, boot files stand in
        tftp_root = root / "tftp"
        tftp_root.mkdir()
        for name in (dhcp.BIOS_BOOT_FILE, dhcp.UEFI_BOOT_FILE):
            (tftp_root / name).write_bytes(os.urandom(3000))
    return Settings(
        region="test-1",
        data_dir=root,
        database_url="unused",
        dhcp_interface=peer.SERVER_IF,
        public_url="http://10.77.0.1:8080/",
        tftp_root=tftp_root,
    )


# Rendering (pure) ----------------------------------------------------------------------


def prefix(
    id: int, cidr: str, role: str, *, gateway=None, dns=(), reserved=(), site="dub1"
) -> Prefix:
    """A prefix as the database would hold it, without a database."""
    return Prefix(
        id=id,
        site=Site(name=site),
        cidr=cidr,
        role=PrefixRole(role),
        gateway=gateway,
        dns_servers=list(dns),
        reserved_ranges=[ReservedRange(start=s, end=e, reason="test") for s, e in reserved],
    )


def config_lines(settings: Settings, *prefixes: Prefix) -> list[str]:
    text = dhcp.render_config(settings, list(prefixes))
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_known_prefixes_are_static_ranges_with_the_long_lease(dhcp_settings):
    lines = config_lines(
        dhcp_settings,
        prefix(1, "10.77.0.0/24", "provisioning", gateway="10.77.0.1", dns=["10.0.0.53"]),
        prefix(2, "10.79.0.0/23", "production"),
        prefix(3, "10.76.0.0/24", "bmc", gateway="10.76.0.254"),
    )
    assert "dhcp-range=set:p1,10.77.0.0,static,255.255.255.0,12h" in lines
    assert "dhcp-option=tag:p1,option:router,10.77.0.1" in lines
    assert "dhcp-option=tag:p1,option:dns-server,10.0.0.53" in lines
    assert "dhcp-range=set:p2,10.79.0.0,static,255.255.254.0,12h" in lines
    assert "dhcp-option=tag:p2,option:router" in lines  # no gateway: no router at all
    assert "dhcp-range=set:p3,10.76.0.0,static,255.255.255.0,12h" in lines
    assert not [line for line in lines if "tag:!known" in line]  # no discovery prefix


def test_the_discovery_range_is_the_free_part_of_the_discovery_prefix(dhcp_settings):
    lines = config_lines(
        dhcp_settings,
        prefix(
            4,
            "10.78.0.0/24",
            "discovery",
            gateway="10.78.0.1",
            reserved=[("10.78.0.2", "10.78.0.9"), ("10.78.0.100", "10.78.0.119")],
        ),
    )
    ranges = [line for line in lines if line.startswith("dhcp-range=")]
    assert ranges == [
        "dhcp-range=tag:!known,set:p4,10.78.0.10,10.78.0.99,255.255.255.0,2m",
        "dhcp-range=tag:!known,set:p4,10.78.0.120,10.78.0.254,255.255.255.0,2m",
    ]


def test_a_full_discovery_prefix_and_ipv6_prefixes_give_no_range(dhcp_settings):
    text = dhcp.render_config(
        dhcp_settings,
        [
            prefix(5, "10.78.0.0/30", "discovery", reserved=[("10.78.0.1", "10.78.0.2")]),
            prefix(6, "2001:db8::/64", "provisioning"),
        ],
    )
    assert "dhcp-range=" not in text
    assert "2001:db8::/64 (site dub1, provisioning): IPv6, not served" in text
    assert "no free address outside its reserved ranges" in text


def test_pxe_clients_are_chained_to_ipxe_and_ipxe_to_metalyard(dhcp_settings):
    lines = config_lines(dhcp_settings)
    assert lines[:6] == [
        "port=0",
        "interface=s0",
        "bind-interfaces",
        "no-resolv",
        "no-hosts",
        "no-ping",
    ]
    assert f"dhcp-hostsdir={dhcp_settings.data_dir / 'dhcp' / 'hosts'}" in lines
    assert f"pid-file={dhcp_settings.data_dir / 'dhcp' / 'dnsmasq.pid'}" in lines
    assert lines[-8:] == [
        "enable-tftp",
        f"tftp-root={dhcp_settings.tftp_root}",
        "dhcp-match=set:ipxe,175",
        "dhcp-match=set:efi64,option:client-arch,7",
        "dhcp-match=set:efi64,option:client-arch,9",
        f"dhcp-boot=tag:ipxe,{BOOT_URL}",
        "dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi",
        "dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe",
    ]


def test_the_boot_url_defaults_to_this_server(dhcp_settings):
    settings = dhcp_settings.model_copy(update={"public_url": "", "host": "10.1.2.3", "port": 80})
    assert dhcp.boot_url(settings) == "http://10.1.2.3:80/boot/ipxe?mac=${net0/mac}"


def test_render_refuses_to_serve_every_interface(dhcp_settings):
    settings = dhcp_settings.model_copy(update={"dhcp_interface": ""})
    with pytest.raises(InvalidInput, match="METALYARD_DHCP_INTERFACE is not set"):
        dhcp.render_config(settings, [])


def test_settings_place_dhcp_files_in_the_data_dir(tmp_path):
    settings = Settings(data_dir=tmp_path)
    assert settings.dhcp_hosts_dir == tmp_path / "dhcp" / "hosts"
    assert settings.dhcp_pid_file == tmp_path / "dhcp" / "dnsmasq.pid"
    assert (settings.dhcp_known_lease, settings.dhcp_discovery_lease) == ("12h", "2m")
    with pytest.raises(ValueError, match="dhcp_known_lease"):
        Settings(data_dir=tmp_path, dhcp_known_lease="12 hours")


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("node01", "node01"),
        ("Node_01", "node-01"),
        ("SN.123:A", "sn-123-a"),
        ("--x--", "x"),
        ("123456", "host-123456"),  # dnsmasq would read a lease time
        ("12h", "host-12h"),
        ("ignore", "host-ignore"),  # and this as "never answer"
        ("a" * 70, "a" * 63),
        ("...", None),
    ],
)
def test_hostnames_become_one_dns_label(text, label):
    assert dhcp.dns_label(text) == label


def test_host_lines_name_the_mac_address_host_and_lease():
    class Row:
        def __init__(self, mac, hostname, serial, address, role):
            self.mac, self.hostname, self.serial = mac, hostname, serial
            self.address, self.role = address, PrefixRole(role)

    rows = [
        Row("52:54:00:AA:00:01", "node01.dub1.example.com", "SN1", "10.77.0.10", "provisioning"),
        Row("52:54:00:AA:00:01", "node01.dub1.example.com", "SN1", "10.79.0.10", "production"),
        Row("52:54:00:aa:00:0b", "node01", "SN1", "10.76.0.10", "bmc"),
        Row("52:54:00:aa:00:02", "", "4242", "10.77.0.11", "provisioning"),
    ]
    files = dhcp.host_files(dhcp.host_entries(rows, lease="12h"))
    assert files == {
        "52:54:00:aa:00:01": "52:54:00:aa:00:01,10.77.0.10,node01,12h\n"
        "52:54:00:aa:00:01,10.79.0.10,node01,12h\n",
        "52:54:00:aa:00:0b": "52:54:00:aa:00:0b,10.76.0.10,node01-bmc,12h\n",
        "52:54:00:aa:00:02": "52:54:00:aa:00:02,10.77.0.11,host-4242,12h\n",
    }


# Sync against the database -------------------------------------------------------------


def seed(database) -> dict[str, int]:
    """Site dub1 with one prefix of each role, lon1 with a discovery prefix, and assets:
    node01 (eno1, bmc) and node02 (eno1), nothing allocated yet. Prefix ids by role."""
    with database.transaction() as session:
        for name in ("dub1", "lon1"):
            inventory.create_site(session, data=SiteCreate(name=name))
        ids = {}
        for cidr, role, gateway in (
            ("10.77.0.0/24", "provisioning", "10.77.0.1"),
            ("10.79.0.0/24", "production", "10.79.0.1"),
            ("10.76.0.0/24", "bmc", None),
            ("10.78.0.0/24", "discovery", "10.78.0.1"),
        ):
            data = PrefixCreate(site="dub1", cidr=cidr, role=role, gateway=gateway)
            ids[role] = service.create_prefix(session, data=data).id
        service.reserve_range(
            session,
            prefix_id=ids["discovery"],
            data=ReservedRangeCreate(start="10.78.0.2", end="10.78.0.9", reason="switches"),
        )
        lon1 = PrefixCreate(site="lon1", cidr="10.88.0.0/24", role="discovery")
        ids["lon1"] = service.create_prefix(session, data=lon1).id
        for serial, hostname, interfaces in (
            ("SN001", "node01.dub1.example.com", {"eno1": NODE01, "bmc": NODE01_BMC}),
            ("SN002", "", {"eno1": NODE02}),
        ):
            data = AssetCreate(
                serial=serial,
                hostname=hostname,
                interfaces=[{"name": n, "mac": m} for n, m in interfaces.items()],
            )
            inventory.create_asset(session, data=data, actor=ACTOR)
    return ids


def allocate(database, serial: str, interface: str, prefix_id: int, address: str) -> None:
    with database.transaction() as session:
        data = IpAllocationCreate(
            serial=serial, interface=interface, prefix_id=prefix_id, address=address
        )
        service.allocate(session, data=data)


def release(database, address: str) -> None:
    with database.transaction() as session:
        service.release(session, address=address)


def sync(database, settings: Settings) -> dhcp.SyncResult:
    with database.transaction(write=False) as session:
        return dhcp.sync_hosts(session, settings)


def host_files(settings: Settings) -> dict[str, str]:
    return {p.name: p.read_text() for p in settings.dhcp_hosts_dir.iterdir()}


def test_sync_writes_one_file_per_known_mac(database, dhcp_settings):
    ids = seed(database)
    allocate(database, "SN001", "eno1", ids["provisioning"], "10.77.0.10")
    allocate(database, "SN001", "eno1", ids["production"], "10.79.0.10")
    allocate(database, "SN001", "bmc", ids["bmc"], "10.76.0.10")
    allocate(database, "SN002", "eno1", ids["discovery"], "10.78.0.50")  # not what makes known

    result = sync(database, dhcp_settings)

    assert result == dhcp.SyncResult(
        added=(NODE01, NODE01_BMC), changed=(), removed=(), hupped=False
    )
    assert host_files(dhcp_settings) == {
        NODE01: f"{NODE01},10.77.0.10,node01,12h\n{NODE01},10.79.0.10,node01,12h\n",
        NODE01_BMC: f"{NODE01_BMC},10.76.0.10,node01-bmc,12h\n",
    }
    for path in dhcp_settings.dhcp_hosts_dir.iterdir():
        assert path.stat().st_mode & 0o777 == 0o644  # dnsmasq reads them as nobody
    assert sync(database, dhcp_settings) == dhcp.SyncResult((), (), (), hupped=False)
    leftovers = {p.name for p in dhcp_settings.dhcp_hosts_dir.parent.iterdir()}
    assert leftovers == {"hosts", "hosts.lock"}  # no staging file stays behind


def test_sync_stages_each_file_outside_the_directory(database, dhcp_settings, monkeypatch):
    ids = seed(database)
    allocate(database, "SN001", "eno1", ids["provisioning"], "10.77.0.10")
    renames = []
    replace = os.replace

    def recorded(source, target):
        renames.append((Path(source), Path(target)))
        replace(source, target)

    monkeypatch.setattr(dhcp.os, "replace", recorded)
    sync(database, dhcp_settings)
    hosts_dir = dhcp_settings.dhcp_hosts_dir
    assert [(s.parent, t) for s, t in renames] == [(hosts_dir.parent, hosts_dir / NODE01)]


def test_sync_rewrites_changed_files_removes_stale_ones_and_leaves_others(database, dhcp_settings):
    ids = seed(database)
    allocate(database, "SN001", "eno1", ids["provisioning"], "10.77.0.10")
    allocate(database, "SN002", "eno1", ids["provisioning"], "10.77.0.11")
    sync(database, dhcp_settings)
    hosts_dir = dhcp_settings.dhcp_hosts_dir
    (hosts_dir / NODE01).write_text(f"{NODE01},10.77.0.99,edited,1h\n")
    (hosts_dir / STRANGER).write_text(f"{STRANGER},10.77.0.98,gone,12h\n")
    (hosts_dir / "operator.conf").write_text(f"{GHOST},10.77.0.97,kept,12h\n")
    release(database, "10.77.0.11")

    result = sync(database, dhcp_settings)

    assert (result.added, result.changed, result.removed) == ((), (NODE01,), (NODE02, STRANGER))
    assert not result.hupped and "no pid file" in result.problem  # dnsmasq is not running
    assert host_files(dhcp_settings) == {
        NODE01: f"{NODE01},10.77.0.10,node01,12h\n",
        "operator.conf": f"{GHOST},10.77.0.97,kept,12h\n",
    }


def test_sync_never_signals_a_process_that_is_not_dnsmasq(database, dhcp_settings):
    """A stale pid file may name another process by now: SIGHUP would end it."""
    ids = seed(database)
    allocate(database, "SN001", "eno1", ids["provisioning"], "10.77.0.10")
    sync(database, dhcp_settings)
    release(database, "10.77.0.10")
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        dhcp_settings.dhcp_pid_file.write_text(f"{sleeper.pid}\n")
        result = sync(database, dhcp_settings)
        assert result.removed == (NODE01,) and not result.hupped
        assert "not dnsmasq: not signalled" in result.problem
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_sync_after_commit_writes_what_was_committed_only(database, dhcp_settings):
    ids = seed(database)
    with pytest.raises(RuntimeError), database.transaction() as session:
        data = IpAllocationCreate(serial="SN001", interface="eno1", prefix_id=ids["provisioning"])
        service.allocate(session, data=data)
        dhcp.sync_hosts_after_commit(session, dhcp_settings)
        raise RuntimeError("rolled back")
    assert not dhcp_settings.dhcp_hosts_dir.exists()
    with database.transaction() as session:
        data = IpAllocationCreate(serial="SN002", interface="eno1", prefix_id=ids["provisioning"])
        service.allocate(session, data=data)
        dhcp.sync_hosts_after_commit(session, dhcp_settings)
        dhcp.sync_hosts_after_commit(session, dhcp_settings)  # one sync all the same
        assert not dhcp_settings.dhcp_hosts_dir.exists()  # not before the commit
    assert host_files(dhcp_settings) == {NODE02: f"{NODE02},10.77.0.2,sn002,12h\n"}


def test_render_reads_the_prefixes_of_one_site_or_all(database, dhcp_settings):
    seed(database)
    with database.transaction(write=False) as session:
        dub1 = dhcp.render(session, dhcp_settings, site="dub1")
        every = dhcp.render(session, dhcp_settings)
        with pytest.raises(NotFound, match="no site with name 'nowhere'"):
            dhcp.render(session, dhcp_settings, site="nowhere")
    assert "10.78.0.10,10.78.0.254" in dub1 and "10.88.0." not in dub1
    assert "10.78.0.10,10.78.0.254" in every and "10.88.0.1,10.88.0.254" in every


def test_cli_renders_to_a_file_and_syncs(database, dhcp_settings, root):
    ids = seed(database)
    allocate(database, "SN001", "eno1", ids["provisioning"], "10.77.0.10")
    env = {
        "METALYARD_DATA_DIR": str(root),
        "METALYARD_DATABASE_URL": database.url,
        "METALYARD_DHCP_INTERFACE": "s0",
        "METALYARD_PUBLIC_URL": "",
        "METALYARD_HOST": "127.0.0.1",
    }
    runner = CliRunner()
    rendered = runner.invoke(cli_app, ["dhcp", "render", "--site", "dub1"], env=env)
    assert rendered.exit_code == 0, rendered.output
    assert "dhcp-range=set:" in rendered.stdout
    assert "set METALYARD_PUBLIC_URL" in rendered.stderr  # 127.0.0.1 is not for machines
    written = runner.invoke(cli_app, ["dhcp", "render", "-o", str(root / "dnsmasq.conf")], env=env)
    assert written.exit_code == 0, written.output
    assert (root / "dnsmasq.conf").read_text().startswith("# dnsmasq configuration")
    synced = runner.invoke(cli_app, ["dhcp", "sync"], env=env)
    assert synced.exit_code == 0, synced.output
    assert synced.stdout == f"{root / 'dhcp' / 'hosts'}: 1 added, 0 changed, 0 removed\n"
    unset = runner.invoke(cli_app, ["dhcp", "render"], env={**env, "METALYARD_DHCP_INTERFACE": ""})
    assert unset.exit_code != 0 and "METALYARD_DHCP_INTERFACE is not set" in unset.stderr


# Real exchanges with dnsmasq -----------------------------------------------------------


@pytest.fixture
def served(database, dhcp_settings, root) -> Iterator[tuple[peer.DhcpPair, dict[str, int]]]:
    """dnsmasq serving site dub1 as rendered, with node01's eno1 known at 10.77.0.10."""
    reason = peer.missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"dnsmasq peer cannot run: {reason}; .ci/run must install it")
        pytest.skip(f"dnsmasq peer cannot run: {reason}")
    ids = seed(database)
    allocate(database, "SN001", "eno1", ids["provisioning"], "10.77.0.10")
    assert sync(database, dhcp_settings).added == (NODE01,)
    config = root / "dnsmasq.conf"
    with database.transaction(write=False) as session:
        config.write_text(dhcp.render(session, dhcp_settings, site="dub1"))
    pair = peer.DhcpPair(root, ["10.77.0.1/24", "10.78.0.1/24"]).create()
    try:
        pair.start_dnsmasq(config, dhcp_settings.dhcp_pid_file)
        yield pair, ids
    finally:
        pair.delete()


def lease_until(pair: peer.DhcpPair, mac: str, ready, timeout: float = 5.0) -> peer.Lease:
    """Ask again until `ready(lease)`: dnsmasq reads a new file or handles SIGHUP a moment
    after the sync returns."""
    deadline = time.monotonic() + timeout
    while True:
        lease = pair.lease(mac)
        if (lease is not None and ready(lease)) or time.monotonic() > deadline:
            return lease
        time.sleep(0.05)


def in_discovery_range(lease: peer.Lease | None) -> bool:
    if lease is None or not lease.address.startswith("10.78.0."):
        return False
    return 10 <= int(lease.address.rsplit(".", 1)[1]) <= 254


def test_a_known_mac_gets_its_fixed_address_and_the_long_lease(served):
    pair, _ = served
    lease = pair.lease(NODE01)
    assert lease == peer.Lease("10.77.0.10", KNOWN_LEASE, dhcp.BIOS_BOOT_FILE)
    assert f"{NODE01} node01" in pair.log_text()  # the hostname came from the host file


def test_an_unknown_mac_gets_a_discovery_lease_and_the_boot_chain(served, dhcp_settings, root):
    pair, _ = served
    bios = pair.lease(STRANGER)
    assert in_discovery_range(bios), bios
    assert (bios.seconds, bios.boot_file) == (DISCOVERY_LEASE, dhcp.BIOS_BOOT_FILE)
    assert pair.lease(STRANGER, PXE_UEFI).boot_file == dhcp.UEFI_BOOT_FILE
    assert pair.lease(STRANGER, IPXE).boot_file == BOOT_URL
    # And TFTP serves the boot file it was told to fetch.
    assert pair.client_run("ip", "addr", "add", f"{bios.address}/24", "dev", "c0").returncode == 0
    fetched = root / "fetched"
    tftp = pair.client_run(
        "busybox", "tftp", "-g", "-r", bios.boot_file, "-l", str(fetched), "10.78.0.1"
    )
    assert tftp.returncode == 0, tftp.stderr
    assert fetched.read_bytes() == (dhcp_settings.tftp_root / dhcp.BIOS_BOOT_FILE).read_bytes()


def test_hosts_come_without_restart_and_go_with_one_hup(served, database, dhcp_settings):
    """New files need no signal (dnsmasq watches the directory); removed and changed ones
    need SIGHUP, which the sync sends only then. A host line dnsmasq read from a file that
    was then deleted by hand (GHOST) stays known until a SIGHUP: the proof of each one."""
    pair, ids = served
    dnsmasq_pid = pair.dnsmasq.pid
    hosts_dir = dhcp_settings.dhcp_hosts_dir
    dhcp.write_atomically(
        hosts_dir / "operator.conf", f"{GHOST},10.77.0.200,ghost,12h\n", staging=hosts_dir.parent
    )
    assert lease_until(pair, GHOST, lambda lease: lease.address == "10.77.0.200")
    (hosts_dir / "operator.conf").unlink()
    assert in_discovery_range(pair.lease(NODE02))

    allocate(database, "SN002", "eno1", ids["provisioning"], "10.77.0.11")
    added = sync(database, dhcp_settings)
    assert (added.added, added.hupped) == ((NODE02,), False)
    assert lease_until(pair, NODE02, lambda lease: lease.address == "10.77.0.11").seconds == (
        KNOWN_LEASE
    )
    assert pair.lease(GHOST).address == "10.77.0.200"  # no SIGHUP came

    release(database, "10.77.0.11")
    removed = sync(database, dhcp_settings)
    assert (removed.removed, removed.hupped, removed.problem) == ((NODE02,), True, "")
    assert in_discovery_range(lease_until(pair, NODE02, in_discovery_range))
    assert in_discovery_range(pair.lease(GHOST))  # forgotten with the SIGHUP

    release(database, "10.77.0.10")
    allocate(database, "SN001", "eno1", ids["provisioning"], "10.77.0.12")
    changed = sync(database, dhcp_settings)
    assert (changed.changed, changed.hupped) == ((NODE01,), True)
    assert lease_until(pair, NODE01, lambda lease: lease.address == "10.77.0.12")
    assert pair.dnsmasq.poll() is None and pair.dnsmasq.pid == dnsmasq_pid  # never restarted


def test_dnsmasq_survives_sighup_with_the_host_files(served, database, dhcp_settings):
    """dnsmasq 2.90 crashes on SIGHUP when host files carry `set:` tags; ours carry none."""
    pair, _ = served
    assert "set:" not in (dhcp_settings.dhcp_hosts_dir / NODE01).read_text()
    os.kill(pair.dnsmasq.pid, signal.SIGHUP)
    assert lease_until(pair, NODE01, lambda lease: True).address == "10.77.0.10"
    assert pair.dnsmasq.poll() is None


def test_an_exchange_takes_well_under_a_second(served):
    pair, _ = served
    started = time.monotonic()
    for _ in range(5):
        assert pair.lease(NODE01) is not None
    assert (time.monotonic() - started) / 5 < 1.0


def test_sync_reads_the_known_hosts_in_one_statement(database, dhcp_settings):
    ids = seed(database)
    allocate(database, "SN001", "eno1", ids["provisioning"], "10.77.0.20")
    allocate(database, "SN001", "bmc", ids["bmc"], "10.76.0.20")
    allocate(database, "SN002", "eno1", ids["production"], "10.79.0.20")
    statements = []

    def count(_connection, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(database.engine, "before_cursor_execute", count)
    try:
        result = sync(database, dhcp_settings)
    finally:
        event.remove(database.engine, "before_cursor_execute", count)
    assert result.added == (NODE01, NODE02, NODE01_BMC)
    queries = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(queries) == 1, statements  # (SQLite's BEGIN aside)


def test_api_allocations_keep_the_host_files_in_step_on_the_dhcp_host(client, settings):
    settings.dhcp_interface = "s0"
    client.post("/v1/sites", json={"name": "dub1"})
    prefix = client.post(
        "/v1/prefixes", json={"site": "dub1", "cidr": "10.80.0.0/24", "role": "provisioning"}
    ).json()
    interfaces = [{"name": "eno1", "mac": "52:54:00:80:00:01"}]
    client.post("/v1/assets", json={"serial": "SN-DHCP", "interfaces": interfaces})
    answer = client.post(
        "/v1/ip-allocations",
        json={"serial": "SN-DHCP", "interface": "eno1", "prefix_id": prefix["id"]},
    )
    assert answer.status_code == 201, answer.text
    host_file = settings.dhcp_hosts_dir / "52:54:00:80:00:01"
    assert host_file.read_text().startswith("52:54:00:80:00:01,10.80.0.1,")
    client.delete(f"/v1/ip-allocations/{answer.json()['address']}")
    assert not host_file.exists()
