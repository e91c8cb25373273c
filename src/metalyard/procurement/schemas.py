"""API shapes of vendors and hardware profiles; a profile version's spec is what a server
must be to pass evaluation."""

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from metalyard.procurement.states import MatchOutcome, OrderState, RequestState, StageState
from metalyard.schemas import Name, OutSchema, Schema, Text, Unset

Model = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Version = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Component = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class VendorCreate(Schema):
    name: Name
    description: Text = ""
    contact: Text = ""


class VendorUpdate(Schema):
    description: Text | Unset = None
    contact: Text | Unset = None
    version: int | None = Field(None, description="Reject the update if the vendor changed since.")


class VendorOut(OutSchema):
    name: str
    description: str
    contact: str
    version: int
    created_at: datetime
    updated_at: datetime


# Profile specs -------------------------------------------------------------------------


class CpuSpec(Schema):
    model: Model = Field(description="As the CPU reports it, e.g. `Intel(R) Xeon(R) Gold 6338`.")
    count: int = Field(ge=1, le=16, description="Sockets.")


class DiskSpec(Schema):
    count: int = Field(ge=1, le=256)
    size_gb: int = Field(ge=1, le=1_000_000, description="Decimal gigabytes, as on the label.")
    kind: Literal["ssd", "hdd", "nvme"] | None = None


class NicSpec(Schema):
    count: int = Field(ge=1, le=64)
    speed_gbps: float = Field(gt=0, le=1600)


class ProfileSpec(Schema):
    """What every server of this version must be."""

    cpu: CpuSpec
    memory_gib: int = Field(ge=1, le=1_048_576)
    disks: list[DiskSpec] = Field(default_factory=list, max_length=16)
    nics: list[NicSpec] = Field(default_factory=list, max_length=16)
    firmware: dict[Component, Version] = Field(
        default_factory=dict,
        max_length=64,
        description="Baseline version per firmware component, e.g. bios → 2.1.0.",
    )


class ProfileCreate(Schema):
    vendor: Name
    name: Name
    description: Text = ""
    spec: ProfileSpec
    note: Text = Field("", description="Why this version exists (the first one: leave empty).")


class VersionCreate(Schema):
    spec: ProfileSpec
    note: Text = ""


class VersionUpdate(Schema):
    spec: ProfileSpec | Unset = None
    note: Text | Unset = None


class ProfileVersionOut(OutSchema):
    vendor: str
    profile: str
    number: int
    spec: ProfileSpec
    note: str
    created_by: str
    created_at: datetime
    in_use: bool = Field(description="Used by a machine class or an order: frozen.")


class ProfileOut(OutSchema):
    vendor: str
    name: str
    description: str
    latest_version: int
    versions: list[int]
    created_at: datetime


class SpecChange(OutSchema):
    field: str = Field(description="Dotted path, e.g. `memory_gib` or `disks.0.size_gb`.")
    old: Any
    new: Any


class ProfileRef(Schema):
    vendor: Name
    profile: Name
    version: int = Field(ge=1)


class MachineClassProfiles(Schema):
    versions: list[ProfileRef] = Field(max_length=256)


def version_out(version: Any, *, in_use: bool) -> ProfileVersionOut:
    profile = version.profile
    return ProfileVersionOut(
        vendor=profile.vendor.name,
        profile=profile.name,
        number=version.number,
        spec=ProfileSpec.model_validate(version.spec),
        note=version.note,
        created_by=version.created_by,
        created_at=version.created_at,
        in_use=in_use,
    )


def profile_out(profile: Any) -> ProfileOut:
    numbers = [v.number for v in profile.versions]
    return ProfileOut(
        vendor=profile.vendor.name,
        name=profile.name,
        description=profile.description,
        latest_version=max(numbers),
        versions=numbers,
        created_at=profile.created_at,
    )


# Requests and orders -------------------------------------------------------------------


class LineIn(Schema):
    vendor: Name
    profile: Name
    version: int = Field(ge=1)
    quantity: int = Field(ge=1, le=100_000)


class PurchaseRequestCreate(Schema):
    title: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    lines: list[LineIn] = Field(min_length=1, max_length=256)


class RequestLineOut(OutSchema):
    vendor: str
    profile: str
    version: int
    quantity: int


class PurchaseRequestOut(OutSchema):
    id: int
    title: str
    region: str
    state: RequestState
    requested_by: str
    lines: list[RequestLineOut]
    orders: list[str] = Field(default_factory=list, description="Orders made from it.")
    created_at: datetime


class ApprovalReason(Schema):
    reason: Text = ""


class StageIn(Schema):
    quantity: int = Field(ge=1, le=100_000)
    expected_on: date


class OrderLineOut(OutSchema):
    id: int
    profile: str
    version: int
    quantity: int
    expected_serials: int
    discovered: int
    passed: int


class StageOut(OutSchema):
    number: int
    quantity: int
    expected_on: date
    state: StageState


class PurchaseOrderOut(OutSchema):
    number: str
    vendor: str
    region: str
    state: OrderState
    request_id: int | None
    lines: list[OrderLineOut]
    stages: list[StageOut]
    version: int
    created_at: datetime
    updated_at: datetime


class PurchaseOrderCreate(Schema):
    vendor: Name
    lines: list[LineIn] = Field(min_length=1, max_length=256)


class OrderMove(Schema):
    to: OrderState
    reason: Text = ""
    version: int | None = Field(None, description="Refuse the move if the order moved on.")


class StageMove(Schema):
    to: StageState
    reason: Text = ""


class OrderEventOut(OutSchema):
    at: datetime
    actor: str
    kind: str
    subject: str
    from_state: str
    to_state: str
    reason: str


class SerialImportResult(OutSchema):
    imported: int


class WebhookCreate(Schema):
    url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=2048)]
    order: Annotated[str, StringConstraints(max_length=32)] | None = Field(
        None, description="Only this order's events; every order's when left out."
    )


class WebhookOut(OutSchema):
    id: int
    url: str
    order: str | None
    created_by: str
    created_at: datetime


# Matching and the report ---------------------------------------------------------------


class MatchRequest(Schema):
    serial: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    profile: ProfileRef | None = Field(
        None, description="The profile version evaluation found; else the asset's own."
    )


class MatchOut(OutSchema):
    serial: str
    outcome: MatchOutcome
    order: str | None
    line_id: int | None
    reason: str


class ReportRow(OutSchema):
    order: str
    vendor: str
    region: str
    state: OrderState
    ordered: int
    delivered: int
    racked: int
    discovered: int
    passed: int
    spare: int
    overdue: int = Field(description="Units of stages past their date and not yet delivered.")


class RegionTotals(OutSchema):
    region: str
    ordered: int
    delivered: int
    racked: int
    discovered: int
    passed: int
    spare: int
    overdue: int
    unknown_assets: list[str]


class ReportOut(OutSchema):
    orders: list[ReportRow]
    regions: list[RegionTotals]
