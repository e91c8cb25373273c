"""`metalyard user recover-admin`: the way back in when no admin can log in."""

from sqlalchemy import update

from metalyard.auth.models import User
from metalyard.sdk import Client


def on_the_server(database, settings) -> dict[str, str]:
    """The environment `metalyard serve` runs with: the database and its data directory."""
    return {"METALYARD_DATABASE_URL": database.url, "METALYARD_DATA_DIR": str(settings.data_dir)}


def test_a_locked_out_admin_is_re_enabled_with_a_token_printed_alone(
    cli, database, settings, live_server, tokens
):
    with database.transaction() as session:
        session.execute(update(User).where(User.name == "admin").values(active=False))
    result = cli("user", "recover-admin", "admin", env=on_the_server(database, settings))
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert result.stdout == f"{secret}\n" and secret.startswith("my_")  # fit for $(…)
    assert "shown only this once" in result.stderr
    with Client(live_server, secret) as client:
        me = client.whoami()
        assert (me.user, me.scope) == ("admin", "admin")
        (entry,) = client.audit.list(action="recover_admin")
        assert client.audit.verify().ok
    assert (entry.actor, entry.target, entry.token_id) == (
        "system:recover-admin",
        "users/admin",
        None,
    )
    assert "@" in entry.client  # the local account that ran it


def test_recovery_can_make_a_new_admin(cli, database, settings, live_server, tokens):
    result = cli("user", "recover-admin", "ops", env=on_the_server(database, settings))
    assert result.exit_code == 0, result.output
    with Client(live_server, result.stdout.strip()) as client:
        assert client.users.get("ops").role == "admin"


def test_recovery_needs_the_database_not_a_token(cli, tmp_path):
    unreachable = {
        "METALYARD_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/metalyard",
        "METALYARD_DATA_DIR": str(tmp_path),
    }
    result = cli("user", "recover-admin", "admin", env=unreachable)
    assert result.exit_code == 3
    assert result.stderr.startswith("error: cannot use the database ")
    assert result.stdout == ""


def test_recovery_refuses_a_malformed_name(cli, database, settings):
    result = cli("user", "recover-admin", "no spaces", env=on_the_server(database, settings))
    assert result.exit_code == 7 and "name" in result.stderr
