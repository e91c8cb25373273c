"""The lifecycle table: every allowed move works, every other one is refused with 409."""

import itertools

import pytest

from metalyard.auth.actor import Actor
from metalyard.errors import ForbiddenTransition
from metalyard.inventory import service
from metalyard.inventory.lifecycle import TRANSITIONS, AssetState
from metalyard.inventory.schemas import AssetCreate

ALL_MOVES = list(itertools.product(AssetState, AssetState))
FORBIDDEN = [(a, b) for a, b in ALL_MOVES if b not in TRANSITIONS[a]]
ALLOWED = [(a, b) for a, b in ALL_MOVES if b in TRANSITIONS[a]]
ACTOR = Actor.system("test", request_id="req-1")


def test_the_table_reads_as_the_lifecycle_of_a_server():
    path = [
        AssetState.DISCOVERED,
        AssetState.EVALUATING,
        AssetState.SPARE,
        AssetState.PROVISIONING,
        AssetState.BAREMETAL,
        AssetState.RELEASING,
        AssetState.SPARE,
    ]
    assert all(b in TRANSITIONS[a] for a, b in itertools.pairwise(path))
    assert TRANSITIONS[AssetState.DECOMMISSIONED] == frozenset()
    assert all(
        AssetState.QUARANTINED in TRANSITIONS[s]
        or s in (AssetState.QUARANTINED, AssetState.DECOMMISSIONED)
        for s in AssetState
    )


@pytest.mark.parametrize(("source", "target"), FORBIDDEN, ids=lambda s: s.value)
def test_every_forbidden_move_is_refused_naming_both_states(database, source, target):
    with database.transaction() as session:
        asset = service.create_asset(
            session, data=AssetCreate(serial="SN1", state=source), actor=ACTOR
        )
        with pytest.raises(ForbiddenTransition) as refused:
            service.transition(session, asset, to=target, actor=ACTOR, reason="test")
        assert source.value in refused.value.message and target.value in refused.value.message
        assert asset.state is source


@pytest.mark.parametrize(("source", "target"), ALLOWED, ids=lambda s: s.value)
def test_every_allowed_move_is_recorded_with_actor_reason_and_request(database, source, target):
    with database.transaction() as session:
        asset = service.create_asset(
            session, data=AssetCreate(serial="SN1", state=source), actor=ACTOR
        )
        service.transition(session, asset, to=target, actor=ACTOR, reason="because")
    with database.transaction() as session:
        moves = service.history(session, serial="SN1", limit=10, cursor=None).items
        assert service.get_asset(session, serial="SN1").state is target
    assert [(m.from_state, m.to_state) for m in moves] == [(None, source), (source, target)]
    assert moves[1].actor == "system:test" and moves[1].reason == "because"
    assert moves[1].request_id == "req-1"


def test_forbidden_move_over_the_api_is_409_naming_both_states(client):
    client.post("/v1/assets", json={"serial": "SN9"}).raise_for_status()
    response = client.post("/v1/assets/SN9/transition", json={"to": "BAREMETAL", "reason": "x"})
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "forbidden_transition"
    assert "DISCOVERED" in body["message"] and "BAREMETAL" in body["message"]
    assert body["details"]["allowed"] == ["DECOMMISSIONED", "EVALUATING", "QUARANTINED"]


def test_history_over_the_api_names_who_moved_it_and_why(client):
    client.post("/v1/assets", json={"serial": "SN9"}).raise_for_status()
    moved = client.post(
        "/v1/assets/SN9/transition",
        json={"to": "EVALUATING", "reason": "racked"},
        headers={"X-Request-ID": "ticket-42"},
    )
    assert moved.status_code == 200 and moved.json()["state"] == "EVALUATING"
    history = client.get("/v1/assets/SN9/history").json()["items"]
    assert [(h["from_state"], h["to_state"]) for h in history] == [
        (None, "DISCOVERED"),
        ("DISCOVERED", "EVALUATING"),
    ]
    assert history[1]["actor"] == "wanda" and history[1]["reason"] == "racked"
    assert history[1]["request_id"] == "ticket-42"


def test_state_cannot_be_written_through_an_update(client):
    client.post("/v1/assets", json={"serial": "SN9"}).raise_for_status()
    response = client.patch("/v1/assets/SN9", json={"state": "SPARE"})
    assert response.status_code == 422
    assert client.get("/v1/assets/SN9").json()["state"] == "DISCOVERED"
