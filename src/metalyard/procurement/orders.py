"""Purchase requests, purchase orders and their delivery stages.

An order's state is partly set by people (approve, place, cancel) and partly follows from
its stages and units (partially delivered, delivered, closed): `derive_state` is the one
place that moves it on its own. Every move is an event (actor, reason) and each event is
posted to the order's webhook subscribers through the `procurement.notify` flow, started in
the same transaction.
"""

import csv
import io
import uuid
from collections import defaultdict

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from metalyard.auth.actor import Actor
from metalyard.auth.changes import service as changes
from metalyard.auth.changes.models import ChangeRequest
from metalyard.db.lookup import check_version, get_by
from metalyard.db.pagination import Page, SortKey, paginate
from metalyard.errors import Conflict, ForbiddenTransition, InvalidInput, NotFound
from metalyard.orchestrator import service as orchestrator
from metalyard.orchestrator.beans import Subject
from metalyard.procurement import flows, service
from metalyard.procurement.models import (
    AssetMatch,
    DeliveryStage,
    ExpectedSerial,
    OrderEvent,
    OrderLine,
    PurchaseOrder,
    PurchaseRequest,
    RequestLine,
    WebhookSubscription,
)
from metalyard.procurement.schemas import (
    LineIn,
    OrderMove,
    PurchaseOrderCreate,
    PurchaseRequestCreate,
    StageIn,
    StageMove,
    WebhookCreate,
)
from metalyard.procurement.states import (
    ARRIVED,
    ORDER_MOVES,
    STAGE_MOVES,
    MatchOutcome,
    OrderState,
    RequestState,
)

APPROVE_ACTION = "purchase_request.approve"
MAX_SERIALS = 100_000

# Requests ------------------------------------------------------------------------------


def create_request(
    session: Session, *, data: PurchaseRequestCreate, region: str, actor: Actor
) -> PurchaseRequest:
    request = PurchaseRequest(
        title=data.title,
        region=region,
        requested_by=actor.name,
        lines=[
            RequestLine(profile_version=_version(session, line), quantity=line.quantity)
            for line in data.lines
        ],
    )
    session.add(request)
    session.flush()
    return request


def get_request(session: Session, *, request_id: int) -> PurchaseRequest:
    return get_by(session, PurchaseRequest, "purchase request", id=request_id)


def list_requests(
    session: Session, *, state: RequestState | None, limit: int, cursor: str | None
) -> Page[PurchaseRequest]:
    stmt = select(PurchaseRequest)
    if state is not None:
        stmt = stmt.where(PurchaseRequest.state == state)
    key = SortKey(PurchaseRequest.id, True)
    return paginate(
        session, stmt, id_column=PurchaseRequest.id, sort=key, limit=limit, cursor=cursor
    )


def orders_of(session: Session, request: PurchaseRequest) -> list[str]:
    return list(
        session.scalars(
            select(PurchaseOrder.number)
            .where(PurchaseOrder.request_id == request.id)
            .order_by(PurchaseOrder.id)
        )
    )


def approve_request(
    session: Session, *, request_id: int, reason: str, actor: Actor, policy: list[str]
) -> PurchaseRequest | ChangeRequest:
    """Approve, or (the default policy) park the approval for a second person."""
    request = _open_request(session, request_id)
    if changes.needs_approval(APPROVE_ACTION, policy):
        return changes.request_change(
            session,
            action_name=APPROVE_ACTION,
            target=f"purchase-requests/{request.id}",
            payload={"request_id": request.id, "reason": reason},
            reason=reason,
            actor=actor,
        )
    _approve(session, request, reason, actor)
    return request


@changes.action(APPROVE_ACTION)
def _approve_parked(session: Session, actor: Actor, payload: dict) -> dict:
    request = _open_request(session, payload["request_id"])
    numbers = _approve(session, request, payload.get("reason", ""), actor)
    return {"request_id": request.id, "orders": numbers}


def _approve(session: Session, request: PurchaseRequest, reason: str, actor: Actor) -> list[str]:
    """One order per vendor (a request is for one region), each already approved."""
    by_vendor: dict[int, list[RequestLine]] = defaultdict(list)
    for line in request.lines:
        by_vendor[line.profile_version.profile.vendor_id].append(line)
    numbers = []
    for vendor_id, lines in by_vendor.items():
        order = _new_order(
            session,
            vendor_id=vendor_id,
            region=request.region,
            lines=[(line.profile_version, line.quantity) for line in lines],
            state=OrderState.APPROVED,
            request_id=request.id,
        )
        record(
            session,
            order,
            actor=actor,
            kind="order",
            subject=order.number,
            old="",
            new=OrderState.APPROVED,
            reason=reason or f"request {request.id}",
        )
        numbers.append(order.number)
    request.state = RequestState.APPROVED
    session.flush()
    return numbers


def reject_request(session: Session, *, request_id: int, actor: Actor) -> PurchaseRequest:
    request = _open_request(session, request_id)
    request.state = RequestState.REJECTED
    session.flush()
    return request


def _open_request(session: Session, request_id: int) -> PurchaseRequest:
    request = get_request(session, request_id=request_id)
    if request.state is not RequestState.OPEN:
        raise Conflict(f"purchase request {request_id} is already {request.state.value}")
    return request


# Orders --------------------------------------------------------------------------------


def create_order(
    session: Session, *, data: PurchaseOrderCreate, region: str, actor: Actor
) -> PurchaseOrder:
    """A draft order placed by hand (orders usually come from approved requests)."""
    vendor = service.get_vendor(session, name=data.vendor)
    lines = [(_version(session, line), line.quantity) for line in data.lines]
    for version, _ in lines:
        if version.profile.vendor_id != vendor.id:
            raise InvalidInput(
                f"profile {version.profile.vendor.name}/{version.profile.name} is not "
                f"from vendor {vendor.name!r}: one order, one vendor"
            )
    order = _new_order(
        session, vendor_id=vendor.id, region=region, lines=lines, state=OrderState.DRAFT
    )
    record(
        session,
        order,
        actor=actor,
        kind="order",
        subject=order.number,
        old="",
        new=OrderState.DRAFT,
        reason="created",
    )
    return order


def _new_order(
    session: Session,
    *,
    vendor_id: int,
    region: str,
    lines: list,
    state: OrderState,
    request_id: int | None = None,
) -> PurchaseOrder:
    order = PurchaseOrder(
        number=f"new-{uuid.uuid4().hex[:16]}",
        vendor_id=vendor_id,
        region=region,
        state=state,
        request_id=request_id,
        lines=[OrderLine(profile_version=v, quantity=q) for v, q in lines],
    )
    session.add(order)
    session.flush()
    order.number = f"PO-{order.id:06d}"  # from the id: unique without a counter to race on
    session.flush()
    return order


def get_order(session: Session, *, number: str) -> PurchaseOrder:
    return get_by(session, PurchaseOrder, "purchase order", number=number)


def list_orders(
    session: Session, *, state: OrderState | None, limit: int, cursor: str | None
) -> Page[PurchaseOrder]:
    stmt = select(PurchaseOrder)
    if state is not None:
        stmt = stmt.where(PurchaseOrder.state == state)
    key = SortKey(PurchaseOrder.id, True)
    return paginate(session, stmt, id_column=PurchaseOrder.id, sort=key, limit=limit, cursor=cursor)


def move_order(session: Session, *, number: str, data: OrderMove, actor: Actor) -> PurchaseOrder:
    """A move people make: approve, place with the vendor (ordered), cancel."""
    order = get_by(session, PurchaseOrder, "purchase order", for_update=True, number=number)
    check_version(order, data.version, f"order {number}")
    allowed = ORDER_MOVES[order.state]
    if data.to not in allowed:
        names = ", ".join(sorted(s.value for s in allowed)) or "none (it moves on its own)"
        raise ForbiddenTransition(
            f"order {number} cannot go from {order.state.value} to {data.to.value}; "
            f"allowed: {names}",
            details={"from": order.state.value, "to": data.to.value},
        )
    old, order.state = order.state, data.to
    record(
        session,
        order,
        actor=actor,
        kind="order",
        subject=number,
        old=old,
        new=data.to,
        reason=data.reason,
    )
    derive_state(session, order, actor)
    return order


def add_stage(session: Session, *, number: str, data: StageIn, actor: Actor) -> PurchaseOrder:
    order = get_order(session, number=number)
    if order.state in (OrderState.CLOSED, OrderState.CANCELLED):
        raise Conflict(f"order {number} is {order.state.value}: no more deliveries")
    staged = sum(stage.quantity for stage in order.stages)
    total = sum(line.quantity for line in order.lines)
    if staged + data.quantity > total:
        raise InvalidInput(
            f"order {number} has {total} unit(s), {staged} already in stages: "
            f"a stage of {data.quantity} is too many"
        )
    stage = DeliveryStage(
        number=len(order.stages) + 1, quantity=data.quantity, expected_on=data.expected_on
    )
    order.stages.append(stage)
    session.flush()
    record(
        session,
        order,
        actor=actor,
        kind="stage",
        subject=f"stage {stage.number}",
        old="",
        new=stage.state,
        reason=f"{stage.quantity} unit(s) by {stage.expected_on}",
    )
    return order


def move_stage(
    session: Session, *, number: str, stage_number: int, data: StageMove, actor: Actor
) -> PurchaseOrder:
    order = get_order(session, number=number)
    stage = next((s for s in order.stages if s.number == stage_number), None)
    if stage is None:
        raise NotFound(f"order {number} has no stage {stage_number}")
    if order.state in (OrderState.DRAFT, OrderState.APPROVED, OrderState.CANCELLED):
        raise Conflict(f"order {number} is {order.state.value}: nothing ships before it is ordered")
    if STAGE_MOVES[stage.state] is not data.to:
        following = STAGE_MOVES[stage.state]
        raise ForbiddenTransition(
            f"stage {stage_number} of {number} cannot go from {stage.state.value} to "
            f"{data.to.value}; next is {following.value if following else 'nothing'}",
            details={"from": stage.state.value, "to": data.to.value},
        )
    old, stage.state = stage.state, data.to
    record(
        session,
        order,
        actor=actor,
        kind="stage",
        subject=f"stage {stage_number}",
        old=old,
        new=data.to,
        reason=data.reason,
    )
    derive_state(session, order, actor)
    return order


def derive_state(session: Session, order: PurchaseOrder, actor: Actor) -> None:
    """Move an ordered order on by what has arrived and what has passed evaluation."""
    if order.state not in (
        OrderState.ORDERED,
        OrderState.PARTIALLY_DELIVERED,
        OrderState.DELIVERED,
    ):
        return
    total = sum(line.quantity for line in order.lines)
    arrived = sum(stage.quantity for stage in order.stages if stage.state in ARRIVED)
    discovered, passed = unit_counts(session, order)
    delivered = max(arrived, discovered)
    if passed >= total:
        new = OrderState.CLOSED
    elif delivered >= total:
        new = OrderState.DELIVERED
    elif delivered > 0:
        new = OrderState.PARTIALLY_DELIVERED
    else:
        new = OrderState.ORDERED
    if new is not order.state:
        old, order.state = order.state, new
        reason = f"{delivered}/{total} delivered, {passed}/{total} passed evaluation"
        record(
            session,
            order,
            actor=actor,
            kind="order",
            subject=order.number,
            old=old,
            new=new,
            reason=reason,
        )


def unit_counts(session: Session, order: PurchaseOrder) -> tuple[int, int]:
    """(units discovered, units that passed evaluation) for an order."""
    row = session.execute(
        select(func.count(), func.count(AssetMatch.passed_at))
        .join(OrderLine, AssetMatch.line_id == OrderLine.id)
        .where(OrderLine.order_id == order.id, AssetMatch.outcome == MatchOutcome.MATCHED)
    ).one()
    return row[0], row[1]


def import_serials(session: Session, *, number: str, text: str, actor: Actor) -> int:
    """Expected serials from the vendor's packing list (CSV: serial[,profile]); all or nothing.

    `profile` (NAME or NAME@VERSION) picks the line; it may be left out when the order has
    one line.
    """
    order = get_order(session, number=number)
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "serial" not in reader.fieldnames:
        raise InvalidInput("the packing list needs a header row with a `serial` column")
    rows, errors = [], []
    for row_number, row in enumerate(reader, start=2):
        serial = (row.get("serial") or "").strip()
        try:
            line = _line_for(order, (row.get("profile") or "").strip())
            if not serial or len(serial) > 64:
                raise InvalidInput("serial must be 1 to 64 characters")
        except InvalidInput as error:
            errors.append({"row": row_number, "serial": serial, "reason": error.message})
            continue
        rows.append((row_number, serial, line))
    seen: dict[str, int] = {}
    for row_number, serial, _ in rows:
        if serial in seen:
            errors.append(
                {"row": row_number, "serial": serial, "reason": f"repeats row {seen[serial]}"}
            )
        seen.setdefault(serial, row_number)
    taken = (
        set(session.scalars(select(ExpectedSerial.serial).where(ExpectedSerial.serial.in_(seen))))
        if seen
        else set()
    )
    for row_number, serial, _ in rows:
        if serial in taken:
            errors.append(
                {"row": row_number, "serial": serial, "reason": "already expected by an order"}
            )
    if len(rows) > MAX_SERIALS:
        raise InvalidInput(f"at most {MAX_SERIALS} serials per packing list")
    if errors:
        errors.sort(key=lambda e: e["row"])
        first = errors[0]
        raise InvalidInput(
            f"{len(errors)} bad row(s) in the packing list, nothing imported; "
            f"first: row {first['row']}: {first['reason']}",
            details=errors,
        )
    session.add_all(ExpectedSerial(line_id=line.id, serial=serial) for _, serial, line in rows)
    session.flush()
    record(
        session,
        order,
        actor=actor,
        kind="order",
        subject=number,
        old="",
        new="",
        reason=f"{len(rows)} expected serial(s) imported",
    )
    return len(rows)


def _line_for(order: PurchaseOrder, profile: str) -> OrderLine:
    if not profile:
        if len(order.lines) == 1:
            return order.lines[0]
        raise InvalidInput(f"order {order.number} has several lines: name the profile")
    name, _, version = profile.partition("@")
    for line in order.lines:
        pv = line.profile_version
        if pv.profile.name == name and (not version or version == str(pv.number)):
            return line
    raise InvalidInput(f"order {order.number} has no line for profile {profile!r}")


def events(session: Session, *, number: str) -> list[OrderEvent]:
    order = get_order(session, number=number)
    return list(
        session.scalars(
            select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.id)
        )
    )


# Events and webhooks -------------------------------------------------------------------


def record(
    session: Session,
    order: PurchaseOrder | None,
    *,
    actor: Actor,
    kind: str,
    subject: str,
    old: str,
    new: str,
    reason: str,
) -> OrderEvent:
    """Keep the event, and start its delivery to every subscriber in this transaction."""
    event = OrderEvent(
        order_id=order.id if order else None,
        actor=actor.label,
        kind=kind,
        subject=subject,
        from_state=str(old),
        to_state=str(new),
        reason=reason,
    )
    session.add(event)
    session.flush()
    subscribers = select(WebhookSubscription).where(
        WebhookSubscription.order_id.is_(None)
        if order is None
        else or_(WebhookSubscription.order_id.is_(None), WebhookSubscription.order_id == order.id)
    )
    targets = [
        (Subject("webhook", f"{event.id}.{hook.id}"), {"url": hook.url, "payload": payload})
        for hook in session.scalars(subscribers)
        for payload in [_payload(event, order)]
    ]
    if targets:
        orchestrator.start_runs(session, flow=flows.notify, targets=targets, actor=actor.label)
    return event


def _payload(event: OrderEvent, order: PurchaseOrder | None) -> dict:
    """Slack-compatible (`text`), with the event's fields for other receivers."""
    where = f"{order.number} ({order.vendor.name}, {order.region})" if order else "procurement"
    move = f"{event.from_state} → {event.to_state}" if event.from_state else event.to_state
    text = f"{where}: {event.subject} {move}".rstrip() + f" by {event.actor}"
    if event.reason:
        text += f": {event.reason}"
    return {
        "text": text,
        "order": order.number if order else None,
        "kind": event.kind,
        "subject": event.subject,
        "from": event.from_state,
        "to": event.to_state,
        "actor": event.actor,
        "reason": event.reason,
        "at": event.at.isoformat(),
    }


def add_webhook(session: Session, *, data: WebhookCreate, actor: Actor) -> WebhookSubscription:
    order_id = get_order(session, number=data.order).id if data.order else None
    hook = WebhookSubscription(order_id=order_id, url=data.url, created_by=actor.name)
    session.add(hook)
    session.flush()
    return hook


def list_webhooks(session: Session) -> list[WebhookSubscription]:
    return list(session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id)))


def delete_webhook(session: Session, *, hook_id: int) -> None:
    session.delete(get_by(session, WebhookSubscription, "webhook subscription", id=hook_id))


def _version(session: Session, line: LineIn):
    return service.get_version(session, vendor=line.vendor, name=line.profile, number=line.version)
