"""Fixtures of the inventory tests."""

import pytest

FURNISHED = {
    "serial": "SN1",
    "hostname": "node1.dub1",
    "vendor": 'Ünïcode & <co> "quoted" \\ tab\t',
    "machine_class": "gpu",
    "site": "dub1",
    "rack": "r01",
    "rack_position_u": 7,
    "owner_team": "infra",
    "project": "batch",
    "health": "OK",
    "tags": {"pool": "web", "env": "prod", "a": ""},
    "interfaces": [
        {"name": "eth1", "mac": "52:54:00:00:00:02", "speed_mbps": 25000},
        {"name": "eth0", "mac": "52:54:00:00:00:01"},
    ],
    "facts": {"cores": 64, "load": 0.1, "big": 2**70, "nested": {"x": [1, None]}},
    "firmware": {"bios": "2.1"},
}
"""Every field of an asset set, some of them in ways JSON encoders disagree on."""


@pytest.fixture
def furnished(client, admin):
    """SN1, enrolled with FURNISHED."""
    admin.post("/v1/teams", json={"name": "infra"}).raise_for_status()
    admin.post("/v1/projects", json={"name": "batch", "team": "infra"}).raise_for_status()
    client.post("/v1/sites", json={"name": "dub1"}).raise_for_status()
    client.post("/v1/racks", json={"site": "dub1", "name": "r01"}).raise_for_status()
    client.post("/v1/machine-classes", json={"name": "gpu"}).raise_for_status()
    created = client.post("/v1/assets", json=FURNISHED)
    assert created.status_code == 201, created.text
    return created
