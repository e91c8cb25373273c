"""Flows the orchestrator tests (and the crash test's worker processes) run."""

import os
import time
from pathlib import Path

from metalyard.drivers import PowerAction, PowerState
from metalyard.errors import TransientError
from metalyard.orchestrator.beans import Done, Fail, FunctionTask, Wait
from metalyard.orchestrator.flows import Bean, Condition, Flow, PoolClaim, RetryPolicy, flows

LEDGER = os.environ.get("METALYARD_TEST_LEDGER")
"""A file where each execution appends a line, so tests can count runs across processes."""


def ledger(ctx, note: str = "") -> None:
    if LEDGER:
        with Path(LEDGER).open("a") as out:
            out.write(f"{ctx.run_id} {ctx.bean} {ctx.attempt} {time.time():.6f} {note}\n")


def record(ctx):
    ledger(ctx)
    return Done({"bean": ctx.bean})


def hold_slot(ctx):
    rack = ctx.params.get("rack", "-")
    ledger(ctx, f"start {rack}")
    time.sleep(float(ctx.params.get("sleep", 0.05)))
    ledger(ctx, f"end {rack}")
    return Done()


def wait_for_report(ctx):
    if ctx.event is None:
        return Wait(f"report:{ctx.subject.id}", timeout=float(ctx.params.get("wait", 60)))
    ledger(ctx)
    return Done({"report": ctx.event})


# prepare → (flash ∥ inventory) → wait for the report → finish
crash_flow = flows.register(
    Flow(
        name="test.crash",
        required_params=("rack",),
        beans=(
            Bean("prepare", FunctionTask(record)),
            Bean(
                "flash",
                FunctionTask(hold_slot),
                depends_on={"prepare": Condition.SUCCEEDED},
                pools=(PoolClaim("test-switch", "rack", size=3),),
            ),
            Bean("inventory", FunctionTask(record), depends_on={"prepare": Condition.SUCCEEDED}),
            Bean(
                "report",
                FunctionTask(wait_for_report),
                depends_on={"flash": Condition.SUCCEEDED, "inventory": Condition.SUCCEEDED},
            ),
        ),
    )
)


class Flaky:
    """Fails transiently `times` times per run, then succeeds."""

    def __init__(self, times: int) -> None:
        self.times = times

    def __call__(self, ctx):
        if ctx.attempt <= self.times:
            raise TransientError(f"BMC busy (attempt {ctx.attempt})")
        return Done({"attempts": ctx.attempt})


fast_retry = RetryPolicy(max_attempts=3, base=0.01, cap=0.02)

retry_flow = flows.register(
    Flow(
        name="test.retry",
        beans=(
            Bean("flaky", FunctionTask(Flaky(2)), retry=fast_retry),
            Bean("hopeless", FunctionTask(Flaky(10)), retry=fast_retry, ignore_failure=True),
            Bean(
                "after",
                FunctionTask(record),
                depends_on={"flaky": Condition.SUCCEEDED, "hopeless": Condition.SUCCEEDED},
            ),
        ),
    )
)

branch_flow = flows.register(
    Flow(
        name="test.branch",
        beans=(
            Bean("try", FunctionTask(lambda ctx: Fail("disk missing"))),
            Bean("on_success", FunctionTask(record), depends_on={"try": Condition.SUCCEEDED}),
            Bean("on_failure", FunctionTask(record), depends_on={"try": Condition.FAILED}),
            Bean("always", FunctionTask(record), depends_on={"try": Condition.FINISHED}),
        ),
    )
)

slow_flow = flows.register(
    Flow(
        name="test.slow",
        beans=(
            Bean(
                "sleepy",
                FunctionTask(hold_slot),
                timeout=0.2,
                retry=RetryPolicy(max_attempts=2, base=0.01, cap=0.01),
            ),
        ),
    )
)

satisfied_flow = flows.register(
    Flow(
        name="test.satisfied",
        beans=(Bean("already", FunctionTask(record, satisfied=lambda ctx: True)),),
    )
)

short_wait_flow = flows.register(
    Flow(
        name="test.short_wait",
        beans=(
            Bean(
                "report",
                FunctionTask(lambda ctx: Wait(f"report:{ctx.subject.id}", 0.1)),
                retry=RetryPolicy(max_attempts=2, base=0.01, cap=0.01),
            ),
        ),
    )
)


def emit_report(ctx):
    ctx.emit(f"report:{ctx.subject.id}", {"from": "emitter"})
    return Done()


emit_flow = flows.register(Flow(name="test.emit", beans=(Bean("emit", FunctionTask(emit_report)),)))


def power_on(ctx):
    ctx.driver.set_power(PowerAction.ON)
    return Done({"power": ctx.driver.get_power_state().value})


# One bean that reaches the subject's BMC; BMC errors that may pass are retried quickly.
power_flow = flows.register(
    Flow(
        name="test.power_on",
        beans=(
            Bean(
                "power_on",
                FunctionTask(
                    power_on, satisfied=lambda ctx: ctx.driver.get_power_state() is PowerState.ON
                ),
                retry=RetryPolicy(max_attempts=50, base=0.05, cap=0.2),
            ),
        ),
    )
)
