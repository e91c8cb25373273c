"""Every route of the OpenAPI document, with no token and with each scope."""

import re

import pytest
from fastapi.testclient import TestClient

from metalyard.api.routing import secured_router
from metalyard.auth.scopes import Scope

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
    """(method, path, the scope its document says it needs) of every operation."""
    for path, methods in app.openapi()["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation.get("x-required-scope")


def documented(needed: str | None, scope: str | None) -> bool | None:
    """Whether the document says a caller holding `scope` may make a call that needs `needed`;
    None where it does not say (a call that takes no token: public, or the agent's)."""
    if needed is None:
        return None
    return scope is not None and Scope(scope).covers(Scope(needed))


@pytest.mark.parametrize("scope", [None, "read", "write", "admin"])
def test_every_route_allows_and_denies_as_its_scope_says(app, tokens, scope):
    """As this test expects, and as the document's `x-required-scope` says: over the four
    callers, that is the scope enforced."""
    headers = {"Authorization": f"Bearer {getattr(tokens, scope)}"} if scope else {}
    ops = list(operations(app))
    assert len(ops) > 25
    undocumented = {(method, path) for method, path, needed in ops if needed is None}
    assert undocumented == PUBLIC | AGENT_ONLY
    wrong = []
    with TestClient(app, headers=headers) as client:
        for method, path, needed in ops:
            url = re.sub(
                r"\{[^}]+\}", lambda m: "99999" if m.group(0).endswith("id}") else "x", path
            )
            response = client.request(
                method, url, json={} if method in ("POST", "PATCH", "PUT") else None
            )
            allowed = response.status_code not in (401, 403)
            said = documented(needed, scope)
            if allowed != expected(method, path, scope) or said not in (None, allowed):
                wrong.append((method, path, needed, response.status_code, response.json()))
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


def test_a_route_whose_methods_need_different_scopes_must_name_one():
    """Documenting one scope for both would enforce it for both."""
    router = secured_router()
    with pytest.raises(ValueError, match="use requires"):
        router.add_api_route("/either", lambda: None, methods=["GET", "POST"])
