"""A request with one bad element, wherever it sits, leaves the database as it was."""

import random

import pytest
from sqlalchemy import select

from metalyard.db import Base

SEED = 20261121
AUDITED_ANYWAY = {"audit_entries", "audit_seal"}  # refusals are audited by design


def snapshot(database) -> dict[str, list]:
    with database.engine.connect() as connection:
        return {
            table.name: sorted(map(repr, connection.execute(select(table)).all()))
            for table in Base.metadata.sorted_tables
            if table.name not in AUDITED_ANYWAY
        }


@pytest.fixture
def racked(client):
    client.post("/v1/sites", json={"name": "dub1"}).raise_for_status()
    client.post("/v1/racks", json={"site": "dub1", "name": "r01"}).raise_for_status()
    client.post(
        "/v1/assets",
        json={"serial": "TAKEN", "interfaces": [{"name": "eno1", "mac": "52:54:00:ff:ff:ff"}]},
    ).raise_for_status()


def good_row(n: int) -> dict:
    return {
        "serial": f"N{n:04d}",
        "site": "dub1",
        "rack": "r01",
        "tags": {"pool": "web"},
        "interfaces": [{"name": "eno1", "mac": f"52:54:00:00:{n // 256:02x}:{n % 256:02x}"}],
    }


BAD_ROWS = {
    "invalid MAC": lambda n: {**good_row(n), "interfaces": [{"name": "eno1", "mac": "zz"}]},
    "taken serial": lambda n: {"serial": "TAKEN"},
    "taken MAC": lambda n: {
        **good_row(n),
        "interfaces": [{"name": "e", "mac": "52:54:00:ff:ff:ff"}],
    },
    "unknown rack": lambda n: {**good_row(n), "rack": "r99"},
    "unknown class": lambda n: {**good_row(n), "machine_class": "ghost"},
    "repeated serial": lambda n: good_row(0),
    "bad state": lambda n: {**good_row(n), "state": "ON_FIRE"},
    "above its rack": lambda n: {**good_row(n), "rack_position_u": 43},
}


@pytest.mark.parametrize("kind", sorted(BAD_ROWS))
def test_an_import_with_one_bad_row_anywhere_writes_nothing(client, database, racked, kind):
    rng = random.Random(f"{SEED}-{kind}")
    before = snapshot(database)
    for _ in range(3):
        size = rng.randint(2, 60)
        position = rng.randrange(1, size)
        rows = [good_row(n) for n in range(size)]
        rows[position] = BAD_ROWS[kind](position)
        response = client.post("/v1/assets/import", json={"assets": rows})
        assert response.status_code in (409, 422), response.text
        assert str(position) in str(response.json()["details"])
        assert snapshot(database) == before


def test_multi_object_requests_with_one_bad_part_write_nothing(client, admin, database, racked):
    before = snapshot(database)
    refused = [
        admin.post("/v1/teams", json={"name": "t1", "members": ["wanda", "ghost", "otto"]}),
        client.post(
            "/v1/assets",
            json={
                "serial": "NEW",
                "interfaces": [
                    {"name": "eno1", "mac": "52:54:00:00:00:01"},
                    {"name": "eno2", "mac": "52:54:00:ff:ff:ff"},
                ],
            },
        ),
        client.patch(
            "/v1/assets/TAKEN",
            json={"hostname": "h", "tags": {"a": "b"}, "rack": "r99", "site": "dub1"},
        ),
        client.patch(
            "/v1/assets/TAKEN",
            json={
                "tags": {"a": "b"},
                "interfaces": [
                    {"name": "eno1", "mac": "52:54:00:00:00:01"},
                    {"name": "eno2", "mac": "52:54:00:00:00:01"},
                ],
            },
        ),
        client.post("/v1/assets/TAKEN/tags", json={"set": {f"k{n}": "v" for n in range(70)}}),
    ]
    assert [r.status_code for r in refused] == [404, 409, 404, 422, 422]
    assert snapshot(database) == before
