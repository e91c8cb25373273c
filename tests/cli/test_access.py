"""Tokens, users, teams, projects, whoami and the audit log from the command line."""

import json

import pytest
from sqlalchemy import text

from metalyard.sdk import Client
from tests.cli.conftest import items


@pytest.fixture
def admin_cli(cli, live_server, tokens):
    result = cli("region", "add", "test-1", "--url", live_server, "--token", tokens.admin)
    assert result.exit_code == 0, result.output
    return cli


def test_whoami_shows_user_scope_and_where(admin_cli, live_server):
    result = admin_cli("whoami")
    assert result.exit_code == 0
    assert "admin" in result.stdout and live_server in result.stdout and "test-1" in result.stdout


def test_password_mints_a_write_token_printed_once(admin_cli, live_server):
    created = admin_cli(
        "user",
        "create",
        "pat",
        "--role",
        "write",
        "--password",
        input="s3cret-enough-pw\ns3cret-enough-pw\n",
    )
    assert created.exit_code == 0, created.output
    result = admin_cli(
        "--region",
        "test-1",
        "token",
        "create",
        "--scope",
        "write",
        "--name",
        "sudo",
        "--expires-in",
        "1h",
        "--password",
        input="pat\ns3cret-enough-pw\n",
    )
    assert result.exit_code == 0, result.output
    # Only the secret goes to stdout, prompts to stderr: $(metalyard token create …) is it.
    secret = result.stdout.removesuffix("\n")
    assert secret.startswith("my_") and result.stdout == f"{secret}\n"
    assert result.stderr.startswith("user name: password: ")
    assert "shown only this once" in result.stderr
    me = admin_cli("whoami", "-o", "json", env={"METALYARD_TOKEN": secret})
    mine = json.loads(me.stdout)
    assert (mine["user"], mine["scope"]) == ("pat", "write")
    assert f"token {mine['token_id']} for pat, scope write, expires " in result.stderr


def test_wrong_password_exits_4(admin_cli):
    admin_cli("user", "create", "pat", "--password", input="s3cret-enough-pw\ns3cret-enough-pw\n")
    result = admin_cli("token", "create", "--password", input="pat\nwrong-password\n")
    assert result.exit_code == 4
    assert "wrong user name or password" in result.stderr


def test_read_token_cannot_mint_a_write_token(cli, live_server, tokens):
    cli("region", "add", "ro", "--serves", "test-1", "--url", live_server, "--token", tokens.read)
    result = cli("token", "create", "--scope", "write")
    assert result.exit_code == 4
    assert "cannot create a write token" in result.stderr


def test_token_list_and_revoke(admin_cli, live_server):
    created = json.loads(
        admin_cli("token", "create", "--name", "ci", "--expires-in", "2d", "-o", "json").stdout
    )
    listed = json.loads(admin_cli("token", "list", "-o", "json").stdout)["items"]
    assert [t["name"] for t in listed] == ["bootstrap", "ci"]
    assert "token" not in listed[1]
    everyone = json.loads(admin_cli("token", "list", "--all", "-o", "json").stdout)["items"]
    assert {t["user"] for t in everyone} == {"admin", "wanda", "rita", "otto"}
    assert admin_cli("token", "revoke", str(created["id"])).exit_code == 0
    result = admin_cli("whoami", env={"METALYARD_TOKEN": created["token"]})
    assert result.exit_code == 4 and "revoked" in result.stderr


def test_bad_duration_is_a_usage_error(admin_cli):
    assert admin_cli("token", "create", "--expires-in", "soon").exit_code == 2


def test_users_teams_and_projects(admin_cli):
    assert admin_cli("user", "create", "ana", "--email", "ana@example.com").exit_code == 0
    assert admin_cli("team", "create", "infra", "--member", "ana").exit_code == 0
    assert admin_cli("project", "create", "batch", "--team", "infra").exit_code == 0
    projects = items(admin_cli("project", "list", "--team", "infra", "-o", "json"))
    assert [p["name"] for p in projects] == ["batch"]
    shown = json.loads(admin_cli("user", "show", "ana", "-o", "json").stdout)
    assert (shown["email"], shown["teams"]) == ("ana@example.com", ["infra"])
    disabled = admin_cli("user", "update", "ana", "--disabled", "-o", "json")
    assert json.loads(disabled.stdout)["active"] is False
    busy = admin_cli("team", "delete", "infra")
    assert busy.exit_code == 6 and "still owns 1 project(s)" in busy.stderr
    assert admin_cli("project", "delete", "batch").exit_code == 0
    assert admin_cli("team", "delete", "infra").exit_code == 0
    assert "ana" in admin_cli("user", "list").stdout


def write_sites(url, token, *names):
    with Client(url, token) as client:
        for name in names:
            client.sites.create(name=name)


def test_audit_list_filters_by_actor_and_time(admin_cli, live_server, tokens):
    write_sites(live_server, tokens.write, "dub1")
    result = admin_cli("audit", "list", "--actor", "wanda", "--since", "1h", "-o", "json")
    assert [(e["action"], e["target"]) for e in items(result)] == [("create_site", "sites/dub1")]
    later = admin_cli("audit", "list", "--since", "2999-01-01T00:00", "-o", "json")
    assert json.loads(later.stdout) == {"items": [], "next_cursor": None}


def test_audit_verify_passes_then_names_an_edited_entry(admin_cli, live_server, tokens, database):
    write_sites(live_server, tokens.write, "dub1", "dub2")
    intact = admin_cli("audit", "verify")
    assert intact.exit_code == 0 and "audit log intact" in intact.stderr
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 2"))
    broken = admin_cli("audit", "verify")
    assert broken.exit_code == 1
    assert "seq 2:" in broken.stderr
    as_json = json.loads(admin_cli("audit", "verify", "-o", "json").stdout)
    assert as_json["ok"] is False and as_json["problems"][0]["seq"] == 2


def test_audit_needs_an_admin_token(writer_cli):
    assert writer_cli("audit", "list").exit_code == 4


def test_the_last_admin_cannot_disable_themselves(admin_cli):
    result = admin_cli("user", "update", "admin", "--disabled")
    assert result.exit_code == 6
    assert "user 'admin' is the last active admin" in result.stderr
    assert admin_cli("whoami").exit_code == 0


def test_a_reader_asking_for_the_audit_is_told_who_can_grant_it(cli, live_server, tokens):
    cli("region", "add", "ro", "--serves", "test-1", "--url", live_server, "--token", tokens.read)
    result = cli("audit", "verify")
    assert result.exit_code == 4
    assert "token create" not in result.stderr
    assert "an admin must grant the role (metalyard user update rita --role admin)" in (
        result.stderr
    )
