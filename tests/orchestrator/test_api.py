"""Flows, runs, signals and pools over the REST API."""

from tests.orchestrator.conftest import wait_until_finished


def test_flow_is_shown_as_data_and_as_a_drawn_dag(client):
    flow = client.get("/v1/flows/test.crash").json()
    assert [b["name"] for b in flow["beans"]] == ["prepare", "flash", "inventory", "report"]
    assert flow["beans"][1]["pools"] == ["test-switch:{rack}"]
    assert "report" in flow["text"] and "after flash succeeded, inventory succeeded" in flow["text"]
    assert client.get("/v1/flows/nope").status_code == 404


def test_a_run_over_the_api_shows_each_bean_and_its_executions(client, database, worker):
    started = client.post(
        "/v1/runs",
        json={"flow": "test.crash", "subject": "asset:SN1", "params": {"rack": "r1", "sleep": 0}},
    )
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]
    again = client.post(
        "/v1/runs", json={"flow": "test.crash", "subject": "asset:SN1", "params": {"rack": "r1"}}
    )
    assert again.status_code == 409 and f"run {run_id}" in again.json()["message"]
    wait_for_waiting(client, run_id)
    woken = client.post("/v1/signals", json={"key": "report:SN1", "payload": {"ok": True}})
    assert woken.json() == {"woken": 1}
    wait_until_finished(database, [run_id])
    run = client.get(f"/v1/runs/{run_id}").json()
    assert run["state"] == "SUCCEEDED"
    report = next(b for b in run["beans"] if b["name"] == "report")
    assert [a["outcome"] for a in report["history"]] == ["wait", "done"]
    assert report["duration"] is not None and report["data"] == {"report": {"ok": True}}
    listed = client.get("/v1/runs", params={"subject": "asset:SN1"}).json()["items"]
    assert [r["id"] for r in listed] == [run_id]


def test_missing_params_and_bad_subjects_are_422(client):
    missing = client.post("/v1/runs", json={"flow": "test.crash", "subject": "asset:SN1"})
    assert missing.status_code == 422 and "rack" in missing.json()["message"]
    bad = client.post(
        "/v1/runs", json={"flow": "test.crash", "subject": "SN1", "params": {"rack": "r"}}
    )
    assert bad.status_code == 422 and bad.json()["details"][0]["field"] == "subject"


def test_cancel_over_the_api(client):
    run_id = client.post(
        "/v1/runs", json={"flow": "test.crash", "subject": "asset:SN1", "params": {"rack": "r1"}}
    ).json()["id"]
    cancelled = client.post(f"/v1/runs/{run_id}/cancel").json()
    assert cancelled["state"] == "CANCELLED"
    assert client.post(f"/v1/runs/{run_id}/cancel").status_code == 409


def test_pools_show_usage_and_admins_resize_them(client, admin):
    client.post(
        "/v1/runs", json={"flow": "test.crash", "subject": "asset:SN1", "params": {"rack": "r7"}}
    ).raise_for_status()
    pools = client.get("/v1/pools", params={"prefix": "test-switch:"}).json()["items"]
    assert pools == [{"key": "test-switch:r7", "size": 3, "in_use": 0}]
    assert client.put("/v1/pools/test-switch:r7", json={"size": 8}).status_code == 403
    assert admin.put("/v1/pools/test-switch:r7", json={"size": 8}).json()["size"] == 8


def wait_for_waiting(client, run_id, timeout=20.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        beans = client.get(f"/v1/runs/{run_id}").json()["beans"]
        if any(b["state"] == "WAITING" for b in beans):
            return
        time.sleep(0.05)
    raise AssertionError("never waited")
