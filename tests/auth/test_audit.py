"""The audit log: every mutating call, allowed or denied, in a chain that shows tampering.

How the chain resists someone without the secret key: test_audit_seal.py."""

from fastapi.testclient import TestClient
from sqlalchemy import text


def entries(admin, **params):
    response = admin.get("/v1/audit", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_every_mutating_call_is_recorded_with_who_what_and_outcome(client, admin):
    client.post("/v1/sites", json={"name": "dub1"}, headers={"X-Request-ID": "r-1"})
    client.post("/v1/sites", json={"name": "dub1"})  # duplicate: rejected
    client.get("/v1/sites")  # reads are not audited
    logged = entries(admin, actor="wanda")
    assert [(e["action"], e["outcome"], e["status"]) for e in logged] == [
        ("create_site", "rejected", 409),
        ("create_site", "success", 201),
    ]
    first = logged[1]
    assert first["target"] == "sites/dub1" and first["request_id"] == "r-1"
    assert first["summary"]["body"] == {"name": "dub1"}
    assert first["client"] and first["token_id"] is not None


def test_denied_calls_are_recorded_too(app, tokens, admin):
    with TestClient(app) as anonymous:
        assert anonymous.post("/v1/sites", json={"name": "x"}).status_code == 401
    with TestClient(app, headers={"Authorization": f"Bearer {tokens.read}"}) as reader:
        assert reader.post("/v1/sites", json={"name": "x"}).status_code == 403
    logged = entries(admin, outcome="denied")
    assert [(e["actor"], e["status"]) for e in logged] == [("rita", 403), ("", 401)]


def test_secrets_never_reach_the_audit_log(admin):
    admin.post("/v1/users", json={"name": "sam", "password": "correct horse battery"})
    (entry,) = entries(admin, action="create_user")
    assert entry["summary"]["body"]["password"] == "***"
    assert "correct horse" not in str(entry)


def test_a_target_finds_every_call_on_an_asset_from_its_creation(client, admin):
    client.post("/v1/assets", json={"serial": "SN1"})
    client.post("/v1/assets", json={"serial": "SN13"})  # a longer serial, not the same asset
    client.post("/v1/assets/SN1/transition", json={"to": "EVALUATING", "reason": "x"})
    client.patch("/v1/assets/SN1", json={"hostname": "n1"})
    assert [(e["action"], e["target"]) for e in entries(admin, target="assets/SN1")] == [
        ("update_asset", "assets/SN1"),
        ("transition_asset", "assets/SN1/transition"),
        ("create_asset", "assets/SN1"),
    ]
    created = entries(admin, target="assets/SN13")[0]
    assert created["summary"]["path"] == "assets"  # the path that was called, kept


def test_a_created_object_with_an_id_is_named_by_it(admin):
    created = admin.post("/v1/users", json={"name": "sam"})
    assert created.status_code == 201
    (entry,) = entries(admin, action="create_user")
    assert entry["target"] == "users/sam"
    token = admin.post("/v1/tokens", json={"scope": "read"}).json()
    assert entries(admin, action="create_token")[0]["target"] == f"tokens/{token['id']}"


def test_a_refused_creation_keeps_the_path_it_called(client, admin):
    client.post("/v1/sites", json={"name": "dub1"})
    client.post("/v1/sites", json={"name": "dub1"})
    assert [e["target"] for e in entries(admin, action="create_site")] == ["sites", "sites/dub1"]


def test_an_approval_is_found_under_the_asset_it_changed(app, client, admin, tokens):
    client.post("/v1/assets", json={"serial": "SN1", "state": "BAREMETAL"})
    change = client.post("/v1/assets/SN1/transition", json={"to": "RELEASING", "reason": "x"})
    with TestClient(app, headers={"Authorization": f"Bearer {tokens.other_write}"}) as other:
        approved = other.post(f"/v1/change-requests/{change.json()['id']}/approve", json={})
    assert approved.status_code == 200
    (entry,) = entries(admin, target="assets/SN1", action="approve_change_request")
    assert entry["summary"]["path"] == f"change-requests/{change.json()['id']}/approve"


def test_an_unknown_outcome_is_refused_naming_the_allowed_ones(admin):
    response = admin.get("/v1/audit", params={"outcome": "bogus"})
    assert response.status_code == 422
    (problem,) = response.json()["details"]
    assert problem["field"].endswith("outcome")
    for allowed in ("success", "rejected", "denied", "error"):
        assert allowed in problem["message"]


def test_since_after_until_is_refused(admin):
    response = admin.get(
        "/v1/audit",
        params={"since": "2030-01-01T02:00:00+00:00", "until": "2030-01-01T01:00:00+00:00"},
    )
    assert response.status_code == 422
    assert response.json()["details"][0]["field"] == "since"
    assert "must be before until" in response.json()["message"]


def test_verify_passes_on_an_untouched_chain(client, admin):
    for n in range(5):
        client.post("/v1/sites", json={"name": f"s{n}"})
    result = admin.get("/v1/audit/verify").json()
    assert result == {"ok": True, "entries": 5, "problems": []}


def test_verify_names_an_edited_entry(client, admin, database):
    for n in range(4):
        client.post("/v1/sites", json={"name": f"s{n}"})
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 2"))
    result = admin.get("/v1/audit/verify").json()
    assert result["ok"] is False
    assert [(p["seq"], p["problem"]) for p in result["problems"]] == [(2, "edited")]


def test_verify_names_a_deleted_entry(client, admin, database):
    for n in range(4):
        client.post("/v1/sites", json={"name": f"s{n}"})
    with database.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_entries WHERE seq = 3"))
    result = admin.get("/v1/audit/verify").json()
    assert result["ok"] is False
    assert (3, "missing") in [(p["seq"], p["problem"]) for p in result["problems"]]


def test_verify_catches_an_entry_rewritten_with_a_fresh_hash(client, admin, database):
    """Recomputing one entry's hash is not enough: its MAC and the next entry's link break."""
    from metalyard.auth.audit.models import AuditEntry
    from metalyard.auth.audit.service import entry_hash

    for n in range(3):
        client.post("/v1/sites", json={"name": f"s{n}"})
    with database.transaction() as session:
        entry = session.get(AuditEntry, 2)
        entry.actor = "mallory"
        entry.hash = entry_hash(entry)
    problems = admin.get("/v1/audit/verify").json()["problems"]
    assert [(p["seq"], p["problem"]) for p in problems] == [(2, "edited"), (3, "broken_link")]
