"""Flows are validated when they are declared, and read back as a drawn DAG."""

import pytest

from metalyard.errors import InvalidInput
from metalyard.orchestrator.beans import Done, FunctionTask
from metalyard.orchestrator.engine import advance, initial_states
from metalyard.orchestrator.flows import Bean, Condition, Flow, PoolClaim
from metalyard.orchestrator.states import BeanState, RunState

TASK = FunctionTask(lambda ctx: Done())


def bean(name, **deps):
    return Bean(name, TASK, depends_on={k: Condition(v) for k, v in deps.items()})


def test_a_cycle_is_refused_naming_it():
    with pytest.raises(InvalidInput, match=r"cycle: .*a.*b"):
        Flow(name="f", beans=(bean("a", b="succeeded"), bean("b", a="succeeded")))


def test_unknown_dependencies_and_repeated_names_are_refused():
    with pytest.raises(InvalidInput, match="unknown bean\\(s\\) ghost"):
        Flow(name="f", beans=(bean("a", ghost="succeeded"),))
    with pytest.raises(InvalidInput, match="bean names repeat: a"):
        Flow(name="f", beans=(bean("a"), bean("a")))
    with pytest.raises(InvalidInput, match="no beans"):
        Flow(name="f", beans=())


def test_pool_keys_must_come_from_declared_parameters():
    with pytest.raises(InvalidInput, match="rack"):
        Flow(name="f", beans=(Bean("a", TASK, pools=(PoolClaim("switch", "rack"),)),))
    Flow(
        name="f",
        required_params=("rack",),
        beans=(Bean("a", TASK, pools=(PoolClaim("switch", "rack"),)),),
    )


def test_render_draws_each_bean_after_what_it_waits_on():
    flow = Flow(name="f", beans=(bean("c", a="succeeded", b="failed"), bean("a"), bean("b")))
    text = flow.render({"a": "DONE"})
    lines = text.splitlines()
    assert lines[0] == "f (family f)"
    assert [line.split()[0] for line in lines[1:]] == ["a", "b", "c"]
    assert "a [DONE]" in text and "after a succeeded, b failed" in text


def test_advance_unblocks_skips_and_finishes():
    flow = Flow(
        name="f",
        beans=(
            bean("a"),
            bean("b", a="succeeded"),
            bean("c", a="failed"),
            bean("d", b="finished", c="finished"),
        ),
    )
    states = initial_states(flow)
    assert states == {
        "a": BeanState.READY,
        "b": BeanState.BLOCKED,
        "c": BeanState.BLOCKED,
        "d": BeanState.BLOCKED,
    }
    states["a"] = BeanState.DONE
    changes, outcome = advance(flow, states)
    assert {k: v.state for k, v in changes.items()} == {
        "b": BeanState.READY,
        "c": BeanState.SKIPPED,
    }
    assert outcome is None
    states |= {"b": BeanState.DONE, "c": BeanState.SKIPPED}
    changes, outcome = advance(flow, states)
    assert changes["d"].state is BeanState.READY and outcome is None
    states["d"] = BeanState.DONE
    assert advance(flow, states) == ({}, RunState.SUCCEEDED)


def test_a_failure_skips_the_whole_chain_that_needed_success_below_it():
    flow = Flow(
        name="f",
        beans=(
            bean("wipe"),
            bean("reimage", wipe="succeeded"),
            bean("hand_over", reimage="succeeded"),
            bean("report", reimage="finished"),
        ),
    )
    states = initial_states(flow) | {"wipe": BeanState.FAILED}
    changes, _ = advance(flow, states)
    assert {k: v.state for k, v in changes.items()} == {
        "reimage": BeanState.SKIPPED,
        "hand_over": BeanState.SKIPPED,
        "report": BeanState.READY,
    }
    assert changes["hand_over"].reason == "condition not met: reimage succeeded"


def test_skipped_by_its_task_counts_as_succeeded_skipped_for_its_condition_does_not():
    flow = Flow(
        name="f",
        beans=(
            bean("probe"),
            bean("slow"),
            bean("fix", probe="failed"),
            bean("verify", fix="succeeded", slow="succeeded"),
            bean("already"),
            bean("next", already="succeeded"),
        ),
    )
    # `fix` was skipped by the engine while `slow` still ran; `already` skipped itself
    states = initial_states(flow) | {
        "probe": BeanState.DONE,
        "fix": BeanState.SKIPPED,
        "slow": BeanState.RUNNING,
        "already": BeanState.SKIPPED,
    }
    changes, _ = advance(flow, states)
    assert {k: v.state for k, v in changes.items()} == {"next": BeanState.READY}
    changes, outcome = advance(flow, states | {"slow": BeanState.DONE, "next": BeanState.DONE})
    assert changes["verify"].state is BeanState.SKIPPED
    assert outcome is RunState.SUCCEEDED
