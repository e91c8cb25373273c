"""Assets through the REST API: enrol, find, tag, update, move."""

import pytest


@pytest.fixture
def rack(client):
    client.post("/v1/sites", json={"name": "dub1"}).raise_for_status()
    response = client.post("/v1/racks", json={"site": "dub1", "name": "r01", "mgmt_switch": "sw1"})
    response.raise_for_status()
    return response.json()


def enrol(client, serial, **fields):
    response = client.post("/v1/assets", json={"serial": serial, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def test_enrolled_asset_reads_back_with_names_not_ids(client, rack):
    client.post("/v1/machine-classes", json={"name": "compute-large"}).raise_for_status()
    asset = enrol(
        client,
        "SN001",
        hostname="node01.dub1",
        site="dub1",
        rack="r01",
        rack_position_u=12,
        machine_class="compute-large",
        tags={"pool": "batch"},
        interfaces=[{"name": "eno1", "mac": "52-54-00-AA-00-01"}],
    )
    got = client.get("/v1/assets/SN001")
    assert got.status_code == 200
    body = got.json()
    assert body == asset
    assert body["site"] == "dub1" and body["rack"] == "r01"
    assert body["machine_class"] == "compute-large"
    assert body["interfaces"] == [{"name": "eno1", "mac": "52:54:00:aa:00:01", "speed_mbps": None}]
    assert body["tags"] == {"pool": "batch"}
    assert body["state"] == "DISCOVERED"
    assert got.headers["ETag"] == '"1"'
