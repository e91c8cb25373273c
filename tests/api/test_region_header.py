"""X-Metalyard-Region: a request meant for another region is refused (421) before anything
reads it, so that a client pointed at the wrong server changes nothing there."""

import pytest
from fastapi.testclient import TestClient

HEADER = "X-Metalyard-Region"


@pytest.fixture
def elsewhere(app, tokens):
    """A writer whose requests say they are meant for region eu-west; the app serves test-1."""
    headers = {"Authorization": f"Bearer {tokens.write}", HEADER: "eu-west"}
    with TestClient(app, headers=headers) as client:
        yield client


def audit(admin, **params):
    response = admin.get("/v1/audit", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_a_request_meant_for_another_region_is_refused_naming_both(elsewhere):
    response = elsewhere.get("/v1/sites", headers={"X-Request-ID": "lost-1"})
    assert response.status_code == 421
    body = response.json()
    assert body["code"] == "wrong_region"
    assert "serves region 'test-1', not 'eu-west'" in body["message"]
    assert body["details"] == {"serves": "test-1", "requested": "eu-west"}
    assert response.headers["X-Request-ID"] == "lost-1"


def test_the_region_is_checked_before_the_token(app):
    with TestClient(app, headers={HEADER: "eu-west"}) as anonymous:
        assert anonymous.post("/v1/sites", json={"name": "x"}).status_code == 421
        assert anonymous.get("/v1/no/such/path").status_code == 421
        assert anonymous.get("/v1/region").status_code == 421


def test_a_refused_write_changes_nothing_and_is_audited_as_denied(elsewhere, client, admin):
    refused = elsewhere.post("/v1/sites?dry=1", json={"name": "dub1", "description": "x"})
    assert refused.status_code == 421
    assert elsewhere.get("/v1/sites").status_code == 421  # reads are not audited
    assert client.get("/v1/sites/dub1").status_code == 404
    (entry,) = audit(admin, outcome="denied")
    assert (entry["action"], entry["target"], entry["status"]) == ("create_site", "sites", 421)
    assert entry["actor"] == "" and entry["token_id"] is None  # no token was looked at
    assert entry["summary"] == {"query": {"dry": "1"}, "region": "eu-west"}


def test_the_region_it_serves_or_none_passes(client, app):
    assert client.post("/v1/sites", json={"name": "dub1"}, headers={HEADER: "test-1"}).is_success
    assert client.get("/v1/sites/dub1").status_code == 200
    with TestClient(app, headers={HEADER: "test-1"}) as anonymous:
        assert anonymous.get("/v1/sites").status_code == 401


def test_every_operation_documents_the_header_and_its_421(app):
    operations = [
        (path, operation)
        for path, methods in app.openapi()["paths"].items()
        for operation in methods.values()
    ]
    assert len(operations) > 25
    for path, operation in operations:
        headers = [p for p in operation["parameters"] if p["in"] == "header"]
        assert HEADER in [p["name"] for p in headers], path
        assert "421" in operation["responses"], path


def test_every_copy_of_the_header_must_name_this_region(app, tokens):
    """A proxy or a client may send the header twice: the last one does not win."""
    with TestClient(app, headers={"Authorization": f"Bearer {tokens.write}"}) as client:
        for pair in (("eu-west", "test-1"), ("test-1", "eu-west")):
            headers = [(HEADER, pair[0]), (HEADER, pair[1])]
            answer = client.post("/v1/sites", json={"name": "dub1"}, headers=headers)
            assert answer.status_code == 421, answer.text
        long = "x" * 5000
        answer = client.get("/v1/sites", headers={HEADER: long})
        assert answer.json()["details"]["requested"] == "x" * 64
        both = [(HEADER, "test-1"), (HEADER, "test-1")]
        assert client.post("/v1/sites", json={"name": "dub1"}, headers=both).status_code == 201
