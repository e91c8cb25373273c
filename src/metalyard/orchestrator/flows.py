"""Flows as validated data: beans, their edges and conditions, retries, timeouts, pools."""

import importlib
import random
from dataclasses import dataclass, field
from enum import StrEnum
from graphlib import CycleError, TopologicalSorter

from metalyard.errors import InvalidInput, NotFound
from metalyard.orchestrator.beans import Task


class Condition(StrEnum):
    """What a dependency must have ended as for its dependent to run."""

    SUCCEEDED = "succeeded"
    """Done, or skipped by its task (nothing to do), or failed with `ignore_failure`; not
    skipped because its own condition was not met."""
    FAILED = "failed"
    FINISHED = "finished"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter between `base` and `cap` seconds."""

    max_attempts: int = 5
    base: float = 1.0
    cap: float = 300.0

    def delay(self, attempt: int, rng: random.Random = random._inst) -> float:
        return rng.uniform(0, min(self.cap, self.base * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class PoolClaim:
    """A slot of pool `name`, keyed by a run parameter: `mgmt-switch` + `rack` → `mgmt-switch:r01`.

    `size` is the limit a key starts with; set another per key with `set_pool`.
    """

    name: str
    key_param: str | None = None
    size: int = 1

    def key(self, params: dict) -> str:
        if self.key_param is None:
            return f"{self.name}:global"
        return f"{self.name}:{params[self.key_param]}"


@dataclass(frozen=True)
class Bean:
    """A named task in a flow, with what it waits on and how it is retried."""

    name: str
    task: Task
    depends_on: dict[str, Condition] = field(default_factory=dict)
    ignore_failure: bool = False
    retry: RetryPolicy = RetryPolicy()
    timeout: float = 300.0
    """Seconds one attempt may take; past it the attempt counts as failed."""
    pools: tuple[PoolClaim, ...] = ()


@dataclass(frozen=True)
class Flow:
    """A DAG of beans applied to one subject. At most one run per (subject, family) is active."""

    name: str
    beans: tuple[Bean, ...]
    family: str = ""
    description: str = ""
    required_params: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.family:
            object.__setattr__(self, "family", self.name)
        object.__setattr__(self, "_by_name", {bean.name: bean for bean in self.beans})
        self.validate()
        object.__setattr__(self, "_order", self._topological_order())

    def validate(self) -> None:
        names = [b.name for b in self.beans]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidInput(f"flow {self.name!r}: bean names repeat: {', '.join(duplicates)}")
        if not self.beans:
            raise InvalidInput(f"flow {self.name!r} has no beans")
        known = set(names)
        for bean in self.beans:
            unknown = sorted(set(bean.depends_on) - known)
            if unknown:
                raise InvalidInput(
                    f"flow {self.name!r}: bean {bean.name!r} depends on unknown "
                    f"bean(s) {', '.join(unknown)}"
                )
        try:
            self._topological_order()
        except CycleError as cycle:
            path = " → ".join(cycle.args[1])
            raise InvalidInput(f"flow {self.name!r} has a cycle: {path}") from None
        needed = {c.key_param for s in self.beans for c in s.pools if c.key_param}
        missing = sorted(needed - set(self.required_params))
        if missing:
            raise InvalidInput(
                f"flow {self.name!r}: pool keys use parameters not in required_params: "
                f"{', '.join(missing)}"
            )

    def order(self) -> list[str]:
        """Bean names, each after what it depends on, otherwise in declaration order."""
        return list(self._order)

    def _topological_order(self) -> tuple[str, ...]:
        graph = {bean.name: set(bean.depends_on) for bean in self.beans}
        TopologicalSorter(graph).prepare()  # raises CycleError naming the cycle
        placed: list[str] = []
        while len(placed) < len(graph):
            placed.append(
                next(
                    name
                    for name, deps in graph.items()
                    if name not in placed and deps <= set(placed)
                )
            )
        return tuple(placed)

    def bean(self, name: str) -> Bean:
        try:
            return self._by_name[name]
        except KeyError:
            raise NotFound(f"flow {self.name!r} has no bean {name!r}") from None

    def render(self, states: dict[str, str] | None = None) -> str:
        """The DAG as indented text: each bean under what it waits on, with its state."""
        lines = [f"{self.name} (family {self.family})"]
        for name in self.order():
            bean = self.bean(name)
            waits = ", ".join(f"{dep} {cond.value}" for dep, cond in bean.depends_on.items())
            extras = []
            if waits:
                extras.append(f"after {waits}")
            if bean.pools:
                extras.append(
                    "pools " + ", ".join(f"{p.name}[{p.key_param or 'global'}]" for p in bean.pools)
                )
            if bean.ignore_failure:
                extras.append("failure ignored")
            extras.append(f"retries {bean.retry.max_attempts}, timeout {bean.timeout:g}s")
            state = f" [{states[name]}]" if states and name in states else ""
            lines.append(f"  {name}{state}  ({'; '.join(extras)})")
        return "\n".join(lines)


class FlowRegistry:
    """The flows a process knows by name; concepts register theirs at import."""

    def __init__(self) -> None:
        self._flows: dict[str, Flow] = {}

    def register(self, flow: Flow) -> Flow:
        if flow.name in self._flows and self._flows[flow.name] is not flow:
            raise InvalidInput(f"a flow named {flow.name!r} is already registered")
        self._flows[flow.name] = flow
        return flow

    def get(self, name: str) -> Flow:
        try:
            return self._flows[name]
        except KeyError:
            raise NotFound(
                f"no flow named {name!r}; known: {', '.join(sorted(self._flows)) or 'none'}"
            ) from None

    def __iter__(self):
        return iter(sorted(self._flows.values(), key=lambda f: f.name))


flows = FlowRegistry()


def load_flow_modules(names: list[str]) -> None:
    """Import modules that register flows, naming a module that cannot be imported."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise InvalidInput(f"cannot import flow module {name!r}: {error}") from None
