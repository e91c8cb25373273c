"""`metalyard prefix …` and `metalyard ip …` against a live server."""

import json

import pytest

from metalyard.cli.exit_codes import ExitCode


@pytest.fixture
def fleet(writer_cli):
    """Site dub1 with two assets, each with a `bmc` and an `eno1` interface."""
    assert writer_cli("site", "create", "dub1").exit_code == 0
    for n in range(2):
        result = writer_cli(
            "asset", "create", f"SN{n}",
            "--interface", f"bmc=52:54:00:00:01:0{n}",
            "--interface", f"eno1=52:54:00:00:02:0{n}",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    return writer_cli


def run_json(cli, *args):
    result = cli(*args, "-o", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_prefixes_are_created_shown_updated_reserved_and_deleted(fleet):
    created = run_json(
        fleet, "prefix", "create", "10.0.0.0/24", "--site", "dub1", "--role", "BMC",
        "--gateway", "10.0.0.1", "--dns", "10.0.0.2", "--dns", "10.0.0.3", "--vlan", "100",
    )  # fmt: skip
    assert (created["role"], created["dns_servers"]) == ("bmc", ["10.0.0.2", "10.0.0.3"])
    assert run_json(fleet, "prefix", "show", "10.0.0.0/24") == created
    assert run_json(fleet, "prefix", "show", str(created["id"])) == created
    table = fleet("prefix", "list", "--site", "dub1")
    assert "10.0.0.0/24" in table.stdout and "bmc" in table.stdout, table.output

    updated = run_json(
        fleet, "prefix", "update", "10.0.0.0/24", "--no-gateway", "--no-dns", "--version", "1"
    )
    assert (updated["gateway"], updated["dns_servers"], updated["vlan"]) == (None, [], 100)
    stale = fleet("prefix", "update", "10.0.0.0/24", "--vlan", "7", "--version", "1")
    assert stale.exit_code == ExitCode.CONFLICT and "since version 1" in stale.stderr

    reserved = run_json(
        fleet, "prefix", "reserve", "10.0.0.0/24", "10.0.0.1", "10.0.0.9", "--reason", "switches"
    )
    listed = fleet("prefix", "reserved", "10.0.0.0/24")
    assert "10.0.0.9" in listed.stdout and "switches" in listed.stdout
    result = fleet("prefix", "unreserve", "10.0.0.0/24", str(reserved["id"]))
    assert result.exit_code == 0 and "deleted reserved range" in result.stderr
    assert fleet("prefix", "delete", "10.0.0.0/24").exit_code == 0
    gone = fleet("prefix", "show", "10.0.0.0/24")
    assert gone.exit_code == ExitCode.NOT_FOUND and "no prefix 10.0.0.0/24" in gone.stderr


def test_addresses_are_allocated_listed_and_released(fleet):
    run_json(fleet, "prefix", "create", "10.0.0.0/29", "--site", "dub1", "--role", "bmc")
    run_json(fleet, "prefix", "create", "10.1.0.0/24", "--site", "dub1", "--role", "production")
    first = run_json(fleet, "ip", "allocate", "SN0", "bmc", "--prefix", "10.0.0.0/29")
    assert first["address"] == "10.0.0.1"
    again = run_json(fleet, "ip", "allocate", "SN0", "bmc", "--site", "dub1", "--role", "bmc")
    assert again == first
    chosen = run_json(
        fleet, "ip", "allocate", "SN1", "eno1", "--site", "dub1", "--role", "production",
        "--address", "10.1.0.50",
    )  # fmt: skip
    assert chosen["address"] == "10.1.0.50"
    run_json(fleet, "ip", "allocate", "SN1", "bmc", "--prefix", "10.0.0.0/29")

    table = fleet("ip", "list", "--site", "dub1")
    assert [line.split()[0] for line in table.stdout.splitlines()[1:] if line.strip()] == [
        "10.0.0.1",
        "10.1.0.50",
        "10.0.0.2",
    ], table.output
    assert [a["address"] for a in run_json(fleet, "ip", "list", "--serial", "SN1")["items"]] == [
        "10.1.0.50",
        "10.0.0.2",
    ]
    assert [
        a["address"] for a in run_json(fleet, "ip", "list", "--prefix", "10.0.0.0/29")["items"]
    ] == [
        "10.0.0.1",
        "10.0.0.2",
    ]
    assert run_json(fleet, "ip", "show", "10.1.0.50")["serial"] == "SN1"

    released = fleet("ip", "release", "10.0.0.1")
    assert released.exit_code == 0 and "released 10.0.0.1" in released.stderr
    by_asset = run_json(fleet, "ip", "release", "--serial", "SN1", "--interface", "eno1")
    assert [a["address"] for a in by_asset] == ["10.1.0.50"]
    assert [a["address"] for a in run_json(fleet, "ip", "list")["items"]] == ["10.0.0.2"]


def test_refusals_exit_with_their_codes_and_say_why(fleet):
    run_json(fleet, "prefix", "create", "10.0.0.0/30", "--site", "dub1", "--role", "bmc")
    for args, code, says in [
        (
            ("prefix", "create", "10.0.0.0/16", "--site", "dub1", "--role", "bmc"),
            ExitCode.CONFLICT,
            "overlaps prefix 10.0.0.0/30",
        ),
        (
            ("prefix", "create", "10.9.0.1/16", "--site", "dub1", "--role", "bmc"),
            ExitCode.INVALID_INPUT,
            "did you mean 10.9.0.0/16",
        ),
        (
            ("ip", "allocate", "SN0", "bmc", "--prefix", "1", "--site", "dub1"),
            ExitCode.USAGE,
            "either --prefix, or --site and --role",
        ),
        (("ip", "allocate", "SN0", "bmc", "--site", "dub1"), ExitCode.USAGE, "--role"),
        (("ip", "allocate", "SN0", "bmc"), ExitCode.USAGE, "either --prefix"),
        (("ip", "allocate", "SN0", "bmc", "--prefix", "eh"), ExitCode.USAGE, "as its id"),
        (
            ("ip", "allocate", "SN0", "bmc", "--prefix", "10.8.0.0/24"),
            ExitCode.NOT_FOUND,
            "no prefix 10.8.0.0/24",
        ),
        (("ip", "release"), ExitCode.USAGE, "either an ADDRESS"),
        (("ip", "release", "10.0.0.2"), ExitCode.NOT_FOUND, "10.0.0.2 is not allocated"),
        (("prefix", "update", "10.0.0.0/30"), ExitCode.USAGE, "nothing to change"),
    ]:
        result = fleet(*args)
        assert result.exit_code == code, (args, result.output)
        assert says in result.output, (args, result.output)

    for serial in ("SN0", "SN1"):
        assert fleet("ip", "allocate", serial, "bmc", "--prefix", "10.0.0.0/30").exit_code == 0
    full = fleet("ip", "allocate", "SN0", "eno1", "--prefix", "10.0.0.0/30")
    assert full.exit_code == ExitCode.CONFLICT
    assert "prefix 10.0.0.0/30 is full" in full.stderr and "Traceback" not in full.output
