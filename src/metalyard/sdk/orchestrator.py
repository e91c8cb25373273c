"""Flows, runs, capacity pools and signals: `client.flows`, `client.runs`…"""

from collections.abc import Mapping
from typing import Any

from metalyard.orchestrator.schemas import FlowOut, PoolOut, RunOut, SignalResult
from metalyard.orchestrator.states import RunState
from metalyard.sdk.base import Namespace
from metalyard.sdk.http import Listing, parse


class Flows(Namespace):
    """The flows the server knows (those of its concepts and of METALYARD_FLOW_MODULES)."""

    path = "/v1/flows"

    def list(self) -> list[FlowOut]:
        return [parse(FlowOut, item) for item in self._http.request("GET", self.path).json()]

    def get(self, name: str) -> FlowOut:
        """The flow as data, and its DAG drawn as text (`.text`)."""
        return self._http.get(self._item(name), FlowOut)


class Runs(Namespace):
    """Runs of a flow on a subject; at most one run per subject and flow family is active."""

    path = "/v1/runs"

    def start(self, flow: str, subject: str, params: Mapping[str, Any] | None = None) -> RunOut:
        """Start `flow` on `subject` (`kind:id`, e.g. `asset:SN0001`).

        Conflict (409) names the run already active for the subject in the flow's family.
        """
        payload = {"flow": flow, "subject": subject, "params": dict(params or {})}
        return self._http.send("POST", self.path, RunOut, json=payload)

    def list(
        self,
        *,
        state: RunState | str | None = None,
        flow: str | None = None,
        subject: str | None = None,
        page_size: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Listing[RunOut]:
        """Newest first; the beans' executions are left out (see `get`)."""
        params = {"state": state, "flow": flow, "subject": subject}
        return self._http.pages(self.path, RunOut, params, page_size, limit=limit, cursor=cursor)

    def get(self, run_id: int) -> RunOut:
        """The run, each bean's state and every execution of it (`beans[i].history`)."""
        return self._http.get(self._item(run_id), RunOut)

    def cancel(self, run_id: int) -> RunOut:
        """Stop a running run: beans not yet ended are cancelled; Conflict if it has ended."""
        return self._http.send("POST", self._item(run_id, "cancel"), RunOut)

    def rewalk(self, run_id: int) -> RunOut:
        """Resume a failed or cancelled run: beans done stay done, the others run again."""
        return self._http.send("POST", self._item(run_id, "rewalk"), RunOut)


class Pools(Namespace):
    """Keyed limits on concurrent bean executions, e.g. `mgmt-switch:r01`."""

    path = "/v1/pools"

    def list(
        self,
        *,
        prefix: str | None = None,
        page_size: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Listing[PoolOut]:
        return self._http.pages(
            self.path, PoolOut, {"prefix": prefix}, page_size, limit=limit, cursor=cursor
        )

    def set(self, key: str, size: int) -> PoolOut:
        """Resize a pool, creating it if need be (admin); Conflict if more slots are in use."""
        return self._http.send("PUT", self._item(key), PoolOut, json={"size": size})


class Signals(Namespace):
    path = "/v1/signals"

    def send(self, key: str, payload: Mapping[str, Any] | None = None) -> int:
        """Wake the beans waiting on `key`; returns how many it woke.

        A bean that parks on the key shortly after still sees the signal (it is kept a while).
        """
        body = {"key": key, "payload": dict(payload or {})}
        return self._http.send("POST", self.path, SignalResult, json=body).woken
