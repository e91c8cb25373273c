"""Vendors and versioned hardware profiles through the API."""

import copy

SPEC = {
    "cpu": {"model": "Intel(R) Xeon(R) Gold 6338", "count": 2},
    "memory_gib": 512,
    "disks": [{"count": 2, "size_gb": 960, "kind": "ssd"}],
    "nics": [{"count": 2, "speed_gbps": 25}],
    "firmware": {"bios": "2.1.0", "bmc": "5.10"},
}


def make_profile(client, vendor: str = "acme", name: str = "r750", spec=SPEC):
    if client.get(f"/v1/vendors/{vendor}").status_code == 404:
        assert client.post("/v1/vendors", json={"name": vendor}).status_code == 201
    answer = client.post("/v1/profiles", json={"vendor": vendor, "name": name, "spec": spec})
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_a_profile_starts_at_version_1_and_each_change_is_a_new_version(client):
    assert make_profile(client)["versions"] == [1]
    bigger = copy.deepcopy(SPEC)
    bigger["memory_gib"] = 1024
    bigger["disks"][0]["size_gb"] = 1920
    answer = client.post(
        "/v1/profiles/acme/r750/versions", json={"spec": bigger, "note": "gen 2: more RAM"}
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["number"] == 2 and answer.json()["created_by"] == "wanda"
    profile = client.get("/v1/profiles/acme/r750").json()
    assert (profile["latest_version"], profile["versions"]) == (2, [1, 2])
    assert client.get("/v1/profiles/acme/r750/versions/1").json()["spec"]["memory_gib"] == 512


def test_the_difference_between_two_versions_names_each_changed_field(client):
    make_profile(client)
    changed = copy.deepcopy(SPEC)
    changed["memory_gib"] = 1024
    changed["firmware"]["bios"] = "2.2.0"
    changed["nics"].append({"count": 1, "speed_gbps": 1})
    client.post("/v1/profiles/acme/r750/versions", json={"spec": changed})
    diff = client.get("/v1/profiles/acme/r750/diff", params={"from": 1, "to": 2}).json()
    assert diff == [
        {"field": "firmware.bios", "old": "2.1.0", "new": "2.2.0"},
        {"field": "memory_gib", "old": 512, "new": 1024},
        {"field": "nics.1.count", "old": None, "new": 1},
        {"field": "nics.1.speed_gbps", "old": None, "new": 1.0},
    ]


def test_a_version_cannot_change_once_a_machine_class_uses_it(client):
    make_profile(client)
    fixed = copy.deepcopy(SPEC)
    fixed["cpu"]["count"] = 1
    answer = client.patch("/v1/profiles/acme/r750/versions/1", json={"spec": fixed})
    assert answer.status_code == 200 and answer.json()["spec"]["cpu"]["count"] == 1

    assert client.post("/v1/machine-classes", json={"name": "compute-large"}).status_code == 201
    answer = client.put(
        "/v1/machine-classes/compute-large/profile-versions",
        json={"versions": [{"vendor": "acme", "profile": "r750", "version": 1}]},
    )
    assert answer.status_code == 200, answer.text
    assert client.get("/v1/profiles/acme/r750/versions/1").json()["in_use"] is True

    answer = client.patch("/v1/profiles/acme/r750/versions/1", json={"spec": SPEC})
    assert answer.status_code == 409
    assert "in use" in answer.json()["message"] and "new version" in answer.json()["message"]
    assert client.get("/v1/profiles/acme/r750/versions/1").json()["spec"]["cpu"]["count"] == 1


def test_machine_classes_map_to_profile_versions_of_several_vendors(client):
    make_profile(client, "acme", "r750")
    make_profile(client, "globex", "sr650")
    client.post("/v1/machine-classes", json={"name": "compute"})
    refs = [
        {"vendor": "acme", "profile": "r750", "version": 1},
        {"vendor": "globex", "profile": "sr650", "version": 1},
    ]
    client.put("/v1/machine-classes/compute/profile-versions", json={"versions": refs})
    mapped = client.get("/v1/machine-classes/compute/profile-versions").json()
    assert [(v["vendor"], v["profile"], v["number"]) for v in mapped] == [
        ("acme", "r750", 1),
        ("globex", "sr650", 1),
    ]
    missing = [{"vendor": "acme", "profile": "r750", "version": 9}]
    answer = client.put("/v1/machine-classes/compute/profile-versions", json={"versions": missing})
    assert answer.status_code == 404 and "no version 9" in answer.json()["message"]


def test_bad_specs_and_duplicates_are_refused_with_reasons(client):
    make_profile(client)
    bad = copy.deepcopy(SPEC)
    bad["cpu"]["count"] = 0
    answer = client.post("/v1/profiles", json={"vendor": "acme", "name": "x", "spec": bad})
    assert answer.status_code == 422 and "cpu" in answer.text
    again = client.post("/v1/profiles", json={"vendor": "acme", "name": "r750", "spec": SPEC})
    assert again.status_code == 409
    nobody = client.post("/v1/profiles", json={"vendor": "nobody", "name": "x", "spec": SPEC})
    assert nobody.status_code == 404
    assert client.delete("/v1/vendors/acme").status_code == 409
