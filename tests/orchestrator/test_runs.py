"""Runs end to end on a real worker: conditions, retries, timeouts, waits, cancel, re-walk."""

import pytest

from metalyard.errors import Conflict
from metalyard.orchestrator import service
from metalyard.orchestrator.beans import Subject
from metalyard.orchestrator.states import BeanState, RunState
from tests.orchestrator.conftest import wait_until_finished
from tests.orchestrator.flows import (
    branch_flow,
    crash_flow,
    retry_flow,
    satisfied_flow,
    slow_flow,
)


def start(database, flow, subject="asset:SN1", **params):
    with database.transaction() as session:
        return service.start_run(
            session, flow=flow, subject=Subject.parse(subject), params=params, actor="test"
        ).id


def beans(run):
    return {b.name: b for b in run.beans}


def test_transient_errors_retry_until_they_pass_or_the_policy_gives_up(database, worker):
    (run,) = wait_until_finished(database, [start(database, retry_flow)])
    got = beans(run)
    assert got["flaky"].state is BeanState.DONE and got["flaky"].attempts == 3
    assert got["hopeless"].state is BeanState.FAILED
    assert "gave up after 3 failed attempt(s): BMC busy" in got["hopeless"].reason
    assert got["after"].state is BeanState.DONE  # the ignored failure let it run
    assert run.state is RunState.SUCCEEDED


def test_conditions_choose_the_branch(database, worker):
    (run,) = wait_until_finished(database, [start(database, branch_flow)])
    got = beans(run)
    assert got["try"].state is BeanState.FAILED and got["try"].reason == "disk missing"
    assert got["on_success"].state is BeanState.SKIPPED
    assert "try succeeded" in got["on_success"].reason
    assert got["on_failure"].state is BeanState.DONE
    assert got["always"].state is BeanState.DONE
    assert run.state is RunState.FAILED


def test_a_bean_past_its_timeout_is_retried_then_failed(database, worker):
    (run,) = wait_until_finished(database, [start(database, slow_flow, sleep=1.0)])
    assert beans(run)["sleepy"].state is BeanState.FAILED
    assert "timed out after 0.2s" in beans(run)["sleepy"].reason


def test_a_signal_wakes_exactly_the_run_waiting_on_it(database, worker):
    first = start(database, crash_flow, "asset:A", rack="r1")
    second = start(database, crash_flow, "asset:B", rack="r1")
    wait_for_state(database, first, "report", BeanState.WAITING)
    wait_for_state(database, second, "report", BeanState.WAITING)
    with database.transaction() as session:
        assert service.signal(session, key="report:A", payload={"cpus": 64}) == 1
    (run,) = wait_until_finished(database, [first])
    assert run.state is RunState.SUCCEEDED
    assert beans(run)["report"].data == {"report": {"cpus": 64}}
    with database.transaction() as session:
        assert service.get_run(session, run_id=second).state is RunState.RUNNING
        service.cancel_run(session, run_id=second, reason="test over")


def test_one_active_run_per_subject_and_family(database):
    run_id = start(database, crash_flow, "asset:A", rack="r1")
    with pytest.raises(Conflict) as refused:
        start(database, crash_flow, "asset:A", rack="r2")
    assert f"run {run_id}" in refused.value.message
    start(database, crash_flow, "asset:B", rack="r1")  # another subject is fine


def test_cancel_ends_the_run_and_frees_the_subject(database, worker):
    run_id = start(database, crash_flow, "asset:A", rack="r1", wait=60)
    wait_for_state(database, run_id, "report", BeanState.WAITING)
    with database.transaction() as session:
        run = service.cancel_run(session, run_id=run_id, reason="operator said so")
        assert run.state is RunState.CANCELLED
        assert beans(run)["report"].state is BeanState.CANCELLED
        assert beans(run)["prepare"].state is BeanState.DONE
    start(database, crash_flow, "asset:A", rack="r1")


def test_rewalk_keeps_what_is_done_and_runs_the_rest(database, worker):
    run_id = start(database, crash_flow, "asset:A", rack="r1", wait=60)
    wait_for_state(database, run_id, "report", BeanState.WAITING)
    with database.transaction() as session:
        service.cancel_run(session, run_id=run_id, reason="power cut")
    with database.transaction() as session:
        before = {b.name: b.attempts for b in service.get_run(session, run_id=run_id).beans}
        service.rewalk_run(session, run_id=run_id)
    wait_for_state(database, run_id, "report", BeanState.WAITING)
    with database.transaction() as session:
        service.signal(session, key="report:A", payload={})
    (run,) = wait_until_finished(database, [run_id])
    assert run.state is RunState.SUCCEEDED
    after = {b.name: b.attempts for b in run.beans}
    assert after["prepare"] == before["prepare"] == 1  # done beans never run again
    assert after["report"] == before["report"] + 2  # parked, then woken


def test_satisfied_beans_are_skipped_without_running(database, worker):
    (run,) = wait_until_finished(database, [start(database, satisfied_flow)])
    assert beans(run)["already"].state is BeanState.SKIPPED
    assert beans(run)["already"].reason == "already satisfied"
    assert beans(run)["already"].data is None  # run() never ran


def wait_for_state(database, run_id, bean, state, timeout=20.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with database.transaction(write=False) as session:
            if beans(service.get_run(session, run_id=run_id))[bean].state is state:
                return
        time.sleep(0.05)
    raise AssertionError(f"{bean} of run {run_id} never reached {state}")


def test_a_wait_past_its_timeout_follows_the_retry_policy(database, worker):
    from tests.orchestrator.flows import short_wait_flow

    (run,) = wait_until_finished(database, [start(database, short_wait_flow)])
    report = beans(run)["report"]
    assert report.state is BeanState.FAILED
    assert "no report:SN1 before the timeout" in report.reason and report.failures == 2


def test_an_emitted_signal_wakes_another_run(database, worker):
    from tests.orchestrator.flows import emit_flow

    waiting = start(database, crash_flow, "asset:SN7", rack="r1")
    wait_for_state(database, waiting, "report", BeanState.WAITING)
    (emitter,) = wait_until_finished(database, [start(database, emit_flow, "asset:SN7")])
    assert emitter.state is RunState.SUCCEEDED
    (run,) = wait_until_finished(database, [waiting])
    assert beans(run)["report"].data == {"report": {"from": "emitter"}}


def test_cancel_frees_the_pool_slots_of_running_beans(database, worker):
    from sqlalchemy import select

    from metalyard.orchestrator.models import Pool

    run_id = start(database, crash_flow, "asset:A", rack="rz", sleep=5)
    wait_for_state(database, run_id, "flash", BeanState.RUNNING)
    with database.transaction() as session:
        assert session.scalar(select(Pool.in_use).where(Pool.key == "test-switch:rz")) == 1
        service.cancel_run(session, run_id=run_id, reason="stop")
    with database.transaction() as session:
        assert session.scalar(select(Pool.in_use).where(Pool.key == "test-switch:rz")) == 0


def test_rewalk_is_refused_while_another_run_of_the_family_is_active(database):
    first = start(database, crash_flow, "asset:A", rack="r1")
    with database.transaction() as session:
        service.cancel_run(session, run_id=first, reason="x")
    second = start(database, crash_flow, "asset:A", rack="r1")
    with pytest.raises(Conflict) as refused, database.transaction() as session:
        service.rewalk_run(session, run_id=first)
    assert f"run {second}" in refused.value.message
