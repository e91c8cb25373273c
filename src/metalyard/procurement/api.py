"""Procurement routes: thin wrappers over procurement.service."""

from typing import Annotated

from fastapi import Body, Path, Query, Request, status
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from metalyard.api.deps import ActorDep, IdPath, PageDep, SessionDep, SettingsDep
from metalyard.api.routing import secured_router
from metalyard.auth.changes.schemas import ChangeRequestOut, change_out
from metalyard.errors import InvalidInput
from metalyard.procurement import matching, orders, service
from metalyard.procurement.models import PurchaseOrder, PurchaseRequest, WebhookSubscription
from metalyard.procurement.schemas import (
    ApprovalReason,
    MachineClassProfiles,
    MatchOut,
    MatchRequest,
    OrderEventOut,
    OrderLineOut,
    OrderMove,
    ProfileCreate,
    ProfileOut,
    ProfileVersionOut,
    PurchaseOrderCreate,
    PurchaseOrderOut,
    PurchaseRequestCreate,
    PurchaseRequestOut,
    ReportOut,
    RequestLineOut,
    SerialImportResult,
    SpecChange,
    StageIn,
    StageMove,
    StageOut,
    VendorCreate,
    VendorOut,
    VendorUpdate,
    VersionCreate,
    VersionUpdate,
    WebhookCreate,
    WebhookOut,
    profile_out,
    version_out,
)
from metalyard.procurement.states import OrderState, RequestState
from metalyard.schemas import PageOut

vendors = secured_router(prefix="/vendors", tags=["procurement"])
profiles = secured_router(prefix="/profiles", tags=["procurement"])
machine_classes = secured_router(prefix="/machine-classes", tags=["procurement"])
requests = secured_router(prefix="/purchase-requests", tags=["procurement"])
purchase_orders = secured_router(prefix="/purchase-orders", tags=["procurement"])
procurement = secured_router(prefix="/procurement", tags=["procurement"])
routers = [vendors, profiles, machine_classes, requests, purchase_orders, procurement]

OrderNumber = Annotated[str, Path(max_length=32)]
ApprovalResponse = {202: {"model": ChangeRequestOut, "description": "Waiting for approval"}}

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


# Purchase requests ---------------------------------------------------------------------


def request_out(session, request: PurchaseRequest) -> PurchaseRequestOut:
    return PurchaseRequestOut(
        id=request.id,
        title=request.title,
        region=request.region,
        state=request.state,
        requested_by=request.requested_by,
        lines=[
            RequestLineOut(
                vendor=line.profile_version.profile.vendor.name,
                profile=line.profile_version.profile.name,
                version=line.profile_version.number,
                quantity=line.quantity,
            )
            for line in request.lines
        ],
        orders=orders.orders_of(session, request),
        created_at=request.created_at,
    )


@requests.get("", response_model=PageOut[PurchaseRequestOut])
def list_requests(session: SessionDep, page: PageDep, state: RequestState | None = None):
    found = orders.list_requests(session, state=state, limit=page.limit, cursor=page.cursor)
    return PageOut(
        items=[request_out(session, r) for r in found.items], next_cursor=found.next_cursor
    )


@requests.post("", response_model=PurchaseRequestOut, status_code=status.HTTP_201_CREATED)
def create_request(
    body: PurchaseRequestCreate, session: SessionDep, actor: ActorDep, settings: SettingsDep
):
    """Ask for servers (profiles and quantities) for this region."""
    request = orders.create_request(session, data=body, region=settings.region, actor=actor)
    return request_out(session, request)


@requests.get("/{request_id}", response_model=PurchaseRequestOut)
def get_request(request_id: IdPath, session: SessionDep):
    return request_out(session, orders.get_request(session, request_id=request_id))


@requests.post(
    "/{request_id}/approve", response_model=PurchaseRequestOut, responses=ApprovalResponse
)
def approve_request(
    request_id: IdPath,
    session: SessionDep,
    actor: ActorDep,
    settings: SettingsDep,
    body: Annotated[ApprovalReason | None, Body()] = None,
):
    """Approve: one order per vendor. By default this waits for a second person's approval."""
    result = orders.approve_request(
        session,
        request_id=request_id,
        reason=body.reason if body else "",
        actor=actor,
        policy=settings.maker_checker,
    )
    if isinstance(result, PurchaseRequest):
        return request_out(session, result)
    return JSONResponse(
        change_out(result).model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED
    )


@requests.post("/{request_id}/reject", response_model=PurchaseRequestOut)
def reject_request(request_id: IdPath, session: SessionDep, actor: ActorDep):
    return request_out(session, orders.reject_request(session, request_id=request_id, actor=actor))


# Purchase orders -----------------------------------------------------------------------


def order_out(session, order: PurchaseOrder) -> PurchaseOrderOut:
    counts = matching.line_counts(session, order)
    return PurchaseOrderOut(
        number=order.number,
        vendor=order.vendor.name,
        region=order.region,
        state=order.state,
        request_id=order.request_id,
        lines=[
            OrderLineOut(
                id=line.id,
                profile=line.profile_version.profile.name,
                version=line.profile_version.number,
                quantity=line.quantity,
                **counts[line.id],
            )
            for line in order.lines
        ],
        stages=[StageOut.model_validate(stage) for stage in order.stages],
        version=order.version,
        created_at=order.created_at,
        updated_at=order.updated_at,
    )


@purchase_orders.get("", response_model=PageOut[PurchaseOrderOut])
def list_orders(session: SessionDep, page: PageDep, state: OrderState | None = None):
    found = orders.list_orders(session, state=state, limit=page.limit, cursor=page.cursor)
    return PageOut(
        items=[order_out(session, o) for o in found.items], next_cursor=found.next_cursor
    )


@purchase_orders.post("", response_model=PurchaseOrderOut, status_code=status.HTTP_201_CREATED)
def create_order(
    body: PurchaseOrderCreate, session: SessionDep, actor: ActorDep, settings: SettingsDep
):
    """A draft order for one vendor (orders usually come from approved requests)."""
    order = orders.create_order(session, data=body, region=settings.region, actor=actor)
    return order_out(session, order)


@purchase_orders.get("/{number}", response_model=PurchaseOrderOut)
def get_order(number: OrderNumber, session: SessionDep):
    return order_out(session, orders.get_order(session, number=number))


@purchase_orders.post("/{number}/transition", response_model=PurchaseOrderOut)
def move_order(number: OrderNumber, body: OrderMove, session: SessionDep, actor: ActorDep):
    """Approve a draft, place an approved order with the vendor (`ordered`), or cancel."""
    return order_out(session, orders.move_order(session, number=number, data=body, actor=actor))


@purchase_orders.post(
    "/{number}/stages", response_model=PurchaseOrderOut, status_code=status.HTTP_201_CREATED
)
def add_stage(number: OrderNumber, body: StageIn, session: SessionDep, actor: ActorDep):
    """Split the delivery: a stage of so many units, expected on a date."""
    return order_out(session, orders.add_stage(session, number=number, data=body, actor=actor))


@purchase_orders.post("/{number}/stages/{stage}/transition", response_model=PurchaseOrderOut)
def move_stage(
    number: OrderNumber,
    stage: Annotated[int, Path(ge=1, le=10_000)],
    body: StageMove,
    session: SessionDep,
    actor: ActorDep,
):
    """planned → shipped → delivered → racked, one step at a time."""
    order = orders.move_stage(session, number=number, stage_number=stage, data=body, actor=actor)
    return order_out(session, order)


@purchase_orders.post(
    "/{number}/serials",
    response_model=SerialImportResult,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def import_serials(
    number: OrderNumber, request: Request, session: SessionDep, actor: ActorDep
):
    """The vendor's packing list as CSV (`serial[,profile]`): all rows or none."""
    try:
        text = (await request.body()).decode()
    except UnicodeDecodeError:
        raise InvalidInput("the packing list is not UTF-8 text") from None
    imported = await run_in_threadpool(
        orders.import_serials, session, number=number, text=text, actor=actor
    )
    return SerialImportResult(imported=imported)


@purchase_orders.get("/{number}/events", response_model=list[OrderEventOut])
def order_events(number: OrderNumber, session: SessionDep):
    """Every transition of the order and its stages, and its alerts, oldest first."""
    return [OrderEventOut.model_validate(e) for e in orders.events(session, number=number)]


# Matching, report, webhooks ------------------------------------------------------------


@procurement.post("/matches", response_model=MatchOut)
def match_asset(body: MatchRequest, session: SessionDep, actor: ActorDep, settings: SettingsDep):
    """Match a discovered asset to an order line (discovery calls this on every boot)."""
    return matching.match_asset(
        session, serial=body.serial, profile=body.profile, region=settings.region, actor=actor
    )


@procurement.post("/matches/{serial}/passed", response_model=MatchOut)
def mark_passed(serial: Annotated[str, Path(max_length=64)], session: SessionDep, actor: ActorDep):
    """The asset passed evaluation; its order closes once every unit has."""
    return matching.mark_passed(session, serial=serial, actor=actor)


@procurement.get(
    "/report",
    response_model=ReportOut,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def get_report(
    session: SessionDep,
    format: Annotated[str, Query(pattern="^(json|csv)$", description="json or csv")] = "json",
):
    """Ordered vs delivered vs racked vs SPARE per order and region, overdue units, and
    unknown assets."""
    found = matching.report(session)
    if format == "csv":
        return PlainTextResponse(matching.report_csv(found), media_type="text/csv")
    return found


@procurement.get("/webhooks", response_model=list[WebhookOut])
def list_webhooks(session: SessionDep):
    return [webhook_out(session, hook) for hook in orders.list_webhooks(session)]


@procurement.post("/webhooks", response_model=WebhookOut, status_code=status.HTTP_201_CREATED)
def add_webhook(body: WebhookCreate, session: SessionDep, actor: ActorDep):
    """Post one order's events (or every order's) to a URL; Slack-compatible payloads."""
    return webhook_out(session, orders.add_webhook(session, data=body, actor=actor))


@procurement.delete("/webhooks/{hook_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(hook_id: IdPath, session: SessionDep) -> None:
    orders.delete_webhook(session, hook_id=hook_id)


def webhook_out(session, hook: WebhookSubscription) -> WebhookOut:
    order = session.get(PurchaseOrder, hook.order_id) if hook.order_id else None
    return WebhookOut(
        id=hook.id,
        url=hook.url,
        order=order.number if order else None,
        created_by=hook.created_by,
        created_at=hook.created_at,
    )
