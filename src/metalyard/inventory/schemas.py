"""API shapes of the inventory; the SDK returns these same models."""

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, Field, StringConstraints, ValidationInfo, field_validator

from metalyard import drivers
from metalyard.errors import InvalidInput
from metalyard.inventory.lifecycle import AssetState, Health
from metalyard.schemas import Name, OutSchema, Schema, Text, Unset

Serial = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
]
Hostname = Annotated[
    str,
    StringConstraints(
        max_length=253,
        pattern=r"^$|^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$",
    ),
]
Mac = Annotated[
    str, StringConstraints(pattern=r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$", to_lower=True)
]
TAG_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]*$"
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=TAG_KEY_PATTERN)]
TagValue = Annotated[str, StringConstraints(max_length=255)]
Tags = Annotated[dict[TagKey, TagValue], Field(max_length=64)]


def _tag_filter(value: str) -> str:
    key = value.partition("=")[0]
    if len(key) > 63 or not re.match(TAG_KEY_PATTERN, key):
        raise ValueError(
            f"{value!r} is neither `key=value` nor `key`: a tag key is 1 to 63 letters, "
            "digits, '.', '_', '/' or '-', and starts with a letter or digit"
        )
    return value


TagFilter = Annotated[str, StringConstraints(max_length=320), AfterValidator(_tag_filter)]
"""`key=value` (exact) or `key` (any value); a key no tag could have is a mistake to say."""
BmcDriver = Annotated[str, StringConstraints(pattern=r"^(fake|redfish|ipmi)$")]


# Sites ---------------------------------------------------------------------------------


class SiteCreate(Schema):
    name: Name
    description: Text = ""
    address: Text = ""


class SiteUpdate(Schema):
    description: Text | Unset = None
    address: Text | Unset = None
    version: int | None = Field(None, description="Reject the update if the site changed since.")


class SiteOut(OutSchema):
    name: str
    description: str
    address: str
    version: int
    created_at: datetime
    updated_at: datetime


# Racks ---------------------------------------------------------------------------------


class RackCreate(Schema):
    site: Name
    name: Name
    height_u: int = Field(42, ge=1, le=100)
    mgmt_switch: Annotated[str, StringConstraints(max_length=255)] = ""
    bmc_capacity: int = Field(4, ge=1, le=1000)


class RackUpdate(Schema):
    height_u: Annotated[int, Field(ge=1, le=100)] | Unset = None
    mgmt_switch: Annotated[str, StringConstraints(max_length=255)] | Unset = None
    bmc_capacity: Annotated[int, Field(ge=1, le=1000)] | Unset = None
    version: int | None = None


class RackOut(OutSchema):
    id: int
    site: str
    name: str
    height_u: int
    mgmt_switch: str
    bmc_capacity: int
    version: int
    created_at: datetime
    updated_at: datetime


# Machine classes -----------------------------------------------------------------------


class MachineClassCreate(Schema):
    name: Name
    description: Text = ""


class MachineClassUpdate(Schema):
    description: Text | Unset = None
    version: int | None = None


class MachineClassOut(OutSchema):
    name: str
    description: str
    version: int
    created_at: datetime
    updated_at: datetime


# Assets --------------------------------------------------------------------------------


class InterfaceIn(Schema):
    name: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\w.:-]+$")]
    mac: Mac
    speed_mbps: int | None = Field(None, ge=0, le=10_000_000)

    @field_validator("mac")
    @classmethod
    def _colons(cls, mac: str) -> str:
        return mac.replace("-", ":")


class InterfaceOut(OutSchema):
    name: str
    mac: str
    speed_mbps: int | None


def _distinct_interfaces(interfaces: list[InterfaceIn]) -> list[InterfaceIn]:
    # The common case first, cheaply: this runs for every row of a 10,000-row import.
    if len({i.name for i in interfaces}) == len({i.mac for i in interfaces}) == len(interfaces):
        return interfaces
    for attribute in ("name", "mac"):
        values = [getattr(i, attribute) for i in interfaces]
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise ValueError(f"interface {attribute}s repeat: {', '.join(repeated)}")
    return interfaces


Interfaces = Annotated[
    list[InterfaceIn], Field(max_length=64), AfterValidator(_distinct_interfaces)
]
Firmware = Annotated[
    dict[str, Annotated[str, StringConstraints(max_length=128)]], Field(max_length=256)
]


class AssetFields(Schema):
    """What a person may set on an asset (the state moves only through a transition)."""

    hostname: Hostname = ""
    vendor: Annotated[str, StringConstraints(max_length=128)] = ""
    model: Annotated[str, StringConstraints(max_length=128)] = ""
    machine_class: Name | None = None
    site: Name | None = None
    rack: Name | None = Field(None, description="Rack name within `site`.")
    rack_position_u: int | None = Field(None, ge=1, le=100)
    bmc_driver: BmcDriver | None = Field(
        None, description="None until someone sets it, or discovery reads a BMC address."
    )
    bmc_address: Annotated[str, StringConstraints(max_length=512)] = ""
    bmc_credential: Annotated[str, StringConstraints(max_length=128)] = ""
    health: Health = Health.UNKNOWN
    maintenance: bool = False
    owner_team: Name | None = None
    project: Name | None = None
    interfaces: Interfaces = []
    tags: Tags = {}
    facts: dict[str, Any] = {}
    firmware: Firmware = {}

    @field_validator("bmc_address")
    @classmethod
    def _written_as_its_driver_writes_one(cls, address: str, info: ValidationInfo) -> str:
        if "bmc_driver" not in info.data:  # the driver itself was refused
            return address
        driver = info.data["bmc_driver"]
        if driver is None and address:
            raise ValueError("an address needs its BMC's driver too: redfish, ipmi or fake")
        if driver is not None:
            checked_bmc_address(driver, address)
        return address


def checked_bmc_address(driver: str, address: str) -> None:
    """ValueError (pydantic's words) if the address is not one the driver can reach: told
    when the asset is written, not at its first power call."""
    try:
        drivers.check_address(driver, address)
    except InvalidInput as error:
        raise ValueError(error.message) from None


class AssetCreate(AssetFields):
    serial: Serial
    state: AssetState = Field(
        AssetState.DISCOVERED,
        description="Initial state, for enrolling servers already in service elsewhere.",
    )


class AssetUpdate(Schema):
    """Fields left out stay as they are; `tags` and `interfaces` replace the whole set.

    Null clears the fields that may be empty (class, site and rack, position, team, project).
    """

    hostname: Hostname | Unset = None
    vendor: Annotated[str, StringConstraints(max_length=128)] | Unset = None
    model: Annotated[str, StringConstraints(max_length=128)] | Unset = None
    machine_class: Name | None = None
    site: Name | None = None
    rack: Name | None = None
    rack_position_u: int | None = Field(None, ge=1, le=100)
    bmc_driver: BmcDriver | Unset = None
    bmc_address: Annotated[str, StringConstraints(max_length=512)] | Unset = None
    bmc_credential: Annotated[str, StringConstraints(max_length=128)] | Unset = None
    health: Health | Unset = None
    maintenance: bool | Unset = None
    owner_team: Name | None = None
    project: Name | None = None
    interfaces: Interfaces | Unset = None
    tags: Tags | Unset = None
    facts: dict[str, Any] | Unset = None
    firmware: Firmware | Unset = None
    version: int | None = Field(None, description="Reject the update if the asset changed since.")

    CLEARABLE: ClassVar[frozenset[str]] = frozenset(
        {"machine_class", "site", "rack", "rack_position_u", "owner_team", "project"}
    )

    def changes(self) -> dict[str, Any]:
        """The fields to write: what was given, less nulls on fields that cannot be empty."""
        given = self.model_dump(exclude_unset=True, exclude={"version", "interfaces", "tags"})
        return {k: v for k, v in given.items() if v is not None or k in self.CLEARABLE}


class TagChange(Schema):
    set: Tags = {}
    remove: Annotated[list[TagKey], Field(max_length=64)] = []
    version: int | None = Field(None, description="Reject the change if the asset changed since.")


class AssetOut(OutSchema):
    serial: str
    hostname: str
    vendor: str
    model: str
    machine_class: str | None
    site: str | None
    rack: str | None
    rack_position_u: int | None
    bmc_driver: str | None
    """None: no BMC on record, and every BMC call is refused (no_bmc)."""
    bmc_address: str
    bmc_credential: str
    state: AssetState
    health: Health
    maintenance: bool
    owner_team: str | None
    project: str | None
    interfaces: list[InterfaceOut]
    tags: dict[str, str]
    facts: dict[str, Any]
    firmware: dict[str, str]
    version: int
    created_at: datetime
    updated_at: datetime


class TransitionRequest(Schema):
    to: AssetState
    reason: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    version: int | None = None


class StateChangeOut(OutSchema):
    from_state: AssetState | None
    to_state: AssetState
    actor: str
    approved_by: str = ""
    """The second person who approved the move, when it needed one."""
    reason: str
    request_id: str
    at: datetime


MAX_IMPORT_ROWS = 10_000


class AssetImport(Schema):
    assets: Annotated[list[AssetCreate], Field(min_length=1, max_length=MAX_IMPORT_ROWS)]


class ImportResult(OutSchema):
    created: int
    serials: list[str]


def rack_out(rack: Any) -> RackOut:
    return RackOut(
        id=rack.id,
        site=rack.site.name,
        name=rack.name,
        height_u=rack.height_u,
        mgmt_switch=rack.mgmt_switch,
        bmc_capacity=rack.bmc_capacity,
        version=rack.version,
        created_at=rack.created_at,
        updated_at=rack.updated_at,
    )


def asset_out(asset: Any) -> AssetOut:
    """Flatten an asset row with its relations (names, not ids) into its API shape."""
    rack = asset.rack
    return AssetOut(
        serial=asset.serial,
        hostname=asset.hostname,
        vendor=asset.vendor,
        model=asset.model,
        machine_class=asset.machine_class.name if asset.machine_class else None,
        site=rack.site.name if rack else None,
        rack=rack.name if rack else None,
        rack_position_u=asset.rack_position_u,
        bmc_driver=asset.bmc_driver,
        bmc_address=asset.bmc_address,
        bmc_credential=asset.bmc_credential,
        state=asset.state,
        health=asset.health,
        maintenance=asset.maintenance,
        owner_team=asset.owner_team.name if asset.owner_team else None,
        project=asset.project.name if asset.project else None,
        interfaces=[InterfaceOut.model_validate(i) for i in asset.interfaces],
        tags={t.key: t.value for t in asset.tags},
        facts=asset.facts,
        firmware=asset.firmware,
        version=asset.version,
        created_at=asset.created_at,
        updated_at=asset.updated_at,
    )
