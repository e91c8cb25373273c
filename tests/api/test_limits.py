"""Input limits answer with a clear 413 or 422 naming the limit."""

from fastapi.testclient import TestClient

from metalyard.api import create_app


def test_a_body_over_the_limit_is_refused_with_413_naming_it(settings, database, tokens):
    small = settings.model_copy(update={"max_request_bytes": 2048})
    with TestClient(
        create_app(small, database), headers={"Authorization": f"Bearer {tokens.write}"}
    ) as client:
        response = client.post("/v1/sites", json={"name": "x", "description": "d" * 4000})
        assert response.status_code == 413
        assert "2048 bytes" in response.json()["message"]
        assert client.get("/v1/sites").json()["items"] == []


def test_strings_over_their_length_name_the_field(client):
    response = client.post("/v1/assets", json={"serial": "S" * 65})
    assert response.status_code == 422
    assert response.json()["details"][0]["field"] == "serial"
    assert "64" in response.json()["message"]


def test_identifiers_that_reach_files_and_dhcp_are_checked(client):
    for bad in (
        {"serial": "../etc/passwd"},
        {"serial": "SN1", "hostname": "a;reboot"},
        {"serial": "SN1", "interfaces": [{"name": "eno1", "mac": "52:54:00:00:00:0g"}]},
    ):
        assert client.post("/v1/assets", json=bad).status_code == 422, bad


def test_nul_characters_are_refused_naming_the_field(client):
    for body, field in (
        ({"serial": "SN1", "vendor": "a\x00b"}, "assets.0.vendor"),
        ({"serial": "SN1", "tags": {"pool": "web\x00"}}, "assets.0.tags.pool"),
        (
            {"serial": "SN1", "facts": {"disks": [{"model": "x\x00"}]}},
            "assets.0.facts.disks.0.model",
        ),
        (
            {"serial": "SN1", "interfaces": [{"name": "eth\x000", "mac": "52:54:00:00:00:01"}]},
            "assets.0.interfaces.0.name",
        ),
        ({"serial": "SN1", "facts": {"k\x00": 1}}, "assets.0.facts"),
    ):
        response = client.post("/v1/assets/import", json={"assets": [body]})
        assert response.status_code == 422, body
        assert response.json()["message"] == f"{field}: text may not contain NUL characters"
    assert client.get("/v1/assets").json()["items"] == []
    response = client.post("/v1/sites", json={"name": "dc1", "address": "\x00"})
    assert response.status_code == 422
    assert response.json()["details"][0]["field"] == "address"


def test_the_text_of_a_nul_escape_is_not_a_nul(client):
    response = client.post("/v1/assets", json={"serial": "SN1", "vendor": "\\u0000"})
    assert response.status_code == 201, response.text
    assert client.get("/v1/assets/SN1").json()["vendor"] == "\\u0000"


def test_a_caller_without_a_token_learns_nothing_of_the_body(app):
    with TestClient(app) as anonymous:
        response = anonymous.post("/v1/sites", json={"name": "dc1", "address": "\x00"})
    assert response.status_code == 401
