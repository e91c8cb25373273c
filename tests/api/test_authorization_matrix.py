"""Every route of the OpenAPI document, with no token and with each scope."""

import re

import pytest
from fastapi.testclient import TestClient

PUBLIC = {
    ("GET", "/v1/region"),
    ("GET", "/boot/ipxe"),
    ("GET", "/boot/agent/{name}"),
}
AGENT_ONLY = {
    ("POST", "/v1/discovery/boot"),
    ("GET", "/v1/discovery/whoami"),
    ("POST", "/v1/discovery/report"),
}
"""Agents only: from a discovery network (the test client has no IP address), then with the
agent's token (X-Agent-Token), never a user's."""
ANY_TOKEN = {("POST", "/v1/tokens"), ("DELETE", "/v1/tokens/{token_id}")}
ADMIN_ONLY = {
    ("POST", "/v1/users"),
    ("PATCH", "/v1/users/{name}"),
    ("POST", "/v1/teams"),
    ("PATCH", "/v1/teams/{name}"),
    ("DELETE", "/v1/teams/{name}"),
    ("GET", "/v1/audit"),
    ("GET", "/v1/audit/verify"),
    ("PUT", "/v1/pools/{key}"),
    ("POST", "/v1/bmc-credentials"),
    ("PATCH", "/v1/bmc-credentials/{name}"),
    ("DELETE", "/v1/bmc-credentials/{name}"),
}


def expected(method: str, path: str, scope: str | None) -> bool:
    """Whether a caller holding `scope` (None: no token) may make this call."""
    if (method, path) in PUBLIC:
        return True
    if scope is None or (method, path) in AGENT_ONLY:
        return False
    if (method, path) in ADMIN_ONLY:
        return scope == "admin"
    if (method, path) in ANY_TOKEN or method == "GET":
        return True
    return scope in ("write", "admin")


def operations(app):
    for path, methods in app.openapi()["paths"].items():
        for method in methods:
            yield method.upper(), path


@pytest.mark.parametrize("scope", [None, "read", "write", "admin"])
def test_every_route_allows_and_denies_as_its_scope_says(app, tokens, scope):
    headers = {"Authorization": f"Bearer {getattr(tokens, scope)}"} if scope else {}
    ops = list(operations(app))
    assert len(ops) > 25
    wrong = []
    with TestClient(app, headers=headers) as client:
        for method, path in ops:
            url = re.sub(
                r"\{[^}]+\}", lambda m: "99999" if m.group(0).endswith("id}") else "x", path
            )
            response = client.request(
                method, url, json={} if method in ("POST", "PATCH", "PUT") else None
            )
            allowed = response.status_code not in (401, 403)
            if allowed != expected(method, path, scope):
                wrong.append((method, path, response.status_code, response.json().get("message")))
            if not allowed and (method, path) not in AGENT_ONLY:
                assert response.json()["code"] == (
                    "unauthenticated" if scope is None else "forbidden"
                )
    assert wrong == []


def test_401_and_403_are_distinct_and_say_what_to_do(app, tokens):
    with TestClient(app) as anonymous:
        missing = anonymous.get("/v1/assets")
        bad = anonymous.get("/v1/assets", headers={"Authorization": "Bearer my_nope"})
    assert missing.status_code == 401 and "needs an API token" in missing.json()["message"]
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert bad.status_code == 401 and "not valid" in bad.json()["message"]
    with TestClient(app, headers={"Authorization": f"Bearer {tokens.read}"}) as reader:
        denied = reader.post("/v1/sites", json={"name": "x"})
    assert denied.status_code == 403
    assert (
        "scope write" in denied.json()["message"] and "yours has read" in denied.json()["message"]
    )
