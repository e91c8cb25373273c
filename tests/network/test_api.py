"""IPAM through the REST API: prefixes, reserved ranges, allocations and their refusals."""

import pytest

from metalyard.inventory import service as inventory
from tests.network.test_allocation import ACTOR


@pytest.fixture
def site(client):
    for name in ("dub1", "ams1"):
        client.post("/v1/sites", json={"name": name}).raise_for_status()
    for n in range(4):
        interfaces = [
            {"name": "eno1", "mac": f"52:54:00:00:00:{n:02x}"},
            {"name": "bmc", "mac": f"52:54:00:00:01:{n:02x}"},
        ]
        body = {"serial": f"SN{n}", "interfaces": interfaces}
        client.post("/v1/assets", json=body).raise_for_status()
    return "dub1"


def add_prefix(client, cidr: str, role: str = "bmc", site: str = "dub1", **fields):
    answer = client.post("/v1/prefixes", json={"site": site, "cidr": cidr, "role": role, **fields})
    assert answer.status_code == 201, answer.text
    return answer.json()


def allocate(client, serial: str, interface: str = "bmc", status: int = 201, **where):
    answer = client.post(
        "/v1/ip-allocations", json={"serial": serial, "interface": interface, **where}
    )
    assert answer.status_code == status, answer.text
    return answer.json()


def refused(answer, status: int, *words: str) -> dict:
    assert answer.status_code == status, answer.text
    body = answer.json()
    for word in words:
        assert word in body["message"], body
    return body


# Prefixes ------------------------------------------------------------------------------


def test_prefixes_are_normalised_listed_and_updated_with_versions(client, site):
    created = add_prefix(
        client,
        "2001:DB8:0:1::/64",
        role="provisioning",
        gateway="2001:db8:0:1:0::1",
        dns_servers=["2001:4860:4860::8888", "8.8.8.8"],
        vlan=120,
        description="PXE",
    )
    assert created["cidr"] == "2001:db8:0:1::/64" and created["family"] == 6
    assert created["gateway"] == "2001:db8:0:1::1" and created["site"] == "dub1"
    v4 = add_prefix(client, "10.1.0.0/16", role="bmc", site="ams1")
    assert client.get(f"/v1/prefixes/{created['id']}").json() == created

    def ids(**params):
        return [p["id"] for p in client.get("/v1/prefixes", params=params).json()["items"]]

    assert ids() == [created["id"], v4["id"]]
    assert ids(site="ams1") == [v4["id"]]
    assert ids(role="provisioning") == [created["id"]]
    assert ids(contains="10.1.200.3") == [v4["id"]] and ids(contains="10.2.0.1") == []
    assert ids(cidr="10.1.0.0/16") == [v4["id"]]
    assert ids(cidr="2001:db8:0:1:0::/64") == [created["id"]]
    refused(client.get("/v1/prefixes", params={"cidr": "10.1.0.1/16"}), 422, "did you mean")
    refused(client.get("/v1/prefixes", params={"contains": "nope"}), 422, "not an IP address")

    url = f"/v1/prefixes/{created['id']}"
    updated = client.patch(url, json={"vlan": None, "gateway": None, "version": 1}).json()
    assert (updated["vlan"], updated["gateway"], updated["version"]) == (None, None, 2)
    assert updated["description"] == "PXE"  # left out: kept
    refused(client.patch(url, json={"role": "bmc", "version": 1}), 409, "since version 1")
    assert client.delete(url).status_code == 204
    refused(client.get(url), 404, "no prefix")


INVALID_PREFIXES = [
    ({"cidr": "10.0.0.5/24"}, "did you mean 10.0.0.0/24"),
    ({"cidr": "10.0.0.0"}, "no prefix length"),
    ({"cidr": "10.0.0.0/24", "gateway": "10.0.1.1"}, "outside 10.0.0.0/24"),
    ({"cidr": "10.0.0.0/24", "gateway": "10.0.0.255"}, "network or broadcast"),
    ({"cidr": "10.0.0.0/24", "vlan": 4095}, "vlan"),
    ({"cidr": "10.0.0.0/24", "dns_servers": ["1.1.1.1", "1.1.1.1"]}, "repeat"),
    ({"cidr": "10.0.0.0/24", "role": "storage"}, "role"),
]


def test_invalid_prefixes_are_refused_naming_the_problem(client, site):
    for body, says in INVALID_PREFIXES:
        body = {"site": "dub1", "role": "bmc", **body}
        refused(client.post("/v1/prefixes", json=body), 422, says)
    assert client.get("/v1/prefixes").json()["items"] == []


def test_prefixes_of_a_region_never_overlap(client, site):
    first = add_prefix(client, "10.0.0.0/16")
    for cidr, site_name in (("10.0.128.0/24", "ams1"), ("10.0.0.0/8", "dub1")):
        body = refused(
            client.post("/v1/prefixes", json={"site": site_name, "cidr": cidr, "role": "bmc"}),
            409,
            f"overlaps prefix 10.0.0.0/16 (id {first['id']}, site dub1, bmc)",
        )
        assert body["details"]["overlaps"] == first["id"]
    same = client.post("/v1/prefixes", json={"site": "ams1", "cidr": "10.0.0.0/16", "role": "bmc"})
    assert refused(same, 409)["code"] == "already_exists"
    add_prefix(client, "10.1.0.0/16")  # adjacent is fine
    add_prefix(client, "::ffff:10.0.0.0/120")  # another family
    refused(
        client.post("/v1/prefixes", json={"site": "nowhere", "cidr": "10.9.0.0/24", "role": "bmc"}),
        404,
        "no site",
    )


def test_a_site_with_prefixes_cannot_be_deleted(client, site):
    add_prefix(client, "10.0.0.0/24", site="ams1")
    refused(client.delete("/v1/sites/ams1"), 409, "still has IP prefixes")


# Reserved ranges -----------------------------------------------------------------------


def test_reserved_ranges_lie_inside_and_do_not_overlap(client, site):
    prefix = add_prefix(client, "10.0.0.0/24")
    url = f"/v1/prefixes/{prefix['id']}/reserved-ranges"

    def reserve(start, end, reason="switches"):
        return client.post(url, json={"start": start, "end": end, "reason": reason})

    assert reserve("10.0.0.200", "10.0.0.250").status_code == 201
    low = reserve("10.0.0.1", "10.0.0.9").json()
    refused(reserve("10.0.0.250", "10.0.1.5"), 422, "end 10.0.1.5 is outside prefix 10.0.0.0/24")
    refused(reserve("10.0.0.9", "10.0.0.5"), 422, "comes after")
    refused(reserve("10.0.0.5", "10.0.0.20"), 409, "overlaps reserved range 10.0.0.1-10.0.0.9")
    refused(reserve("10.0.0.20", "10.0.0.30", reason=""), 422, "reason")
    assert [r["start"] for r in client.get(url).json()] == ["10.0.0.1", "10.0.0.200"]

    allocate(client, "SN0", prefix_id=prefix["id"], address="10.0.0.42")
    refused(reserve("10.0.0.40", "10.0.0.50"), 409, "covers allocated address(es) 10.0.0.42")
    assert client.delete(f"{url}/{low['id']}").status_code == 204
    refused(client.delete(f"{url}/{low['id']}"), 404, "no reserved range")
    refused(client.get("/v1/prefixes/99999/reserved-ranges"), 404, "no prefix")


# Allocations ---------------------------------------------------------------------------


def test_lowest_free_skips_network_gateway_reserved_and_broadcast(client, site):
    prefix = add_prefix(client, "10.0.0.0/29", gateway="10.0.0.1")
    client.post(
        f"/v1/prefixes/{prefix['id']}/reserved-ranges",
        json={"start": "10.0.0.2", "end": "10.0.0.3", "reason": "switches"},
    ).raise_for_status()
    got = [allocate(client, f"SN{n}", prefix_id=prefix["id"])["address"] for n in range(3)]
    assert got == ["10.0.0.4", "10.0.0.5", "10.0.0.6"]  # .7 is the broadcast address
    body = refused(
        client.post(
            "/v1/ip-allocations",
            json={"serial": "SN3", "interface": "bmc", "prefix_id": prefix["id"]},
        ),
        409,
        "prefix 10.0.0.0/29 is full",
    )
    assert body["details"] == {"prefixes": [prefix["id"]]}


def test_allocating_again_returns_the_same_address(client, site):
    prefix = add_prefix(client, "10.0.0.0/24")
    first = allocate(client, "SN0", prefix_id=prefix["id"])
    again = allocate(client, "SN0", prefix_id=prefix["id"], status=200)
    assert again == first
    assert allocate(client, "SN0", prefix_id=prefix["id"], address=first["address"], status=200)
    refused(
        client.post(
            "/v1/ip-allocations",
            json={
                "serial": "SN0",
                "interface": "bmc",
                "prefix_id": prefix["id"],
                "address": "10.0.0.99",
            },
        ),
        409,
        "already holds 10.0.0.1",
    )
    other = allocate(client, "SN0", "eno1", prefix_id=prefix["id"])  # another interface
    assert other["address"] == "10.0.0.2"
    assert first == {
        "id": first["id"],
        "address": "10.0.0.1",
        "prefix_id": prefix["id"],
        "cidr": "10.0.0.0/24",
        "site": "dub1",
        "role": "bmc",
        "serial": "SN0",
        "interface": "bmc",
        "created_at": first["created_at"],
    }


CHOSEN_ADDRESSES = [
    ("10.0.0.0", 422, "network or broadcast"),
    ("10.0.0.255", 422, "network or broadcast"),
    ("10.0.0.1", 422, "is the gateway"),
    ("10.0.0.10", 422, "is reserved in 10.0.0.0/24 (10.0.0.10-10.0.0.19: vips)"),
    ("10.0.1.1", 422, "not in prefix 10.0.0.0/24"),
    ("2001:db8::1", 422, "not in prefix"),
    ("10.0.0.50", 409, "already allocated to asset SN1 interface bmc"),
    ("10.0.0.300", 422, "not an IP address"),
]


def test_a_chosen_address_must_be_a_free_host_of_the_prefix(client, site):
    prefix = add_prefix(client, "10.0.0.0/24", gateway="10.0.0.1")
    client.post(
        f"/v1/prefixes/{prefix['id']}/reserved-ranges",
        json={"start": "10.0.0.10", "end": "10.0.0.19", "reason": "vips"},
    ).raise_for_status()
    allocate(client, "SN1", prefix_id=prefix["id"], address="10.0.0.50")
    for address, status, says in CHOSEN_ADDRESSES:
        answer = client.post(
            "/v1/ip-allocations",
            json={
                "serial": "SN0",
                "interface": "bmc",
                "prefix_id": prefix["id"],
                "address": address,
            },
        )
        refused(answer, status, says)
    assert allocate(client, "SN0", prefix_id=prefix["id"], address="10.0.0.9")["address"] == (
        "10.0.0.9"
    )


def test_released_addresses_are_reused_lowest_first(client, site):
    prefix = add_prefix(client, "10.0.0.0/24")
    for n in range(3):
        allocate(client, f"SN{n}", prefix_id=prefix["id"])
    assert client.delete("/v1/ip-allocations/10.0.0.2").status_code == 204
    refused(client.delete("/v1/ip-allocations/10.0.0.2"), 404, "10.0.0.2 is not allocated")
    refused(client.get("/v1/ip-allocations/10.0.0.2"), 404, "not allocated")
    assert allocate(client, "SN3", prefix_id=prefix["id"])["address"] == "10.0.0.2"

    allocate(client, "SN0", "eno1", prefix_id=prefix["id"])
    released = client.delete("/v1/ip-allocations", params={"serial": "SN0"})
    assert released.status_code == 200
    assert [(a["interface"], a["address"]) for a in released.json()] == [
        ("bmc", "10.0.0.1"),
        ("eno1", "10.0.0.4"),
    ]
    assert client.delete("/v1/ip-allocations", params={"serial": "SN0"}).json() == []
    one = client.delete("/v1/ip-allocations", params={"serial": "SN2", "interface": "bmc"})
    assert [a["address"] for a in one.json()] == ["10.0.0.3"]
    refused(client.delete("/v1/ip-allocations", params={"serial": "NOPE"}), 404, "no asset")
    assert client.get("/v1/ip-allocations/10.0.0.2").json()["serial"] == "SN3"


def test_site_and_role_take_the_first_prefix_with_room(client, site):
    small = add_prefix(client, "10.0.0.0/30")  # two hosts
    big = add_prefix(client, "10.0.1.0/24")
    add_prefix(client, "10.0.2.0/24", role="production")
    add_prefix(client, "10.0.3.0/24", site="ams1")
    where = {"site": "dub1", "role": "bmc"}
    got = [allocate(client, f"SN{n}", **where) for n in range(3)]
    assert [(a["address"], a["prefix_id"]) for a in got] == [
        ("10.0.0.1", small["id"]),
        ("10.0.0.2", small["id"]),
        ("10.0.1.1", big["id"]),
    ]
    assert allocate(client, "SN0", status=200, **where) == got[0]
    assert allocate(client, "SN3", address="10.0.1.77", **where)["prefix_id"] == big["id"]
    refused(
        client.post(
            "/v1/ip-allocations",
            json={"serial": "SN3", "interface": "eno1", "site": "dub1", "role": "discovery"},
        ),
        404,
        "site 'dub1' has no discovery prefix; create one with `metalyard prefix create",
    )
    refused(
        client.post(
            "/v1/ip-allocations",
            json={"serial": "SN3", "interface": "eno1", "address": "10.0.3.5", **where},
        ),
        422,
        "10.0.3.5 is not in any bmc prefix of site dub1",
    )


def test_allocation_requests_name_what_is_missing(client, site):
    prefix_id = add_prefix(client, "10.0.0.0/24")["id"]
    for body, status, says in [
        ({"serial": "NOPE", "prefix_id": prefix_id}, 404, "no asset with serial 'NOPE'"),
        (
            {"interface": "eth9", "prefix_id": prefix_id},
            404,
            "no interface 'eth9' (it has: bmc, eno1); add it with `metalyard asset update",
        ),
        ({"prefix_id": 99999}, 404, "no prefix with id 99999"),
        ({"site": "dub1"}, 422, "prefix_id, or site and role"),
        ({"prefix_id": prefix_id, "role": "bmc"}, 422, "not both"),
        ({"site": "mars", "role": "bmc"}, 404, "no site"),
    ]:
        body = {"serial": "SN0", "interface": "bmc", **body}
        refused(client.post("/v1/ip-allocations", json=body), status, says)


def test_allocations_are_listed_by_prefix_asset_site_and_role_in_pages(client, site):
    bmc = add_prefix(client, "10.0.0.0/24")
    prod = add_prefix(client, "10.0.1.0/24", role="production", site="ams1")
    for n in range(4):
        allocate(client, f"SN{n}", prefix_id=bmc["id"])
        allocate(client, f"SN{n}", "eno1", prefix_id=prod["id"])

    def addresses(**params):
        page = client.get("/v1/ip-allocations", params=params)
        assert page.status_code == 200, page.text
        return [a["address"] for a in page.json()["items"]]

    assert addresses(prefix_id=prod["id"]) == [f"10.0.1.{n}" for n in range(1, 5)]
    assert addresses(serial="SN2") == ["10.0.0.3", "10.0.1.3"]
    assert addresses(site="ams1", interface="eno1") == addresses(role="production")
    assert addresses(role="bmc", serial="SN9") == []

    seen, cursor = [], None
    while True:
        params = {"limit": 3, "sort": "-id", **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/ip-allocations", params=params).json()
        seen += [a["id"] for a in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert len(seen) == 8 and seen == sorted(seen, reverse=True)
    refused(client.get("/v1/ip-allocations", params={"sort": "address"}), 422, "cannot sort")


def test_prefix_with_addresses_stays_until_they_are_released(client, site, database):
    prefix = add_prefix(client, "10.0.0.0/24", gateway="10.0.0.1")
    taken = allocate(client, "SN0", prefix_id=prefix["id"])["address"]
    url = f"/v1/prefixes/{prefix['id']}"
    refused(client.delete(url), 409, "still has 1 allocated address(es)")
    refused(client.patch(url, json={"gateway": taken}), 409, "is allocated to asset SN0")
    refused(client.patch(url, json={"gateway": "10.0.1.1"}), 422, "outside")

    with database.transaction() as session:  # deleting the asset releases what it held
        inventory.delete_asset(session, serial="SN0", reason="gone", actor=ACTOR, policy=[])
    assert client.get("/v1/ip-allocations", params={"prefix_id": prefix["id"]}).json() == {
        "items": [],
        "next_cursor": None,
    }
    assert client.delete(url).status_code == 204


def test_editing_an_assets_interfaces_keeps_its_addresses(client, site):
    prefix = add_prefix(client, "10.0.0.0/24")
    held = allocate(client, "SN0", prefix_id=prefix["id"])
    interfaces = [{"name": "bmc", "mac": "52:54:00:00:01:00", "speed_mbps": 1000}]
    client.patch("/v1/assets/SN0", json={"interfaces": interfaces}).raise_for_status()
    assert allocate(client, "SN0", prefix_id=prefix["id"], status=200) == held
