"""Writes that send no version, made at once over real HTTP: each applies, one after another.

On PostgreSQL the requests really overlap (each in its own transaction and connection);
a client that named no version must never be told its write was stale.
"""

import json

import pytest

from tests.api.concurrently import all_answered, at_once

WRITERS = 12


@pytest.fixture
def rack_id(client):
    client.post("/v1/sites", json={"name": "dub1"}).raise_for_status()
    return client.post("/v1/racks", json={"site": "dub1", "name": "r01"}).json()["id"]


def test_tags_set_at_once_are_all_kept(client, live_server, tokens):
    client.post("/v1/assets", json={"serial": "SN1"}).raise_for_status()
    calls = [("POST", "/v1/assets/SN1/tags", {"set": {f"k{i}": "v"}}) for i in range(WRITERS)]
    all_answered(at_once(live_server, tokens.write, calls))
    asset = client.get("/v1/assets/SN1").json()
    assert asset["tags"] == {f"k{i}": "v" for i in range(WRITERS)}
    assert asset["version"] == 1 + WRITERS


def test_asset_updates_at_once_all_apply(client, live_server, tokens):
    client.post("/v1/assets", json={"serial": "SN1"}).raise_for_status()
    calls = [("PATCH", "/v1/assets/SN1", {"hostname": f"node{i}"}) for i in range(WRITERS)]
    all_answered(at_once(live_server, tokens.write, calls))
    assert client.get("/v1/assets/SN1").json()["version"] == 1 + WRITERS


def test_transitions_at_once_each_see_the_state_the_one_before_left(client, live_server, tokens):
    """The first move to QUARANTINED applies; the others find the asset there already and
    are refused for its state, never for a version they did not send."""
    client.post("/v1/assets", json={"serial": "SN1"}).raise_for_status()
    body = {"to": "QUARANTINED", "reason": "at once"}
    results = at_once(live_server, tokens.write, [("POST", "/v1/assets/SN1/transition", body)] * 8)
    codes = sorted(str(json.loads(text).get("code", code)) for code, text in results)
    assert codes == ["200"] + ["forbidden_transition"] * 7, results
    history = client.get("/v1/assets/SN1/history").json()["items"]
    assert [move["to_state"] for move in history] == ["DISCOVERED", "QUARANTINED"]


def test_rack_site_and_class_updates_at_once_all_apply(client, live_server, tokens, rack_id):
    client.post("/v1/machine-classes", json={"name": "gpu"}).raise_for_status()
    calls = [
        *(("PATCH", f"/v1/racks/{rack_id}", {"mgmt_switch": f"sw{i}"}) for i in range(WRITERS)),
        *(("PATCH", "/v1/sites/dub1", {"description": f"d{i}"}) for i in range(WRITERS)),
        *(("PATCH", "/v1/machine-classes/gpu", {"description": f"d{i}"}) for i in range(WRITERS)),
    ]
    all_answered(at_once(live_server, tokens.write, calls))
    assert client.get(f"/v1/racks/{rack_id}").json()["version"] == 1 + WRITERS
    assert client.get("/v1/sites/dub1").json()["version"] == 1 + WRITERS
    assert client.get("/v1/machine-classes/gpu").json()["version"] == 1 + WRITERS


def test_a_stale_version_is_still_refused_when_writes_overlap(client, live_server, tokens):
    client.post("/v1/assets", json={"serial": "SN1"}).raise_for_status()
    calls = [("PATCH", "/v1/assets/SN1", {"hostname": f"n{i}", "version": 1}) for i in range(8)]
    results = at_once(live_server, tokens.write, calls)
    assert sorted(code for code, _ in results) == [200] + [409] * 7
    assert all("stale_version" in text for code, text in results if code == 409)


def test_deletes_at_once_delete_once_and_find_nothing_after(client, live_server, tokens, settings):
    settings.maker_checker = []
    client.post("/v1/assets", json={"serial": "SN1"}).raise_for_status()
    results = at_once(live_server, tokens.write, [("DELETE", "/v1/assets/SN1", None)] * 6)
    assert sorted(code for code, _ in results) == [204] + [404] * 5
