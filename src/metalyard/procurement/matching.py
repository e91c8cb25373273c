"""Matching discovered servers to order lines, and the reconciliation report.

A server is matched by its serial on a packing list first, else by vendor, profile version
and region against an open order line with room left. Anything else is raised: more units
than ordered are an over-delivery alert, a server nobody ordered is an unknown asset. Nothing
is adopted silently.
"""

import csv
import io
from collections import defaultdict
from datetime import date

from sqlalchemy import func, select, union_all
from sqlalchemy.orm import Session

from metalyard.auth.actor import Actor
from metalyard.db import utcnow
from metalyard.db.lookup import get_by
from metalyard.errors import Conflict
from metalyard.inventory.lifecycle import AssetState
from metalyard.inventory.models import Asset
from metalyard.procurement import orders, service
from metalyard.procurement.models import (
    AssetMatch,
    ExpectedSerial,
    HardwareProfile,
    MachineClassProfile,
    OrderLine,
    ProfileVersion,
    PurchaseOrder,
    Vendor,
)
from metalyard.procurement.schemas import (
    MatchOut,
    ProfileRef,
    RegionTotals,
    ReportOut,
    ReportRow,
)
from metalyard.procurement.states import ARRIVED, OPEN_ORDERS, MatchOutcome, StageState

PASSED = frozenset(
    {AssetState.SPARE, AssetState.PROVISIONING, AssetState.BAREMETAL, AssetState.RELEASING}
)


def match_asset(
    session: Session, *, serial: str, profile: ProfileRef | None, region: str, actor: Actor
) -> MatchOut:
    """Match once: a matched server keeps its line on every later boot (re-walks are no-ops);
    an unmatched one is tried again, and raised again only if the reason changed."""
    asset = get_by(session, Asset, "asset", serial=serial)
    existing = session.get(AssetMatch, asset.id)
    if existing is not None and existing.outcome is MatchOutcome.MATCHED:
        return _out(session, asset, existing, "already matched")
    line = _line_by_serial(session, serial)
    reason = "serial on the packing list"
    outcome = MatchOutcome.MATCHED
    if line is None:
        candidates = _candidate_versions(session, asset, profile)
        line, full = _open_line(session, candidates, region)
        reason = "vendor, profile and region, with room on the line"
        if line is None:
            outcome = MatchOutcome.OVER_DELIVERED if full else MatchOutcome.UNKNOWN
            line = full
    if existing is not None and existing.outcome is outcome:
        return _out(session, asset, existing, "raised before: still unmatched")
    match = existing or AssetMatch(asset_id=asset.id)
    match.line_id = line.id if line and outcome is MatchOutcome.MATCHED else None
    match.outcome = outcome
    match.matched_at = utcnow()
    session.add(match)
    session.flush()
    order = session.get(PurchaseOrder, line.order_id) if line else None
    if outcome is MatchOutcome.MATCHED:
        orders.record(
            session,
            order,
            actor=actor,
            kind="match",
            subject=serial,
            old="",
            new="discovered",
            reason=reason,
        )
        orders.derive_state(session, order, actor)
    elif outcome is MatchOutcome.OVER_DELIVERED:
        reason = f"more units than ordered: every unit of {order.number} has arrived"
        orders.record(
            session,
            order,
            actor=actor,
            kind="alert",
            subject=serial,
            old="",
            new="over_delivered",
            reason=reason,
        )
    else:
        reason = "its serial is on no packing list and no open order has room for its profile"
        orders.record(
            session,
            None,
            actor=actor,
            kind="alert",
            subject=serial,
            old="",
            new="unknown_asset",
            reason=reason,
        )
    return _out(session, asset, match, reason)


def mark_passed(session: Session, *, serial: str, actor: Actor) -> MatchOut:
    """The asset passed evaluation; its order closes when every unit has."""
    asset = get_by(session, Asset, "asset", serial=serial)
    match = session.get(AssetMatch, asset.id)
    if match is None:
        raise Conflict(f"asset {serial!r} was never matched to an order: match it first")
    if match.passed_at is None:
        match.passed_at = utcnow()
        session.flush()
        if match.line_id is not None:
            line = session.get(OrderLine, match.line_id)
            orders.derive_state(session, session.get(PurchaseOrder, line.order_id), actor)
    return _out(session, asset, match, "passed evaluation")


def _line_by_serial(session: Session, serial: str) -> OrderLine | None:
    return session.scalar(
        select(OrderLine)
        .join(ExpectedSerial, ExpectedSerial.line_id == OrderLine.id)
        .where(ExpectedSerial.serial == serial)
    )


def _candidate_versions(session: Session, asset: Asset, profile: ProfileRef | None) -> list[int]:
    """The profile versions the server may be: what evaluation found, else its machine
    class's versions of its vendor."""
    if profile is not None:
        version = service.get_version(
            session, vendor=profile.vendor, name=profile.profile, number=profile.version
        )
        return [version.id]
    if asset.machine_class_id is None:
        return []
    versions = (
        select(ProfileVersion.id)
        .join(MachineClassProfile)
        .where(MachineClassProfile.machine_class_id == asset.machine_class_id)
    )
    vendor = asset.vendor.strip().lower()
    if vendor:
        versions = (
            versions.join(HardwareProfile, HardwareProfile.id == ProfileVersion.profile_id)
            .join(Vendor)
            .where(func.lower(Vendor.name) == vendor)
        )
    return list(session.scalars(versions))


def _open_line(
    session: Session, versions: list[int], region: str
) -> tuple[OrderLine | None, OrderLine | None]:
    """(the oldest line with room, else a full line the server would have fitted).

    The lines are locked before their units are counted: on PostgreSQL a second server
    matched at the same time waits here, then counts the unit the first one took, so two
    servers never share a line's last unit. (SQLite's writers take turns anyway.)
    """
    if not versions:
        return None, None
    lines = session.scalars(
        select(OrderLine)
        .join(PurchaseOrder)
        .where(
            OrderLine.profile_version_id.in_(versions),
            PurchaseOrder.state.in_(OPEN_ORDERS),
            PurchaseOrder.region == region,
        )
        .order_by(PurchaseOrder.id, OrderLine.id)
        .with_for_update(of=OrderLine)
    ).all()
    used = _units_spoken_for(session, [line.id for line in lines]) if lines else {}
    full = None
    for line in lines:
        if used.get(line.id, 0) < line.quantity:
            return line, None
        full = full or line
    return None, full


def _units_spoken_for(session: Session, line_ids: list[int]) -> dict[int, int]:
    """Per line: the servers matched to it, plus the serials on its packing list that have
    not been matched yet (those servers are on their way and will claim their unit)."""
    taken = select(AssetMatch.line_id).where(
        AssetMatch.line_id.in_(line_ids), AssetMatch.outcome == MatchOutcome.MATCHED
    )
    awaited = (
        select(ExpectedSerial.line_id)
        .outerjoin(Asset, Asset.serial == ExpectedSerial.serial)
        .outerjoin(AssetMatch, AssetMatch.asset_id == Asset.id)
        .where(ExpectedSerial.line_id.in_(line_ids), AssetMatch.asset_id.is_(None))
    )
    units = union_all(taken, awaited).subquery()
    counted = select(units.c.line_id, func.count()).group_by(units.c.line_id)
    return {line_id: count for line_id, count in session.execute(counted)}


def _out(session: Session, asset: Asset, match: AssetMatch, reason: str) -> MatchOut:
    number = None
    if match.line_id is not None:
        number = session.scalar(
            select(PurchaseOrder.number).join(OrderLine).where(OrderLine.id == match.line_id)
        )
    return MatchOut(
        serial=asset.serial,
        outcome=match.outcome,
        order=number,
        line_id=match.line_id,
        reason=reason,
    )


def line_counts(session: Session, order: PurchaseOrder) -> dict[int, dict[str, int]]:
    """Per line of the order: expected serials, units discovered, units passed."""
    counts = {
        line.id: {"expected_serials": 0, "discovered": 0, "passed": 0} for line in order.lines
    }
    expected = session.execute(
        select(ExpectedSerial.line_id, func.count())
        .where(ExpectedSerial.line_id.in_(counts))
        .group_by(ExpectedSerial.line_id)
    )
    for line_id, count in expected:
        counts[line_id]["expected_serials"] = count
    matched = session.execute(
        select(AssetMatch.line_id, func.count(), func.count(AssetMatch.passed_at))
        .where(AssetMatch.line_id.in_(counts), AssetMatch.outcome == MatchOutcome.MATCHED)
        .group_by(AssetMatch.line_id)
    )
    for line_id, discovered, passed in matched:
        counts[line_id].update(discovered=discovered, passed=passed)
    return counts


def unknown_assets(session: Session) -> list[str]:
    return list(
        session.scalars(
            select(Asset.serial)
            .join(AssetMatch, AssetMatch.asset_id == Asset.id)
            .where(AssetMatch.outcome == MatchOutcome.UNKNOWN)
            .order_by(Asset.serial)
        )
    )


# The report ----------------------------------------------------------------------------


def report(session: Session, *, today: date | None = None) -> ReportOut:
    """Per order and per region: ordered, delivered, racked, discovered, passed, SPARE,
    overdue units, and the unknown assets (one query per kind, not per order)."""
    today = today or date.today()
    all_orders = session.scalars(select(PurchaseOrder).order_by(PurchaseOrder.id)).all()
    units = defaultdict(lambda: [0, 0, 0])  # order id -> discovered, passed, spare
    rows = session.execute(
        select(OrderLine.order_id, AssetMatch.passed_at, Asset.state)
        .join(AssetMatch, AssetMatch.line_id == OrderLine.id)
        .join(Asset, Asset.id == AssetMatch.asset_id)
        .where(AssetMatch.outcome == MatchOutcome.MATCHED)
    )
    for order_id, passed_at, state in rows:
        counts = units[order_id]
        counts[0] += 1
        counts[1] += passed_at is not None or state in PASSED
        counts[2] += state is AssetState.SPARE
    out = []
    for order in all_orders:
        discovered, passed, spare = units[order.id]
        stages = order.stages
        out.append(
            ReportRow(
                order=order.number,
                vendor=order.vendor.name,
                region=order.region,
                state=order.state,
                ordered=sum(line.quantity for line in order.lines),
                delivered=max(sum(s.quantity for s in stages if s.state in ARRIVED), discovered),
                racked=sum(s.quantity for s in stages if s.state is StageState.RACKED),
                discovered=discovered,
                passed=passed,
                spare=spare,
                overdue=sum(
                    s.quantity for s in stages if s.expected_on < today and s.state not in ARRIVED
                ),
            )
        )
    unknown = unknown_assets(session)
    regions = []
    for region in sorted({row.region for row in out}):
        mine = [row for row in out if row.region == region]
        totals = {
            field: sum(getattr(row, field) for row in mine)
            for field in (
                "ordered",
                "delivered",
                "racked",
                "discovered",
                "passed",
                "spare",
                "overdue",
            )
        }
        regions.append(RegionTotals(region=region, unknown_assets=unknown, **totals))
    if not regions and unknown:
        regions.append(
            RegionTotals(
                region="",
                ordered=0,
                delivered=0,
                racked=0,
                discovered=0,
                passed=0,
                spare=0,
                overdue=0,
                unknown_assets=unknown,
            )
        )
    return ReportOut(orders=out, regions=regions)


def report_csv(found: ReportOut) -> str:
    fields = list(ReportRow.model_fields)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    for row in found.orders:
        writer.writerow(row.model_dump(mode="json"))
    return buffer.getvalue()
