"""API shapes of IPAM; the SDK returns these same models.

Addresses and prefixes are checked and normalised here (`2001:DB8::1` becomes `2001:db8::1`),
so the service and the database only ever see one spelling of each.
"""

from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from metalyard.network.addressing import PrefixRole, normal_address, normal_network
from metalyard.schemas import Name, OutSchema, Schema, Text, Unset

IpAddress = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(normal_address),
    Field(description="An IPv4 or IPv6 address, like 10.0.0.5 or 2001:db8::5."),
]
Cidr = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(normal_network),
    Field(description="A prefix in CIDR notation without host bits, like 10.0.0.0/24."),
]
Vlan = Annotated[int, Field(ge=1, le=4094)]
Serial = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
]
InterfaceName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\w.:-]+$")
]
PrefixId = Annotated[int, Field(ge=1, le=2**31 - 1)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


def _distinct(addresses: list[str]) -> list[str]:
    repeated = sorted({a for a in addresses if addresses.count(a) > 1})
    if repeated:
        raise ValueError(f"DNS servers repeat: {', '.join(repeated)}")
    return addresses


DnsServers = Annotated[list[IpAddress], Field(max_length=8), AfterValidator(_distinct)]


# Prefixes ------------------------------------------------------------------------------


class PrefixCreate(Schema):
    site: Name
    cidr: Cidr
    role: PrefixRole
    gateway: IpAddress | None = Field(None, description="Inside the prefix; never allocated.")
    dns_servers: DnsServers = []
    vlan: Vlan | None = None
    description: Text = ""


class PrefixUpdate(Schema):
    """Fields left out stay as they are; null clears `gateway` and `vlan`. The site and the
    CIDR never change: create another prefix instead."""

    role: PrefixRole | Unset = None
    gateway: IpAddress | None = None
    dns_servers: DnsServers | Unset = None
    vlan: Vlan | None = None
    description: Text | Unset = None
    version: int | None = Field(None, description="Reject the update if the prefix changed since.")

    CLEARABLE: ClassVar[frozenset[str]] = frozenset({"gateway", "vlan"})

    def changes(self) -> dict[str, Any]:
        """The fields to write: what was given, less nulls on fields that cannot be empty."""
        given = self.model_dump(exclude_unset=True, exclude={"version"})
        return {k: v for k, v in given.items() if v is not None or k in self.CLEARABLE}


class PrefixOut(OutSchema):
    id: int
    site: str
    cidr: str
    family: int = Field(description="4 or 6.")
    role: PrefixRole
    gateway: str | None
    dns_servers: list[str]
    vlan: int | None
    description: str
    version: int
    created_at: datetime
    updated_at: datetime


# Reserved ranges -----------------------------------------------------------------------


class ReservedRangeCreate(Schema):
    start: IpAddress
    end: IpAddress = Field(description="The last reserved address (included).")
    reason: Reason


class ReservedRangeOut(OutSchema):
    id: int
    prefix_id: int
    start: str
    end: str
    reason: str
    created_at: datetime


# Allocations ---------------------------------------------------------------------------


class IpAllocationCreate(Schema):
    """Which interface needs an address, and where from: a prefix, or a site and a role."""

    serial: Serial
    interface: InterfaceName
    prefix_id: PrefixId | None = Field(None, description="Allocate from this prefix.")
    site: Name | None = Field(None, description="With `role`: the first prefix with room.")
    role: PrefixRole | None = None
    address: IpAddress | None = Field(
        None, description="This address rather than the lowest free one."
    )

    @model_validator(mode="after")
    def _one_source(self) -> "IpAllocationCreate":
        by_site = self.site is not None or self.role is not None
        if self.prefix_id is not None and by_site:
            raise ValueError("give either prefix_id, or site and role; not both")
        if self.prefix_id is None and (self.site is None or self.role is None):
            raise ValueError("say where the address comes from: prefix_id, or site and role")
        return self


class IpAllocationOut(OutSchema):
    id: int
    address: str
    prefix_id: int
    cidr: str
    site: str
    role: PrefixRole
    serial: str
    interface: str
    created_at: datetime


def prefix_out(prefix: Any) -> PrefixOut:
    return PrefixOut(
        id=prefix.id,
        site=prefix.site.name,
        cidr=prefix.cidr,
        family=prefix.family,
        role=prefix.role,
        gateway=prefix.gateway,
        dns_servers=prefix.dns_servers,
        vlan=prefix.vlan,
        description=prefix.description,
        version=prefix.version,
        created_at=prefix.created_at,
        updated_at=prefix.updated_at,
    )


class BootRequestOut(OutSchema):
    id: int
    mac: str
    asset_id: int | None
    decision: str
    client: str
    at: datetime
