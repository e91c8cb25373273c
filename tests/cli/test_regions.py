"""Region profiles: add, switch in one command, override for one command."""

import json
import ssl
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
import yaml

from metalyard.api import create_app
from metalyard.cli.exit_codes import ExitCode
from metalyard.config import Settings
from metalyard.db import Database, upgrade
from tests.cli.conftest import serving
from tests.peers.postgres import free_port
from tests.peers.tls import self_signed


def test_no_region_configured_exits_9_saying_how_to_add_one(cli):
    result = cli("asset", "list")
    assert result.exit_code == 9
    assert "metalyard region add" in result.stderr
    assert "Traceback" not in result.output


def test_region_use_switches_which_server_answers(cli, live_server, tokens, database, tmp_path):
    other = create_app(Settings(region="other", data_dir=tmp_path, database_url="x"), database)
    with serving(other) as other_url:
        for name, url, token in (
            ("test-1", live_server, tokens.read),
            ("other", other_url, tokens.admin),
        ):
            assert cli("region", "add", name, "--url", url, "--token", token).exit_code == 0
        assert json.loads(cli("region", "-o", "json").stdout)["name"] == "test-1"

        assert cli("region", "use", "other").exit_code == 0
        assert json.loads(cli("region", "show", "-o", "json").stdout)["name"] == "other"
        me = json.loads(cli("whoami", "-o", "json").stdout)
        assert (me["user"], me["scope"]) == ("admin", "admin")

        once = cli("--region", "test-1", "whoami", "-o", "json")
        assert json.loads(once.stdout)["user"] == "rita"
        assert json.loads(cli("whoami", "-o", "json").stdout)["user"] == "admin"


def test_region_list_marks_the_one_in_use_and_never_prints_tokens(cli, tokens):
    dub1 = "https://dub1.example:8080"
    cli("region", "add", "dub1", "--url", dub1, "--token", tokens.admin, "--no-check")
    cli("region", "add", "ams1", "--url", "https://ams1.example", "--insecure", "--no-check")
    cli("region", "use", "ams1")
    listed = cli("region", "list", "-o", "json")
    assert listed.exit_code == 0
    assert json.loads(listed.stdout) == [
        {
            "current": True,
            "name": "ams1",
            "url": "https://ams1.example",
            "serves": None,
            "token": False,
            "tls": "insecure",
        },
        {
            "current": False,
            "name": "dub1",
            "url": "https://dub1.example:8080",
            "serves": None,
            "token": True,
            "tls": "system CAs",
        },
    ]
    table = cli("region", "list")
    assert tokens.admin not in table.output and "dub1" in table.stdout


def test_config_file_holds_tokens_so_only_its_owner_may_read_it(cli, config_file, tokens):
    cli(
        "region",
        "add",
        "dub1",
        "--url",
        "http://127.0.0.1:1",
        "--token",
        tokens.admin,
        "--no-check",
    )
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_file.parent.stat().st_mode) == 0o700
    assert yaml.safe_load(config_file.read_text()) == {
        "current": "dub1",
        "regions": {"dub1": {"url": "http://127.0.0.1:1", "token": tokens.admin}},
    }


def test_first_region_is_used_and_later_ones_wait_for_region_use(cli):
    cli("region", "add", "dub1", "--url", "http://dub1.example", "--no-check")
    added = cli("region", "add", "ams1", "--url", "http://ams1.example", "--no-check")
    assert "metalyard region use ams1" in added.stderr
    listed = json.loads(cli("region", "list", "-o", "json").stdout)
    assert [r["name"] for r in listed if r["current"]] == ["dub1"]


def test_removing_the_region_in_use_leaves_none_in_use(cli):
    cli("region", "add", "dub1", "--url", "http://dub1.example", "--no-check")
    assert cli("region", "remove", "dub1").exit_code == 0
    assert cli("whoami").exit_code == 9
    assert cli("region", "use", "dub1").exit_code == 9


def test_unknown_region_option_exits_9_listing_the_known_ones(cli):
    cli("region", "add", "dub1", "--url", "http://dub1.example", "--no-check")
    result = cli("--region", "nope", "whoami")
    assert result.exit_code == 9
    assert "no region named 'nope' (configured: dub1)" in result.stderr


def test_environment_url_and_token_override_the_profile(cli, live_server, tokens):
    cli(
        "region", "add", "dub1", "--url", "http://127.0.0.1:1", "--token", tokens.read, "--no-check"
    )
    env = {"METALYARD_URL": live_server, "METALYARD_TOKEN": tokens.write}
    assert json.loads(cli("whoami", "-o", "json", env=env).stdout)["user"] == "wanda"


def test_environment_token_alone_replaces_the_profile_token(cli, live_server, tokens):
    cli("region", "add", "test-1", "--url", live_server, "--token", tokens.read)
    env = {"METALYARD_TOKEN": tokens.admin}
    assert json.loads(cli("whoami", "-o", "json", env=env).stdout)["user"] == "admin"


def test_profile_token_is_not_sent_to_a_url_from_the_environment(cli, live_server, tokens):
    cli(
        "region",
        "add",
        "dub1",
        "--url",
        "http://127.0.0.1:1",
        "--token",
        tokens.admin,
        "--no-check",
    )
    result = cli("whoami", env={"METALYARD_URL": live_server})
    assert result.exit_code == 4
    assert "needs an API token" in result.stderr


def test_insecure_region_warns_on_every_command(cli, live_server, tokens):
    added = cli(
        "region", "add", "lab", "--url", live_server, "--token", tokens.read, "--insecure",
        "--serves", "test-1",
    )  # fmt: skip
    assert "not be checked" in added.stderr
    result = cli("whoami")
    assert result.exit_code == 0
    assert "warning: TLS certificates of region 'lab' are not checked" in result.stderr


def test_token_can_be_read_from_stdin(cli, live_server, tokens):
    cli("region", "add", "test-1", "--url", live_server, "--token", "-", input=tokens.write + "\n")
    assert json.loads(cli("whoami", "-o", "json").stdout)["user"] == "wanda"


def test_url_without_scheme_is_invalid_input(cli):
    result = cli("region", "add", "dub1", "--url", "dub1.example:8080")
    assert result.exit_code == 7
    assert "http:// or https://" in result.stderr


# `region add` asks the server before saving ------------------------------------------------


@pytest.fixture
def other_region(tmp_path) -> Iterator[str]:
    """The server of region "other", with a database of its own: regions share nothing."""
    url = f"sqlite:///{tmp_path / 'other.db'}"
    upgrade(url)
    database = Database(url)
    settings = Settings(region="other", data_dir=tmp_path, database_url=url)
    with serving(create_app(settings, database)) as served:
        yield served
    database.engine.dispose()


def test_region_add_refuses_a_server_of_another_region(cli, live_server, tokens):
    refused = cli("region", "add", "ap-south", "--url", live_server, "--token", tokens.write)
    assert refused.exit_code == ExitCode.NO_REGION
    assert f"the server at {live_server} serves region 'test-1', not 'ap-south'" in (refused.stderr)
    assert "--serves test-1" in refused.stderr
    assert json.loads(cli("region", "list", "-o", "json").stdout) == []
    assert cli("whoami").exit_code == ExitCode.NO_REGION  # nothing runs in the wrong region


def test_a_second_profile_of_a_region_names_the_region_it_serves(cli, live_server, tokens):
    assert (
        cli("region", "add", "test-1", "--url", live_server, "--token", tokens.write).exit_code == 0
    )
    added = cli(
        "region", "add", "ro", "--url", live_server, "--token", tokens.read, "--serves", "test-1"
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "region 'test-1' knows the token as rita (read)" in added.stderr
    listed = json.loads(cli("region", "list", "-o", "json").stdout)
    assert {(r["name"], r["serves"]) for r in listed} == {("test-1", "test-1"), ("ro", "test-1")}
    wrong = cli("region", "add", "ro", "--url", live_server, "--serves", "eu-west")
    assert wrong.exit_code == ExitCode.NO_REGION
    assert "serves region 'test-1', not 'eu-west'" in wrong.stderr


def test_region_add_refuses_an_unreachable_server_unless_told_not_to_check(cli):
    url = f"http://127.0.0.1:{free_port()}"
    refused = cli("region", "add", "dub1", "--url", url, "--token", "my_x")
    assert refused.exit_code == ExitCode.UNREACHABLE
    assert refused.stderr.startswith(f"error: cannot reach {url}")
    assert "region 'dub1' was not saved (--no-check saves it unchecked)" in refused.stderr
    assert json.loads(cli("region", "list", "-o", "json").stdout) == []
    unchecked = cli("region", "add", "dub1", "--url", url, "--token", "my_x", "--no-check")
    assert unchecked.exit_code == 0
    assert "warning: region 'dub1' was not checked" in unchecked.stderr


def test_region_add_refuses_a_token_the_server_refuses(cli, live_server):
    refused = cli("region", "add", "test-1", "--url", live_server, "--token", "my_nope")
    assert refused.exit_code == ExitCode.NOT_ALLOWED
    assert "the server of region 'test-1' refused the token: the token is not valid" in (
        refused.stderr
    )
    assert json.loads(cli("region", "list", "-o", "json").stdout) == []


def test_a_profile_whose_server_now_serves_another_region_changes_nothing_there(
    cli, config_file, live_server, other_region, tokens
):
    assert (
        cli("region", "add", "test-1", "--url", live_server, "--token", tokens.write).exit_code == 0
    )
    # The host behind the profile's URL is now the server of another region.
    settings = yaml.safe_load(config_file.read_text())
    settings["regions"]["test-1"]["url"] = other_region
    config_file.write_text(yaml.safe_dump(settings))

    for command in (["site", "create", "dub1"], ["asset", "list"]):
        result = cli(*command)
        assert result.exit_code == ExitCode.NO_REGION
        assert (
            f"the server at {other_region} serves region 'other', not 'test-1' "
            "(profile 'test-1'), and did nothing" in result.stderr
        )
        assert "add the profile again with `metalyard region add`" in result.stderr
    shown = cli("region", "show", "-o", "json")
    assert json.loads(shown.stdout)["name"] == "other"
    assert "warning: the server at" in shown.stderr and "not 'test-1'" in shown.stderr


def test_a_profile_saved_unchecked_names_no_region(cli, live_server, tokens):
    added = cli(
        "region", "add", "ap-south", "--url", live_server, "--token", tokens.write, "--no-check"
    )
    assert added.exit_code == 0
    assert cli("site", "create", "dub1").exit_code == 0


# CA bundles --------------------------------------------------------------------------------


@contextmanager
def serving_tls(app, certificate: Path, key: Path) -> Iterator[str]:
    """Serve an app over HTTPS with a self-signed certificate, in a thread."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="error",
            ssl_certfile=str(certificate),
            ssl_keyfile=str(key),
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    trust = ssl.create_default_context(cafile=str(certificate))
    httpx.get(f"{url}/v1/region", verify=trust).raise_for_status()
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def tls_server(app, tmp_path) -> Iterator[tuple[str, Path]]:
    """The test-1 server over HTTPS, and the CA bundle that trusts it."""
    certificate, key = self_signed(tmp_path)
    with serving_tls(app, certificate, key) as url:
        yield url, certificate


def test_region_add_refuses_a_ca_bundle_that_is_not_pem(cli, tmp_path, tls_server, tokens):
    url, _ = tls_server
    bundle = tmp_path / "ca.der"
    bundle.write_bytes(b"\x30\x82 not a PEM file")
    for check in ("--check", "--no-check"):
        result = cli(
            "region", "add", "test-1", "--url", url, "--token", tokens.read,
            "--ca-bundle", str(bundle), check,
        )  # fmt: skip
        assert result.exit_code == ExitCode.INVALID_INPUT, result.output
        assert f"CA bundle '{bundle}' is not a PEM file of CA certificates" in result.stderr
    assert json.loads(cli("region", "list", "-o", "json").stdout) == []


def test_region_add_checks_the_certificate_with_the_bundle(cli, tls_server, tokens):
    url, certificate = tls_server
    refused = cli("region", "add", "test-1", "--url", url, "--token", tokens.read)
    assert refused.exit_code == ExitCode.UNREACHABLE
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr
    assert "checked against the system's CA certificates); give its CA with --ca-bundle" in (
        refused.stderr
    )
    added = cli(
        "region", "add", "test-1", "--url", url, "--token", tokens.read,
        "--ca-bundle", str(certificate),
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert json.loads(cli("whoami", "-o", "json").stdout)["user"] == "rita"


def test_a_ca_bundle_gone_bad_is_named_with_its_region(cli, tls_server, tokens):
    url, certificate = tls_server
    added = cli(
        "region", "add", "test-1", "--url", url, "--token", tokens.read,
        "--ca-bundle", str(certificate),
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    certificate.write_text("rotated by hand, badly\n")
    result = cli("whoami")
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert result.stderr.startswith(
        f"error: region 'test-1': CA bundle '{certificate}' is not a PEM file of CA certificates"
    )


def test_a_certificate_the_bundle_does_not_trust_is_named_with_region_and_bundle(
    cli, tmp_path, tls_server, tokens
):
    url, certificate = tls_server
    assert cli(
        "region", "add", "test-1", "--url", url, "--token", tokens.read,
        "--ca-bundle", str(certificate),
    ).exit_code == 0  # fmt: skip
    # The server's certificate is renewed by a CA the bundle does not hold.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    stranger, _ = self_signed(elsewhere)
    certificate.write_bytes(stranger.read_bytes())
    result = cli("whoami")
    assert result.exit_code == ExitCode.UNREACHABLE
    line = result.stderr.strip()
    assert line.startswith(f"error: region 'test-1': cannot reach {url}")
    assert "CERTIFICATE_VERIFY_FAILED" in line
    assert line.endswith(f"(its certificate was checked against the CA bundle '{certificate}')")
