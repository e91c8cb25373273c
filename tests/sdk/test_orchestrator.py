"""Flows, runs, signals and pools through the SDK, against the real API and a real worker."""

import time

import pytest

from metalyard.errors import Conflict, Forbidden, NotFound
from metalyard.orchestrator.schemas import FlowOut, PoolOut, RunOut
from metalyard.orchestrator.states import BeanState, RunState
from metalyard.sdk import Client

CRASH = {"rack": "r1", "sleep": 0}


def wait_for(client: Client, run_id: int, ready, what: str, timeout: float = 20.0) -> RunOut:
    """Poll the run until `ready(run)` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.runs.get(run_id)
        if ready(run):
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never {what}: {run.model_dump(mode='json')}")


def bean(run: RunOut, name: str):
    return next(b for b in run.beans if b.name == name)


def waiting(run: RunOut) -> bool:
    return bean(run, "report").state is BeanState.WAITING


def finished(run: RunOut) -> bool:
    return run.state is not RunState.RUNNING


def test_flows_are_listed_and_shown_as_data_and_text(writer):
    names = [flow.name for flow in writer.flows.list()]
    assert "test.crash" in names and names == sorted(names)
    flow = writer.flows.get("test.crash")
    assert isinstance(flow, FlowOut) and flow.required_params == ["rack"]
    assert [b.name for b in flow.beans] == ["prepare", "flash", "inventory", "report"]
    assert flow.beans[3].depends_on == {"flash": "succeeded", "inventory": "succeeded"}
    assert "after flash succeeded, inventory succeeded" in flow.text
    with pytest.raises(NotFound, match="no flow named 'nope'"):
        writer.flows.get("nope")


def test_a_run_is_started_cancelled_and_rewalked(writer, worker):
    started = writer.runs.start("test.crash", "asset:SN1", CRASH)
    assert isinstance(started, RunOut) and started.state is RunState.RUNNING
    assert (started.flow, started.subject, started.params) == ("test.crash", "asset:SN1", CRASH)
    assert started.created_by == "wanda"
    parked = wait_for(writer, started.id, waiting, "waited for its report")
    assert bean(parked, "report").wait_key == "report:SN1"
    assert bean(parked, "prepare").state is BeanState.DONE

    cancelled = writer.runs.cancel(started.id)
    assert cancelled.state is RunState.CANCELLED
    assert bean(cancelled, "report").state is BeanState.CANCELLED
    assert bean(cancelled, "report").reason == "cancelled by wanda"
    with pytest.raises(Conflict, match="already CANCELLED"):
        writer.runs.cancel(started.id)

    resumed = writer.runs.rewalk(started.id)
    assert resumed.state is RunState.RUNNING
    assert bean(resumed, "prepare").state is BeanState.DONE  # done stays done
    wait_for(writer, started.id, waiting, "waited again after the re-walk")
    assert writer.signals.send("report:SN1", {"ok": True}) == 1
    done = wait_for(writer, started.id, finished, "finished")
    assert done.state is RunState.SUCCEEDED and done.finished_at is not None
    report = bean(done, "report")
    # Parked, cancelled while parked, parked again after the re-walk, then woken.
    assert [a.outcome for a in report.history] == ["wait", "wait", "done"]
    assert report.data == {"report": {"ok": True}}
    assert [a.attempt for a in bean(done, "prepare").history] == [1]
    assert all(a.worker == worker.name for b in done.beans for a in b.history)


def test_a_signal_wakes_a_waiting_run_and_only_it(writer, worker):
    first = writer.runs.start("test.crash", "asset:SN1", CRASH)
    second = writer.runs.start("test.crash", "asset:SN2", CRASH)
    for run in (first, second):
        wait_for(writer, run.id, waiting, "waited for its report")
    assert writer.signals.send("report:SN1", {"disks": 4}) == 1
    woken = wait_for(writer, first.id, finished, "finished")
    assert woken.state is RunState.SUCCEEDED
    assert bean(woken, "report").data == {"report": {"disks": 4}}
    assert bean(writer.runs.get(second.id), "report").state is BeanState.WAITING
    assert writer.signals.send("report:nobody") == 0


def test_a_second_start_is_a_conflict_naming_the_active_run(writer):
    active = writer.runs.start("test.crash", "asset:SN1", CRASH)
    with pytest.raises(Conflict) as refused:
        writer.runs.start("test.crash", "asset:SN1", {"rack": "r2"})
    assert refused.value.message == (
        f"a test.crash run is already active: run {active.id} (test.crash on asset:SN1)"
    )
    assert refused.value.details == {"active_runs": [active.id]}
    assert refused.value.http_status == 409
    writer.runs.cancel(active.id)
    assert writer.runs.start("test.crash", "asset:SN1", CRASH).id != active.id


def test_runs_are_listed_newest_first_filtered_and_paged(writer):
    ids = [writer.runs.start("test.satisfied", f"asset:SN{n}").id for n in range(5)]
    writer.runs.cancel(ids[1])
    assert [r.id for r in writer.runs.list(page_size=2)] == ids[::-1]
    assert [r.id for r in writer.runs.list(subject="asset:SN3")] == [ids[3]]
    assert [r.id for r in writer.runs.list(state="CANCELLED")] == [ids[1]]
    assert [r.id for r in writer.runs.list(state=RunState.RUNNING, flow="test.satisfied")] == [
        ids[4],
        ids[3],
        ids[2],
        ids[0],
    ]
    assert list(writer.runs.list(flow="test.crash")) == []


def test_pools_are_listed_and_resized_by_admins_only(writer, admin_client):
    writer.runs.start("test.crash", "asset:SN1", {"rack": "r7"})
    writer.runs.start("test.crash", "asset:SN2", {"rack": "r8"})
    pools = list(writer.pools.list(prefix="test-switch:"))
    assert pools == [
        PoolOut(key="test-switch:r7", size=3, in_use=0),
        PoolOut(key="test-switch:r8", size=3, in_use=0),
    ]
    assert list(writer.pools.list(prefix="test-switch:r8")) == [pools[1]]
    with pytest.raises(Forbidden):
        writer.pools.set("test-switch:r7", 8)
    assert admin_client.pools.set("test-switch:r7", 8) == PoolOut(
        key="test-switch:r7", size=8, in_use=0
    )
    assert admin_client.pools.set("mgmt-switch:new", 2).size == 2  # a new key is created
    assert [p.size for p in writer.pools.list(prefix="test-switch:")] == [8, 3]
