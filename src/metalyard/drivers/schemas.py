"""API shapes of BMC credentials and of what a BMC answers; passwords only ever go in."""

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints

from metalyard.drivers.base import (
    BootDevice,
    BootMode,
    Capability,
    HealthStatus,
    PowerAction,
    PowerState,
)
from metalyard.network.schemas import Cidr
from metalyard.schemas import Name, OutSchema, Schema, Unset

Username = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Networks = Annotated[
    list[Cidr],
    AfterValidator(lambda networks: list(dict.fromkeys(networks))),
    Field(
        min_length=1,
        max_length=256,
        description="The prefixes this credential may be sent into, like 10.20.0.0/16: a BMC "
        "address outside them is refused before any connection. 0.0.0.0/0 and ::/0 allow "
        "anywhere.",
    ),
]


class BmcCredentialCreate(Schema):
    name: Name
    username: Username
    password: Password = Field(json_schema_extra={"writeOnly": True})
    networks: Networks


class BmcCredentialUpdate(Schema):
    username: Username | Unset = None
    password: Password | Unset = Field(None, json_schema_extra={"writeOnly": True})
    networks: Networks | Unset = None
    version: int | None = Field(None, description="Refuse the change if the credential moved on.")


class BmcCredentialOut(OutSchema):
    name: str
    username: str
    networks: list[str]
    created_at: datetime
    updated_at: datetime
    version: int


class PowerRequest(Schema):
    action: PowerAction


class PowerOut(OutSchema):
    state: PowerState
    """The state the BMC reports now; after a request it may take seconds to follow."""


class BootRequest(Schema):
    device: BootDevice
    persistent: bool = Field(False, description="Every boot, not only the next one.")
    mode: BootMode | None = Field(None, description="Keep the current mode when left out.")


class BootOut(OutSchema):
    device: BootDevice | None
    persistent: bool
    mode: BootMode | None


class BmcCheckOut(OutSchema):
    driver: str
    address: str
    capabilities: list[Capability]
    power_state: PowerState | None
    elapsed_ms: float


class FirmwareComponentOut(OutSchema):
    name: str
    version: str
    updatable: bool


class SensorOut(OutSchema):
    kind: str
    name: str
    value: float | None
    unit: str
    status: HealthStatus


class SensorsOut(OutSchema):
    overall: HealthStatus
    sensors: list[SensorOut]


def as_out(model: type[OutSchema], value: Any) -> Any:
    return model.model_validate(value, from_attributes=True)
