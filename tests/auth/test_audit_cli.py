"""`metalyard audit …`: refusals it cannot answer, and lists longer than one screen."""

import json

import pytest
from sqlalchemy import text

from metalyard.auth.audit import service
from metalyard.sdk import Client
from tests.auth.test_audit_seal import write_legacy_entries
from tests.cli.conftest import cli, config_file  # noqa: F401  (the command-line fixtures)


@pytest.fixture
def admin_cli(cli, live_server, tokens):  # noqa: F811
    result = cli("region", "add", "test-1", "--url", live_server, "--token", tokens.admin)
    assert result.exit_code == 0, result.output
    return cli


def write_sites(url, token, count):
    with Client(url, token) as client:
        for n in range(count):
            client.sites.create(name=f"s{n}")


def test_an_unknown_outcome_is_a_usage_error_naming_the_allowed_ones(admin_cli):
    result = admin_cli("audit", "list", "--outcome", "bogus")
    assert result.exit_code == 2
    assert "bogus" in result.stderr and "success" in result.stderr and "denied" in result.stderr


def test_an_outcome_filters_in_any_case(admin_cli, live_server, tokens):
    write_sites(live_server, tokens.write, 1)
    result = admin_cli("audit", "list", "--outcome", "SUCCESS", "-o", "json")
    assert [e["outcome"] for e in json.loads(result.stdout)["items"]] == ["success"]


def test_since_after_until_is_refused(admin_cli):
    result = admin_cli("audit", "list", "--since", "1h", "--until", "2h")
    assert result.exit_code != 0
    assert "must be before until" in result.stderr


def test_a_list_cut_short_says_more_exist(admin_cli, live_server, tokens):
    write_sites(live_server, tokens.write, 3)
    cut = admin_cli("audit", "list", "--limit", "2", "-o", "json")
    assert [e["target"] for e in json.loads(cut.stdout)["items"]] == ["sites/s2", "sites/s1"]
    assert "more exist" in cut.stderr
    everything = admin_cli("audit", "list", "--all", "-o", "json")
    assert (
        len(json.loads(everything.stdout)["items"]) == 3 and "more exist" not in everything.stderr
    )


def test_verify_names_entries_deleted_from_the_end(admin_cli, live_server, tokens, database):
    write_sites(live_server, tokens.write, 3)
    with database.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_entries WHERE seq = 3"))
    result = admin_cli("audit", "verify")
    assert result.exit_code == 1
    assert "seq 3: missing: entries 3..3 were deleted from the end of the log" in result.stderr


def test_db_upgrade_seals_a_log_written_before_macs(cli, database, settings):  # noqa: F811
    write_legacy_entries(database, 3)
    env = {"METALYARD_DATABASE_URL": database.url, "METALYARD_DATA_DIR": str(settings.data_dir)}
    keyless = cli("db", "upgrade", env=env)  # a host without the region's key
    assert keyless.exit_code == 7, keyless.output
    assert "must be sealed with the region's secret key" in keyless.stderr
    assert not (settings.data_dir / "secret.key").exists()
    service.AuditKeys.from_settings(settings)  # the region's key file, made where it lives
    upgraded = cli("db", "upgrade", env=env)
    assert upgraded.exit_code == 0, upgraded.output
    assert "sealed the audit log's head at entry 3" in upgraded.stderr
    with database.transaction(write=False) as session:
        assert service.verify(session, keys=service.AuditKeys.from_settings(settings)).ok
    assert "sealed" not in cli("db", "upgrade", env=env).stderr
