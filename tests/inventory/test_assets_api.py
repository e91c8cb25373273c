"""Assets through the REST API: enrol, find, tag, update, move."""

import pytest

from metalyard.inventory import service
from tests.inventory.conftest import FURNISHED


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


def test_unknown_rack_or_class_is_a_404_naming_it(client, rack):
    response = client.post("/v1/assets", json={"serial": "SN1", "site": "dub1", "rack": "r99"})
    assert response.status_code == 404 and "r99" in response.json()["message"]
    response = client.post("/v1/assets", json={"serial": "SN1", "machine_class": "nope"})
    assert response.status_code == 404 and "nope" in response.json()["message"]
    assert client.get("/v1/assets").json()["items"] == []


def test_duplicate_serial_and_mac_are_conflicts(client):
    enrol(client, "SN1", interfaces=[{"name": "eno1", "mac": "52:54:00:00:00:01"}])
    again = client.post("/v1/assets", json={"serial": "SN1"})
    assert again.status_code == 409 and again.json()["code"] == "already_exists"
    mac = client.post(
        "/v1/assets",
        json={"serial": "SN2", "interfaces": [{"name": "eno1", "mac": "52:54:00:00:00:01"}]},
    )
    assert mac.status_code == 409 and "52:54:00:00:00:01" in mac.json()["message"]


def test_validation_errors_name_the_field_and_why(client):
    response = client.post(
        "/v1/assets", json={"serial": "SN1", "interfaces": [{"name": "eno1", "mac": "not-a-mac"}]}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_input"
    assert body["details"][0]["field"] == "interfaces.0.mac"
    assert body["message"].startswith("interfaces.0.mac: ")
    typo = client.post("/v1/assets", json={"serial": "SN1", "hostnam": "x"})
    assert typo.status_code == 422 and typo.json()["details"][0]["field"] == "hostnam"


def test_stale_update_is_refused_with_409(client):
    enrol(client, "SN1")
    first = client.patch("/v1/assets/SN1", json={"hostname": "a", "version": 1})
    assert first.status_code == 200 and first.json()["version"] == 2
    stale = client.patch("/v1/assets/SN1", json={"hostname": "b", "version": 1})
    assert stale.status_code == 409 and stale.json()["code"] == "stale_version"
    assert stale.json()["details"] == {"expected": 1, "current": 2}
    by_etag = client.patch("/v1/assets/SN1", json={"hostname": "c"}, headers={"If-Match": '"1"'})
    assert by_etag.status_code == 409
    fresh = client.patch("/v1/assets/SN1", json={"hostname": "c"}, headers={"If-Match": '"2"'})
    assert fresh.status_code == 200 and fresh.headers["ETag"] == '"3"'
    assert client.get("/v1/assets/SN1").json()["hostname"] == "c"


def test_update_moves_racks_and_replaces_interfaces_and_tags(client, rack):
    client.post("/v1/racks", json={"site": "dub1", "name": "r02"}).raise_for_status()
    enrol(
        client,
        "SN1",
        site="dub1",
        rack="r01",
        tags={"a": "1"},
        interfaces=[{"name": "eno1", "mac": "52:54:00:00:00:01"}],
    )
    updated = client.patch(
        "/v1/assets/SN1",
        json={
            "rack": "r02",
            "tags": {"b": "2"},
            "interfaces": [
                {"name": "eno1", "mac": "52:54:00:00:00:01"},
                {"name": "eno2", "mac": "52:54:00:00:00:02"},
            ],
        },
    ).json()
    assert (updated["site"], updated["rack"]) == ("dub1", "r02")
    assert updated["tags"] == {"b": "2"}
    assert [i["name"] for i in updated["interfaces"]] == ["eno1", "eno2"]
    unracked = client.patch("/v1/assets/SN1", json={"rack": None}).json()
    assert (unracked["site"], unracked["rack"]) == (None, None)


def test_tags_are_set_and_removed_key_by_key(client):
    enrol(client, "SN1", tags={"pool": "batch", "row": "3"})
    body = client.post(
        "/v1/assets/SN1/tags", json={"set": {"pool": "web", "gpu": "a100"}, "remove": ["row"]}
    ).json()
    assert body["tags"] == {"gpu": "a100", "pool": "web"}


@pytest.fixture
def fleet(client, rack):
    client.post("/v1/racks", json={"site": "dub1", "name": "r02"}).raise_for_status()
    client.post("/v1/machine-classes", json={"name": "gpu"}).raise_for_status()
    rows = []
    for n in range(30):
        rows.append(
            {
                "serial": f"SN{n:03d}",
                "hostname": f"node{n:03d}.dub1",
                "site": "dub1",
                "rack": "r01" if n % 2 else "r02",
                "state": "SPARE" if n % 3 == 0 else "DISCOVERED",
                "machine_class": "gpu" if n % 5 == 0 else None,
                "tags": {"pool": "web" if n % 4 == 0 else "batch", "row": str(n % 3)},
            }
        )
    assert client.post("/v1/assets/import", json={"assets": rows}).status_code == 201
    return rows


def serials(client, **params):
    found, cursor = [], None
    while True:
        body = client.get("/v1/assets", params={**params, "cursor": cursor} if cursor else params)
        assert body.status_code == 200, body.text
        found += [a["serial"] for a in body.json()["items"]]
        cursor = body.json()["next_cursor"]
        if cursor is None:
            return found


def test_filters_match_exactly_what_they_say(client, fleet):
    def expect(predicate):
        return [r["serial"] for r in fleet if predicate(r)]

    assert serials(client, state="SPARE", rack="r01") == expect(
        lambda r: r["state"] == "SPARE" and r["rack"] == "r01"
    )
    assert serials(client, tag="pool=web") == expect(lambda r: r["tags"]["pool"] == "web")
    assert serials(client, tag=["pool=batch", "row=1"]) == expect(
        lambda r: r["tags"] == {"pool": "batch", "row": "1"}
    )
    assert serials(client, tag="row") == expect(lambda r: True)
    assert serials(client, machine_class="gpu") == expect(lambda r: r["machine_class"] == "gpu")
    assert serials(client, site="dub1", state=["SPARE", "DISCOVERED"]) == expect(lambda r: True)
    assert serials(client, q="NODE01") == expect(lambda r: "node01" in r["hostname"])
    assert serials(client, q="%") == []


def test_the_same_filters_with_other_values_find_other_assets(client, fleet):
    """A page's statement is built once per set of filters: no value may stay in it."""
    for params, predicate in [
        ({"state": "SPARE", "rack": "r01"}, lambda r: r["state"] == "SPARE" and r["rack"] == "r01"),
        (
            {"state": "DISCOVERED", "rack": "r02"},
            lambda r: r["state"] == "DISCOVERED" and r["rack"] == "r02",
        ),
        ({"tag": "pool=web"}, lambda r: r["tags"]["pool"] == "web"),
        ({"tag": "pool=batch"}, lambda r: r["tags"]["pool"] == "batch"),
        ({"tag": ["row=1", "pool=web"]}, lambda r: r["tags"] == {"pool": "web", "row": "1"}),
        ({"tag": ["row=2", "pool=batch"]}, lambda r: r["tags"] == {"pool": "batch", "row": "2"}),
        ({"q": "node01"}, lambda r: "node01" in r["hostname"]),
        ({"q": "node02"}, lambda r: "node02" in r["hostname"]),
        ({"sort": "-hostname", "limit": 4, "tag": "row=0"}, lambda r: r["tags"]["row"] == "0"),
        ({"sort": "-hostname", "limit": 4, "tag": "row=2"}, lambda r: r["tags"]["row"] == "2"),
    ]:
        expected = sorted(r["serial"] for r in fleet if predicate(r))
        if params.get("sort") == "-hostname":
            expected.reverse()
        assert serials(client, **params) == expected, params


def test_cursor_pages_walk_every_asset_once_in_any_sort(client, fleet):
    everything = sorted(r["serial"] for r in fleet)
    assert serials(client, limit=7) == everything
    assert serials(client, limit=7, sort="-serial") == everything[::-1]
    by_state = serials(client, limit=4, sort="state")
    assert sorted(by_state) == everything
    states = {r["serial"]: r["state"] for r in fleet}
    assert [states[s] for s in by_state] == sorted(states[s] for s in by_state)


def test_bad_sort_and_cursor_are_clear_422s(client, fleet):
    sort = client.get("/v1/assets", params={"sort": "colour"})
    assert sort.status_code == 422 and "colour" in sort.json()["message"]
    cursor = client.get("/v1/assets", params={"cursor": "garbage"})
    assert cursor.status_code == 422 and "cursor" in cursor.json()["message"]
    too_big = client.get("/v1/assets", params={"limit": 100_000})
    assert too_big.status_code == 422 and too_big.json()["details"][0]["field"] == "query.limit"


@pytest.mark.parametrize("tag", ["=x", "bad key", "bad key=x", "-lead=x", "k" * 64])
def test_a_tag_filter_no_tag_could_match_is_a_422_not_an_empty_page(client, fleet, tag):
    answer = client.get("/v1/assets", params={"tag": ["row=2", tag]})
    assert answer.status_code == 422, answer.text
    (problem,) = answer.json()["details"]
    assert problem["field"] == "query.tag.1"
    assert "neither `key=value` nor `key`" in problem["message"]


def test_import_with_bad_rows_writes_nothing_and_names_each_row(client, rack):
    enrol(client, "TAKEN")
    rows = [
        {"serial": "A1", "site": "dub1", "rack": "r01"},
        {"serial": "TAKEN"},
        {"serial": "A3", "site": "dub1", "rack": "nope"},
        {"serial": "A1"},
        {"serial": "A5", "machine_class": "ghost"},
    ]
    response = client.post("/v1/assets/import", json={"assets": rows})
    assert response.status_code == 422
    body = response.json()
    assert "4 of 5 row(s) are invalid" in body["message"]
    assert [(e["row"], e["field"]) for e in body["details"]] == [
        (1, "serial"),
        (2, "rack"),
        (3, "serial"),
        (4, "machine_class"),
    ]
    assert body["details"][2]["first_row"] == 0
    assert serials(client) == ["TAKEN"]


def test_a_rule_of_ours_reads_the_same_in_an_import_row_as_in_a_create(client):
    eno1 = [{"name": "eno1", "mac": f"52:54:00:00:03:0{n}"} for n in (1, 2)]
    created = client.post("/v1/assets", json={"serial": "A1", "interfaces": eno1})
    imported = client.post(
        "/v1/assets/import", json={"assets": [{"serial": "A1", "interfaces": eno1}]}
    )
    said = {"field": "interfaces", "message": "interface names repeat: eno1"}
    assert {k: created.json()["details"][0][k] for k in said} == said
    assert {k: imported.json()["details"][0][k] for k in said} == said


def test_import_names_rows_failing_validation_with_every_other_bad_row(client, rack):
    enrol(client, "TAKEN")
    rows = [
        {"serial": "A1"},
        {"serial": "A2", "hostname": "bad host!"},
        {"serial": "TAKEN"},
        {"serial": "A4", "interfaces": [{"name": "eno1", "mac": "zz"}], "rack_position_u": 0},
        "not an asset",
        {"serial": "A6", "site": "dub1", "rack": "nope"},
    ]
    response = client.post("/v1/assets/import", json={"assets": rows})
    assert response.status_code == 422
    body = response.json()
    assert body["message"] == "5 of 6 row(s) are invalid; nothing was imported"
    assert [(e["row"], e["serial"], e["field"]) for e in body["details"]] == [
        (1, "A2", "hostname"),
        (2, "TAKEN", "serial"),
        (3, "A4", "rack_position_u"),
        (3, "A4", "interfaces.0.mac"),
        (4, None, ""),
        (5, "A6", "rack"),
    ]
    assert serials(client) == ["TAKEN"]


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        (b"{not json", "body", "not valid JSON: key must be a string"),
        (b"[]", "body", "must be a JSON object"),
        (b'{"assets": []}', "assets", "at least 1 item"),
        (b'{"assets": {}}', "assets", "valid array"),
        (b'{"assets": [{"serial": "A1"}], "dry_run": true}', "dry_run", "Extra inputs"),
    ],
)
def test_an_import_body_that_is_not_a_list_of_rows_says_what_is_wrong(client, body, field, says):
    response = client.post(
        "/v1/assets/import", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    problem = response.json()["details"][0]
    assert problem["field"] == field and says in problem["message"], problem
    assert serials(client) == []


def test_an_import_over_the_row_limit_is_refused(client):
    rows = [{"serial": f"S{n}"} for n in range(10_001)]
    response = client.post("/v1/assets/import", json={"assets": rows})
    assert response.status_code == 422
    assert "10000" in response.json()["message"]
    assert serials(client) == []


def test_imported_assets_read_back_as_enrolled_ones_in_the_order_given(client, furnished):
    """The import writes its rows its own way (one statement on PostgreSQL): it must give
    what enrolling them one by one gives."""
    macs = iter(f"52:54:00:00:02:{n:02x}" for n in range(10))

    def like_sn1(serial: str, **fields) -> dict:
        interfaces = [{**i, "mac": next(macs)} for i in FURNISHED["interfaces"]]
        return {**FURNISHED, "serial": serial, "interfaces": interfaces, **fields}

    rows = [
        like_sn1("SN9", state="SPARE", maintenance=True),
        {"serial": "SN0"},
        like_sn1("SN5", machine_class=None, owner_team=None, tags={}, interfaces=[]),
        like_sn1("SN7", project=None, site=None, rack=None, rack_position_u=None),
    ]
    response = client.post("/v1/assets/import", json={"assets": rows})
    assert response.status_code == 201, response.text
    assert serials(client) == ["SN1", "SN9", "SN0", "SN5", "SN7"]
    differing = {"serial", "interfaces", "state", "created_at", "updated_at"}
    for row in rows:
        alone = {k: v for k, v in row.items() if k not in differing}
        enrolled = client.post("/v1/assets", json={**alone, "serial": row["serial"] + "-1"}).json()
        imported = client.get(f"/v1/assets/{row['serial']}").json()
        assert {k: v for k, v in imported.items() if k not in differing} == {
            k: v for k, v in enrolled.items() if k not in differing
        }
        assert imported["state"] == row.get("state", "DISCOVERED")
        assert imported["interfaces"] == sorted(
            ({"speed_mbps": None, **i} for i in row.get("interfaces", [])), key=lambda i: i["name"]
        )


def test_import_records_the_enrolment_of_every_asset(client, rack):
    rows = [
        {
            "serial": f"B{n}",
            "state": "SPARE",
            "site": "dub1",
            "rack": "r01",
            "interfaces": [{"name": "eno1", "mac": f"52:54:00:00:01:{n:02x}"}],
        }
        for n in range(5)
    ]
    created = client.post("/v1/assets/import", json={"assets": rows})
    assert created.json() == {"created": 5, "serials": [f"B{n}" for n in range(5)]}
    assert client.get("/v1/assets/B3").json()["interfaces"][0]["mac"] == "52:54:00:00:01:03"
    history = client.get("/v1/assets/B3/history").json()["items"]
    assert [(h["from_state"], h["to_state"], h["actor"]) for h in history] == [
        (None, "SPARE", "wanda")
    ]


def test_every_update_answers_with_the_new_version(client):
    client.post("/v1/sites", json={"name": "dub1"}).raise_for_status()
    client.post("/v1/machine-classes", json={"name": "gpu"}).raise_for_status()
    rack = client.post("/v1/racks", json={"site": "dub1", "name": "r01"}).json()
    assert client.patch("/v1/sites/dub1", json={"address": "x"}).json()["version"] == 2
    assert client.patch("/v1/machine-classes/gpu", json={"description": "x"}).json()["version"] == 2
    assert client.patch(f"/v1/racks/{rack['id']}", json={"height_u": 48}).json()["version"] == 2
    assert client.get("/v1/sites/dub1").json()["version"] == 2


def test_racks_are_found_by_site_and_name(client):
    client.post("/v1/sites", json={"name": "dub1"}).raise_for_status()
    client.post("/v1/sites", json={"name": "ams1"}).raise_for_status()
    for site in ("dub1", "ams1"):
        client.post("/v1/racks", json={"site": site, "name": "r01"}).raise_for_status()
    found = client.get("/v1/racks", params={"site": "ams1", "name": "r01"}).json()["items"]
    assert [(r["site"], r["name"]) for r in found] == [("ams1", "r01")]


def test_cursors_work_for_every_sort_and_refuse_forged_values(client, fleet):
    import base64
    import json

    for sort in ("created_at", "-updated_at", "state", "hostname", "-id"):
        assert len(serials(client, limit=4, sort=sort)) == len(fleet), sort
    forged = base64.urlsafe_b64encode(json.dumps([0, "x", "assets:id"]).encode()).decode()
    response = client.get("/v1/assets", params={"cursor": forged})
    assert response.status_code == 422
    assert response.json()["message"] == "the cursor is not one this server issued"


def test_a_cursor_continues_only_the_list_and_sort_it_came_from(client, fleet):
    cursor = client.get("/v1/assets", params={"limit": 2, "sort": "serial"}).json()["next_cursor"]
    resorted = client.get("/v1/assets", params={"cursor": cursor, "sort": "-hostname"})
    assert resorted.status_code == 422
    assert resorted.json()["message"] == (
        "this cursor continues the list sorted by 'serial', not '-hostname': "
        "repeat that sort, or start again without a cursor"
    )
    assert resorted.json()["details"] == [
        {"field": "cursor", "message": resorted.json()["message"], "sort": "serial"}
    ]
    elsewhere = client.get("/v1/sites", params={"cursor": cursor})
    assert elsewhere.status_code == 422
    assert "another list" in elsewhere.json()["message"]
    same = client.get("/v1/assets", params={"cursor": cursor, "sort": "serial", "limit": 2})
    assert same.status_code == 200 and len(same.json()["items"]) == 2


def test_null_on_a_field_that_cannot_be_empty_leaves_it_as_it_is(client):
    client.post("/v1/sites", json={"name": "dub1"}).raise_for_status()
    rack = client.post("/v1/racks", json={"site": "dub1", "name": "r01", "bmc_capacity": 6}).json()
    patched = client.patch(f"/v1/racks/{rack['id']}", json={"bmc_capacity": None, "height_u": 44})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["bmc_capacity"], patched.json()["height_u"]) == (6, 44)
    assert client.patch("/v1/sites/dub1", json={"address": None}).json()["address"] == ""


@pytest.mark.parametrize(
    "bad",
    [
        {"serial": "LATE", "hostname": "bad host!"},
        {"serial": "TAKEN"},
        {"serial": "LATE", "interfaces": [{"name": "eno1", "mac": "52:54:00:ff:ff:ff"}]},
        {"serial": "LATE", "site": "dub1", "rack": "nope"},
        {"serial": "C0"},
    ],
)
def test_a_bad_row_in_a_later_chunk_undoes_the_chunks_written(client, rack, monkeypatch, bad):
    """PostgreSQL writes a chunk while the next is validated: a later chunk's problem must
    still leave nothing written, and be named."""
    monkeypatch.setattr(service, "IMPORT_CHUNK", 3)
    enrol(client, "TAKEN", interfaces=[{"name": "eno1", "mac": "52:54:00:ff:ff:ff"}])
    rows = [{"serial": f"C{n}", "site": "dub1", "rack": "r01"} for n in range(7)] + [bad]
    response = client.post("/v1/assets/import", json={"assets": rows})
    assert response.status_code == 422, response.text
    assert [e["row"] for e in response.json()["details"]] == [7]
    assert serials(client) == ["TAKEN"]
    rows[7] = {"serial": "C7"}
    assert client.post("/v1/assets/import", json={"assets": rows}).status_code == 201
    assert serials(client) == ["TAKEN"] + [f"C{n}" for n in range(8)]
