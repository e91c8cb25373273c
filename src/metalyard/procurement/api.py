"""Procurement routes: thin wrappers over procurement.service."""

from typing import Annotated

from fastapi import Path, Query, status

from metalyard.api.deps import ActorDep, PageDep, SessionDep
from metalyard.api.routing import secured_router
from metalyard.procurement import service
from metalyard.procurement.schemas import (
    MachineClassProfiles,
    ProfileCreate,
    ProfileOut,
    ProfileVersionOut,
    SpecChange,
    VendorCreate,
    VendorOut,
    VendorUpdate,
    VersionCreate,
    VersionUpdate,
    profile_out,
    version_out,
)
from metalyard.schemas import PageOut

vendors = secured_router(prefix="/vendors", tags=["procurement"])
profiles = secured_router(prefix="/profiles", tags=["procurement"])
machine_classes = secured_router(prefix="/machine-classes", tags=["procurement"])
routers = [vendors, profiles, machine_classes]

NamePath = Annotated[str, Path(max_length=64)]
NumberPath = Annotated[int, Path(ge=1, le=2**31 - 1)]
SortQuery = Annotated[
    str, Query(max_length=32, description="Field to sort by; `-` for descending.")
]


# Vendors -------------------------------------------------------------------------------


@vendors.get("", response_model=PageOut[VendorOut])
def list_vendors(session: SessionDep, page: PageDep, sort: SortQuery = "name"):
    return service.list_vendors(session, sort=sort, limit=page.limit, cursor=page.cursor)


@vendors.post("", response_model=VendorOut, status_code=status.HTTP_201_CREATED)
def create_vendor(body: VendorCreate, session: SessionDep):
    return service.create_vendor(session, data=body)


@vendors.get("/{name}", response_model=VendorOut)
def get_vendor(name: NamePath, session: SessionDep):
    return service.get_vendor(session, name=name)


@vendors.patch("/{name}", response_model=VendorOut)
def update_vendor(name: NamePath, body: VendorUpdate, session: SessionDep):
    return service.update_vendor(session, name=name, data=body)


@vendors.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_vendor(name: NamePath, session: SessionDep) -> None:
    service.delete_vendor(session, name=name)


# Hardware profiles ---------------------------------------------------------------------


@profiles.get("", response_model=PageOut[ProfileOut])
def list_profiles(
    session: SessionDep,
    page: PageDep,
    vendor: Annotated[str | None, Query(max_length=64)] = None,
    sort: SortQuery = "name",
):
    found = service.list_profiles(
        session, vendor=vendor, sort=sort, limit=page.limit, cursor=page.cursor
    )
    return PageOut(items=[profile_out(p) for p in found.items], next_cursor=found.next_cursor)


@profiles.post("", response_model=ProfileOut, status_code=status.HTTP_201_CREATED)
def create_profile(body: ProfileCreate, session: SessionDep, actor: ActorDep):
    """A new hardware profile and its version 1."""
    return profile_out(service.create_profile(session, data=body, actor=actor))


@profiles.get("/{vendor}/{name}", response_model=ProfileOut)
def get_profile(vendor: NamePath, name: NamePath, session: SessionDep):
    return profile_out(service.get_profile(session, vendor=vendor, name=name))


@profiles.post(
    "/{vendor}/{name}/versions",
    response_model=ProfileVersionOut,
    status_code=status.HTTP_201_CREATED,
)
def add_version(
    vendor: NamePath, name: NamePath, body: VersionCreate, session: SessionDep, actor: ActorDep
):
    """A new generation or configuration: the next version number."""
    version = service.add_version(session, vendor=vendor, name=name, data=body, actor=actor)
    return version_out(version, in_use=False)


@profiles.get("/{vendor}/{name}/versions/{number}", response_model=ProfileVersionOut)
def get_version(vendor: NamePath, name: NamePath, number: NumberPath, session: SessionDep):
    version = service.get_version(session, vendor=vendor, name=name, number=number)
    return version_out(version, in_use=service.version_in_use(session, version))


@profiles.patch("/{vendor}/{name}/versions/{number}", response_model=ProfileVersionOut)
def update_version(
    vendor: NamePath, name: NamePath, number: NumberPath, body: VersionUpdate, session: SessionDep
):
    """Correct a version nothing uses yet (409 once it is used: add a version instead)."""
    version = service.update_version(session, vendor=vendor, name=name, number=number, data=body)
    return version_out(version, in_use=False)


@profiles.get("/{vendor}/{name}/diff", response_model=list[SpecChange])
def diff_versions(
    vendor: NamePath,
    name: NamePath,
    session: SessionDep,
    old: Annotated[int, Query(alias="from", ge=1, le=2**31 - 1)],
    new: Annotated[int, Query(alias="to", ge=1, le=2**31 - 1)],
):
    """What changed between two versions, field by field."""
    return service.diff_versions(session, vendor=vendor, name=name, old=old, new=new)


# Machine classes -----------------------------------------------------------------------


@machine_classes.get("/{name}/profile-versions", response_model=list[ProfileVersionOut])
def get_class_profiles(name: NamePath, session: SessionDep):
    return [
        version_out(v, in_use=True) for v in service.class_profiles(session, machine_class=name)
    ]


@machine_classes.put("/{name}/profile-versions", response_model=list[ProfileVersionOut])
def set_class_profiles(name: NamePath, body: MachineClassProfiles, session: SessionDep):
    """Replace the profile versions the class stands for; they are frozen from now on."""
    versions = service.set_class_profiles(session, machine_class=name, data=body)
    return [version_out(v, in_use=True) for v in versions]
