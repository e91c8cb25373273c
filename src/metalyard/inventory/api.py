"""Inventory routes: thin wrappers over inventory.service."""

from typing import Annotated

from fastapi import Path, Query, Request, Response, status
from fastapi.responses import JSONResponse

from metalyard.api.deps import (
    ActorDep,
    ETaggedDep,
    IdPath,
    PageDep,
    RawBody,
    SessionDep,
    SettingsDep,
    VersionedDep,
    etag,
    etag_responses,
    json_body,
)
from metalyard.api.routing import secured_router
from metalyard.auth.changes.schemas import ChangeRequestOut, change_out
from metalyard.inventory import service
from metalyard.inventory.documents import page_json
from metalyard.inventory.lifecycle import AssetState, Health
from metalyard.inventory.schemas import (
    AssetCreate,
    AssetImport,
    AssetOut,
    AssetUpdate,
    ImportResult,
    MachineClassCreate,
    MachineClassOut,
    MachineClassUpdate,
    RackCreate,
    RackOut,
    RackUpdate,
    SiteCreate,
    SiteOut,
    SiteUpdate,
    StateChangeOut,
    TagChange,
    TagFilter,
    TransitionRequest,
    asset_out,
    rack_out,
)
from metalyard.schemas import Name, PageOut

sites = secured_router(prefix="/sites", tags=["sites"])
racks = secured_router(prefix="/racks", tags=["racks"])
machine_classes = secured_router(prefix="/machine-classes", tags=["machine classes"])
assets = secured_router(prefix="/assets", tags=["assets"])
routers = [sites, racks, machine_classes, assets]

SiteName = Annotated[str, Path(max_length=64)]
SerialPath = Annotated[str, Path(max_length=64)]
SortQuery = Annotated[
    str, Query(max_length=32, description="Field to sort by; `-` for descending.")
]
ApprovalResponse = {202: {"model": ChangeRequestOut, "description": "Waiting for approval"}}
JSON = "application/json"
"""Asset reads answer with the JSON the database wrote (see inventory.documents);
`response_model` still documents its shape."""


# Sites ---------------------------------------------------------------------------------


@sites.get("", response_model=PageOut[SiteOut])
def list_sites(session: SessionDep, page: PageDep, sort: SortQuery = "name"):
    return service.list_sites(session, sort=sort, limit=page.limit, cursor=page.cursor)


@sites.post("", response_model=SiteOut, status_code=status.HTTP_201_CREATED, **etag_responses(201))
def create_site(body: SiteCreate, session: SessionDep, reply: ETaggedDep):
    return reply.answer(service.create_site(session, data=body))


@sites.get("/{name}", response_model=SiteOut, **etag_responses(200))
def get_site(name: SiteName, session: SessionDep, reply: ETaggedDep):
    return reply.answer(service.get_site(session, name=name))


@sites.patch("/{name}", response_model=SiteOut, **etag_responses(200))
def update_site(name: SiteName, body: SiteUpdate, session: SessionDep, change: VersionedDep):
    return change.answer(service.update_site(session, name=name, data=change.of(body)))


@sites.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_site(name: SiteName, session: SessionDep) -> None:
    service.delete_site(session, name=name)


# Racks ---------------------------------------------------------------------------------


@racks.get("", response_model=PageOut[RackOut])
def list_racks(
    session: SessionDep,
    page: PageDep,
    site: Name | None = None,
    name: Annotated[Name | None, Query(description="Rack name (unique within a site).")] = None,
    sort: SortQuery = "id",
):
    result = service.list_racks(
        session, site=site, name=name, sort=sort, limit=page.limit, cursor=page.cursor
    )
    return PageOut(items=[rack_out(r) for r in result.items], next_cursor=result.next_cursor)


@racks.post("", response_model=RackOut, status_code=status.HTTP_201_CREATED, **etag_responses(201))
def create_rack(body: RackCreate, session: SessionDep, reply: ETaggedDep):
    return rack_out(reply.answer(service.create_rack(session, data=body)))


@racks.get("/{rack_id}", response_model=RackOut, **etag_responses(200))
def get_rack(rack_id: IdPath, session: SessionDep, reply: ETaggedDep):
    return rack_out(reply.answer(service.get_rack(session, rack_id=rack_id)))


@racks.patch("/{rack_id}", response_model=RackOut, **etag_responses(200))
def update_rack(rack_id: IdPath, body: RackUpdate, session: SessionDep, change: VersionedDep):
    rack = service.update_rack(session, rack_id=rack_id, data=change.of(body))
    return rack_out(change.answer(rack))


@racks.delete("/{rack_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_rack(rack_id: IdPath, session: SessionDep) -> None:
    service.delete_rack(session, rack_id=rack_id)


# Machine classes -----------------------------------------------------------------------


@machine_classes.get("", response_model=PageOut[MachineClassOut])
def list_machine_classes(session: SessionDep, page: PageDep, sort: SortQuery = "name"):
    return service.list_machine_classes(session, sort=sort, limit=page.limit, cursor=page.cursor)


@machine_classes.post(
    "", response_model=MachineClassOut, status_code=status.HTTP_201_CREATED, **etag_responses(201)
)
def create_machine_class(body: MachineClassCreate, session: SessionDep, reply: ETaggedDep):
    return reply.answer(service.create_machine_class(session, data=body))


@machine_classes.get("/{name}", response_model=MachineClassOut, **etag_responses(200))
def get_machine_class(name: SiteName, session: SessionDep, reply: ETaggedDep):
    return reply.answer(service.get_machine_class(session, name=name))


@machine_classes.patch("/{name}", response_model=MachineClassOut, **etag_responses(200))
def update_machine_class(
    name: SiteName, body: MachineClassUpdate, session: SessionDep, change: VersionedDep
):
    return change.answer(service.update_machine_class(session, name=name, data=change.of(body)))


@machine_classes.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_machine_class(name: SiteName, session: SessionDep) -> None:
    service.delete_machine_class(session, name=name)


# Assets --------------------------------------------------------------------------------


@assets.get("", response_model=PageOut[AssetOut])
def list_assets(
    session: SessionDep,
    page: PageDep,
    state: Annotated[list[AssetState], Query(max_length=8)] = [],  # noqa: B006
    site: Name | None = None,
    rack: Name | None = None,
    machine_class: Name | None = None,
    owner_team: Name | None = None,
    project: Name | None = None,
    health: Health | None = None,
    maintenance: bool | None = None,
    tag: Annotated[
        list[TagFilter],
        Query(max_length=16, description="`key=value`, or `key` for any value; repeat to AND."),
    ] = [],  # noqa: B006
    q: Annotated[
        str | None, Query(max_length=64, description="Text in serial or hostname.")
    ] = None,
    sort: SortQuery = "id",
):
    where = service.AssetFilter(
        states=state,
        site=site,
        rack=rack,
        machine_class=machine_class,
        owner_team=owner_team,
        project=project,
        health=health,
        maintenance=maintenance,
        tags=tag,
        q=q,
    )
    result = service.list_assets(
        session, where=where, sort=sort, limit=page.limit, cursor=page.cursor
    )
    return Response(page_json(result.items, result.next_cursor), media_type=JSON)


@assets.post(
    "", response_model=AssetOut, status_code=status.HTTP_201_CREATED, **etag_responses(201)
)
def create_asset(body: AssetCreate, session: SessionDep, actor: ActorDep, reply: ETaggedDep):
    return asset_out(reply.answer(service.create_asset(session, data=body, actor=actor)))


@assets.post(
    "/import",
    response_model=ImportResult,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=json_body(AssetImport),
)
def import_assets(body: RawBody, session: SessionDep, actor: ActorDep, request: Request):
    """All or nothing: any invalid row rejects the whole import, with every row's errors."""
    serials = service.import_assets(session, body=body, actor=actor)
    request.state.audit_summary = {"rows": len(serials)}
    return ImportResult(created=len(serials), serials=serials)


@assets.get("/{serial}", response_model=AssetOut, **etag_responses(200))
def get_asset(serial: SerialPath, session: SessionDep):
    asset = service.get_asset_document(session, serial=serial)
    return Response(asset.json, media_type=JSON, headers={"ETag": etag(asset.version)})


@assets.patch("/{serial}", response_model=AssetOut, **etag_responses(200))
def update_asset(serial: SerialPath, body: AssetUpdate, session: SessionDep, change: VersionedDep):
    """Send the `version` you read (or its ETag as If-Match): a stale write is refused with 409."""
    return asset_out(
        change.answer(service.update_asset(session, serial=serial, data=change.of(body)))
    )


@assets.post("/{serial}/tags", response_model=AssetOut, **etag_responses(200))
def change_tags(serial: SerialPath, body: TagChange, session: SessionDep, change: VersionedDep):
    asset = service.change_tags(session, serial=serial, change=change.of(body))
    return asset_out(change.answer(asset))


@assets.post(
    "/{serial}/transition",
    response_model=AssetOut,
    **etag_responses(200, responses=ApprovalResponse),
)
def transition_asset(
    serial: SerialPath,
    body: TransitionRequest,
    session: SessionDep,
    actor: ActorDep,
    settings: SettingsDep,
    change: VersionedDep,
):
    """Move the asset along its lifecycle; some moves wait for a second person's approval."""
    result = service.request_transition(
        session,
        serial=serial,
        to=body.to,
        reason=body.reason,
        actor=actor,
        policy=settings.maker_checker,
        version=change.expected(body.version),
    )
    if isinstance(result, service.Asset):
        return asset_out(change.answer(result))
    return _accepted(result)


@assets.get("/{serial}/history", response_model=PageOut[StateChangeOut])
def asset_history(serial: SerialPath, session: SessionDep, page: PageDep):
    return service.history(session, serial=serial, limit=page.limit, cursor=page.cursor)


@assets.delete("/{serial}", status_code=status.HTTP_204_NO_CONTENT, responses=ApprovalResponse)
def delete_asset(
    serial: SerialPath,
    session: SessionDep,
    actor: ActorDep,
    settings: SettingsDep,
    reason: Annotated[str, Query(max_length=1024)] = "",
):
    change = service.delete_asset(
        session, serial=serial, reason=reason, actor=actor, policy=settings.maker_checker
    )
    return Response(status_code=204) if change is None else _accepted(change)


def _accepted(change) -> JSONResponse:
    return JSONResponse(
        change_out(change).model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED
    )
