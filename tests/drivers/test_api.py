"""BMC credentials and an asset's BMC through the REST API, against the real emulators."""

import pytest
from sqlalchemy import select

from metalyard.drivers.models import BmcCredential
from tests.api.concurrently import all_answered, at_once
from tests.drivers.conftest import Recorder
from tests.peers.bmcs import BMC_PASSWORD, BMC_USER, LOOPBACK


def add_credential(
    admin, name: str = "fleet", password: str = BMC_PASSWORD, networks: tuple = (LOOPBACK,)
):
    body = {"name": name, "username": BMC_USER, "password": password, "networks": networks}
    answer = admin.post("/v1/bmc-credentials", json=body)
    assert answer.status_code == 201, answer.text
    return answer


def add_asset(client, serial: str, driver: str, address: str, credential: str = "fleet"):
    body = {
        "serial": serial,
        "bmc_driver": driver,
        "bmc_address": address,
        "bmc_credential": credential,
    }
    answer = client.post("/v1/assets", json=body)
    assert answer.status_code == 201, answer.text


def test_passwords_are_never_returned_and_are_encrypted_at_rest(admin, client, database):
    created = add_credential(admin).json()
    assert set(created) == {"name", "username", "networks", "created_at", "updated_at", "version"}
    for answer in (
        client.get("/v1/bmc-credentials/fleet"),
        client.get("/v1/bmc-credentials"),
        admin.patch("/v1/bmc-credentials/fleet", json={"password": "N3w-pass"}),
        admin.get("/v1/audit"),
    ):
        assert answer.status_code == 200, answer.text
        assert BMC_PASSWORD not in answer.text and "N3w-pass" not in answer.text
    with database.transaction(write=False) as session:
        stored = session.scalars(select(BmcCredential.password_encrypted)).one()
    assert "N3w-pass" not in stored and stored.startswith("gAAAA")  # a Fernet token


def test_only_admins_manage_credentials(client, admin):
    body = {"name": "x", "username": "u", "password": "p", "networks": [LOOPBACK]}
    assert client.post("/v1/bmc-credentials", json=body).status_code == 403
    add_credential(admin, "x")
    assert client.patch("/v1/bmc-credentials/x", json={"password": "q"}).status_code == 403
    assert client.delete("/v1/bmc-credentials/x").status_code == 403


def test_a_credential_in_use_cannot_be_deleted(admin, client):
    add_credential(admin)
    add_asset(client, "SN-CRED", "fake", "fake-1")
    answer = admin.delete("/v1/bmc-credentials/fleet")
    assert answer.status_code == 409
    assert "used by 1 asset" in answer.json()["message"]


def test_power_boot_check_firmware_and_sensors_over_redfish(admin, client, redfish):
    add_credential(admin)
    add_asset(client, "SN-RF", "redfish", redfish.system_url(7))

    answer = client.post("/v1/assets/SN-RF/power", json={"action": "on"})
    assert answer.status_code == 202, answer.text
    assert client.get("/v1/assets/SN-RF/power").json() == {"state": "on"}
    assert redfish.get(f"/redfish/v1/Systems/{redfish.uuids[7]}")["PowerState"] == "On"

    answer = client.put("/v1/assets/SN-RF/boot", json={"device": "pxe", "persistent": True})
    assert answer.json()["device"] == "pxe"

    check = client.post("/v1/assets/SN-RF/bmc/check").json()
    assert check["driver"] == "redfish" and "firmware" in check["capabilities"]
    assert check["power_state"] == "on"

    firmware = {c["name"] for c in client.get("/v1/assets/SN-RF/firmware").json()}
    assert {"bios", "bmc"} <= firmware
    sensors = client.get("/v1/assets/SN-RF/sensors").json()
    assert sensors["overall"] == "ok" and sensors["sensors"]

    client.post("/v1/assets/SN-RF/power", json={"action": "off"})
    audit = admin.get("/v1/audit", params={"target": "assets/SN-RF/power"}).json()["items"]
    assert len(audit) == 2 and all(entry["outcome"] == "success" for entry in audit)


def test_ipmi_asset_power_and_unsupported_firmware(admin, client, ipmi):
    add_credential(admin)
    add_asset(client, "SN-IPMI", "ipmi", ipmi.address(3))
    assert client.post("/v1/assets/SN-IPMI/power", json={"action": "on"}).json() == {"state": "on"}
    answer = client.get("/v1/assets/SN-IPMI/firmware")
    assert answer.status_code == 422
    assert answer.json()["code"] == "unsupported"
    assert "no firmware interface" in answer.json()["message"]


def test_bmc_failures_carry_the_bmcs_message(admin, client, redfish):
    add_credential(admin, password="wrong-password")
    add_asset(client, "SN-BAD", "redfish", redfish.system_url(0))
    answer = client.get("/v1/assets/SN-BAD/power")
    assert answer.status_code == 502
    assert answer.json()["code"] == "bmc_auth_failed"
    assert "refused the credentials" in answer.json()["message"]

    add_asset(client, "SN-DOWN", "redfish", "http://127.0.0.1:9/redfish/v1/Systems/1")
    answer = client.post("/v1/assets/SN-DOWN/power", json={"action": "on"})
    assert answer.status_code == 503
    assert answer.json()["code"] == "bmc_transient"
    assert "cannot be reached" in answer.json()["message"]


def test_an_asset_enrolled_without_a_bmc_has_none_and_every_bmc_call_is_refused(client):
    created = client.post("/v1/assets", json={"serial": "SN-NOBMC"})
    assert created.status_code == 201, created.text
    assert created.json()["bmc_driver"] is None
    assert client.get("/v1/assets/SN-NOBMC").json()["bmc_driver"] is None
    hint = "`metalyard asset update SN-NOBMC --bmc-driver … --bmc-address … --bmc-credential …`"
    for answer in (
        client.post("/v1/assets/SN-NOBMC/power", json={"action": "off"}),
        client.get("/v1/assets/SN-NOBMC/power"),
        client.put("/v1/assets/SN-NOBMC/boot", json={"device": "pxe"}),
        client.post("/v1/assets/SN-NOBMC/bmc/check"),
        client.get("/v1/assets/SN-NOBMC/firmware"),
        client.get("/v1/assets/SN-NOBMC/sensors"),
    ):
        assert answer.status_code == 409, answer.text
        body = answer.json()
        assert body["code"] == "no_bmc"
        said = "asset 'SN-NOBMC' has no BMC driver, address or credential on record"
        assert body["message"].startswith(said)
        assert hint in body["message"]
        assert body["details"]["missing"] == ["bmc_driver", "bmc_address", "bmc_credential"]


def test_an_address_without_its_driver_is_refused_when_written(client):
    answer = client.post("/v1/assets", json={"serial": "SN-HALF", "bmc_address": "10.0.0.5"})
    assert answer.status_code == 422
    assert answer.json()["details"][0]["field"] == "bmc_address"
    assert "needs its BMC's driver too" in answer.json()["message"]

    client.post("/v1/assets", json={"serial": "SN-LATER"}).raise_for_status()
    answer = client.patch("/v1/assets/SN-LATER", json={"bmc_address": "10.0.0.5"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["details"][0]["field"] == "bmc_address"
    assert "needs its BMC's driver too" in answer.json()["message"]
    both = {"bmc_driver": "ipmi", "bmc_address": "10.0.0.5"}
    answer = client.patch("/v1/assets/SN-LATER", json=both)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["bmc_driver"], answer.json()["bmc_address"]) == ("ipmi", "10.0.0.5")


def test_an_asset_without_address_or_credential_is_told_what_to_set(client):
    add_asset(client, "SN-NOADDR", "redfish", "", credential="")
    answer = client.get("/v1/assets/SN-NOADDR/power")
    assert answer.status_code == 409
    assert answer.json()["code"] == "no_bmc"
    assert "no BMC address or credential" in answer.json()["message"]
    assert "--bmc-address … --bmc-credential …`" in answer.json()["message"]
    add_asset(client, "SN-NOCRED", "ipmi", "127.0.0.1:1623", credential="")
    answer = client.get("/v1/assets/SN-NOCRED/power")
    assert answer.status_code == 422
    assert "no BMC credential" in answer.json()["message"]
    add_asset(client, "SN-GHOST", "ipmi", "127.0.0.1:1623", credential="ghost")
    answer = client.get("/v1/assets/SN-GHOST/power")
    assert answer.status_code == 404 and "ghost" in answer.json()["message"]


def test_fake_assets_need_nothing_set(client):
    add_asset(client, "SN-FAKE", "fake", "", credential="")
    assert client.post("/v1/assets/SN-FAKE/power", json={"action": "cycle"}).json() == {
        "state": "on"
    }
    assert client.get("/v1/assets/NOPE/power").status_code == 404


def test_a_credential_is_never_sent_outside_its_networks(admin, client, rogue):
    """A write user points an asset at a host of their own: nothing is sent there."""
    add_credential(admin, networks=("10.20.0.0/16",))
    add_asset(client, "SN-ROGUE", "redfish", rogue.url)
    for call in (
        lambda: client.get("/v1/assets/SN-ROGUE/power"),
        lambda: client.post("/v1/assets/SN-ROGUE/power", json={"action": "on"}),
        lambda: client.post("/v1/assets/SN-ROGUE/bmc/check"),
    ):
        answer = call()
        assert answer.status_code == 409, answer.text
        assert answer.json()["code"] == "outside_networks"
        message = answer.json()["message"]
        assert "127.0.0.2 is outside the networks BMC credential 'fleet'" in message
        assert "(10.20.0.0/16)" in message and "bmc-credential update fleet" in message
    assert rogue.seen == []

    widened = admin.patch(
        "/v1/bmc-credentials/fleet", json={"networks": ["10.20.0.0/16", "127.0.0.2/32"]}
    )
    assert widened.json()["networks"] == ["10.20.0.0/16", "127.0.0.2/32"]
    client.get("/v1/assets/SN-ROGUE/power")
    assert rogue.seen, "inside its networks, the credential is used"


def test_where_a_bmc_redirects_is_checked_before_a_byte_is_sent(admin, client, redirector, rogue):
    add_credential(admin, networks=("127.0.0.1/32",))
    add_asset(client, "SN-REDIRECTED", "redfish", redirector.url)
    answer = client.get("/v1/assets/SN-REDIRECTED/power")
    assert answer.status_code == 409, answer.text
    assert answer.json()["code"] == "outside_networks"
    assert "refused to send a BMC credential to 127.0.0.2" in answer.json()["message"]
    assert redirector.seen and rogue.seen == []


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("http://127.0.0.2:{port}\\@10.20.0.5/redfish/v1/Systems/1", 422),
        ("http://10.20.0.5@127.0.0.2:{port}/redfish/v1/Systems/1", 422),
        ("http://\u00df.example:{port}/redfish/v1/Systems/1", 422),
        ("http://[fe80::1%25lo]:{port}/redfish/v1/Systems/1", 422),
        ("http://xn--zca.127.0.0.2:{port}/redfish/v1/Systems/1", 503),  # resolves nowhere
    ],
)
def test_an_address_parsers_could_read_two_ways_is_refused(admin, client, rogue, address, refused):
    """Refused when written (422 naming the field), or at the latest when used."""
    add_credential(admin, networks=("10.20.0.0/16",))
    body = {
        "serial": "SN-TRICK",
        "bmc_driver": "redfish",
        "bmc_address": address.format(port=rogue.server_port),
        "bmc_credential": "fleet",
    }
    created = client.post("/v1/assets", json=body)
    if refused == 422:
        assert created.status_code == 422, created.text
        assert created.json()["details"][0]["field"] == "bmc_address"
    else:
        assert client.get("/v1/assets/SN-TRICK/power").status_code == refused
    assert rogue.seen == []


def test_a_bmc_address_its_driver_cannot_read_is_refused_when_written(client):
    answer = client.post(
        "/v1/assets", json={"serial": "SN-BAD", "bmc_driver": "redfish", "bmc_address": "garbage"}
    )
    assert answer.status_code == 422
    assert answer.json()["details"][0]["field"] == "bmc_address"
    assert "a Redfish BMC address is a URL such as" in answer.json()["message"]

    add_asset(client, "SN-OK", "ipmi", "10.0.0.5:623")
    for change in ({"bmc_address": "a:b:c:d"}, {"bmc_driver": "redfish"}):
        answer = client.patch("/v1/assets/SN-OK", json=change)
        assert answer.status_code == 422, change
        assert answer.json()["details"][0]["field"] == "bmc_address"
    assert (
        client.patch("/v1/assets/SN-OK", json={"bmc_address": "[fd00::5]:623"}).status_code == 200
    )

    rows = [
        {"serial": "SN-I1", "bmc_driver": "ipmi", "bmc_address": "10.0.0.6"},
        {"serial": "SN-I2", "bmc_driver": "ipmi", "bmc_address": "not a host:xx"},
    ]
    answer = client.post("/v1/assets/import", json={"assets": rows})
    assert answer.status_code == 422
    assert [(e["row"], e["field"]) for e in answer.json()["details"]] == [(1, "bmc_address")]
    assert client.get("/v1/assets/SN-I1").status_code == 404


def test_a_bmc_host_name_is_checked_by_every_address_it_resolves_to(admin, client, redfish):
    add_credential(admin, networks=(LOOPBACK, "::1/128"))
    named = redfish.system_url(2).replace("127.0.0.1", "localhost")
    add_asset(client, "SN-NAMED", "redfish", named)
    assert client.get("/v1/assets/SN-NAMED/power").status_code == 200

    admin.patch("/v1/bmc-credentials/fleet", json={"networks": ["10.0.0.0/8"]})
    answer = client.get("/v1/assets/SN-NAMED/power")
    assert answer.status_code == 409
    assert "BMC address localhost (" in answer.json()["message"]
    assert "127.0.0.1" in answer.json()["details"]["outside"]

    add_asset(client, "SN-NOWHERE", "redfish", "http://no-such-bmc.invalid/redfish/v1/Systems/1")
    answer = client.get("/v1/assets/SN-NOWHERE/power")
    assert answer.status_code == 503
    assert "'no-such-bmc.invalid' cannot be resolved" in answer.json()["message"]


def test_ipmi_addresses_are_checked_too(admin, client, ipmi):
    add_credential(admin, networks=("192.168.0.0/16",))
    add_asset(client, "SN-IPMI-OUT", "ipmi", ipmi.address(2))
    before = ipmi.ipmitool(2, "power", "status")
    action = "off" if "is on" in before else "on"
    answer = client.post("/v1/assets/SN-IPMI-OUT/power", json={"action": action})
    assert answer.status_code == 409
    assert "outside the networks" in answer.json()["message"]
    assert ipmi.ipmitool(2, "power", "status") == before


def test_a_fake_bmc_cannot_test_guesses_of_a_credential_meant_elsewhere(admin, client):
    """A fake BMC accepts only the password its address names: with a real credential it
    would say whether a guess is right. It counts as this machine, outside 10.20.0.0/16."""
    add_credential(admin, networks=("10.20.0.0/16",))
    add_asset(client, "SN-GUESS", "fake", "guess?password=calvin")
    answer = client.post("/v1/assets/SN-GUESS/bmc/check")
    assert answer.status_code == 409
    assert answer.json()["code"] == "outside_networks"

    add_asset(client, "SN-SSRF", "fake", "ssrf?notify=http://10.20.0.5/hook", credential="")
    answer = client.post("/v1/assets/SN-SSRF/power", json={"action": "on"})
    assert answer.status_code == 422
    assert "notify URL is a loopback one" in answer.json()["message"]


@pytest.mark.parametrize(
    ("networks", "problem"),
    [
        (None, "Field required"),
        ([], "at least 1 item"),
        (["10.0.0.5/8"], "did you mean 10.0.0.0/8?"),
        (["10.0.0.0"], "has no prefix length"),
        (["bmc-net/24"], "not a CIDR prefix"),
    ],
)
def test_a_credential_must_say_where_it_may_be_sent(admin, networks, problem):
    body = {"name": "x", "username": "u", "password": "p", "networks": networks}
    answer = admin.post(
        "/v1/bmc-credentials", json={k: v for k, v in body.items() if v is not None}
    )
    assert answer.status_code == 422
    assert answer.json()["details"][0]["field"].startswith("networks")
    assert problem in answer.json()["message"]


def test_a_bmc_error_in_a_form_redfish_does_not_allow_is_a_bmc_error(admin, client):
    def refuse(handler):
        body = b'{"error": "nope"}'
        handler.send_response(401)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    odd = Recorder("127.0.0.1", refuse)
    try:
        add_credential(admin)
        add_asset(client, "SN-ODD", "redfish", odd.url)
        answer = client.get("/v1/assets/SN-ODD/power")
    finally:
        odd.stop()
    assert answer.status_code == 502, answer.text
    assert answer.json()["code"] == "bmc_error"
    assert "an error body Redfish does not allow" in answer.json()["message"]


def test_credential_changes_at_once_all_apply(admin, live_server, tokens):
    add_credential(admin)
    calls = [("PATCH", "/v1/bmc-credentials/fleet", {"username": f"u{i}"}) for i in range(8)]
    all_answered(at_once(live_server, tokens.admin, calls))
    assert admin.get("/v1/bmc-credentials/fleet").json()["version"] == 1 + 8
