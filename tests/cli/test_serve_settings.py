"""Settings that cannot work refuse the start, naming the variable and what it expects."""

import pytest
from cryptography.fernet import Fernet

from tests.cli.test_serve import metalyard
from tests.peers.postgres import free_port

KEY = "KjpMIqfH1mmD8Nc9s0gJ2MzEPvD9OpG5cy7pWy5QEnw="  # a fixed key: xdist workers share test ids


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("secret_key", "notakey", "METALYARD_SECRET_KEY: it is not a Fernet key"),
        ("secret_key", ",", "METALYARD_SECRET_KEY: entry 1 of 2 is empty"),
        ("secret_key", f"{KEY},notakey", "METALYARD_SECRET_KEY: entry 2 of 2 is not a Fernet"),
        ("discovery_networks", '["10.0.0.300/8"]', "METALYARD_DISCOVERY_NETWORKS: '10.0.0.300/8'"),
        ("discovery_networks", "10.0.0.0/33", "METALYARD_DISCOVERY_NETWORKS: '10.0.0.0/33' is not"),
        ("flow_modules", "[notjson", "METALYARD_FLOW_MODULES: not a JSON list"),
        ("database_url", "nonsense", "METALYARD_DATABASE_URL: not a database URL; expected"),
        ("database_url", "mysql://u:pw@db/x", "METALYARD_DATABASE_URL: 'mysql' is not supported"),
        ("port", "70000", "METALYARD_PORT: Input should be less than or equal to 65535"),
        ("data_dir", "/etc/passwd", "METALYARD_DATA_DIR: /etc/passwd is not a directory"),
        ("bmc_ca_bundle", "/nope/ca.pem", "METALYARD_BMC_CA_BUNDLE: /nope/ca.pem does not exist"),
    ],
)
def test_a_setting_that_cannot_work_refuses_the_start_with_exit_7(
    tmp_path, setting, value, message
):
    result = metalyard(tmp_path, "serve", **{setting: value})
    assert result.returncode == 7, result.stderr
    assert result.stderr.startswith(f"error: {message}"), result.stderr
    assert "Traceback" not in result.stderr
    assert "notakey" not in result.stderr and KEY not in result.stderr  # the secret stays one
    assert "pw@" not in result.stderr
    assert not (tmp_path / "data").exists()  # nothing was made


@pytest.mark.parametrize("command", [("worker",), ("db", "upgrade"), ("db", "rotate-key")])
def test_the_other_server_commands_check_the_settings_too(tmp_path, command):
    result = metalyard(tmp_path, *command, secret_key=f"{KEY},notakey")
    assert result.returncode == 7, result.stderr
    assert result.stderr.startswith("error: METALYARD_SECRET_KEY: entry 2 of 2 is not a Fernet")


def test_list_settings_take_comma_separated_values(tmp_path):
    networks = {"discovery_networks": "10.20.0.0/16, 10.21.0.0/16"}
    assert metalyard(tmp_path, "db", "upgrade", **networks).returncode == 0
    refused = metalyard(tmp_path, "serve", "--port", str(free_port()), flow_modules="no_such_mod")
    assert refused.returncode == 7
    assert "cannot import flow module 'no_such_mod'" in refused.stderr


def test_a_valid_key_ring_is_accepted(tmp_path):
    keys = f"{Fernet.generate_key().decode()}, {KEY}"
    result = metalyard(tmp_path, "db", "upgrade", secret_key=keys)
    assert result.returncode == 0, result.stderr
