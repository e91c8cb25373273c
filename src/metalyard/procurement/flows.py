"""Webhook delivery as a flow: started in the transaction that records the event (an outbox),
so an event is delivered at least once even if this process dies right after."""

import httpx

from metalyard.errors import TransientError
from metalyard.orchestrator.beans import Done, Fail, FunctionTask
from metalyard.orchestrator.flows import Bean, Flow, RetryPolicy, flows

TIMEOUT = 10.0


def deliver(ctx):
    url = ctx.params["url"]
    try:
        answer = httpx.post(url, json=ctx.params["payload"], timeout=TIMEOUT)
    except httpx.HTTPError as error:
        raise TransientError(f"webhook {url} cannot be reached: {error}") from None
    if answer.status_code >= 500 or answer.status_code == 429:
        raise TransientError(f"webhook {url} answered {answer.status_code}")
    if answer.status_code >= 400:
        return Fail(f"webhook {url} refused the event: {answer.status_code} {answer.text[:200]}")
    return Done({"status": answer.status_code})


notify = flows.register(
    Flow(
        name="procurement.notify",
        required_params=("url", "payload"),
        beans=(
            Bean("deliver", FunctionTask(deliver), retry=RetryPolicy(max_attempts=10, cap=600)),
        ),
    )
)
