"""The agent reports what the machine is, and why for whatever it cannot read."""

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from metalyard.agent.facts import (
    CommandFailed,
    CommandNotFound,
    CommandTimeout,
    DictSource,
    Facts,
    LinuxSource,
    collect,
    parse_cpuinfo,
    parse_dmidecode_memory,
    parse_dmidecode_string,
    parse_ip_addr,
    parse_ip_link,
    parse_ipmitool_lan,
    parse_lldpctl,
    parse_lsblk,
    parse_lscpu,
    parse_smartctl_health,
    parse_speed,
)

GiB = 1 << 30


def unaccounted(facts: Facts) -> list[str]:
    """Paths of facts that are None with no reason in ``missing`` (on the path or above it)."""
    paths = [f"system.{k}" for k, v in asdict(facts.system).items() if v is None]
    paths += [f"cpu.{k}" for k, v in asdict(facts.cpu).items() if v is None]
    paths += [f"memory.{k}" for k, v in asdict(facts.memory).items() if v is None]
    paths += [name for name in ("disks", "nics", "lldp", "bmc") if getattr(facts, name) is None]
    paths += [f"disks.{d.name}.healthy" for d in facts.disks or [] if d.healthy is None]
    for nic in facts.nics or []:
        paths += [f"nics.{nic.name}.{k}" for k, v in asdict(nic).items() if v is None]

    def explained(path: str) -> bool:
        return any(path == key or path.startswith(key + ".") for key in facts.missing)

    return [path for path in paths if not explained(path)]


# --- the real machine -------------------------------------------------------------------


@pytest.fixture(scope="module")
def here() -> Facts:
    return collect(LinuxSource())


def physical_nics() -> dict[str, str]:
    net = Path("/sys/class/net")
    return {
        p.name: (p / "address").read_text().strip()
        for p in sorted(net.iterdir())
        if p.name != "lo" and (p / "device").exists()
    }


def installed(tool: str) -> bool:
    return (
        shutil.which(tool, path=f"{os.environ['PATH']}:/usr/local/sbin:/usr/sbin:/sbin") is not None
    )


def test_memory_total_is_memtotal(here):
    kb = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M).group(1)
    assert here.memory.total_bytes == int(kb) * 1024


def test_cpu_threads_are_the_logical_cpus(here):
    assert here.cpu.threads == os.cpu_count()
    assert here.cpu.model
    assert here.cpu.sockets and here.cpu.cores
    assert here.cpu.sockets <= here.cpu.cores <= here.cpu.threads


def test_nics_are_the_physical_interfaces_with_their_macs(here):
    assert {nic.name: nic.mac for nic in here.nics} == physical_nics()


def test_disks_are_lsblk_whole_disks(here):
    if not installed("lsblk"):
        assert here.disks is None and "not installed" in here.missing["disks"]
        return
    out = subprocess.run(
        ["lsblk", "-J", "-b", "-d", "-o", "NAME,SIZE,TYPE"], capture_output=True, text=True
    ).stdout
    expected = {
        d["name"]: int(d["size"])
        for d in json.loads(out)["blockdevices"]
        if d["type"] == "disk" and not d["name"].startswith(("loop", "ram", "zram"))
    }
    assert {d.name: d.size_bytes for d in here.disks} == expected


def test_every_fact_is_read_or_missing_with_a_reason(here):
    assert unaccounted(here) == []
    assert all(isinstance(reason, str) and reason for reason in here.missing.values())


def test_tools_that_are_not_installed_are_reported_so(here):
    if not installed("dmidecode"):
        assert here.missing["memory.dimms"] == "dmidecode not installed"
    if not installed("lldpctl"):
        assert here.missing["lldp"] == "lldpctl not installed"
    if not installed("ipmitool"):
        assert here.missing["bmc"] == "ipmitool not installed"
    if not installed("smartctl"):
        for disk in here.disks:
            assert here.missing[f"disks.{disk.name}.healthy"] == "smartctl not installed"


def test_facts_survive_a_json_round_trip(here):
    data = json.loads(json.dumps(here.to_dict()))
    assert Facts.from_dict(data) == here


def test_cli_prints_the_facts_as_json():
    proc = subprocess.run(
        [sys.executable, "-m", "metalyard.agent", "facts"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    facts = json.loads(proc.stdout)
    kb = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M).group(1)
    assert facts["memory"]["total_bytes"] == int(kb) * 1024
    assert set(facts) >= {"system", "cpu", "memory", "disks", "nics", "lldp", "bmc", "missing"}


def test_importing_the_agent_imports_only_the_standard_library():
    script = (
        "import sys; before = set(sys.modules); import metalyard.agent; "
        "print('\\n'.join(sorted(set(sys.modules) - before)))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    new = proc.stdout.split()
    ours = {m for m in new if m.split(".")[0] == "metalyard"}
    assert ours >= {"metalyard", "metalyard.agent", "metalyard.agent.facts"}
    assert all(m == "metalyard" or m.startswith("metalyard.agent") for m in ours), ours
    others = {m.split(".")[0] for m in new} - {"metalyard"}
    assert {m for m in others if m not in sys.stdlib_module_names} == set()


# --- LinuxSource ------------------------------------------------------------------------


def test_linux_source_times_out_a_hung_command():
    with pytest.raises(CommandTimeout, match=r"timed out after 0.2 s: sleep 5"):
        LinuxSource(timeout=0.2).run(["sleep", "5"])


def test_linux_source_reports_absent_and_failing_commands():
    with pytest.raises(CommandNotFound, match=r"^no-such-tool-here not installed$"):
        LinuxSource().run(["no-such-tool-here"])
    with pytest.raises(CommandFailed) as failed:
        LinuxSource().run([sys.executable, "-c", "print('partial'); raise SystemExit(8)"])
    assert failed.value.returncode == 8
    assert failed.value.stdout == "partial\n"


# --- a simulated machine ----------------------------------------------------------------

LSBLK_ARGS = "-J -b -d -o NAME,SIZE,MODEL,SERIAL,ROTA,TYPE,TRAN"
MEMINFO = "MemTotal:       65536000 kB\nMemFree:        60000000 kB\n"
LSBLK_ONE = '{"blockdevices": [{"name": "sda", "size": 480103981056, "model": "SSD",'
LSBLK_ONE += ' "serial": "S1", "rota": false, "type": "disk", "tran": "sata"}]}'


def test_absent_machine_reports_everything_missing_without_raising():
    facts = collect(DictSource())
    assert unaccounted(facts) == []
    assert facts.missing["memory.total_bytes"] == "/proc/meminfo not found"
    assert facts.missing["disks"] == "lsblk not installed"
    assert facts.missing["nics"] == "/sys/class/net not found"


def test_permission_denied_is_reported_with_the_path():
    source = DictSource(
        files={
            "/sys/class/dmi/id/sys_vendor": "Dell Inc.\n",
            "/sys/class/dmi/id/product_serial": PermissionError(13, "Permission denied"),
        }
    )
    facts = collect(source)
    assert facts.system.manufacturer == "Dell Inc."
    assert facts.system.serial is None
    assert facts.missing["system.serial"] == (
        "permission denied reading /sys/class/dmi/id/product_serial; dmidecode not installed"
    )


def test_dmidecode_fills_what_sysfs_will_not_tell():
    source = DictSource(
        files={"/sys/class/dmi/id/product_serial": PermissionError(13, "Permission denied")},
        commands={"dmidecode -s system-serial-number": "# comment\nCZ2041ABCD\n"},
    )
    facts = collect(source)
    assert facts.system.serial == "CZ2041ABCD"
    assert "system.serial" not in facts.missing
    # dmidecode is installed but has no answer recorded for the other keywords.
    assert "dmidecode -s system-uuid exited 1" in facts.missing["system.uuid"]


def test_placeholder_serial_counts_as_missing():
    source = DictSource(
        files={"/sys/class/dmi/id/product_serial": "To Be Filled By O.E.M.\n"},
        commands={"dmidecode -s system-serial-number": "To Be Filled By O.E.M.\n"},
    )
    facts = collect(source)
    assert facts.system.serial is None
    assert "placeholder 'To Be Filled By O.E.M.'" in facts.missing["system.serial"]


def test_a_command_that_times_out_is_missing_and_the_rest_still_collected():
    timeout = CommandTimeout(["lldpctl", "-f", "json"], 10)
    source = DictSource(
        files={"/proc/meminfo": MEMINFO},
        commands={"lldpctl -f json": timeout, "lsblk " + LSBLK_ARGS: LSBLK_ONE},
    )
    facts = collect(source)
    assert facts.lldp is None
    assert facts.missing["lldp"] == "command timed out after 10 s: lldpctl -f json"
    assert facts.memory.total_bytes == 65536000 * 1024
    assert [d.name for d in facts.disks] == ["sda"]
    assert facts.missing["disks.sda.healthy"] == "smartctl not installed"


def test_unparseable_output_is_missing_with_the_reason():
    facts = collect(DictSource(commands={"lsblk " + LSBLK_ARGS: "lsblk: unknown column"}))
    assert facts.disks is None
    assert facts.missing["disks"].startswith("could not parse lsblk")


def test_failing_disk_is_unhealthy_and_unknown_device_is_missing():
    argv = ["smartctl", "-H", "-j"]
    lsblk = json.dumps(
        {
            "blockdevices": [
                {"name": n, "size": 1, "model": None, "serial": None, "rota": False}
                | {"type": "disk", "tran": None}
                for n in ("sda", "sdb", "vda")
            ]
        }
    )
    source = DictSource(
        commands={
            "lsblk " + LSBLK_ARGS: lsblk,
            "smartctl -H -j /dev/sda": SMART_HEALTHY,
            "smartctl -H -j /dev/sdb": CommandFailed([*argv, "/dev/sdb"], 8, SMART_FAILING),
            "smartctl -H -j /dev/vda": CommandFailed([*argv, "/dev/vda"], 1, SMART_UNKNOWN),
        }
    )
    facts = collect(source)
    assert [(d.name, d.healthy) for d in facts.disks] == [
        ("sda", True),
        ("sdb", False),
        ("vda", None),
    ]
    assert facts.missing["disks.vda.healthy"] == "/dev/vda: Unable to detect device type"


def test_nics_from_sysfs_and_ip():
    files = {
        "/sys/class/net/lo/address": "00:00:00:00:00:00\n",
        "/sys/class/net/eno1/device": "",
        "/sys/class/net/eno1/address": "3c:ec:ef:00:00:01\n",
        "/sys/class/net/eno1/operstate": "up\n",
        "/sys/class/net/eno1/speed": "25000\n",
        "/sys/class/net/eno2/device": "",
        "/sys/class/net/eno2/address": "3c:ec:ef:00:00:01\n",
        "/sys/class/net/eno2/operstate": "down\n",
        "/sys/class/net/eno2/speed": OSError(22, "Invalid argument"),
        "/sys/class/net/bond0/address": "3c:ec:ef:00:00:01\n",
        "/sys/class/net/eno1.100/address": "3c:ec:ef:00:00:01\n",
        "/sys/class/net/veth1a2b/address": "aa:aa:aa:aa:aa:aa\n",
    }
    source = DictSource(files=files, commands={"ip -j -d link show": IP_LINK})
    facts = collect(source)
    nics = {nic.name: nic for nic in facts.nics}
    assert set(nics) == {"eno1", "eno2"}
    assert nics["eno1"].link_up is True and nics["eno1"].speed_mbps == 25000
    assert nics["eno1"].vlan_ids == [100, 200]
    assert nics["eno2"].mac == "3c:ec:ef:00:00:02"  # the burned-in one, not the bond's
    assert nics["eno2"].link_up is False and nics["eno2"].speed_mbps is None
    assert facts.missing["nics.eno2.speed_mbps"] == (
        "cannot read /sys/class/net/eno2/speed: Invalid argument"
    )
    assert facts.missing["nics.eno1.ipv4"] == (
        "ip -j addr show exited 1: no output recorded for this command"
    )
    assert unaccounted(facts) == []


# --- parsers on captured outputs --------------------------------------------------------

DMIDECODE_17 = """\
# dmidecode 3.3
Getting SMBIOS data from sysfs.
SMBIOS 3.2.0 present.

Handle 0x1100, DMI type 17, 84 bytes
Memory Device
\tArray Handle: 0x1000
\tError Information Handle: Not Provided
\tTotal Width: 72 bits
\tData Width: 64 bits
\tSize: 32 GB
\tForm Factor: DIMM
\tSet: 1
\tLocator: A1
\tBank Locator: Not Specified
\tType: DDR4
\tType Detail: Synchronous Registered (Buffered)
\tSpeed: 3200 MT/s
\tManufacturer: 00AD063200AD
\tSerial Number: 3312A4F6
\tAsset Tag: 01201954
\tPart Number: HMA84GR7CJR4N-XN    
\tRank: 2
\tConfigured Memory Speed: 2933 MT/s
\tMinimum Voltage: 1.2 V
\tMaximum Voltage: 1.2 V
\tConfigured Voltage: 1.2 V

Handle 0x1101, DMI type 17, 84 bytes
Memory Device
\tArray Handle: 0x1000
\tError Information Handle: Not Provided
\tTotal Width: Unknown
\tData Width: Unknown
\tSize: No Module Installed
\tForm Factor: DIMM
\tSet: 1
\tLocator: A2
\tBank Locator: Not Specified
\tType: Unknown
\tType Detail: Synchronous
\tSpeed: Unknown
\tManufacturer: Not Specified
\tSerial Number: Not Specified
\tAsset Tag: Not Specified
\tPart Number: Not Specified

Handle 0x0028, DMI type 17, 40 bytes
Memory Device
\tArray Handle: 0x0026
\tSize: 16384 MB
\tLocator: DIMM_B1
\tBank Locator: P0_Node0_Channel1_Dimm0
\tType: DDR4
\tSpeed: 2666 MHz
\tManufacturer: Samsung
\tSerial Number: 40C8E5F2
\tPart Number: M393A2K43CB2-CTD
"""  # noqa: W291  (dmidecode pads part numbers)


def test_dmidecode_memory_lists_installed_dimms():
    dimms = parse_dmidecode_memory(DMIDECODE_17)
    assert [(d.locator, d.size_bytes, d.type, d.speed_mts, d.serial) for d in dimms] == [
        ("A1", 32 * GiB, "DDR4", 3200, "3312A4F6"),
        ("DIMM_B1", 16 * GiB, "DDR4", 2666, "40C8E5F2"),
    ]
    assert dimms[0].part_number == "HMA84GR7CJR4N-XN"
    assert dimms[0].bank_locator is None
    assert dimms[1].bank_locator == "P0_Node0_Channel1_Dimm0"


def test_dmidecode_without_smbios_is_an_error_not_an_empty_list():
    with pytest.raises(ValueError, match="No SMBIOS nor DMI entry point found"):
        parse_dmidecode_memory("# dmidecode 3.4\n# No SMBIOS nor DMI entry point found, sorry.\n")


def test_dmidecode_string_skips_comments():
    text = "# SMBIOS implementations newer than version 3.2.0 are not\n# fully supported.\nR740\n"
    assert parse_dmidecode_string(text) == "R740"


LSBLK = """\
{
   "blockdevices": [
      {"name":"loop0", "size":58363904, "model":null, "serial":null, "rota":false, "type":"loop", "tran":null},
      {"name":"sda", "size":480103981056, "model":"SAMSUNG MZ7LH480HAHQ-00005  ", "serial":"S45PNA0M512345", "rota":false, "type":"disk", "tran":"sata"},
      {"name":"sdb", "size":12000138625024, "model":"ST12000NM001G-2MV103", "serial":"ZL2ABCDE", "rota":true, "type":"disk", "tran":"sas"},
      {"name":"sr0", "size":1073741312, "model":"Virtual CDROM0", "serial":"AAAABBBBCCCC1", "rota":true, "type":"rom", "tran":"usb"},
      {"name":"zram0", "size":8589934592, "model":null, "serial":null, "rota":false, "type":"disk", "tran":null},
      {"name":"nvme0n1", "size":3840755982336, "model":"Dell Ent NVMe CM6 RI 3.84TB", "serial":"Y0R0A0ABCDEF", "rota":false, "type":"disk", "tran":"nvme"}
   ]
}
"""  # noqa: E501

# util-linux before 2.33 prints every value as a string.
LSBLK_OLD = """{"blockdevices": [
  {"name": "sda", "size": "1999844147200", "model": "PERC H730P Mini", "serial": "0012ab34",
   "rota": "1", "type": "disk", "tran": null}
]}"""


def test_lsblk_keeps_whole_hardware_disks():
    disks = parse_lsblk(LSBLK)
    assert [d.name for d in disks] == ["sda", "sdb", "nvme0n1"]
    sda, sdb, nvme = disks
    assert (sda.path, sda.size_bytes, sda.model, sda.serial) == (
        "/dev/sda",
        480103981056,
        "SAMSUNG MZ7LH480HAHQ-00005",
        "S45PNA0M512345",
    )
    assert (sda.rotational, sdb.rotational, nvme.transport) == (False, True, "nvme")


def test_lsblk_string_values_from_old_util_linux():
    (disk,) = parse_lsblk(LSBLK_OLD)
    assert (disk.size_bytes, disk.rotational, disk.transport) == (1999844147200, True, None)


SMART_HEALTHY = """\
{
  "json_format_version": [1, 0],
  "smartctl": {"version": [7, 2], "svn_revision": "5155", "platform_info": "x86_64-linux-5.15.0-91-generic",
    "build_info": "(local build)", "argv": ["smartctl", "-H", "-j", "/dev/sda"], "exit_status": 0},
  "device": {"name": "/dev/sda", "info_name": "/dev/sda [SAT]", "type": "sat", "protocol": "ATA"},
  "smart_status": {"passed": true}
}
"""  # noqa: E501

SMART_FAILING = """\
{
  "json_format_version": [1, 0],
  "smartctl": {"version": [7, 2], "argv": ["smartctl", "-H", "-j", "/dev/sdb"], "exit_status": 8},
  "device": {"name": "/dev/sdb", "info_name": "/dev/sdb", "type": "scsi", "protocol": "SCSI"},
  "smart_status": {"passed": false, "scsi": {"asc": 93, "ascq": 16, "ie_string": "FAILURE PREDICTION THRESHOLD EXCEEDED"}}
}
"""  # noqa: E501

SMART_NVME = """{"smartctl": {"version": [7, 3], "exit_status": 0},
  "device": {"name": "/dev/nvme0", "type": "nvme", "protocol": "NVMe"},
  "smart_status": {"passed": true, "nvme": {"value": 0}}}"""

SMART_UNKNOWN = """{"json_format_version": [1, 0],
  "smartctl": {"version": [7, 3], "argv": ["smartctl", "-H", "-j", "/dev/vda"],
    "messages": [{"string": "/dev/vda: Unable to detect device type", "severity": "error"}],
    "exit_status": 1}}"""


def test_smartctl_health_verdicts():
    assert parse_smartctl_health(SMART_HEALTHY) is True
    assert parse_smartctl_health(SMART_NVME) is True
    assert parse_smartctl_health(SMART_FAILING) is False
    with pytest.raises(ValueError, match="Unable to detect device type"):
        parse_smartctl_health(SMART_UNKNOWN)


IP_LINK = json.dumps(
    [
        {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP"], "operstate": "UNKNOWN",
         "link_type": "loopback", "address": "00:00:00:00:00:00"},
        {"ifindex": 2, "ifname": "eno1", "flags": ["BROADCAST", "MULTICAST", "SLAVE", "UP"],
         "master": "bond0", "operstate": "UP", "link_type": "ether",
         "address": "3c:ec:ef:00:00:01", "linkinfo": {"info_slave_kind": "bond"}},
        {"ifindex": 3, "ifname": "eno2", "flags": ["BROADCAST", "MULTICAST", "SLAVE"],
         "master": "bond0", "operstate": "DOWN", "link_type": "ether",
         "address": "3c:ec:ef:00:00:01", "permaddr": "3C:EC:EF:00:00:02",
         "linkinfo": {"info_slave_kind": "bond"}},
        {"ifindex": 4, "ifname": "bond0", "operstate": "UP", "address": "3c:ec:ef:00:00:01",
         "linkinfo": {"info_kind": "bond", "info_data": {"mode": "802.3ad"}}},
        {"ifindex": 5, "ifname": "eno1.100", "link": "eno1", "operstate": "UP",
         "address": "3c:ec:ef:00:00:01",
         "linkinfo": {"info_kind": "vlan", "info_data": {"protocol": "802.1Q", "id": 100}}},
        {"ifindex": 6, "ifname": "eno1.200", "link": "eno1", "operstate": "UP",
         "address": "3c:ec:ef:00:00:01",
         "linkinfo": {"info_kind": "vlan", "info_data": {"protocol": "802.1Q", "id": 200}}},
        {"ifindex": 7, "ifname": "veth1a2b", "link_index": 2, "operstate": "UP",
         "address": "aa:aa:aa:aa:aa:aa", "link_netnsid": 0,
         "linkinfo": {"info_kind": "veth"}},
    ]
)  # fmt: skip

# `ip -j link` without -d: no linkinfo, a VLAN is known by its name and parent only.
IP_LINK_PLAIN = """[{"ifindex":2,"ifname":"ens1f0","flags":["UP"],"operstate":"UP",
  "address":"B8:59:9F:11:22:33"},
 {"ifindex":9,"ifname":"ens1f0.42","link":"ens1f0","flags":["UP"],"operstate":"UP",
  "address":"b8:59:9f:11:22:33"}]"""


def test_ip_link_finds_vlans_and_burned_in_macs():
    links = {link.name: link for link in parse_ip_link(IP_LINK)}
    assert (links["eno1.100"].parent, links["eno1.100"].vlan_id) == ("eno1", 100)
    assert links["eno2"].mac == "3c:ec:ef:00:00:02"
    assert links["bond0"].vlan_id is None and links["veth1a2b"].vlan_id is None
    plain = {link.name: link for link in parse_ip_link(IP_LINK_PLAIN)}
    assert plain["ens1f0.42"].vlan_id == 42 and plain["ens1f0"].vlan_id is None
    assert plain["ens1f0"].mac == "b8:59:9f:11:22:33"


IP_ADDR = """[{"ifindex":4,"ifname":"eth0","operstate":"UP","address":"02:fc:00:00:00:01",
  "addr_info":[{"family":"inet","local":"192.0.2.2","prefixlen":24,"scope":"global"},
               {"family":"inet6","local":"fd00::2","prefixlen":64,"scope":"global"},
               {"family":"inet6","local":"fe80::fc:ff:fe00:1","prefixlen":64,"scope":"link"}]},
 {}, {"ifindex":2,"ifname":"ifb0","addr_info":[]}]"""


def test_ip_addr_splits_families():
    assert parse_ip_addr(IP_ADDR) == {
        "eth0": (["192.0.2.2/24"], ["fd00::2/64", "fe80::fc:ff:fe00:1/64"]),
        "ifb0": ([], []),
    }


def test_speed_unknown_values():
    assert parse_speed("25000\n") == 25000
    assert parse_speed("-1\n") is None
    assert parse_speed("4294967295") is None


CPUINFO_2S = "\n\n".join(
    f"processor\t: {n}\nvendor_id\t: GenuineIntel\n"
    f"model name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\n"
    f"physical id\t: {n // 4}\nsiblings\t: 4\ncore id\t\t: {n % 2}\ncpu cores\t: 2"
    for n in range(8)
)
CPUINFO_ARM = "processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\n\n" * 1 + (
    "processor\t: 1\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\n"
)
LSCPU_NESTED = json.dumps(
    {
        "lscpu": [
            {"field": "Architecture:", "data": "aarch64"},
            {"field": "CPU(s):", "data": "2"},
            {"field": "Vendor ID:", "data": "ARM", "children": [
                {"field": "Model name:", "data": "Neoverse-N1", "children": [
                    {"field": "Core(s) per socket:", "data": "2"},
                    {"field": "Socket(s):", "data": "1"},
                ]},
            ]},
        ]
    }
)  # fmt: skip


def test_cpuinfo_counts_sockets_cores_threads():
    cpu = parse_cpuinfo(CPUINFO_2S)
    assert (cpu.model, cpu.sockets, cpu.cores, cpu.threads) == (
        "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
        2,
        4,
        8,
    )


def test_arm_cpu_takes_what_cpuinfo_lacks_from_lscpu():
    assert parse_lscpu(LSCPU_NESTED).model == "Neoverse-N1"
    source = DictSource(files={"/proc/cpuinfo": CPUINFO_ARM}, commands={"lscpu -J": LSCPU_NESTED})
    facts = collect(source)
    assert asdict(facts.cpu) == {"model": "Neoverse-N1", "sockets": 1, "cores": 2, "threads": 2}
    assert not [k for k in facts.missing if k.startswith("cpu")]


LLDPCTL = """\
{
  "lldp": {
    "interface": [
      {"eno1": {
        "via": "LLDP", "rid": "1", "age": "0 day, 00:10:02",
        "chassis": {"leaf-r12-a.dc1.example.net": {
          "id": {"type": "mac", "value": "0c:29:ef:aa:01:00"},
          "descr": "Arista Networks EOS version 4.28.3M running on an Arista DCS-7050SX3-48YC8",
          "mgmt-ip": "10.20.0.12",
          "capability": [{"type": "Bridge", "enabled": true}, {"type": "Router", "enabled": true}]}},
        "port": {"id": {"type": "ifname", "value": "Ethernet12"}, "descr": "srv-r12-u07 eno1",
                 "ttl": "120", "mfs": "9236"},
        "vlan": [{"vlan-id": "200", "value": "storage"}, {"vlan-id": "100", "pvid": true, "value": "prod"}]}},
      {"eno2": {
        "via": "LLDP", "rid": "2", "age": "0 day, 00:09:58",
        "chassis": {"id": {"type": "mac", "value": "0c:29:ef:bb:02:00"}},
        "port": {"id": {"type": "mac", "value": "0c:29:ef:bb:02:0d"}, "descr": "Gi1/0/13", "ttl": "120"}}}
    ]
  }
}
"""  # noqa: E501

# One interface: lldpctl collapses the list into an object.
LLDPCTL_ONE = """{"lldp": {"interface": {"eth0": {"via": "LLDP",
  "chassis": {"tor1": {"id": {"type": "mac", "value": "44:38:39:00:00:01"},
                       "mgmt-ip": ["10.0.0.1", "fe80::4638:39ff:fe00:1"]}},
  "port": {"id": {"type": "ifname", "value": "swp7"}, "descr": "swp7"},
  "vlan": {"vlan-id": "42", "pvid": true, "value": "vlan42"}}}}}"""


def test_lldpctl_neighbours():
    eno1, eno2 = parse_lldpctl(LLDPCTL)
    assert (eno1.interface, eno1.switch_name, eno1.port_id, eno1.port_description) == (
        "eno1",
        "leaf-r12-a.dc1.example.net",
        "Ethernet12",
        "srv-r12-u07 eno1",
    )
    assert (eno1.vlan_id, eno1.switch_mgmt_ip, eno1.switch_id) == (
        100,
        "10.20.0.12",
        "0c:29:ef:aa:01:00",
    )
    assert (eno2.switch_name, eno2.switch_id, eno2.port_description) == (
        None,
        "0c:29:ef:bb:02:00",
        "Gi1/0/13",
    )
    (eth0,) = parse_lldpctl(LLDPCTL_ONE)
    assert (eth0.switch_name, eth0.port_id, eth0.vlan_id, eth0.switch_mgmt_ip) == (
        "tor1",
        "swp7",
        42,
        "10.0.0.1",
    )
    assert parse_lldpctl('{\n  "lldp": {\n\n  }\n}\n') == []


IPMITOOL_LAN = """\
Set in Progress         : Set Complete
Auth Type Support       : NONE MD2 MD5 PASSWORD 
Auth Type Enable        : Callback : MD2 MD5 PASSWORD 
                        : User     : MD2 MD5 PASSWORD 
                        : Operator : MD2 MD5 PASSWORD 
                        : Admin    : MD2 MD5 PASSWORD 
                        : OEM      : MD2 MD5 PASSWORD 
IP Address Source       : DHCP Address
IP Address              : 10.40.12.57
Subnet Mask             : 255.255.252.0
MAC Address             : 3C:EC:EF:4A:1B:2C
SNMP Community String   : public
IP Header               : TTL=0x00 Flags=0x00 Precedence=0x00 TOS=0x00
BMC ARP Control         : ARP Responses Enabled, Gratuitous ARP Disabled
Default Gateway IP      : 10.40.12.1
Default Gateway MAC     : 00:00:00:00:00:00
Backup Gateway IP       : 0.0.0.0
Backup Gateway MAC      : 00:00:00:00:00:00
802.1q VLAN ID          : Disabled
802.1q VLAN Priority    : 0
RMCP+ Cipher Suites     : 1,2,3,6,7,8,11,12
Cipher Suite Priv Max   : XaaaXXaaaXXaaXX
                        :     X=Cipher Suite Unused
Bad Password Threshold  : Not Available
"""  # noqa: W291


def test_ipmitool_lan_print():
    bmc = parse_ipmitool_lan(IPMITOOL_LAN)
    assert (bmc.ip_address, bmc.ip_source, bmc.mac) == ("10.40.12.57", "dhcp", "3c:ec:ef:4a:1b:2c")
    assert (bmc.netmask, bmc.gateway, bmc.vlan_id) == ("255.255.252.0", "10.40.12.1", None)
    tagged = IPMITOOL_LAN.replace("DHCP Address", "Static Address").replace(
        "VLAN ID          : Disabled", "VLAN ID          : 120"
    )
    assert (parse_ipmitool_lan(tagged).ip_source, parse_ipmitool_lan(tagged).vlan_id) == (
        "static",
        120,
    )
