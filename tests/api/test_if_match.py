"""Every route that takes a version takes its ETag as If-Match too, by the same rules, and
every route that answers with a versioned object sends its ETag."""

from dataclasses import dataclass
from typing import Any

import pytest


@dataclass
class Versioned:
    """One kind of versioned object: how to make it, change it and read it back."""

    name: str
    admin: bool
    """Changed with the admin token (else the write token)."""
    create: list[tuple[str, dict[str, Any]]]
    """POSTs that make it (and what it needs); the last one answers with it."""
    method: str
    path: str
    change: Any
    """The object as read → the body of one more valid change."""
    read: str = ""

    def __post_init__(self) -> None:
        self.read = self.read or self.path


def _next_state(asset: dict[str, Any]) -> dict[str, Any]:
    to = "EVALUATING" if asset["state"] == "QUARANTINED" else "QUARANTINED"
    return {"to": to, "reason": "checking If-Match"}


KINDS = [
    Versioned(
        "site",
        False,
        [("/v1/sites", {"name": "dub1"})],
        "PATCH",
        "/v1/sites/dub1",
        lambda site: {"description": f"v{site['version']}"},
    ),
    Versioned(
        "rack",
        False,
        [("/v1/sites", {"name": "dub1"}), ("/v1/racks", {"site": "dub1", "name": "r01"})],
        "PATCH",
        "/v1/racks/{id}",
        lambda rack: {"mgmt_switch": f"sw{rack['version']}"},
    ),
    Versioned(
        "machine class",
        False,
        [("/v1/machine-classes", {"name": "gpu"})],
        "PATCH",
        "/v1/machine-classes/gpu",
        lambda cls: {"description": f"v{cls['version']}"},
    ),
    Versioned(
        "asset",
        False,
        [("/v1/assets", {"serial": "SN1"})],
        "PATCH",
        "/v1/assets/SN1",
        lambda asset: {"hostname": f"n{asset['version']}"},
    ),
    Versioned(
        "asset tags",
        False,
        [("/v1/assets", {"serial": "SN1"})],
        "POST",
        "/v1/assets/SN1/tags",
        lambda asset: {"set": {"v": str(asset["version"])}},
        read="/v1/assets/SN1",
    ),
    Versioned(
        "asset transition",
        False,
        [("/v1/assets", {"serial": "SN1"})],
        "POST",
        "/v1/assets/SN1/transition",
        _next_state,
        read="/v1/assets/SN1",
    ),
    Versioned(
        "user",
        True,
        [("/v1/users", {"name": "ursula", "role": "read"})],
        "PATCH",
        "/v1/users/ursula",
        lambda user: {"email": f"u{user['version']}@example.com"},
    ),
    Versioned(
        "team",
        True,
        [("/v1/teams", {"name": "infra"})],
        "PATCH",
        "/v1/teams/infra",
        lambda team: {"description": f"v{team['version']}"},
    ),
    Versioned(
        "project",
        True,
        [("/v1/teams", {"name": "infra"}), ("/v1/projects", {"name": "batch", "team": "infra"})],
        "PATCH",
        "/v1/projects/batch",
        lambda project: {"description": f"v{project['version']}"},
    ),
    Versioned(
        "BMC credential",
        True,
        [
            (
                "/v1/bmc-credentials",
                {"name": "fleet", "username": "root", "password": "pw", "networks": ["10.0.0.0/8"]},
            )
        ],
        "PATCH",
        "/v1/bmc-credentials/fleet",
        lambda credential: {"username": f"u{credential['version']}"},
    ),
]


@pytest.fixture(params=KINDS, ids=lambda kind: kind.name)
def kind(request):
    return request.param


@pytest.fixture
def made(kind, client, admin):
    """The object of `kind`, made: (its HTTP client, the path to change, to read)."""
    http = admin if kind.admin else client
    for path, body in kind.create:
        created = http.post(path, json=body)
        assert created.status_code == 201, created.text
    fields = created.json()
    assert created.headers["ETag"] == f'"{fields["version"]}"'
    return http, kind.path.format(**fields), kind.read.format(**fields)


def change(http, kind, path, read, headers=None, version=None):
    body = kind.change(http.get(read).json())
    if version is not None:
        body["version"] = version
    return http.request(kind.method, path, json=body, headers=headers or {})


def test_a_stale_if_match_is_refused_and_changes_nothing(kind, made):
    http, path, read = made
    assert change(http, kind, path, read).status_code == 200  # now version 2
    before = http.get(read).json()
    stale = change(http, kind, path, read, {"If-Match": '"1"'})
    assert stale.status_code == 409, stale.text
    assert stale.json()["code"] == "stale_version"
    assert stale.json()["details"] == {"expected": 1, "current": 2}
    assert http.get(read).json() == before


def test_a_current_if_match_applies_and_answers_the_new_etag(kind, made):
    http, path, read = made
    got = http.get(read)
    assert got.headers["ETag"] == '"1"'
    for if_match in ('"1"', 'W/"2"'):
        changed = change(http, kind, path, read, {"If-Match": if_match})
        assert changed.status_code == 200, changed.text
    assert changed.headers["ETag"] == '"3"' == f'"{changed.json()["version"]}"'
    assert http.get(read).headers["ETag"] == '"3"'


def test_if_match_star_holds_to_any_current_version(kind, made):
    http, path, read = made
    change(http, kind, path, read).raise_for_status()
    star = change(http, kind, path, read, {"If-Match": "*"})
    assert star.status_code == 200, star.text
    assert star.json()["version"] == 3
    stale_body = change(http, kind, path, read, {"If-Match": "*"}, version=1)
    assert stale_body.status_code == 409 and stale_body.json()["code"] == "stale_version"


def test_if_match_and_a_body_version_must_agree(kind, made):
    http, path, read = made
    change(http, kind, path, read).raise_for_status()  # now version 2
    for if_match, version in (('"1"', 2), ('"2"', 1), ('"2"', 3)):
        refused = change(http, kind, path, read, {"If-Match": if_match}, version=version)
        assert refused.status_code == 409, (if_match, version, refused.text)
    agreed = change(http, kind, path, read, {"If-Match": '"2"'}, version=2)
    assert agreed.status_code == 200, agreed.text
    assert http.get(read).json()["version"] == 3


def test_a_malformed_if_match_is_a_422_naming_the_header(kind, made):
    http, path, read = made
    for if_match in ("3", '"x"', '"1", "2"', '"-1"', "W/", '""', '"٣"'.encode()):
        refused = change(http, kind, path, read, {"If-Match": if_match})
        assert refused.status_code == 422, (if_match, refused.text)
        assert refused.json()["details"][0]["field"] == "If-Match"
        assert "If-Match" in refused.json()["message"]
    assert http.get(read).json()["version"] == 1


VERSIONED_ROUTES = [
    ("patch", "/v1/sites/{name}"),
    ("patch", "/v1/racks/{rack_id}"),
    ("patch", "/v1/machine-classes/{name}"),
    ("patch", "/v1/assets/{serial}"),
    ("post", "/v1/assets/{serial}/tags"),
    ("post", "/v1/assets/{serial}/transition"),
    ("patch", "/v1/users/{name}"),
    ("patch", "/v1/teams/{name}"),
    ("patch", "/v1/projects/{name}"),
    ("patch", "/v1/bmc-credentials/{name}"),
]


def test_every_route_that_takes_a_version_documents_if_match_and_etag(app):
    paths = app.openapi()["paths"]
    assert len(VERSIONED_ROUTES) == len(KINDS)
    for method, path in VERSIONED_ROUTES:
        operation = paths[path][method]
        headers = [
            p
            for p in operation["parameters"]
            if p["in"] == "header" and p["name"] != "X-Metalyard-Region"  # on every operation
        ]
        assert [h["name"] for h in headers] == ["If-Match"], path
        assert "409" in headers[0]["description"], path
        assert "ETag" in operation["responses"]["200"]["headers"], path
        read = paths[path.removesuffix("/tags").removesuffix("/transition")]
        assert "ETag" in read["get"]["responses"]["200"]["headers"], path
