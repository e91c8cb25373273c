"""`metalyard vendor`, `metalyard profile` and `metalyard machine-class profiles`."""

import json

import yaml

from metalyard.cli.exit_codes import ExitCode
from tests.procurement.test_profiles import SPEC


def test_profiles_are_created_versioned_diffed_and_mapped(writer_cli, tmp_path):
    spec = tmp_path / "r750.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    assert writer_cli("vendor", "create", "acme", "--contact", "sales@acme.example").exit_code == 0
    result = writer_cli("profile", "create", "acme/r750", "--spec", str(spec))
    assert result.exit_code == 0, result.output

    spec.write_text(yaml.safe_dump({**SPEC, "memory_gib": 1024}))
    result = writer_cli(
        "profile", "add-version", "acme/r750", "--spec", str(spec), "--note", "gen 2"
    )
    assert result.exit_code == 0, result.output

    result = writer_cli("profile", "diff", "acme/r750", "1", "2", "-o", "json")
    assert json.loads(result.stdout) == [{"field": "memory_gib", "old": 512, "new": 1024}]

    writer_cli("machine-class", "create", "compute")
    result = writer_cli("machine-class", "profiles", "compute", "--set", "acme/r750@2")
    assert result.exit_code == 0, result.output
    shown = writer_cli("profile", "show", "acme/r750", "--version", "2", "-o", "json")
    assert json.loads(shown.stdout)["in_use"] is True


def test_bad_spec_files_and_names_are_refused(writer_cli, tmp_path):
    writer_cli("vendor", "create", "acme")
    spec = tmp_path / "bad.yaml"
    spec.write_text("- just\n- a list\n")
    result = writer_cli("profile", "create", "acme/x", "--spec", str(spec))
    assert result.exit_code == ExitCode.INVALID_INPUT and "a spec is a mapping" in result.stderr
    spec.write_text(yaml.safe_dump({**SPEC, "memory_gib": -1}))
    result = writer_cli("profile", "create", "acme/x", "--spec", str(spec))
    assert result.exit_code == ExitCode.INVALID_INPUT and "memory_gib" in result.stderr
    result = writer_cli("profile", "show", "no-slash")
    assert result.exit_code == ExitCode.USAGE


def test_order_three_discover_three_and_the_order_closes(
    writer_cli, cli, live_server, tokens, tmp_path
):
    """End to end through the CLI: request, second-person approval, order, delivery stage,
    discovery (through the service until the discovery flow lands), evaluation, report."""
    spec = tmp_path / "r750.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    writer_cli("vendor", "create", "acme")
    writer_cli("profile", "create", "acme/r750", "--spec", str(spec))
    created = writer_cli(
        "purchase-request", "create", "dub1 web", "--line", "acme/r750@1=3", "-o", "json"
    )
    request_id = json.loads(created.stdout)["id"]
    parked = writer_cli("purchase-request", "approve", str(request_id), "-o", "json")
    assert "waiting for approval" in parked.stderr, parked.output
    change_id = json.loads(parked.stdout)["id"]
    checker = cli(
        "change",
        "approve",
        str(change_id),
        env={"METALYARD_URL": live_server, "METALYARD_TOKEN": tokens.other_write},
    )
    assert checker.exit_code == 0, checker.output
    (number,) = json.loads(
        writer_cli("purchase-request", "show", str(request_id), "-o", "json").stdout
    )["orders"]

    assert writer_cli("order", "transition", number, "ordered").exit_code == 0
    assert writer_cli("order", "stage", "add", number, "3", "2030-01-31").exit_code == 0
    for to in ("shipped", "delivered", "racked"):
        result = writer_cli("order", "stage", "move", number, "1", to, "--reason", f"dock {to}")
        assert result.exit_code == 0, result.output
    packing = tmp_path / "packing.csv"
    packing.write_text("serial\nSN-E2E-1\nSN-E2E-2\nSN-E2E-3\n")
    assert writer_cli("order", "import-serials", number, str(packing)).exit_code == 0

    for n in (1, 2, 3):
        writer_cli("asset", "create", f"SN-E2E-{n}")
        matched = writer_cli("procurement", "match", f"SN-E2E-{n}", "-o", "json")
        assert json.loads(matched.stdout)["order"] == number, matched.output
        writer_cli("procurement", "passed", f"SN-E2E-{n}")

    shown = json.loads(writer_cli("order", "show", number, "-o", "json").stdout)
    assert shown["state"] == "closed"
    report = writer_cli("procurement", "report", "--csv")
    assert f"{number},acme,test-1,closed,3,3,3,3,3,0,0" in report.stdout
    events = writer_cli("order", "events", number, "-o", "json")
    reasons = [e["reason"] for e in json.loads(events.stdout)]
    assert "dock racked" in reasons
