"""Purchase requests, orders, delivery stages, webhooks, matching and the report."""

import json
import threading
import time
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from metalyard.auth.actor import Actor
from metalyard.procurement import matching
from tests.orchestrator.conftest import worker  # noqa: F401  (runs the webhook deliveries)
from tests.procurement.test_profiles import make_profile

ACTOR = Actor.system("test")


@pytest.fixture
def receiver():
    """A local webhook receiver: what it was posted, in order."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.received = received
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield server
    server.shutdown()


def wait_for(condition, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def approved_order(client, other, quantity: int = 3) -> str:
    """A request for `quantity` servers, approved by a second person: the order's number."""
    make_profile(client)
    line = {"vendor": "acme", "profile": "r750", "version": 1, "quantity": quantity}
    request = client.post("/v1/purchase-requests", json={"title": "dub1 web", "lines": [line]})
    assert request.status_code == 201, request.text
    parked = client.post(f"/v1/purchase-requests/{request.json()['id']}/approve")
    assert parked.status_code == 202, parked.text
    approved = other.post(f"/v1/change-requests/{parked.json()['id']}/approve", json={})
    assert approved.status_code == 200, approved.text
    (number,) = client.get(f"/v1/purchase-requests/{request.json()['id']}").json()["orders"]
    return number


@pytest.fixture
def other(app, tokens):
    """A second writer: the checker of maker-checker."""
    with TestClient(app, headers={"Authorization": f"Bearer {tokens.other_write}"}) as c:
        yield c


def test_an_approved_request_becomes_one_order_per_vendor(client, other):
    make_profile(client, "globex", "sr650")
    number = approved_order(client, other)
    order = client.get(f"/v1/purchase-orders/{number}").json()
    assert (order["vendor"], order["state"]) == ("acme", "approved")
    assert order["lines"][0]["quantity"] == 3
    self_approval = client.post(
        "/v1/purchase-requests",
        json={"title": "x", "lines": [{"vendor": "globex", "profile": "sr650", "version": 1,
                                       "quantity": 1}]},
    )  # fmt: skip
    parked = client.post(f"/v1/purchase-requests/{self_approval.json()['id']}/approve").json()
    assert client.post(f"/v1/change-requests/{parked['id']}/approve", json={}).status_code == 403


@pytest.mark.usefixtures("worker")
def test_order_state_follows_its_stages_and_every_move_is_recorded_and_notified(
    client, other, receiver
):
    client.post("/v1/procurement/webhooks", json={"url": receiver.url})
    number = approved_order(client, other)
    ordered = client.post(f"/v1/purchase-orders/{number}/transition", json={"to": "ordered"})
    assert ordered.json()["state"] == "ordered"
    soon = (date.today() + timedelta(days=7)).isoformat()
    for quantity in (2, 1):
        client.post(f"/v1/purchase-orders/{number}/stages",
                    json={"quantity": quantity, "expected_on": soon})  # fmt: skip
    too_many = client.post(f"/v1/purchase-orders/{number}/stages",
                           json={"quantity": 1, "expected_on": soon})  # fmt: skip
    assert too_many.status_code == 422 and "too many" in too_many.json()["message"]

    def move(stage: int, to: str):
        answer = client.post(
            f"/v1/purchase-orders/{number}/stages/{stage}/transition",
            json={"to": to, "reason": f"stage {stage} {to}"},
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["state"]

    assert move(1, "shipped") == "ordered"
    assert move(1, "delivered") == "partially_delivered"
    skipped = client.post(f"/v1/purchase-orders/{number}/stages/2/transition",
                          json={"to": "delivered"})  # fmt: skip
    assert skipped.status_code == 409 and "next is shipped" in skipped.json()["message"]
    move(2, "shipped")
    assert move(2, "delivered") == "delivered"

    events = client.get(f"/v1/purchase-orders/{number}/events").json()
    moves = [(e["subject"], e["from_state"], e["to_state"]) for e in events]
    assert (number, "ordered", "partially_delivered") in moves
    assert (number, "partially_delivered", "delivered") in moves
    assert ("stage 1", "shipped", "delivered") in moves
    assert all(e["actor"] for e in events)
    wait_for(lambda: len(receiver.received) >= len(events), "every event posted")
    texts = [payload["text"] for payload in receiver.received]
    assert any(f"{number} (acme, test-1): {number} partially_delivered → delivered" in t
               for t in texts), texts  # fmt: skip
    assert all(p["actor"] for p in receiver.received)


def test_a_packing_list_with_a_bad_row_imports_nothing_and_names_the_row(client, other):
    number = approved_order(client, other)
    bad = "serial,profile\nSN-A,r750\nSN-B,nosuch\nSN-A,r750\n"
    answer = client.post(f"/v1/purchase-orders/{number}/serials", content=bad,
                         headers={"Content-Type": "text/csv"})  # fmt: skip
    assert answer.status_code == 422
    rows = {(e["row"], e["reason"].split(" ")[0]) for e in answer.json()["details"]}
    assert rows == {(3, "order"), (4, "repeats")}
    assert client.get(f"/v1/purchase-orders/{number}").json()["lines"][0]["expected_serials"] == 0
    good = "serial\nSN-A\nSN-B\n"
    answer = client.post(f"/v1/purchase-orders/{number}/serials", content=good,
                         headers={"Content-Type": "text/csv"})  # fmt: skip
    assert answer.json() == {"imported": 2}


def enrol(client, serial: str, **fields):
    body = {"serial": serial, "vendor": "acme", **fields}
    assert client.post("/v1/assets", json=body).status_code == 201


def match(client, serial: str, **extra):
    answer = client.post("/v1/procurement/matches", json={"serial": serial, **extra})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_matching_by_serial_by_profile_over_delivery_unknown_and_auto_close(client, other):
    number = approved_order(client, other, quantity=3)
    client.post(f"/v1/purchase-orders/{number}/transition", json={"to": "ordered"})
    client.post(f"/v1/purchase-orders/{number}/serials", content="serial\nSN-1\n",
                headers={"Content-Type": "text/csv"})  # fmt: skip
    client.post("/v1/machine-classes", json={"name": "web"})
    ref = {"vendor": "acme", "profile": "r750", "version": 1}
    client.put("/v1/machine-classes/web/profile-versions", json={"versions": [ref]})
    for serial in ("SN-1", "SN-2", "SN-3", "SN-4"):
        enrol(client, serial, machine_class="web")
    enrol(client, "SN-STRAY", vendor="initech")

    by_serial = match(client, "SN-1")
    assert (by_serial["outcome"], by_serial["order"]) == ("matched", number)
    assert "packing list" in by_serial["reason"]
    assert match(client, "SN-2")["outcome"] == "matched"
    assert match(client, "SN-3", profile=ref)["outcome"] == "matched"
    assert match(client, "SN-3")["reason"] == "already matched"  # a second boot changes nothing
    over = match(client, "SN-4")
    assert over["outcome"] == "over_delivered" and "more units than ordered" in over["reason"]
    unknown = match(client, "SN-STRAY")
    assert unknown["outcome"] == "unknown"

    assert client.get(f"/v1/purchase-orders/{number}").json()["state"] == "delivered"
    for serial in ("SN-1", "SN-2"):
        client.post(f"/v1/procurement/matches/{serial}/passed")
    assert client.get(f"/v1/purchase-orders/{number}").json()["state"] == "delivered"
    client.post("/v1/procurement/matches/SN-3/passed")
    assert client.get(f"/v1/purchase-orders/{number}").json()["state"] == "closed"

    report = client.get("/v1/procurement/report").json()
    (row,) = report["orders"]
    assert (row["ordered"], row["discovered"], row["passed"]) == (3, 3, 3)
    assert report["regions"][0]["unknown_assets"] == ["SN-STRAY"]
    csv_text = client.get("/v1/procurement/report", params={"format": "csv"}).text
    assert csv_text.splitlines()[0].startswith("order,vendor,region,state,ordered")
    assert f"{number},acme,test-1,closed,3" in csv_text


def test_servers_matched_at_once_never_share_a_lines_last_unit(client, other, database, settings):
    number = approved_order(client, other, quantity=2)
    client.post(f"/v1/purchase-orders/{number}/transition", json={"to": "ordered"})
    client.post("/v1/machine-classes", json={"name": "web"})
    ref = {"vendor": "acme", "profile": "r750", "version": 1}
    client.put("/v1/machine-classes/web/profile-versions", json={"versions": [ref]})
    serials = [f"SN-{n}" for n in range(6)]
    for serial in serials:
        enrol(client, serial, machine_class="web")
    start = threading.Barrier(len(serials))
    outcomes = {}

    def match_one(serial):
        start.wait()
        with database.transaction() as session:
            found = matching.match_asset(
                session, serial=serial, profile=None, region=settings.region, actor=ACTOR
            )
        outcomes[serial] = found.outcome.value

    threads = [threading.Thread(target=match_one, args=(serial,)) for serial in serials]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()) == ["matched"] * 2 + ["over_delivered"] * 4
    (row,) = client.get("/v1/procurement/report").json()["orders"]
    assert (row["ordered"], row["discovered"]) == (2, 2)


def test_overdue_units_are_reported(client, other):
    number = approved_order(client, other, quantity=2)
    client.post(f"/v1/purchase-orders/{number}/transition", json={"to": "ordered"})
    late = (date.today() - timedelta(days=3)).isoformat()
    client.post(f"/v1/purchase-orders/{number}/stages", json={"quantity": 2, "expected_on": late})
    (row,) = client.get("/v1/procurement/report").json()["orders"]
    assert row["overdue"] == 2
