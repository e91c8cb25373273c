"""Every kind of failure is one line on stderr and its own exit code, never a traceback."""

import datetime as dt

from sqlalchemy import text

from metalyard.auth import service as auth_service
from metalyard.auth.models import ApiToken
from metalyard.auth.schemas import TokenCreate
from metalyard.cli.exit_codes import ExitCode


def one_clean_line(result) -> str:
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_expired_token_exits_4_saying_it_expired(cli, live_server, database, tokens):
    with database.transaction() as session:
        user = auth_service.get_user(session, name="rita")
        token, secret = auth_service.create_token(
            session,
            data=TokenCreate(scope="read", expires_in=60),
            user_id=user.id,
            ceiling=user.role,
        )
        session.get(ApiToken, token.id).expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(1)
    cli("region", "add", "t", "--no-check", "--url", live_server, "--token", secret)
    result = cli("asset", "list")
    assert result.exit_code == ExitCode.NOT_ALLOWED
    assert "expired" in one_clean_line(result)


def test_server_error_exits_8_with_the_request_id(writer_cli, database):
    with database.engine.begin() as connection:
        connection.execute(text("ALTER TABLE sites RENAME TO sites_away"))
    try:
        result = writer_cli("site", "list")
    finally:
        with database.engine.begin() as connection:
            connection.execute(text("ALTER TABLE sites_away RENAME TO sites"))
    assert result.exit_code == ExitCode.SERVER_ERROR
    line = one_clean_line(result)
    assert "internal error; request id" in line


def test_every_client_failure_is_one_line(writer_cli, cli):
    for args, code in (
        (("asset", "show", "NOPE"), ExitCode.NOT_FOUND),
        (("asset", "create", "bad serial!"), ExitCode.INVALID_INPUT),
    ):
        result = writer_cli(*args)
        assert result.exit_code == code, result.output
        one_clean_line(result)
    unreachable = cli("--region", "nowhere", "whoami")
    assert unreachable.exit_code == ExitCode.NO_REGION
    one_clean_line(unreachable)


def test_a_lost_answer_to_a_change_exits_12_where_a_script_would_retry_3():
    from metalyard.cli.exit_codes import exit_code_for
    from metalyard.errors import OutcomeUnknown, Unreachable

    assert exit_code_for(OutcomeUnknown("no answer; it may have been carried out")) == 12
    assert exit_code_for(Unreachable("cannot reach")) == ExitCode.UNREACHABLE == 3
