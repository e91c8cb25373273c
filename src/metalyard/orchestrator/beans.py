"""The task contract: idempotent work that looks before it acts and says how it ended.

A bean is a named task in a flow (see flows.Bean).
"""

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy.orm import Session

# Outcomes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Done:
    data: dict[str, Any] = field(default_factory=dict)
    """Kept on the run; later beans read it as ctx.data[name]."""


@dataclass(frozen=True)
class Skipped:
    reason: str


@dataclass(frozen=True)
class Wait:
    """Park the bean until `signal(key)` or `timeout` seconds (then the retry policy applies)."""

    key: str
    timeout: float


@dataclass(frozen=True)
class Retry:
    after: float
    reason: str


@dataclass(frozen=True)
class Fail:
    reason: str


Outcome = Done | Skipped | Wait | Retry | Fail


# Context -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """What a run applies to, e.g. `asset:SN0001`; the orchestrator does not interpret it."""

    kind: str
    id: str

    @classmethod
    def parse(cls, text: str) -> "Subject":
        kind, sep, ident = text.partition(":")
        if not sep or not kind or not ident:
            raise ValueError(f"a subject reads kind:id, e.g. asset:SN0001, not {text!r}")
        return cls(kind, ident)

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


class BeanContext:
    """What a bean may use; the session and driver are made only if the bean asks for them."""

    def __init__(
        self,
        *,
        run_id: int,
        bean: str,
        attempt: int,
        subject: Subject,
        params: dict[str, Any],
        data: dict[str, dict[str, Any]],
        event: dict[str, Any] | None,
        sessions: Callable[[], Session],
        drivers: Callable[[Subject], Any] | None,
    ) -> None:
        self.run_id = run_id
        self.bean = bean
        self.attempt = attempt
        self.subject = subject
        self.params = params
        self.data = data
        """Data of the beans done before this one in the run, by bean name."""
        self.event = event
        """The payload of the signal that woke this bean, if one did."""
        self.emitted: list[tuple[str, dict[str, Any]]] = []
        self.log = logging.LoggerAdapter(
            logging.getLogger(f"metalyard.bean.{bean}"), {"run": run_id, "subject": str(subject)}
        )
        self._sessions = sessions
        self._drivers = drivers

    @cached_property
    def session(self) -> Session:
        """A session of its own; committed when the bean returns, rolled back if it raises."""
        return self._sessions()

    @cached_property
    def driver(self) -> Any:
        """The BMC driver of the subject."""
        if self._drivers is None:
            raise LookupError("this worker has no BMC drivers configured")
        return self._drivers(self.subject)

    def emit(self, key: str, payload: dict[str, Any] | None = None) -> None:
        """Signal `key` once this bean's outcome is recorded (wakes beans waiting on it)."""
        self.emitted.append((key, payload or {}))


class Task(ABC):
    """Idempotent work. It may run more than once (at-least-once delivery): look, then act."""

    def satisfied(self, ctx: BeanContext) -> bool:
        """True when what this bean would do is already true in the world: it is skipped."""
        return False

    @abstractmethod
    def run(self, ctx: BeanContext) -> Outcome: ...


class FunctionTask(Task):
    """A task from plain functions, for small beans and tests."""

    def __init__(
        self,
        run: Callable[[BeanContext], Outcome],
        satisfied: Callable[[BeanContext], bool] | None = None,
    ) -> None:
        self._run = run
        self._satisfied = satisfied

    def satisfied(self, ctx: BeanContext) -> bool:
        return self._satisfied(ctx) if self._satisfied else False

    def run(self, ctx: BeanContext) -> Outcome:
        return self._run(ctx)
