"""Settings read from the environment's text."""

import re

import pytest
from pydantic import ValidationError

from metalyard.config import Settings, check_database_url


def test_list_settings_read_json_or_comma_separated(tmp_path, monkeypatch):
    monkeypatch.setenv("METALYARD_DISCOVERY_NETWORKS", "10.20.0.0/16,10.21.0.0/16")
    monkeypatch.setenv("METALYARD_FLOW_MODULES", '["a.flows", "b.flows"]')
    settings = Settings(data_dir=tmp_path)
    assert settings.discovery_networks == ["10.20.0.0/16", "10.21.0.0/16"]
    assert settings.flow_modules == ["a.flows", "b.flows"]


def test_an_invalid_network_is_refused(tmp_path):
    with pytest.raises(ValidationError, match=re.escape("'10.0.0.300/8' is not a network")):
        Settings(data_dir=tmp_path, discovery_networks=["10.0.0.300/8"])


def test_a_malformed_secret_key_is_refused_without_quoting_it(tmp_path):
    with pytest.raises(ValidationError) as error:
        Settings(data_dir=tmp_path, secret_key="hunter2")
    assert "hunter2" not in str(error.value).split("input_value")[0]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nonsense", "not a database URL"),
        ("mysql://u:pw@db/x", "'mysql' is not supported"),
        ("postgresql+asyncpg://u:pw@db/x", "the driver 'asyncpg' is not supported"),
    ],
)
def test_only_sqlite_and_postgresql_urls_are_accepted(url, message):
    with pytest.raises(ValueError, match=message):
        check_database_url(url)


def test_a_plain_postgresql_url_uses_psycopg(tmp_path):
    settings = Settings(data_dir=tmp_path, database_url="postgresql://u:pw@db/x")
    assert settings.effective_database_url == "postgresql+psycopg://u:pw@db/x"
    check_database_url(settings.effective_database_url)
