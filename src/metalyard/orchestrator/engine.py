"""How a run moves on: which beans become ready or skipped, and when the run is over.

Pure functions over bean states, so the worker, cancel and re-walk share one rule.
"""

from dataclasses import dataclass

from metalyard.orchestrator.flows import Condition, Flow
from metalyard.orchestrator.states import TERMINAL, BeanState, RunState


@dataclass(frozen=True)
class Change:
    state: BeanState
    reason: str = ""


def condition_met(
    condition: Condition, state: BeanState, ignore_failure: bool, *, ran: bool = True
) -> bool:
    """Whether a dependency that ended in `state` lets its dependent run. `ran` is False for
    a dependency the engine skipped (its own condition was not met): it did not succeed."""
    if condition is Condition.FINISHED:
        return state in TERMINAL
    if condition is Condition.FAILED:
        return state is BeanState.FAILED
    return (
        state is BeanState.DONE
        or (state is BeanState.SKIPPED and ran)
        or (state is BeanState.FAILED and ignore_failure)
    )


def advance(flow: Flow, states: dict[str, BeanState]) -> tuple[dict[str, Change], RunState | None]:
    """Blocked beans whose dependencies have all ended become READY or SKIPPED, to a fixpoint.

    A bean that skipped itself (nothing to do) counts as succeeded; one skipped because its
    condition was not met does not, so a failure skips the whole chain that needed success
    below it instead of letting its third link run. Which of the two a SKIPPED bean is follows
    from its dependencies' states, which are final by then.

    Returns the changes and the run's final state once every bean has ended.
    """
    states = dict(states)
    changes: dict[str, Change] = {}
    not_run: set[str] = set()  # skipped by this rule, now or in an earlier pass
    for name in flow.order():  # dependencies come first, so one pass reaches the fixpoint
        if states[name] not in (BeanState.BLOCKED, BeanState.SKIPPED):
            continue
        bean = flow.bean(name)
        deps = {dep: states[dep] for dep in bean.depends_on}
        if any(state not in TERMINAL for state in deps.values()):
            continue
        unmet = [
            f"{dep} {condition.value}"
            for dep, condition in bean.depends_on.items()
            if not condition_met(
                condition, deps[dep], flow.bean(dep).ignore_failure, ran=dep not in not_run
            )
        ]
        if unmet:
            not_run.add(name)
        if states[name] is BeanState.SKIPPED:
            continue
        change = (
            Change(BeanState.SKIPPED, "condition not met: " + ", ".join(unmet))
            if unmet
            else Change(BeanState.READY)
        )
        changes[name] = change
        states[name] = change.state
    return changes, run_outcome(flow, states)


def run_outcome(flow: Flow, states: dict[str, BeanState]) -> RunState | None:
    if any(state not in TERMINAL for state in states.values()):
        return None
    failed = [
        name
        for name, state in states.items()
        if state is BeanState.FAILED and not flow.bean(name).ignore_failure
    ]
    if failed:
        return RunState.FAILED
    if any(state is BeanState.CANCELLED for state in states.values()):
        return RunState.CANCELLED
    return RunState.SUCCEEDED


def initial_states(flow: Flow) -> dict[str, BeanState]:
    return {b.name: BeanState.READY if not b.depends_on else BeanState.BLOCKED for b in flow.beans}
