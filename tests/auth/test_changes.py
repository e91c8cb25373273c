"""Maker-checker: moves out of BAREMETAL and decommissioning wait for a second person."""

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def other(app, tokens):
    with TestClient(app, headers={"Authorization": f"Bearer {tokens.other_write}"}) as c:
        yield c


@pytest.fixture
def reader(app, tokens):
    with TestClient(app, headers={"Authorization": f"Bearer {tokens.read}"}) as c:
        yield c


def baremetal(client, serial="SN1"):
    client.post("/v1/assets", json={"serial": serial, "state": "BAREMETAL"}).raise_for_status()


def test_leaving_baremetal_becomes_a_pending_change_request(client):
    baremetal(client)
    response = client.post("/v1/assets/SN1/transition", json={"to": "RELEASING", "reason": "done"})
    assert response.status_code == 202
    change = response.json()
    assert change["state"] == "PENDING" and change["requested_by"] == "wanda"
    assert change["action"] == "asset.leave_baremetal"
    assert client.get("/v1/assets/SN1").json()["state"] == "BAREMETAL"
    listed = client.get("/v1/change-requests", params={"state": "PENDING"}).json()["items"]
    assert [c["id"] for c in listed] == [change["id"]]


def test_requester_can_never_approve_their_own_change(client):
    baremetal(client)
    change = client.post("/v1/assets/SN1/transition", json={"to": "RELEASING", "reason": "x"})
    response = client.post(f"/v1/change-requests/{change.json()['id']}/approve", json={})
    assert response.status_code == 403
    assert "other than its requester" in response.json()["message"]
    assert client.get("/v1/assets/SN1").json()["state"] == "BAREMETAL"


def test_approval_by_another_writer_executes_the_move(client, other):
    baremetal(client)
    change = client.post("/v1/assets/SN1/transition", json={"to": "RELEASING", "reason": "x"})
    approved = other.post(
        f"/v1/change-requests/{change.json()['id']}/approve", json={"comment": "ok"}
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "APPROVED" and approved.json()["decided_by"] == "otto"
    assert client.get("/v1/assets/SN1").json()["state"] == "RELEASING"
    history = client.get("/v1/assets/SN1/history").json()["items"]
    assert history[-1]["actor"] == "wanda (approved by otto)"


def test_approval_needs_write_scope(client, reader):
    baremetal(client)
    change = client.post("/v1/assets/SN1/transition", json={"to": "RELEASING", "reason": "x"})
    response = reader.post(f"/v1/change-requests/{change.json()['id']}/approve", json={})
    assert response.status_code == 403


def test_rejected_change_does_nothing_and_cannot_be_approved_later(client, other):
    baremetal(client)
    change_id = client.post(
        "/v1/assets/SN1/transition", json={"to": "RELEASING", "reason": "x"}
    ).json()["id"]
    assert other.post(f"/v1/change-requests/{change_id}/reject", json={}).json()["state"] == (
        "REJECTED"
    )
    again = other.post(f"/v1/change-requests/{change_id}/approve", json={})
    assert again.status_code == 409
    assert client.get("/v1/assets/SN1").json()["state"] == "BAREMETAL"


def test_approval_of_a_move_overtaken_by_events_fails_without_moving(client, other):
    baremetal(client)
    change_id = client.post(
        "/v1/assets/SN1/transition", json={"to": "RELEASING", "reason": "x"}
    ).json()["id"]
    quarantine = client.post(
        "/v1/assets/SN1/transition", json={"to": "QUARANTINED", "reason": "disk"}
    ).json()["id"]
    other.post(f"/v1/change-requests/{quarantine}/approve", json={}).raise_for_status()
    late = other.post(f"/v1/change-requests/{change_id}/approve", json={})
    assert late.status_code == 200
    assert late.json()["state"] == "FAILED"
    assert "QUARANTINED" in late.json()["result"]["message"]
    assert client.get("/v1/assets/SN1").json()["state"] == "QUARANTINED"


def test_decommission_and_delete_wait_for_approval(client, other):
    client.post("/v1/assets", json={"serial": "SN2", "state": "SPARE"}).raise_for_status()
    moved = client.post("/v1/assets/SN2/transition", json={"to": "DECOMMISSIONED", "reason": "old"})
    assert moved.status_code == 202 and moved.json()["action"] == "asset.decommission"
    deleted = client.delete("/v1/assets/SN2", params={"reason": "gone"})
    assert deleted.status_code == 202
    other.post(f"/v1/change-requests/{deleted.json()['id']}/approve", json={}).raise_for_status()
    assert client.get("/v1/assets/SN2").status_code == 404


def test_a_forbidden_move_is_refused_at_once_not_parked(client):
    baremetal(client)
    response = client.post("/v1/assets/SN1/transition", json={"to": "SPARE", "reason": "x"})
    assert response.status_code == 409
    assert client.get("/v1/change-requests").json()["items"] == []


def test_policy_is_configurable(settings, database, tokens):
    from metalyard.api import create_app

    relaxed = settings.model_copy(update={"maker_checker": []})
    with TestClient(
        create_app(relaxed, database), headers={"Authorization": f"Bearer {tokens.write}"}
    ) as client:
        baremetal(client)
        response = client.post("/v1/assets/SN1/transition", json={"to": "RELEASING", "reason": "x"})
        assert response.status_code == 200 and response.json()["state"] == "RELEASING"
