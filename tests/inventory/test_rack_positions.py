"""An asset's rack position is one of its rack's units, however the asset gets there; several
assets may share one (the nodes of a multi-node chassis)."""

import threading

import pytest

from metalyard.errors import InvalidInput
from metalyard.inventory import service
from metalyard.inventory.schemas import AssetUpdate, RackUpdate
from tests.inventory.test_query_budget import count_statements


@pytest.fixture
def racks(client):
    """dub1/small (10U) and dub1/tall (42U)."""
    client.post("/v1/sites", json={"name": "dub1"}).raise_for_status()
    for name, height in (("small", 10), ("tall", 42)):
        body = {"site": "dub1", "name": name, "height_u": height}
        client.post("/v1/racks", json=body).raise_for_status()


def refused_for_position(response, position, rack, height):
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["message"] == (
        f"rack_position_u: U{position} is outside rack dub1/{rack}, "
        f"which is {height}U high (1 to {height})"
    )
    assert body["details"][0]["field"] == "rack_position_u"
    assert body["details"][0]["height_u"] == height


def test_an_asset_is_enrolled_only_within_its_racks_height(client, racks):
    racked = {"site": "dub1", "rack": "small"}
    above = client.post("/v1/assets", json={"serial": "SN1", **racked, "rack_position_u": 99})
    refused_for_position(above, 99, "small", 10)
    above = client.post("/v1/assets", json={"serial": "SN1", **racked, "rack_position_u": 11})
    refused_for_position(above, 11, "small", 10)
    assert client.get("/v1/assets").json()["items"] == []
    for serial in ("SN1", "SN2"):  # two nodes of one chassis, at its U
        body = {"serial": serial, **racked, "rack_position_u": 10}
        assert client.post("/v1/assets", json=body).status_code == 201


def test_an_update_keeps_the_position_within_the_rack_it_ends_in(client, racks):
    body = {"serial": "SN1", "site": "dub1", "rack": "tall", "rack_position_u": 30}
    client.post("/v1/assets", json=body).raise_for_status()
    refused_for_position(
        client.patch("/v1/assets/SN1", json={"rack_position_u": 43}), 43, "tall", 42
    )
    moved = client.patch("/v1/assets/SN1", json={"rack": "small"})  # keeps U30
    refused_for_position(moved, 30, "small", 10)
    assert client.get("/v1/assets/SN1").json()["rack"] == "tall"
    both = client.patch("/v1/assets/SN1", json={"rack": "small", "rack_position_u": 3})
    assert both.status_code == 200, both.text
    assert (both.json()["rack"], both.json()["rack_position_u"]) == ("small", 3)
    assert client.patch("/v1/assets/SN1", json={"rack": None}).status_code == 200


def test_a_rack_cannot_shrink_below_an_asset_it_holds(client, racks):
    body = {"serial": "SN1", "site": "dub1", "rack": "tall", "rack_position_u": 30}
    client.post("/v1/assets", json=body).raise_for_status()
    (tall,) = client.get("/v1/racks", params={"name": "tall"}).json()["items"]
    shrunk = client.patch(f"/v1/racks/{tall['id']}", json={"height_u": 20})
    assert shrunk.status_code == 422, shrunk.text
    assert shrunk.json()["details"][0]["field"] == "height_u"
    assert "U30" in shrunk.json()["message"]
    assert client.patch(f"/v1/racks/{tall['id']}", json={"height_u": 30}).status_code == 200


def test_a_rack_shrunk_while_an_asset_is_placed_high_in_it_waits_and_sees_it(
    client, racks, database
):
    """Between checking an asset's position against the rack's height and committing it, a
    shrink of that rack must not slip in: it waits for the placement, then refuses."""
    body = {"serial": "SN1", "site": "dub1", "rack": "tall", "rack_position_u": 5}
    client.post("/v1/assets", json=body).raise_for_status()
    (tall,) = client.get("/v1/racks", params={"name": "tall"}).json()["items"]
    shrink: dict[str, object] = {}

    def shrink_to_20() -> None:
        try:
            with database.transaction() as session:
                service.update_rack(session, rack_id=tall["id"], data=RackUpdate(height_u=20))
            shrink["result"] = "shrunk"
        except InvalidInput as error:
            shrink["result"] = error.message

    with database.transaction() as session:
        service.update_asset(session, serial="SN1", data=AssetUpdate(rack_position_u=30))
        shrinking = threading.Thread(target=shrink_to_20)
        shrinking.start()
        shrinking.join(timeout=1.0)  # SQLite's second writer waits too, on the file's lock
        assert shrinking.is_alive(), f"the shrink did not wait: {shrink}"
    shrinking.join(timeout=30)
    assert "holds an asset at U30" in str(shrink["result"])
    assert client.get(f"/v1/racks/{tall['id']}").json()["height_u"] == 42
    assert client.get("/v1/assets/SN1").json()["rack_position_u"] == 30


def test_an_import_names_every_row_placed_outside_its_rack_and_writes_nothing(client, racks):
    rows = [
        {"serial": "A0", "site": "dub1", "rack": "small", "rack_position_u": 10},
        {"serial": "A1", "site": "dub1", "rack": "small", "rack_position_u": 11},
        {"serial": "A2", "site": "dub1", "rack": "tall", "rack_position_u": 11},
        {"serial": "A3", "site": "dub1", "rack": "tall", "rack_position_u": 50},
        {"serial": "A4", "rack_position_u": 50},  # in no rack: nothing to hold it to
    ]
    response = client.post("/v1/assets/import", json={"assets": rows})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["message"] == "2 of 5 row(s) are invalid; nothing was imported"
    assert body["details"] == [
        {
            "row": 1,
            "serial": "A1",
            "field": "rack_position_u",
            "message": "U11 is outside rack dub1/small, which is 10U high (1 to 10)",
            "height_u": 10,
        },
        {
            "row": 3,
            "serial": "A3",
            "field": "rack_position_u",
            "message": "U50 is outside rack dub1/tall, which is 42U high (1 to 42)",
            "height_u": 42,
        },
    ]
    assert client.get("/v1/assets").json()["items"] == []
    del rows[3]["rack_position_u"], rows[1]["rack_position_u"]
    assert client.post("/v1/assets/import", json={"assets": rows}).status_code == 201


def test_a_misplaced_row_in_a_later_chunk_of_a_big_import_is_found(client, racks):
    rows = [
        {"serial": f"A{n:04d}", "site": "dub1", "rack": "tall", "rack_position_u": n % 42 + 1}
        for n in range(3000)
    ]
    rows[2800]["rack_position_u"] = 43
    response = client.post("/v1/assets/import", json={"assets": rows})
    assert response.status_code == 422, response.text
    assert [(e["row"], e["field"]) for e in response.json()["details"]] == [
        (2800, "rack_position_u")
    ]
    assert client.get("/v1/assets", params={"limit": 1}).json()["items"] == []


def test_checking_positions_costs_an_import_no_query_per_row(client, database, racks):
    """The racks' heights come with the racks' ids, in the one query for every row."""
    counts = []
    for size in (3, 60):
        rows = [
            {
                "serial": f"S{size}-{n}",
                "site": "dub1",
                "rack": ("small", "tall")[n % 2],
                "rack_position_u": 42 + n % 2,  # above either rack
            }
            for n in range(size)
        ]
        client.get("/v1/sites").raise_for_status()  # the token, looked up and cached before
        with count_statements(database) as statements:
            refused = client.post("/v1/assets/import", json={"assets": rows})
        assert refused.status_code == 422 and len(refused.json()["details"]) == size
        counts.append(len(statements))
    assert counts[0] == counts[1], counts
