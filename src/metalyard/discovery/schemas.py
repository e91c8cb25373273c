"""API shapes of the agent protocol and of what discovery shows people."""

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from metalyard.inventory.lifecycle import AssetState
from metalyard.schemas import OutSchema, Schema


class BootEvent(Schema):
    facts: dict[str, Any] = Field(description="`python -m metalyard.agent facts`, as JSON.")
    agent_port: int | None = Field(None, ge=1, le=65535, description="Its command server.")


class FactsReport(Schema):
    facts: dict[str, Any]


class Instruction(OutSchema):
    action: Literal["report", "wait", "poweroff", "idle"]
    seconds: int


class ProblemOut(OutSchema):
    check: str
    message: str
    fix: str


class AgentAnswer(OutSchema):
    serial: str
    state: AssetState
    instruction: Instruction
    problems: list[ProblemOut]
    token: str | None = Field(
        None, description="Only in the boot answer: send it back as X-Agent-Token."
    )


class DiscoveryRowOut(OutSchema):
    serial: str
    state: AssetState
    booted_at: datetime
    seen_at: datetime
    agent: str
    profile: str
    problems: int
    evaluation: str


class WhyOut(OutSchema):
    serial: str
    reasons: list[str]
