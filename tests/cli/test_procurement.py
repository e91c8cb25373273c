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
