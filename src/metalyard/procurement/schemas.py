"""API shapes of vendors and hardware profiles; a profile version's spec is what a server
must be to pass evaluation."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

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
