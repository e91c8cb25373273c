"""IPAM logic: prefixes, reserved ranges, and allocating addresses to asset interfaces.

Never the same address twice, however many writers: the unique constraints of IpAllocation
refuse a second holder, and `allocate` then looks again inside a savepoint (the caller's
transaction survives). Writers that change what may be allocated (reserved ranges, the
gateway, deleting a prefix) lock the prefix row; allocators share that lock, so they never
wait on one another, only on those writers.
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ScalarSelect,
    Select,
    case,
    exists,
    func,
    literal,
    null,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from metalyard.db import utcnow
from metalyard.db.lookup import check_version, get_by
from metalyard.db.pagination import Page, page_of, page_query, paginate, parse_sort
from metalyard.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from metalyard.inventory.models import Asset, AssetInterface, Site
from metalyard.network.addressing import (
    OFFSET_LIMIT,
    Address,
    Network,
    PrefixRole,
    Span,
    address_at,
    as_key,
    bounds_key,
    contains,
    free_segments,
    host_span,
    offset_of,
    parse_address,
    parse_network,
)
from metalyard.network.models import IpAllocation, Prefix, ReservedRange
from metalyard.network.schemas import (
    IpAllocationCreate,
    PrefixCreate,
    PrefixUpdate,
    ReservedRangeCreate,
)

MAX_RESERVED_RANGES = 64
"""Per prefix: every allocation reads them all, and searches the stretches between them."""
MAX_ATTEMPTS = 64
"""Allocation attempts when concurrent writers keep taking the chosen address first."""
PREFIX_LOCK = 0x6D79_6970  # "myip": PostgreSQL advisory lock serialising prefix creation

# Prefixes ------------------------------------------------------------------------------


def create_prefix(session: Session, *, data: PrefixCreate) -> Prefix:
    site = get_by(session, Site, "site", name=data.site)
    network = parse_network(data.cidr)
    _check_gateway(network, data.gateway)
    _serialise_prefix_creation(session)
    other = _overlapping(session, network)
    if other is not None:
        cls = AlreadyExists if other.cidr == str(network) else Conflict
        raise cls(
            f"{network} overlaps prefix {other.cidr} (id {other.id}, site {other.site.name}, "
            f"{other.role.value}); prefixes of a region may not overlap: pick another range "
            "or delete that prefix",
            details={"field": "cidr", "overlaps": other.id, "cidr": other.cidr},
        )
    start, end = bounds_key(network)
    prefix = Prefix(
        site=site,
        cidr=str(network),
        family=network.version,
        range_start=start,
        range_end=end,
        **data.model_dump(exclude={"site", "cidr"}),
    )
    session.add(prefix)
    session.flush()
    return prefix


def get_prefix(session: Session, *, prefix_id: int) -> Prefix:
    return get_by(session, Prefix, "prefix", id=prefix_id)


def list_prefixes(
    session: Session,
    *,
    site: str | None = None,
    role: PrefixRole | None = None,
    cidr: str | None = None,
    contains_address: str | None = None,
    sort: str = "id",
    limit: int,
    cursor: str | None,
) -> Page[Prefix]:
    key = parse_sort(sort, {"id": Prefix.id, "created_at": Prefix.created_at})
    stmt = select(Prefix)
    if site is not None:
        stmt = stmt.where(Prefix.site_id.in_(select(Site.id).where(Site.name == site)))
    if role is not None:
        stmt = stmt.where(Prefix.role == role)
    if cidr is not None:
        stmt = stmt.where(Prefix.cidr == str(_given_network(cidr)))
    if contains_address is not None:
        address = _given_address(contains_address, "contains")
        stmt = stmt.where(
            Prefix.family == address.version,
            Prefix.range_start <= as_key(address),
            Prefix.range_end >= as_key(address),
        )
    return paginate(session, stmt, id_column=Prefix.id, sort=key, limit=limit, cursor=cursor)


def update_prefix(session: Session, *, prefix_id: int, data: PrefixUpdate) -> Prefix:
    prefix = _locked_prefix(session, prefix_id, share=False)
    check_version(prefix, data.version, f"prefix {prefix_id}")
    changes = data.changes()
    if changes.get("gateway") is not None and changes["gateway"] != prefix.gateway:
        network = parse_network(prefix.cidr)
        _check_gateway(network, changes["gateway"])
        holder = _holder(session, changes["gateway"])
        if holder is not None:
            raise Conflict(
                f"{changes['gateway']} is allocated to {holder}; release it first or pick "
                "another gateway",
                details={"field": "gateway"},
            )
    for field, value in changes.items():
        setattr(prefix, field, value)
    prefix.updated_at = utcnow()  # bumps the version
    session.flush()
    return prefix


def delete_prefix(session: Session, *, prefix_id: int) -> None:
    prefix = _locked_prefix(session, prefix_id, share=False)
    held = session.scalar(select(func.count()).where(IpAllocation.prefix_id == prefix.id))
    if held:
        raise Conflict(
            f"prefix {prefix.cidr} still has {held} allocated address(es); release them "
            f"first (metalyard ip list --prefix {prefix.id} shows them)",
            details={"allocations": held},
        )
    session.delete(prefix)
    session.flush()


def _given_address(text: str, field: str) -> Address:
    """An address from a path or query parameter (bodies are checked by their schema)."""
    try:
        return parse_address(text)
    except ValueError as error:
        raise InvalidInput(str(error), details={"field": field}) from None


def _given_network(text: str) -> Network:
    try:
        return parse_network(text)
    except ValueError as error:
        raise InvalidInput(str(error), details={"field": "cidr"}) from None


def _serialise_prefix_creation(session: Session) -> None:
    """Two prefixes created at once must not both pass the overlap check. SQLite writers are
    serialised already; on PostgreSQL, hold a transaction-scoped advisory lock."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PREFIX_LOCK})


def _overlapping(session: Session, network: Network) -> Prefix | None:
    start, end = bounds_key(network)
    return session.scalars(
        select(Prefix)
        .where(
            Prefix.family == network.version,
            Prefix.range_start <= end,
            Prefix.range_end >= start,
        )
        .order_by(Prefix.range_start)
        .limit(1)
    ).first()


def _check_gateway(network: Network, gateway: str | None) -> None:
    if gateway is None:
        return
    address = parse_address(gateway)
    if not contains(network, address):
        raise InvalidInput(
            f"gateway {gateway} is outside {network}; give an address inside the prefix",
            details={"field": "gateway"},
        )
    span = host_span(network)
    if not span.first <= offset_of(network, address) <= _host_last(network):
        raise InvalidInput(
            f"gateway {gateway} is the network or broadcast address of {network}; "
            "give a host address",
            details={"field": "gateway"},
        )


def _host_last(network: Network) -> int:
    """The last host offset without the OFFSET_LIMIT cap (for checks, not for allocating)."""
    size = network.num_addresses
    return size - 2 if network.version == 4 and size > 2 else size - 1


def _locked_prefix(session: Session, prefix_id: int, *, share: bool) -> Prefix:
    """The prefix, locked against writers that change what may be allocated (shared by
    allocators, exclusive for those writers). SQLite serialises all writers anyway."""
    prefix = session.scalars(
        select(Prefix)
        .where(Prefix.id == prefix_id)
        .with_for_update(read=share, of=Prefix)
        .execution_options(populate_existing=True)
    ).first()
    if prefix is None:
        raise NotFound(f"no prefix with id {prefix_id}", details={"id": prefix_id})
    return prefix


# Reserved ranges -----------------------------------------------------------------------


def list_reserved_ranges(session: Session, *, prefix_id: int) -> list[ReservedRange]:
    prefix = get_prefix(session, prefix_id=prefix_id)
    return sorted(prefix.reserved_ranges, key=lambda r: int(parse_address(r.start)))


def reserve_range(session: Session, *, prefix_id: int, data: ReservedRangeCreate) -> ReservedRange:
    prefix = _locked_prefix(session, prefix_id, share=False)
    network = parse_network(prefix.cidr)
    start, end = parse_address(data.start), parse_address(data.end)
    for name, address in (("start", start), ("end", end)):
        if not contains(network, address):
            raise InvalidInput(
                f"{name} {address} is outside prefix {network}; reserve addresses inside it",
                details={"field": name},
            )
    if start > end:
        raise InvalidInput(
            f"start {start} comes after end {end}; swap them", details={"field": "end"}
        )
    for other in prefix.reserved_ranges:
        if parse_address(other.start) <= end and start <= parse_address(other.end):
            raise Conflict(
                f"{start}-{end} overlaps reserved range {other.start}-{other.end} "
                f"(id {other.id}, {other.reason!r}); extend or delete that one instead",
                details={"overlaps": other.id},
            )
    if len(prefix.reserved_ranges) >= MAX_RESERVED_RANGES:
        raise Conflict(
            f"prefix {network} already has {MAX_RESERVED_RANGES} reserved ranges; merge some"
        )
    taken = session.scalars(
        select(IpAllocation.address)
        .where(
            IpAllocation.prefix_id == prefix.id,
            # Allocations stop at OFFSET_LIMIT: clamping keeps IPv6 offsets inside a BIGINT.
            IpAllocation.host_offset.between(
                min(offset_of(network, start), OFFSET_LIMIT + 1),
                min(offset_of(network, end), OFFSET_LIMIT + 1),
            ),
        )
        .order_by(IpAllocation.host_offset)
        .limit(6)
    ).all()
    if taken:
        shown = ", ".join(taken[:5]) + (", …" if len(taken) > 5 else "")
        raise Conflict(
            f"{start}-{end} covers allocated address(es) {shown}; release them first or "
            "reserve around them",
            details={"allocated": taken[:5]},
        )
    reserved = ReservedRange(start=str(start), end=str(end), reason=data.reason)
    prefix.reserved_ranges.append(reserved)
    session.flush()
    return reserved


def delete_reserved_range(session: Session, *, prefix_id: int, range_id: int) -> None:
    reserved = session.scalars(
        select(ReservedRange).where(
            ReservedRange.id == range_id, ReservedRange.prefix_id == prefix_id
        )
    ).first()
    if reserved is None:
        raise NotFound(
            f"prefix {prefix_id} has no reserved range with id {range_id}",
            details={"prefix_id": prefix_id, "id": range_id},
        )
    session.delete(reserved)
    session.flush()


# Allocations ---------------------------------------------------------------------------

_allocations = IpAllocation.__table__
_prefixes = Prefix.__table__
_sites = Site.__table__
_assets = Asset.__table__

ALLOCATION_SORTS = {"id": _allocations.c.id, "created_at": _allocations.c.created_at}

AllocationView = dict[str, Any]
"""An allocation as the API shows it (the fields of schemas.IpAllocationOut)."""

_ALLOCATION_VIEW = select(
    _allocations.c.id,
    _allocations.c.address,
    _allocations.c.prefix_id,
    _prefixes.c.cidr,
    _sites.c.name.label("site"),
    _prefixes.c.role,
    _assets.c.serial,
    _allocations.c.interface,
    _allocations.c.created_at,
).select_from(
    _allocations.join(_prefixes, _prefixes.c.id == _allocations.c.prefix_id)
    .join(_sites, _sites.c.id == _prefixes.c.site_id)
    .join(_assets, _assets.c.id == _allocations.c.asset_id)
)


@dataclass(frozen=True)
class Allocated:
    """The answer of `allocate`: the allocation, and whether this call made it."""

    allocation: AllocationView
    created: bool


def allocate(session: Session, *, data: IpAllocationCreate) -> Allocated:
    """An address for the interface: the one it already holds there (so a re-walked flow gets
    the same answer), the one asked for, or the lowest free one."""
    asset_id = _interface_owner(session, data.serial, data.interface)
    prefixes = _candidate_prefixes(session, data)
    wanted = parse_address(data.address) if data.address else None
    for _attempt in range(MAX_ATTEMPTS):
        held = _held(session, [p.id for p, _ in prefixes], asset_id, data.interface)
        if held is not None:
            if wanted is not None and held.address != str(wanted):
                raise Conflict(
                    f"interface {data.interface} of asset {data.serial} already holds "
                    f"{held.address} in prefix {held.prefix_id}; release it first to take "
                    f"{wanted}",
                    details={"address": held.address},
                )
            return Allocated(_view(session, held.id), created=False)
        prefix, offset = _choose(session, prefixes, wanted, data)
        allocation = IpAllocation(
            prefix_id=prefix.id,
            address=str(address_at(parse_network(prefix.cidr), offset)),
            host_offset=offset,
            asset_id=asset_id,
            interface=data.interface,
        )
        try:
            with session.begin_nested():
                session.add(allocation)
                session.flush()
        except IntegrityError:
            continue  # a concurrent writer took the address, or gave this interface one: look again
        return Allocated(_view(session, allocation.id), created=True)
    raise Conflict(
        f"could not allocate an address for {data.serial} {data.interface} after "
        f"{MAX_ATTEMPTS} attempts: other writers kept taking the chosen one; try again",
    )


def get_allocation(session: Session, *, address: str) -> AllocationView:
    normal = str(_given_address(address, "address"))
    rows = _view_rows(session, _ALLOCATION_VIEW.where(_allocations.c.address == normal))
    if not rows:
        raise NotFound(f"{normal} is not allocated", details={"address": normal})
    return rows[0]


@dataclass
class AllocationFilter:
    """Every filter is ANDed."""

    prefix_id: int | None = None
    serial: str | None = None
    interface: str | None = None
    site: str | None = None
    role: PrefixRole | None = None


def list_allocations(
    session: Session, *, where: AllocationFilter, sort: str = "id", limit: int, cursor: str | None
) -> Page[AllocationView]:
    key = parse_sort(sort, ALLOCATION_SORTS)
    stmt = _filtered(where)
    stmt = page_query(stmt, id_column=_allocations.c.id, sort=key, limit=limit, cursor=cursor)
    rows = _view_rows(session, stmt)
    return page_of(
        rows, limit, lambda v: (v[key.column.key], v["id"]), id_column=_allocations.c.id, sort=key
    )


def release(session: Session, *, address: str) -> None:
    view = get_allocation(session, address=address)
    session.execute(_allocations.delete().where(_allocations.c.id == view["id"]))


def release_interface(
    session: Session, *, serial: str, interface: str | None = None, prefix_id: int | None = None
) -> list[AllocationView]:
    """Release what an asset (or one of its interfaces) holds; what was released, maybe none."""
    get_by(session, Asset, "asset", serial=serial)
    where = AllocationFilter(serial=serial, interface=interface, prefix_id=prefix_id)
    released = _view_rows(
        session, _filtered(where).order_by(_allocations.c.prefix_id, _allocations.c.interface)
    )
    if released:
        ids = [view["id"] for view in released]
        session.execute(_allocations.delete().where(_allocations.c.id.in_(ids)))
    return released


def _filtered(where: AllocationFilter) -> Select:
    stmt = _ALLOCATION_VIEW
    for column, value in (
        (_allocations.c.prefix_id, where.prefix_id),
        (_assets.c.serial, where.serial),
        (_allocations.c.interface, where.interface),
        (_sites.c.name, where.site),
        (_prefixes.c.role, where.role),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    return stmt


def _interface_owner(session: Session, serial: str, interface: str) -> int:
    """The asset's id, once its serial and interface name are known to the inventory."""
    asset_id = session.scalar(select(Asset.id).where(Asset.serial == serial))
    if asset_id is None:
        raise NotFound(f"no asset with serial {serial!r}", details={"serial": serial})
    names = session.scalars(
        select(AssetInterface.name)
        .where(AssetInterface.asset_id == asset_id)
        .order_by(AssetInterface.name)
    ).all()
    if interface not in names:
        known = ", ".join(names) if names else "none"
        raise NotFound(
            f"asset {serial!r} has no interface {interface!r} (it has: {known}); add it with "
            f"`metalyard asset update {serial} --interface NAME=MAC`",
            details={"serial": serial, "interface": interface},
        )
    return asset_id


def _candidate_prefixes(
    session: Session, data: IpAllocationCreate
) -> list[tuple[Prefix, list[Span]]]:
    """The prefixes to allocate from, locked for sharing, with the spans each never hands out
    (reserved ranges and the gateway)."""
    if data.prefix_id is not None:
        prefixes = [_locked_prefix(session, data.prefix_id, share=True)]
    else:
        site = get_by(session, Site, "site", name=data.site)
        prefixes = list(
            session.scalars(
                select(Prefix)
                .where(Prefix.site_id == site.id, Prefix.role == data.role)
                .order_by(Prefix.id)
                .with_for_update(read=True, of=Prefix)
            )
        )
        if not prefixes:
            raise NotFound(
                f"site {data.site!r} has no {data.role} prefix; create one with "
                f"`metalyard prefix create CIDR --site {data.site} --role {data.role}`",
                details={"site": data.site, "role": data.role},
            )
    return [(prefix, _never_allocated(prefix)) for prefix in prefixes]


def _never_allocated(prefix: Prefix) -> list[Span]:
    network = parse_network(prefix.cidr)
    spans = [
        Span(offset_of(network, parse_address(r.start)), offset_of(network, parse_address(r.end)))
        for r in prefix.reserved_ranges
    ]
    if prefix.gateway is not None:
        gateway = offset_of(network, parse_address(prefix.gateway))
        spans.append(Span(gateway, gateway))
    return spans


def _held(
    session: Session, prefix_ids: list[int], asset_id: int, interface: str
) -> IpAllocation | None:
    return session.scalars(
        select(IpAllocation)
        .where(
            IpAllocation.prefix_id.in_(prefix_ids),
            IpAllocation.asset_id == asset_id,
            IpAllocation.interface == interface,
        )
        .order_by(IpAllocation.prefix_id)
        .limit(1)
    ).first()


def _choose(
    session: Session,
    prefixes: list[tuple[Prefix, list[Span]]],
    wanted: Address | None,
    data: IpAllocationCreate,
) -> tuple[Prefix, int]:
    """The prefix and offset to try: the address asked for, or the lowest free one of the
    first prefix with room."""
    if wanted is not None:
        return _check_wanted(session, prefixes, wanted, data)
    for prefix, never in prefixes:
        offset = _lowest_free(session, prefix, never)
        if offset is not None:
            return prefix, offset
    where = (
        f"prefix {prefixes[0][0].cidr}"
        if data.prefix_id is not None
        else f"every {data.role} prefix of site {data.site} "
        f"({', '.join(p.cidr for p, _ in prefixes)})"
    )
    raise Conflict(
        f"{where} is full: no free address left outside the reserved ranges; release "
        "addresses, or add a prefix",
        details={"prefixes": [p.id for p, _ in prefixes]},
    )


def _check_wanted(
    session: Session,
    prefixes: list[tuple[Prefix, list[Span]]],
    wanted: Address,
    data: IpAllocationCreate,
) -> tuple[Prefix, int]:
    for prefix, _never in prefixes:
        network = parse_network(prefix.cidr)
        if not contains(network, wanted):
            continue
        offset = offset_of(network, wanted)
        span = host_span(network)
        if not span.first <= offset <= _host_last(network):
            raise InvalidInput(
                f"{wanted} is the network or broadcast address of {network}; pick a host address",
                details={"field": "address"},
            )
        if offset > OFFSET_LIMIT:
            raise InvalidInput(
                f"{wanted} lies beyond the first 2**62 addresses of {network}, which are all "
                "that metalyard allocates; pick a lower one",
                details={"field": "address"},
            )
        if prefix.gateway == str(wanted):
            raise InvalidInput(
                f"{wanted} is the gateway of {network}; pick another address",
                details={"field": "address"},
            )
        for reserved in prefix.reserved_ranges:
            if reserved_contains(reserved, wanted):
                raise InvalidInput(
                    f"{wanted} is reserved in {network} ({reserved.start}-{reserved.end}: "
                    f"{reserved.reason}); pick another address",
                    details={"field": "address", "reserved_range": reserved.id},
                )
        holder = _holder(session, str(wanted))
        if holder is not None:
            raise Conflict(
                f"{wanted} is already allocated to {holder}; pick another address or leave "
                "it out to get the lowest free one",
                details={"address": str(wanted)},
            )
        return prefix, offset
    where = (
        f"prefix {prefixes[0][0].cidr}"
        if data.prefix_id is not None
        else f"any {data.role} prefix of site {data.site}"
    )
    raise InvalidInput(
        f"{wanted} is not in {where}; pick an address inside it", details={"field": "address"}
    )


def reserved_contains(reserved: ReservedRange, address: Address) -> bool:
    return parse_address(reserved.start) <= address <= parse_address(reserved.end)


def _holder(session: Session, address: str) -> str | None:
    """Who holds an address, as `asset SERIAL interface NAME`; None when it is free."""
    row = session.execute(
        select(Asset.serial, IpAllocation.interface)
        .join(Asset, Asset.id == IpAllocation.asset_id)
        .where(IpAllocation.address == address)
    ).first()
    return None if row is None else f"asset {row.serial} interface {row.interface}"


def _lowest_free(session: Session, prefix: Prefix, never: list[Span]) -> int | None:
    """The lowest offset of the prefix that is neither allocated nor in `never`, in one query.

    The free segments (the stretches between reserved ranges and the gateway) are known
    without the database; the query asks each in turn, through COALESCE, which both backends
    evaluate lazily: the first segment with room ends the search. See `_first_free_in`.
    """
    segments = free_segments(host_span(parse_network(prefix.cidr)), never)
    if not segments:
        return None
    firsts = [_first_free_in(prefix.id, segment) for segment in segments]
    return session.scalar(select(func.coalesce(*firsts, null())))


def _first_free_in(prefix_id: int, segment: Span) -> ScalarSelect:
    """The lowest unallocated offset of a segment, or NULL when it is full.

    Allocations usually fill a prefix from the bottom, so first count them: when the n
    allocations of the segment are its first n offsets (n == highest - first + 1), the
    answer is the one after the highest, from one index-only range scan. Otherwise there is
    a hole below the highest: walk the allocations in index order, each beside the next
    (a window), to the first whose next offset is not its own plus one; the walk stops
    there. One table and one index, so the plan does not hang on statistics: as an anti-join
    of the table with itself, PostgreSQL planned a nested loop over a scan of the whole
    table while its statistics still said it was small (68 s at 30,000 allocations).
    """
    first, last = (literal(value, BigInteger) for value in (segment.first, segment.last))
    taken, held = (_allocations.alias(name) for name in ("taken", "held"))
    counted = (
        select(func.count().label("n"), func.max(taken.c.host_offset).label("top"))
        .where(taken.c.prefix_id == prefix_id, taken.c.host_offset.between(first, last))
        .subquery("counted")
    )
    in_segment = (held.c.prefix_id == prefix_id, held.c.host_offset.between(first, last))
    first_is_free = select(first).where(~exists().where(held.c.host_offset == first, *in_segment))
    walked = (
        select(
            held.c.host_offset.label("offset"),
            func.lead(held.c.host_offset).over(order_by=held.c.host_offset).label("next"),
        )
        .where(*in_segment)
        .subquery("walked")
    )
    after_first_hole = (
        select(walked.c.offset + 1)
        .where(walked.c.next != walked.c.offset + 1)
        .order_by(walked.c.offset)
        .limit(1)
    )
    dense = counted.c.top - first + 1 == counted.c.n
    return (
        select(
            case(
                (counted.c.n == 0, first),
                (dense, case((counted.c.top < last, counted.c.top + 1), else_=null())),
                else_=func.coalesce(
                    first_is_free.scalar_subquery(), after_first_hole.scalar_subquery()
                ),
            )
        )
        .select_from(counted)
        .scalar_subquery()
    )


def _view(session: Session, allocation_id: int) -> AllocationView:
    return _view_rows(session, _ALLOCATION_VIEW.where(_allocations.c.id == allocation_id))[0]


def _view_rows(session: Session, stmt: Select) -> list[AllocationView]:
    result = session.execute(stmt)
    columns = result.keys()
    return [dict(zip(columns, row, strict=True)) for row in result.all()]
