"""API shapes of flows, runs, signals and pools."""

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from metalyard.orchestrator.states import BeanState, RunState
from metalyard.schemas import OutSchema, Schema

SubjectText = Annotated[
    str,
    StringConstraints(min_length=3, max_length=256, pattern=r"^[a-z][a-z0-9_-]*:[^\s]+$"),
]
SignalKey = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^\S+$")]


class BeanSpecOut(OutSchema):
    name: str
    depends_on: dict[str, str]
    ignore_failure: bool
    max_attempts: int
    timeout: float
    pools: list[str]


class FlowOut(OutSchema):
    name: str
    family: str
    description: str
    required_params: list[str]
    beans: list[BeanSpecOut]
    text: str = Field(description="The DAG drawn as text.")


class RunCreate(Schema):
    flow: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    subject: SubjectText = Field(description="What the run applies to, e.g. `asset:SN0001`.")
    params: dict[str, Any] = {}


class AttemptOut(OutSchema):
    attempt: int
    worker: str
    started_at: datetime
    ended_at: datetime
    outcome: str
    error: str


class RunBeanOut(OutSchema):
    name: str
    state: BeanState
    attempts: int
    failures: int
    reason: str
    wait_key: str | None
    data: dict[str, Any] | None
    started_at: datetime | None
    finished_at: datetime | None
    duration: float | None = Field(description="Seconds from the last start to the end.")
    history: list[AttemptOut] = []


class RunOut(OutSchema):
    id: int
    flow: str
    family: str
    subject: str
    params: dict[str, Any]
    state: RunState
    created_by: str
    created_at: datetime
    finished_at: datetime | None
    beans: list[RunBeanOut]


class SignalIn(Schema):
    key: SignalKey
    payload: dict[str, Any] = {}


class SignalResult(OutSchema):
    woken: int


class PoolOut(OutSchema):
    key: str
    size: int
    in_use: int


class PoolUpdate(Schema):
    size: int = Field(ge=1, le=100_000)
