"""`metalyard bmc-credential`, `metalyard asset power|boot|bmc|firmware|sensors` against real
BMC peers, and `metalyard db rotate-key`."""

import json

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from metalyard.cli.exit_codes import ExitCode
from metalyard.config import Settings
from metalyard.drivers.models import BmcCredential
from metalyard.drivers.schemas import BmcCredentialCreate
from metalyard.drivers.service import create_credential
from metalyard.secrets import Keyring, SecretKeyError, configured_keys
from tests.peers.bmcs import BMC_PASSWORD, BMC_USER, LOOPBACK, RedfishEmulator


@pytest.fixture
def admin_cli(cli, live_server, tokens):
    result = cli("region", "add", "test-1", "--url", live_server, "--token", tokens.admin)
    assert result.exit_code == 0, result.output
    return cli


def enrol(cli, serial: str, driver: str, address: str, credential: str = "fleet") -> None:
    result = cli(
        "asset", "create", serial, "--bmc-driver", driver, "--bmc-address", address,
        "--bmc-credential", credential,
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def test_credentials_take_the_password_from_stdin_and_never_show_it(admin_cli):
    result = admin_cli(
        "bmc-credential", "create", "fleet", "--username", BMC_USER, "--network", LOOPBACK,
        "--password-stdin",
        input=f"{BMC_PASSWORD}\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = admin_cli("bmc-credential", "show", "fleet", "-o", "json")
    assert json.loads(shown.stdout)["username"] == BMC_USER
    listed = admin_cli("bmc-credential", "list")
    assert "fleet" in listed.stdout
    for result in (shown, listed):
        assert BMC_PASSWORD not in result.output


def test_power_boot_check_firmware_and_sensors_over_redfish(admin_cli, redfish):
    admin_cli(
        "bmc-credential", "create", "fleet", "--username", BMC_USER, "--network", LOOPBACK,
        "--password-stdin",
        input=f"{BMC_PASSWORD}\n",
    )  # fmt: skip
    enrol(admin_cli, "SN-CLI-RF", "redfish", redfish.system_url(6))

    result = admin_cli("asset", "power", "on", "SN-CLI-RF", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"state": "on"}
    assert json.loads(admin_cli("asset", "power", "status", "SN-CLI-RF", "-o", "json").stdout) == {
        "state": "on"
    }

    result = admin_cli("asset", "boot", "pxe", "SN-CLI-RF", "--persistent", "-o", "json")
    assert json.loads(result.stdout)["device"] == "pxe", result.output
    assert (
        redfish.get(f"/redfish/v1/Systems/{redfish.uuids[6]}")["Boot"]["BootSourceOverrideTarget"]
        == "Pxe"
    )

    result = admin_cli("asset", "bmc", "check", "SN-CLI-RF")
    assert result.exit_code == 0 and "redfish" in result.stdout, result.output
    result = admin_cli("asset", "firmware", "SN-CLI-RF")
    assert "bios" in result.stdout and "1." in result.stdout, result.output
    result = admin_cli("asset", "sensors", "SN-CLI-RF")
    assert "overall health: ok" in result.stderr and "temperature" in result.stdout

    result = admin_cli("asset", "power", "off", "SN-CLI-RF", "-o", "json")
    assert json.loads(result.stdout) == {"state": "off"}


def test_ipmi_power_and_boot_are_read_back_by_ipmitool(admin_cli, ipmi, ipmitool):
    admin_cli(
        "bmc-credential", "create", "fleet", "--username", BMC_USER, "--network", LOOPBACK,
        "--password-stdin",
        input=f"{BMC_PASSWORD}\n",
    )  # fmt: skip
    enrol(admin_cli, "SN-CLI-IPMI", "ipmi", ipmi.address(1))
    assert admin_cli("asset", "power", "on", "SN-CLI-IPMI").exit_code == 0
    assert "Chassis Power is on" in ipmi.ipmitool(1, "power", "status")
    assert admin_cli("asset", "boot", "pxe", "SN-CLI-IPMI").exit_code == 0
    assert "Force PXE" in ipmi.ipmitool(1, "chassis", "bootparam", "get", "5")


def test_a_bmc_failure_prints_the_bmcs_message_and_exits_11(admin_cli, redfish):
    admin_cli(
        "bmc-credential", "create", "fleet", "--username", BMC_USER, "--network", LOOPBACK,
        "--password-stdin",
        input="wrong-password\n",
    )  # fmt: skip
    enrol(admin_cli, "SN-CLI-BAD", "redfish", redfish.system_url(5))
    result = admin_cli("asset", "power", "status", "SN-CLI-BAD")
    assert result.exit_code == ExitCode.BMC_FAILED
    assert "refused the credentials" in result.stderr
    assert "Traceback" not in result.output

    enrol(admin_cli, "SN-CLI-DOWN", "redfish", "http://127.0.0.1:9/redfish/v1/Systems/1")
    result = admin_cli("asset", "power", "on", "SN-CLI-DOWN")
    assert result.exit_code == ExitCode.BMC_FAILED
    assert "cannot be reached" in result.stderr


def test_an_asset_with_no_bmc_is_refused_naming_what_to_set(admin_cli):
    assert admin_cli("asset", "create", "SN-CLI-NONE").exit_code == 0
    shown = admin_cli("asset", "show", "SN-CLI-NONE", "-o", "json")
    assert json.loads(shown.stdout)["bmc_driver"] is None
    table = admin_cli("asset", "show", "SN-CLI-NONE").stdout
    assert "None" not in table and "fake" not in table
    for command in (("power", "off"), ("power", "status"), ("bmc", "check")):
        result = admin_cli("asset", *command, "SN-CLI-NONE")
        assert result.exit_code == ExitCode.CONFLICT, result.output
        assert "asset 'SN-CLI-NONE' has no BMC driver, address or credential" in result.stderr
        assert "metalyard asset update SN-CLI-NONE --bmc-driver … --bmc-address …" in (
            result.stderr
        )
        assert "Traceback" not in result.output

    enrol(admin_cli, "SN-CLI-FAKE", "fake", "cli-fake", credential="")
    result = admin_cli("asset", "power", "on", "SN-CLI-FAKE", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"state": "on"}


def test_a_credential_reaches_only_its_networks(admin_cli, redfish):
    result = admin_cli(
        "bmc-credential", "create", "fleet", "--username", BMC_USER, "--network", "10.20.0.0/16",
        "--password-stdin",
        input=f"{BMC_PASSWORD}\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    enrol(admin_cli, "SN-CLI-NET", "redfish", redfish.system_url(4))
    refused = admin_cli("asset", "power", "on", "SN-CLI-NET")
    assert refused.exit_code == ExitCode.CONFLICT
    assert "outside the networks BMC credential 'fleet' may be sent into" in refused.stderr

    result = admin_cli(
        "bmc-credential", "update", "fleet",
        "--network", "10.20.0.0/16", "--network", LOOPBACK, "--network", "10.20.0.0/16",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    listed = admin_cli("bmc-credential", "list", "-o", "json")
    assert json.loads(listed.stdout)["items"][0]["networks"] == ["10.20.0.0/16", LOOPBACK]
    assert admin_cli("asset", "power", "on", "SN-CLI-NET").exit_code == 0

    result = admin_cli("bmc-credential", "update", "fleet", "--network", "10.20.0.1/16")
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "did you mean 10.20.0.0/16?" in result.stderr


def _store_credential(database, settings: Settings) -> None:
    with database.transaction() as session:
        data = BmcCredentialCreate(
            name="fleet", username=BMC_USER, password=BMC_PASSWORD, networks=[LOOPBACK]
        )
        create_credential(session, data=data, keyring=Keyring.from_settings(settings))


def _stored_token(database) -> str:
    with database.transaction(write=False) as session:
        return session.scalars(select(BmcCredential.password_encrypted)).one()


def _server_env(database, settings: Settings, **more: str) -> dict[str, str]:
    return {
        "METALYARD_DATA_DIR": str(settings.data_dir),
        "METALYARD_DATABASE_URL": database.engine.url.render_as_string(hide_password=False),
        **more,
    }


def test_rotate_key_with_the_key_file_replaces_the_key(cli, database, settings):
    _store_credential(database, settings)
    old_keys = configured_keys(settings)
    result = cli("db", "rotate-key", "--generate", env=_server_env(database, settings))
    assert result.exit_code == 0, result.output
    assert "re-encrypted 1 secret" in result.stdout
    new_keys = configured_keys(settings)
    assert len(new_keys) == 1 and new_keys != old_keys
    token = _stored_token(database)
    assert Keyring(new_keys).decrypt(token) == BMC_PASSWORD
    with pytest.raises(SecretKeyError):
        Keyring(old_keys).decrypt(token)


def test_rotate_key_from_the_environment(cli, database, settings):
    old = Fernet.generate_key().decode()
    new = Fernet.generate_key().decode()
    _store_credential(database, settings.model_copy(update={"secret_key": old}))
    env = _server_env(database, settings, METALYARD_SECRET_KEY=f"{new},{old}")
    result = cli("db", "rotate-key", env=env)
    assert result.exit_code == 0, result.output
    assert "remove them" in result.stderr
    assert Keyring([new]).decrypt(_stored_token(database)) == BMC_PASSWORD

    refused = cli("db", "rotate-key", "--generate", env=env)
    assert refused.exit_code == ExitCode.USAGE
    assert "METALYARD_SECRET_KEY is set" in refused.output


def test_power_on_waits_for_a_bmc_that_takes_seconds(admin_cli):
    """The stock emulator applies power changes 1 to 11 s later, as real BMCs lag: poll."""
    emulator = RedfishEmulator(count=1, instant_power=False).start()
    try:
        admin_cli(
            "bmc-credential", "create", "slow", "--username", BMC_USER, "--network", LOOPBACK,
        "--password-stdin",
            input=f"{BMC_PASSWORD}\n",
        )  # fmt: skip
        enrol(admin_cli, "SN-CLI-SLOW", "redfish", emulator.system_url(0), credential="slow")
        result = admin_cli("asset", "power", "on", "SN-CLI-SLOW", "--wait", "30", "-o", "json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == {"state": "on"}
        assert emulator.get(f"/redfish/v1/Systems/{emulator.uuids[0]}")["PowerState"] == "On"
    finally:
        emulator.stop()
