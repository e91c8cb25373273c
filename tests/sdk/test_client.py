"""The SDK against the real API over HTTP: typed results, pages, errors, retries."""

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from metalyard.auth.audit.schemas import AuditVerification
from metalyard.auth.changes.schemas import ChangeRequestOut
from metalyard.auth.schemas import TokenCreated, UserOut
from metalyard.errors import (
    AlreadyExists,
    BmcAuthFailed,
    BmcTransient,
    Forbidden,
    ForbiddenTransition,
    InvalidInput,
    NotFound,
    ServerError,
    StaleVersion,
    Unauthenticated,
    Unreachable,
)
from metalyard.inventory.lifecycle import AssetState
from metalyard.inventory.schemas import AssetCreate, AssetOut, AssetUpdate, SiteOut
from metalyard.schemas import REGION_HEADER as HEADER
from metalyard.sdk import Client, OutcomeUnknown, WrongRegion
from tests.peers.bmcs import BMC_USER, LOOPBACK
from tests.peers.postgres import free_port
from tests.sdk.conftest import CountingTransport


def test_sdk_imports_neither_fastapi_nor_sqlalchemy():
    code = (
        "import sys, metalyard.sdk; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'sqlalchemy', "
        "'starlette', 'alembic', 'uvicorn'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_region_needs_no_token(live_server, settings):
    with Client(live_server) as client:
        assert client.region().name == settings.region


def test_whoami_names_the_token_user_and_scope(writer):
    me = writer.whoami()
    assert (me.user, me.scope) == ("wanda", "write")


def test_site_crud_returns_the_api_models(writer):
    created = writer.sites.create(name="dub1", description="Dublin 1")
    assert isinstance(created, SiteOut) and created.version == 1
    assert writer.sites.get("dub1") == created
    updated = writer.sites.update("dub1", address="Dublin", version=created.version)
    assert (updated.address, updated.description) == ("Dublin", "Dublin 1")
    assert writer.sites.get("dub1").version == 2
    assert [s.name for s in writer.sites.list()] == ["dub1"]
    writer.sites.delete("dub1")
    with pytest.raises(NotFound):
        writer.sites.get("dub1")


def test_site_update_answers_the_new_version(writer):
    writer.sites.create(name="dub1")
    assert writer.sites.update("dub1", address="Dublin").version == 2


def test_asset_accepts_schema_instances_dicts_and_keywords(writer, rack):
    one = writer.assets.create(AssetCreate(serial="SN1", site="dub1", rack="r01"))
    two = writer.assets.create({"serial": "SN2", "tags": {"pool": "batch"}})
    three = writer.assets.create(serial="SN3", state=AssetState.SPARE)
    assert isinstance(one, AssetOut) and one.rack == "r01"
    assert two.tags == {"pool": "batch"}
    assert three.state is AssetState.SPARE
    changed = writer.assets.update("SN1", AssetUpdate(hostname="node1"))
    assert (changed.hostname, changed.rack) == ("node1", "r01")  # unset fields stay as they are


def test_asset_list_follows_every_page(live_server, tokens, writer):
    for n in range(25):
        writer.assets.create(serial=f"SN{n:03}")
    transport = CountingTransport()
    with Client(live_server, tokens.read, transport=transport) as client:
        serials = [a.serial for a in client.assets.list(page_size=10, sort="serial")]
    assert serials == [f"SN{n:03}" for n in range(25)]
    assert transport.count("GET", "/v1/assets") == 3


def test_a_limited_list_ends_its_last_page_at_the_limit_and_goes_on_from_there(
    live_server, tokens, writer
):
    for n in range(12):
        writer.assets.create(serial=f"SN{n:03}")
    asked: list[str] = []
    transport = CountingTransport(fail=lambda request, n: asked.append(request.url.params["limit"]))
    with Client(live_server, tokens.read, transport=transport) as client:
        first = client.assets.list(page_size=2, limit=5, sort="serial")
        assert first.next_cursor is None  # nothing fetched yet
        assert [a.serial for a in first] == [f"SN{n:03}" for n in range(5)]
        assert asked == ["2", "2", "1"] and first.next_cursor
        rest = client.assets.list(page_size=100, sort="serial", cursor=first.next_cursor)
        assert [a.serial for a in rest] == [f"SN{n:03}" for n in range(5, 12)]
        assert rest.next_cursor is None
        exact = client.assets.list(limit=12, sort="serial")
        assert len(list(exact)) == 12 and exact.next_cursor is None


def test_a_listing_left_inside_a_page_goes_on_from_that_page(writer):
    """Reading a page again is better than missing the rest of it."""
    for n in range(4):
        writer.assets.create(serial=f"SN{n:03}")
    listing = writer.assets.list(page_size=2, sort="serial")
    assert [next(listing).serial, next(listing).serial, next(listing).serial] == [
        "SN000",
        "SN001",
        "SN002",
    ]
    assert [a.serial for a in writer.assets.list(sort="serial", cursor=listing.next_cursor)] == [
        "SN002",
        "SN003",
    ]


def test_a_client_meant_for_another_region_is_refused_there_and_changes_nothing(
    live_server, tokens, writer
):
    with Client(live_server, tokens.write, region="eu-west") as lost:
        with pytest.raises(WrongRegion) as refused:
            lost.sites.create(name="dub1")
        assert lost.region().name == "test-1"  # asked of any server
    assert refused.value.http_status == 421
    assert refused.value.details == {"serves": "test-1", "requested": "eu-west"}
    assert "serves region 'test-1', not 'eu-west'" in refused.value.message
    with pytest.raises(NotFound):
        writer.sites.get("dub1")


def test_a_client_names_its_region_only_when_given_one(live_server, tokens):
    named: list[str | None] = []
    transport = CountingTransport(fail=lambda request, n: named.append(request.headers.get(HEADER)))
    with Client(live_server, tokens.write, region="test-1", transport=transport) as client:
        client.sites.create(name="dub1")
        assert [s.name for s in client.sites.list()] == ["dub1"]
        client.region()
    with Client(live_server, tokens.read, transport=transport) as plain:
        plain.sites.get("dub1")
    assert named == ["test-1", "test-1", None, None]


def test_asset_list_filters_by_state_tag_and_text(writer):
    writer.assets.create(serial="SPARE-1", state="SPARE", tags={"pool": "batch"})
    writer.assets.create(serial="SPARE-2", state="SPARE", tags={"pool": "web"})
    writer.assets.create(serial="NEW-1", tags={"pool": "batch"})
    found = writer.assets.list(state=["SPARE", "EVALUATING"], tag={"pool": "batch"})
    assert [a.serial for a in found] == ["SPARE-1"]
    assert [a.serial for a in writer.assets.list(q="new")] == ["NEW-1"]


def test_errors_are_the_server_classes_with_its_message(writer):
    writer.assets.create(serial="SN1")
    with pytest.raises(NotFound) as missing:
        writer.assets.get("NOPE")
    assert missing.value.message == "no asset with serial 'NOPE'"
    assert missing.value.http_status == 404
    assert missing.value.request_id
    with pytest.raises(AlreadyExists):
        writer.assets.create(serial="SN1")
    with pytest.raises(ForbiddenTransition) as forbidden:
        writer.assets.transition("SN1", "BAREMETAL", reason="skip ahead")
    assert str(forbidden.value) == (
        "asset 'SN1' cannot move from DISCOVERED to BAREMETAL; "
        "allowed from DISCOVERED: DECOMMISSIONED, EVALUATING, QUARANTINED"
    )
    assert forbidden.value.details["allowed"] == ["DECOMMISSIONED", "EVALUATING", "QUARANTINED"]
    assert forbidden.value.http_status == 409
    with pytest.raises(StaleVersion):
        writer.assets.update("SN1", hostname="x", version=7)
    with pytest.raises(InvalidInput) as invalid:
        writer.assets.create(serial="bad serial!")
    assert invalid.value.details[0]["field"] == "serial"


def test_read_token_cannot_write_and_bad_token_is_unauthenticated(live_server, tokens):
    with Client(live_server, tokens.read) as reader, pytest.raises(Forbidden) as denied:
        reader.sites.create(name="dub1")
    assert "scope write" in denied.value.message
    with Client(live_server, "my_wrong") as stranger, pytest.raises(Unauthenticated):
        stranger.whoami()


def test_transition_that_needs_approval_returns_the_change_request(live_server, tokens, writer):
    writer.assets.create(serial="SN1", state="SPARE")
    moved = writer.assets.transition("SN1", "PROVISIONING", reason="for batch", version=1)
    assert isinstance(moved, AssetOut) and moved.state is AssetState.PROVISIONING
    writer.assets.create(serial="SN2", state="BAREMETAL")
    parked = writer.assets.transition("SN2", "RELEASING", reason="project ended")
    assert isinstance(parked, ChangeRequestOut) and parked.state == "PENDING"
    with pytest.raises(Forbidden):
        writer.change_requests.approve(parked.id, "my own")
    with Client(live_server, tokens.other_write) as checker:
        approved = checker.change_requests.approve(parked.id, "ok")
    assert approved.state == "APPROVED" and approved.decided_by == "otto"
    assert writer.assets.get("SN2").state is AssetState.RELEASING
    assert [(c.from_state, c.to_state) for c in writer.assets.history("SN2")] == [
        (None, AssetState.BAREMETAL),
        (AssetState.BAREMETAL, AssetState.RELEASING),
    ]


def test_asset_deletion_waits_for_approval_and_can_be_rejected(live_server, tokens, writer):
    writer.assets.create(serial="SN1")
    parked = writer.assets.delete("SN1", reason="gone")
    assert isinstance(parked, ChangeRequestOut) and parked.action == "asset.delete"
    assert [c.id for c in writer.change_requests.list(state="PENDING")] == [parked.id]
    with Client(live_server, tokens.other_write) as checker:
        rejected = checker.change_requests.reject(parked.id, "still racked")
    assert rejected.state == "REJECTED"
    assert writer.change_requests.get(parked.id).decision_comment == "still racked"
    assert writer.assets.get("SN1").serial == "SN1"


def test_tags_are_set_and_removed_without_touching_the_others(writer):
    writer.assets.create(serial="SN1", tags={"pool": "batch", "team": "a", "old": "x"})
    tagged = writer.assets.tag("SN1", set={"pool": "web"}, remove=["old"])
    assert tagged.tags == {"pool": "web", "team": "a"}


def test_import_is_all_or_nothing_with_each_bad_row_named(writer, rack):
    result = writer.assets.import_(
        [{"serial": "IMP1", "site": "dub1", "rack": "r01"}, AssetCreate(serial="IMP2")]
    )
    assert (result.created, result.serials) == (2, ["IMP1", "IMP2"])
    with pytest.raises(InvalidInput) as rejected:
        writer.assets.import_(
            [{"serial": "IMP3"}, {"serial": "IMP1"}, {"serial": "IMP4", "rack": "r01"}]
        )
    assert [(e["row"], e["field"]) for e in rejected.value.details] == [
        (1, "serial"),
        (2, "site"),
    ]
    assert [a.serial for a in writer.assets.list()] == ["IMP1", "IMP2"]


def test_password_mints_a_write_token_from_nothing(live_server, admin_client):
    user = admin_client.users.create(name="pat", role="write", password="correct horse battery")
    assert isinstance(user, UserOut)
    with Client(live_server) as anonymous:
        created = anonymous.tokens.create(
            scope="write", name="sudo", expires_in=timedelta(hours=1), basic=user_password()
        )
    assert isinstance(created, TokenCreated) and created.token.startswith("my_")
    assert created.expires_at is not None
    with Client(live_server, created.token) as pat:
        assert pat.whoami().scope == "write"
        assert [t.name for t in pat.tokens.list()] == ["sudo"]
        pat.tokens.revoke(created.id)
        with pytest.raises(Unauthenticated) as revoked:
            pat.whoami()
    assert revoked.value.message == "the token was revoked"


def user_password() -> tuple[str, str]:
    return ("pat", "correct horse battery")


def test_teams_projects_and_users_round_trip(admin_client):
    admin_client.users.create(name="ana")
    admin_client.teams.create(name="infra", members=["ana"])
    admin_client.projects.create(name="batch", team="infra")
    assert admin_client.teams.get("infra").members == ["ana"]
    assert admin_client.users.get("ana").teams == ["infra"]
    assert [p.name for p in admin_client.projects.list(team="infra")] == ["batch"]
    assert admin_client.users.update("ana", active=False).active is False
    admin_client.projects.delete("batch")
    admin_client.teams.delete("infra")
    assert list(admin_client.teams.list()) == []


def test_audit_lists_recent_calls_and_verifies_the_chain(admin_client, writer):
    writer.sites.create(name="dub1")
    since = datetime.now(UTC) - timedelta(minutes=5)
    entries = list(admin_client.audit.list(actor="wanda", since=since))
    assert [(e.action, e.target, e.outcome) for e in entries] == [
        ("create_site", "sites/dub1", "success")
    ]
    verification = admin_client.audit.verify()
    assert isinstance(verification, AuditVerification) and verification.ok


def test_post_is_sent_once_even_when_its_answer_is_lost(live_server, tokens, writer):
    transport = CountingTransport(fail=lambda request, n: "after")
    with (
        Client(live_server, tokens.write, transport=transport, retries=5) as client,
        pytest.raises(Unreachable),
    ):
        client.assets.create(serial="SN1")
    assert transport.count("POST") == 1
    assert writer.assets.get("SN1").serial == "SN1"  # the server did it, exactly once


def test_get_is_retried_after_a_connection_error(live_server, tokens):
    transport = CountingTransport(fail=lambda request, n: "before" if n <= 2 else None)
    with Client(live_server, tokens.read, transport=transport, retries=3) as client:
        assert client.whoami().user == "rita"
    assert transport.count("GET", "/v1/whoami") == 3


def test_unreachable_server_gives_up_after_the_retries():
    url = f"http://127.0.0.1:{free_port()}"
    transport = CountingTransport()
    with Client(url, transport=transport, retries=2) as client, pytest.raises(Unreachable) as err:
        client.region()
    assert transport.count("GET") == 3
    assert err.value.message.startswith(f"cannot reach {url}")


def test_timeout_is_unreachable_naming_the_wait():
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # accepts connections, never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with Client(url, timeout=0.2, retries=0) as client, pytest.raises(Unreachable) as err:
            client.region()
    assert err.value.message == f"no answer from {url} within 0.2s"


def test_url_without_scheme_is_refused():
    with pytest.raises(InvalidInput):
        Client("localhost:8080")


def test_base_url_may_carry_v1_and_a_trailing_slash(live_server, settings):
    with Client(live_server + "/v1/") as client:
        assert client.url == live_server
        assert client.region().name == settings.region


def test_proxy_errors_without_our_body_fall_back_on_status():
    def gateway(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>bad gateway</html>")

    with (
        Client("http://lb.example", transport=httpx.MockTransport(gateway), retries=0) as client,
        pytest.raises(ServerError) as err,
    ):
        client.region()
    assert err.value.http_status == 502
    assert err.value.message == "HTTP 502 Bad Gateway from http://lb.example/v1/region"


class BusyProxy(CountingTransport):
    """A load balancer in front of the real server that answers 503 to the first requests."""

    def __init__(self, busy: int) -> None:
        super().__init__()
        self.busy = busy

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if len(self.sent) < self.busy:
            self.sent.append((request.method, request.url.path))
            return httpx.Response(503, headers={"Retry-After": "0"}, text="busy")
        return super().handle_request(request)


def test_get_is_retried_while_a_proxy_answers_503(live_server, tokens):
    proxy = BusyProxy(busy=2)
    with Client(live_server, tokens.read, transport=proxy, retries=3) as client:
        assert client.whoami().user == "rita"
    assert proxy.count("GET", "/v1/whoami") == 3


def test_post_answered_503_is_not_retried(live_server, tokens):
    proxy = BusyProxy(busy=1)
    with (
        Client(live_server, tokens.write, transport=proxy, retries=3) as client,
        pytest.raises(ServerError) as err,
    ):
        client.sites.create(name="dub1")
    assert err.value.http_status == 503
    assert proxy.count("POST") == 1


def test_a_bmc_refusing_the_credentials_is_asked_once(live_server, tokens, redfish):
    """A 502 means the BMC refused or failed: asking again only locks its account sooner."""
    with Client(live_server, tokens.admin) as admin:
        admin.bmc_credentials.create(
            "fleet", username=BMC_USER, password="wrong-password", networks=[LOOPBACK]
        )
        admin.assets.create(
            serial="SN-BAD",
            bmc_driver="redfish",
            bmc_address=redfish.system_url(0),
            bmc_credential="fleet",
        )
    transport = CountingTransport()
    with (
        Client(live_server, tokens.read, transport=transport, retries=3) as client,
        pytest.raises(BmcAuthFailed) as err,
    ):
        client.bmc.power_state("SN-BAD")
    assert err.value.http_status == 502
    assert transport.count("GET", "/v1/assets/SN-BAD/power") == 1


def test_a_bmc_that_cannot_be_reached_is_retried(live_server, tokens):
    """A 503 (the BMC did not answer) may pass on the next try."""
    with Client(live_server, tokens.admin) as admin:
        admin.bmc_credentials.create("fleet", username=BMC_USER, password="x", networks=[LOOPBACK])
        admin.assets.create(
            serial="SN-DOWN",
            bmc_driver="redfish",
            bmc_address="http://127.0.0.1:9/redfish/v1/Systems/1",
            bmc_credential="fleet",
        )
    transport = CountingTransport()
    with (
        Client(live_server, tokens.read, transport=transport, retries=2) as client,
        pytest.raises(BmcTransient),
    ):
        client.bmc.power_state("SN-DOWN")
    assert transport.count("GET", "/v1/assets/SN-DOWN/power") == 3


def test_a_change_whose_answer_times_out_may_have_been_carried_out(live_server, tokens, request):
    address = f"slow-{request.node.callspec.id}?latency=1.0"
    with Client(live_server, tokens.admin) as admin:
        admin.bmc_credentials.create("fleet", username="u", password="p", networks=[LOOPBACK])
        admin.assets.create(
            serial="SN-SLOW", bmc_driver="fake", bmc_address=address, bmc_credential="fleet"
        )
    transport = CountingTransport()
    with (
        Client(live_server, tokens.write, transport=transport, timeout=0.3) as client,
        pytest.raises(OutcomeUnknown) as err,
    ):
        client.bmc.power("SN-SLOW", "on")
    assert isinstance(err.value, Unreachable)  # still "no answer", for code that catches that
    assert err.value.message == (
        f"no answer from {live_server} within 0.3s to POST /v1/assets/SN-SLOW/power: "
        "the request may have been carried out; check before repeating it"
    )
    assert err.value.details["outcome"] == "unknown"
    assert transport.count("POST") == 1
    with Client(live_server, tokens.read) as reader:
        assert reader.bmc.power_state("SN-SLOW").state == "on"  # it was


def test_a_change_that_never_reached_the_server_is_plainly_unreachable(live_server, tokens):
    transport = CountingTransport(fail=lambda request, n: "before")
    with (
        Client(live_server, tokens.write, transport=transport) as client,
        pytest.raises(Unreachable) as err,
    ):
        client.sites.create(name="dub1")
    assert not isinstance(err.value, OutcomeUnknown)
    assert err.value.message.startswith(f"cannot reach {live_server}")


def test_a_change_whose_connection_broke_after_sending_may_have_been_carried_out(
    live_server, tokens, writer
):
    transport = CountingTransport(fail=lambda request, n: "after")
    with (
        Client(live_server, tokens.write, transport=transport) as client,
        pytest.raises(OutcomeUnknown) as err,
    ):
        client.sites.create(name="dub1")
    assert err.value.message.startswith(
        f"the connection to {live_server} broke before the answer to POST /v1/sites came"
    )
    assert err.value.message.endswith(
        "the request may have been carried out; check before repeating it"
    )
    assert writer.sites.get("dub1").name == "dub1"


def test_a_ca_bundle_without_a_certificate_is_named_when_the_client_is_made(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not a certificate\n")
    with pytest.raises(InvalidInput) as err:
        Client("https://dub1.example", verify=bundle)
    assert err.value.message.startswith(
        f"CA bundle '{bundle}' is not a PEM file of CA certificates: [X509"
    )
