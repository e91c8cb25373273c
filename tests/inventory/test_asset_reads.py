"""Asset reads answer with JSON the database writes: the same JSON as the models give."""

import json
import re

import pytest
from pydantic import TypeAdapter
from sqlalchemy import text

from metalyard.inventory import service
from metalyard.inventory.schemas import AssetOut, asset_out
from metalyard.schemas import PageOut


def model_json(database, serial: str) -> bytes:
    """The asset as the models serialize it, from its ORM object (how reads answered before)."""
    with database.transaction(write=False) as session:
        return asset_out(service.get_asset(session, serial=serial)).model_dump_json().encode()


def ordered(document: bytes) -> list:
    """The JSON's keys and values in their order, whatever its spacing."""
    return json.loads(document, object_pairs_hook=list)


def test_a_read_answers_what_the_model_gives_in_its_order(client, database, furnished):
    got = client.get("/v1/assets/SN1")
    assert ordered(got.content) == ordered(model_json(database, "SN1"))
    assert got.headers["ETag"] == furnished.headers["ETag"] == '"1"'
    assert got.headers["content-type"] == furnished.headers["content-type"]
    assert [i["name"] for i in got.json()["interfaces"]] == ["eth0", "eth1"]
    assert list(got.json()["tags"]) == ["a", "env", "pool"]


def test_a_page_answers_what_the_model_gives(client, database, furnished):
    client.post("/v1/assets", json={"serial": "SN2"}).raise_for_status()
    page = client.get("/v1/assets", params={"limit": 1})
    as_models = TypeAdapter(PageOut[AssetOut]).validate_json(page.content)
    assert ordered(page.content) == ordered(TypeAdapter(PageOut[AssetOut]).dump_json(as_models))
    assert ordered(as_models.items[0].model_dump_json()) == ordered(model_json(database, "SN1"))
    assert as_models.next_cursor is not None


@pytest.mark.parametrize("microseconds", [0, 120000, 7])
def test_times_read_as_pydantic_writes_them(client, database, furnished, microseconds):
    with database.transaction() as session:
        asset = service.get_asset(session, serial="SN1")
        asset.updated_at = asset.updated_at.replace(microsecond=microseconds)
    got = client.get("/v1/assets/SN1").json()["updated_at"]
    assert got == json.loads(model_json(database, "SN1"))["updated_at"]
    assert got.endswith("Z") and ("." in got) == bool(microseconds)


def test_an_asset_without_interfaces_or_tags_has_empty_ones(client):
    client.post("/v1/assets", json={"serial": "BARE"}).raise_for_status()
    got = client.get("/v1/assets/BARE").json()
    assert (got["interfaces"], got["tags"], got["facts"]) == ([], {}, {})


def test_an_unknown_serial_is_a_404_naming_it(client):
    response = client.get("/v1/assets/NOPE")
    assert response.status_code == 404
    assert response.json()["message"] == "no asset with serial 'NOPE'"
    assert response.json()["details"] == {"serial": "NOPE"}


@pytest.fixture
def tagged(client):
    rows = [
        {
            "serial": f"SN{n:02d}",
            "state": "SPARE" if n % 2 else "DISCOVERED",
            "tags": {"pool": "web" if n % 3 else "db", "env": "prod" if n % 4 else "dev"},
        }
        for n in range(24)
    ]
    client.post("/v1/assets/import", json={"assets": rows}).raise_for_status()
    return rows


def walk(client, **params):
    found, cursor = [], None
    while True:
        page = client.get("/v1/assets", params={**params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        found += [a["serial"] for a in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return found


@pytest.mark.parametrize("sort", ["id", "-id"])
def test_tag_pages_walk_every_match_once_with_other_filters(client, tagged, sort):
    def expect(predicate):
        serials = [r["serial"] for r in tagged if predicate(r)]
        return serials if sort == "id" else serials[::-1]

    assert walk(client, tag="pool=web", limit=5, sort=sort) == expect(
        lambda r: r["tags"]["pool"] == "web"
    )
    assert walk(client, tag=["pool=web", "env=prod"], state="SPARE", limit=3, sort=sort) == expect(
        lambda r: r["tags"] == {"pool": "web", "env": "prod"} and r["state"] == "SPARE"
    )
    assert walk(client, tag=["env", "pool=db"], limit=2, sort=sort) == expect(
        lambda r: r["tags"]["pool"] == "db"
    )


def test_imported_and_enrolled_assets_are_stored_alike(client, database, furnished):
    """The bulk path writes rows itself; they must hold what the ORM path writes."""
    enrolled = furnished.json()
    imported = {**enrolled, "serial": "SN2", "state": "DISCOVERED"}
    for key in ("version", "created_at", "updated_at"):
        del imported[key]
    imported["interfaces"] = [
        {**i, "mac": i["mac"].replace("00:00:00", "00:00:01")} for i in enrolled["interfaces"]
    ]
    response = client.post("/v1/assets/import", json={"assets": [imported]})
    assert response.status_code == 201, response.text
    with database.engine.connect() as connection:
        enrolled_row, imported_row = (
            row._asdict() for row in connection.execute(text("SELECT * FROM assets ORDER BY id"))
        )
    if database.is_sqlite:  # timestamps are text there, in SQLAlchemy's format
        for row in (enrolled_row, imported_row):
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", row["created_at"])
    for key in ("id", "serial", "created_at", "updated_at"):
        del enrolled_row[key], imported_row[key]
    assert imported_row == enrolled_row
    first, second = (client.get(f"/v1/assets/{serial}").json() for serial in ("SN1", "SN2"))
    for asset in (first, second):
        for key in ("serial", "created_at", "updated_at"):
            del asset[key]
        for interface in asset["interfaces"]:
            interface["mac"] = interface["mac"][-2:]
    assert first == second
