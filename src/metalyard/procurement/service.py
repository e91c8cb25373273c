"""Procurement logic: vendors, hardware profiles and their versions, machine class mapping.

A profile version is frozen once anything uses it (a machine class, an order line): a
changed configuration is a new version, so that what was bought stays what was bought.
"""

from typing import Any

from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.orm import Session

from metalyard.auth.actor import Actor
from metalyard.db.lookup import apply_fields, check_version, get_by
from metalyard.db.pagination import Page, paginate, parse_sort
from metalyard.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from metalyard.inventory.models import MachineClass
from metalyard.procurement.models import (
    HardwareProfile,
    MachineClassProfile,
    OrderLine,
    ProfileVersion,
    RequestLine,
    Vendor,
)
from metalyard.procurement.schemas import (
    MachineClassProfiles,
    ProfileCreate,
    ProfileRef,
    SpecChange,
    VendorCreate,
    VendorUpdate,
    VersionCreate,
    VersionUpdate,
)

# Vendors -------------------------------------------------------------------------------


def create_vendor(session: Session, *, data: VendorCreate) -> Vendor:
    if session.scalar(select(Vendor.id).where(Vendor.name == data.name)):
        raise AlreadyExists(f"a vendor named {data.name!r} already exists")
    vendor = Vendor(**data.model_dump())
    session.add(vendor)
    session.flush()
    return vendor


def get_vendor(session: Session, *, name: str) -> Vendor:
    return get_by(session, Vendor, "vendor", name=name)


def list_vendors(session: Session, *, sort: str, limit: int, cursor: str | None) -> Page[Vendor]:
    key = parse_sort(sort, {"name": Vendor.name, "created_at": Vendor.created_at})
    return paginate(
        session, select(Vendor), id_column=Vendor.id, sort=key, limit=limit, cursor=cursor
    )


def update_vendor(session: Session, *, name: str, data: VendorUpdate) -> Vendor:
    vendor = get_by(session, Vendor, "vendor", for_update=True, name=name)
    check_version(vendor, data.version, f"vendor {name!r}")
    apply_fields(
        vendor, data.model_dump(exclude_unset=True, exclude_none=True, exclude={"version"})
    )
    session.flush()
    return vendor


def delete_vendor(session: Session, *, name: str) -> None:
    vendor = get_vendor(session, name=name)
    profiles = session.scalar(select(func.count()).where(HardwareProfile.vendor_id == vendor.id))
    if profiles:
        raise Conflict(f"vendor {name!r} still has {profiles} hardware profile(s)")
    session.delete(vendor)


# Profiles and versions -----------------------------------------------------------------


def create_profile(session: Session, *, data: ProfileCreate, actor: Actor) -> HardwareProfile:
    """A new profile with its first version."""
    vendor = get_vendor(session, name=data.vendor)
    taken = select(HardwareProfile.id).where(
        HardwareProfile.vendor_id == vendor.id, HardwareProfile.name == data.name
    )
    if session.scalar(taken):
        raise AlreadyExists(f"vendor {data.vendor!r} already has a profile {data.name!r}")
    profile = HardwareProfile(vendor=vendor, name=data.name, description=data.description)
    session.add(profile)
    session.flush()
    _add_version(session, profile, 1, data.spec.model_dump(), data.note, actor)
    return profile


def get_profile(session: Session, *, vendor: str, name: str) -> HardwareProfile:
    profile = session.scalar(
        select(HardwareProfile)
        .join(Vendor)
        .where(Vendor.name == vendor, HardwareProfile.name == name)
    )
    if profile is None:
        raise NotFound(
            f"no hardware profile {vendor}/{name}", details={"vendor": vendor, "name": name}
        )
    return profile


def list_profiles(
    session: Session, *, vendor: str | None, sort: str, limit: int, cursor: str | None
) -> Page[HardwareProfile]:
    stmt = select(HardwareProfile)
    if vendor is not None:
        stmt = stmt.where(HardwareProfile.vendor_id == get_vendor(session, name=vendor).id)
    key = parse_sort(sort, {"name": HardwareProfile.name, "created_at": HardwareProfile.created_at})
    return paginate(
        session, stmt, id_column=HardwareProfile.id, sort=key, limit=limit, cursor=cursor
    )


def add_version(
    session: Session, *, vendor: str, name: str, data: VersionCreate, actor: Actor
) -> ProfileVersion:
    profile = get_profile(session, vendor=vendor, name=name)
    latest = session.scalar(
        select(func.max(ProfileVersion.number)).where(ProfileVersion.profile_id == profile.id)
    )
    return _add_version(
        session, profile, (latest or 0) + 1, data.spec.model_dump(), data.note, actor
    )


def _add_version(
    session: Session,
    profile: HardwareProfile,
    number: int,
    spec: dict[str, Any],
    note: str,
    actor: Actor,
) -> ProfileVersion:
    version = ProfileVersion(
        profile=profile, number=number, spec=spec, note=note, created_by=actor.name
    )
    session.add(version)
    session.flush()
    return version


def get_version(session: Session, *, vendor: str, name: str, number: int) -> ProfileVersion:
    profile = get_profile(session, vendor=vendor, name=name)
    version = session.scalar(
        select(ProfileVersion).where(
            ProfileVersion.profile_id == profile.id, ProfileVersion.number == number
        )
    )
    if version is None:
        raise NotFound(f"hardware profile {vendor}/{name} has no version {number}")
    return version


def version_in_use(session: Session, version: ProfileVersion) -> bool:
    """Mapped to a machine class, requested or ordered: then it is frozen."""
    users = (
        exists().where(MachineClassProfile.profile_version_id == version.id),
        exists().where(RequestLine.profile_version_id == version.id),
        exists().where(OrderLine.profile_version_id == version.id),
    )
    return bool(session.scalar(select(or_(*users))))


def update_version(
    session: Session, *, vendor: str, name: str, number: int, data: VersionUpdate
) -> ProfileVersion:
    """Correct a version nothing uses yet; a used one is frozen."""
    version = get_version(session, vendor=vendor, name=name, number=number)
    if version_in_use(session, version):
        raise Conflict(
            f"version {number} of {vendor}/{name} is in use and cannot change; "
            "add a new version instead",
            details={"vendor": vendor, "profile": name, "version": number},
        )
    if data.spec is not None:
        version.spec = data.spec.model_dump()
    if data.note is not None:
        version.note = data.note
    session.flush()
    return version


def diff_versions(
    session: Session, *, vendor: str, name: str, old: int, new: int
) -> list[SpecChange]:
    """What changed from version `old` to version `new`, field by field."""
    before = get_version(session, vendor=vendor, name=name, number=old).spec
    after = get_version(session, vendor=vendor, name=name, number=new).spec
    flat_before, flat_after = _flatten(before), _flatten(after)
    return [
        SpecChange(field=field, old=flat_before.get(field), new=flat_after.get(field))
        for field in sorted(flat_before.keys() | flat_after.keys(), key=_natural)
        if flat_before.get(field) != flat_after.get(field)
    ]


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in items:
        flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _natural(field: str) -> list[Any]:
    return [(0, int(part)) if part.isdigit() else (1, part) for part in field.split(".")]


# Machine classes -----------------------------------------------------------------------


def set_class_profiles(
    session: Session, *, machine_class: str, data: MachineClassProfiles
) -> list[ProfileVersion]:
    """Replace the profile versions a machine class stands for."""
    cls = get_by(session, MachineClass, "machine class", name=machine_class)
    versions = [_version_of(session, ref) for ref in data.versions]
    if len({v.id for v in versions}) != len(versions):
        raise InvalidInput("a profile version is listed twice")
    session.execute(
        delete(MachineClassProfile).where(MachineClassProfile.machine_class_id == cls.id)
    )
    session.add_all(
        MachineClassProfile(machine_class_id=cls.id, profile_version_id=v.id) for v in versions
    )
    session.flush()
    return versions


def class_profiles(session: Session, *, machine_class: str) -> list[ProfileVersion]:
    cls = get_by(session, MachineClass, "machine class", name=machine_class)
    return list(
        session.scalars(
            select(ProfileVersion)
            .join(MachineClassProfile)
            .where(MachineClassProfile.machine_class_id == cls.id)
            .order_by(ProfileVersion.id)
        )
    )


def _version_of(session: Session, ref: ProfileRef) -> ProfileVersion:
    return get_version(session, vendor=ref.vendor, name=ref.profile, number=ref.version)
