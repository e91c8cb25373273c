"""Asset reads answered with JSON the database writes: no Python object per field or row.

Converting a page of 100 assets row by row (SQLAlchemy's type processing, then pydantic's
serializer) took about 5 ms of Python; the database writes the same documents in a
fraction of that, and reads a stored one faster still (bench/inventory.py). A document has
AssetOut's fields in its order, with the values pydantic gives them;
tests/inventory/test_asset_reads.py holds the two alike. PostgreSQL spaces its JSON
differently (`"serial" : "SN1"`); the values are the same.

A stored document (StoredDocument) is read only while the asset has the version it was
built from. Every change to what a document shows bumps that version: the asset's own
columns, its interfaces and tags (their writers touch the asset), and the names it shows
(which cannot change, and whose rows cannot go while an asset refers to them). A change
made in SQL rather than through the ORM, such as a data migration, must bump the version
or empty asset_documents.
"""

import json
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Insert,
    Select,
    Text,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from metalyard.auth.models import Project, Team
from metalyard.db.base import UTCDateTime
from metalyard.db.engine import among
from metalyard.inventory.models import (
    Asset,
    AssetInterface,
    AssetTag,
    MachineClass,
    Rack,
    Site,
    StoredDocument,
)
from metalyard.inventory.schemas import AssetOut, InterfaceOut

_assets = Asset.__table__
_interfaces = AssetInterface.__table__
_tags = AssetTag.__table__
_classes = MachineClass.__table__
_racks = Rack.__table__
_sites = Site.__table__
_teams = Team.__table__
_projects = Project.__table__
_stored = StoredDocument.__table__
_with_stored = _assets.outerjoin(_stored, _stored.c.asset_id == _assets.c.id)
"""Each asset beside its stored document, if it has one."""


def _name_of(table: Any, row_id: ColumnElement[Any]) -> ColumnElement[str]:
    return select(table.c.name).where(table.c.id == row_id).scalar_subquery()


# Subqueries, not joins: PostgreSQL planned a page with five outer joins in 2.7 ms, about
# as long as it took to run it; with these, 0.7 ms.
_NAMED = {
    "machine_class": _name_of(_classes, _assets.c.machine_class_id),
    "site": select(_sites.c.name)
    .join(_racks, _racks.c.site_id == _sites.c.id)
    .where(_racks.c.id == _assets.c.rack_id)
    .scalar_subquery(),
    "rack": _name_of(_racks, _assets.c.rack_id),
    "owner_team": _name_of(_teams, _assets.c.owner_team_id),
    "project": _name_of(_projects, _assets.c.project_id),
}
"""AssetOut's fields that name another row."""


class AssetDocument(NamedTuple):
    id: int
    sort_key: Any
    """The value of the column the page is sorted by, for its cursor."""
    version: int
    json: str
    """The asset as AssetOut JSON."""


@cache  # built once: building it took longer than the database takes to answer it
def documents(dialect: str, sort_column: str = "id") -> Select:
    """Each asset's stored document while it is current (None otherwise: `built` makes
    it), with what a page and its cursor need besides; the caller adds the WHERE and the
    ORDER BY.

    Building the document is not this statement's fallback: that made it several times
    larger, and PostgreSQL took longer to plan it than to run it (0.6 against 0.3 ms for a
    page by tag, planned at every execution; 0.5 against 0.2 ms for a get).
    """
    kept = _stored.c
    current = case((kept.version == _assets.c.version, kept.json))
    return select(
        _assets.c.id,
        _assets.c[sort_column].label("sort_key"),
        _assets.c.version,
        current.label("json"),
    ).select_from(_with_stored)


@cache
def built(dialect: str) -> Select:
    """The version and document of the assets :ids, built from their rows."""
    return select(_assets.c.id, _assets.c.version, _document(dialect).label("json")).where(
        among(dialect, _assets.c.id, "ids")
    )


UNSTORED = (
    select(_assets.c.id)
    .select_from(_with_stored)
    .where(
        _assets.c.id > bindparam("after"),
        or_(_stored.c.asset_id.is_(None), _stored.c.version != _assets.c.version),
    )
    .order_by(_assets.c.id)
    .limit(bindparam("limit"))
)
"""The ids of up to :limit assets after :after whose stored document is missing or of
another version, in id order."""


@cache
def store(dialect: str) -> Insert:
    """Store the documents of the assets :ids, replacing older versions'."""
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_stored)
    insert = insert.from_select(["asset_id", "version", "json"], built(dialect))
    return insert.on_conflict_do_update(
        index_elements=[_stored.c.asset_id],
        set_={"version": insert.excluded.version, "json": insert.excluded.json},
        where=_stored.c.version < insert.excluded.version,  # a slower peer's older build
    )


def page_json(items: list[AssetDocument], next_cursor: str | None) -> bytes:
    """A page of documents as PageOut[AssetOut] JSON."""
    listed = ",".join(item.json for item in items)
    return f'{{"items":[{listed}],"next_cursor":{json.dumps(next_cursor)}}}'.encode()


def _document(dialect: str) -> ColumnElement[str]:
    pairs: list[ColumnElement[Any]] = []
    for name in AssetOut.model_fields:
        pairs += [_key(name), _value(dialect, name)]
    if dialect == "postgresql":
        return cast(func.json_build_object(*pairs), Text)  # text: psycopg would parse json
    return func.json_object(*pairs)


def _value(dialect: str, name: str) -> ColumnElement[Any]:
    if name in _NAMED:
        return _NAMED[name]
    if name == "interfaces":
        return _embedded(dialect, _interfaces_json(dialect))
    if name == "tags":
        return _embedded(dialect, _tags_json(dialect))
    column = _assets.c[name]
    if isinstance(column.type, UTCDateTime):
        return _iso_utc(dialect, column)
    if isinstance(column.type, JSON):
        return _embedded(dialect, column)
    if isinstance(column.type, Boolean) and dialect == "sqlite":  # stored as 0 or 1
        return func.json(case((column, "true"), else_="false"))
    return column


def _embedded(dialect: str, json_text: ColumnElement[Any]) -> ColumnElement[Any]:
    """JSON put in the document as JSON: SQLite would quote text from a column or a
    subquery as a string; PostgreSQL's json values go in as they are."""
    return func.json(json_text) if dialect == "sqlite" else json_text


def _interfaces_json(dialect: str) -> ColumnElement[Any]:
    """The asset's interfaces by name, as a JSON array of InterfaceOut objects."""
    columns = _interfaces.c
    pairs: list[ColumnElement[Any]] = []
    for name in InterfaceOut.model_fields:
        pairs += [_key(name), columns[name]]
    if dialect == "postgresql":
        listed = func.json_agg(func.json_build_object(*pairs)).aggregate_order_by(columns.name)
        listed = func.coalesce(listed, literal_column("'[]'::json"))
    else:
        # SQLite reads them through the (asset_id, name) index: in name order.
        listed = func.json_group_array(func.json_object(*pairs))
    return select(listed).where(columns.asset_id == _assets.c.id).scalar_subquery()


def _tags_json(dialect: str) -> ColumnElement[Any]:
    """The asset's tags as one JSON object, by key."""
    columns = _tags.c
    if dialect == "postgresql":
        mapped = func.json_object_agg(columns.key, columns.value).aggregate_order_by(columns.key)
        mapped = func.coalesce(mapped, literal_column("'{}'::json"))
    else:
        # SQLite reads them through the primary key (asset_id, key): in key order.
        mapped = func.json_group_object(columns.key, columns.value)
    return select(mapped).where(columns.asset_id == _assets.c.id).scalar_subquery()


def _iso_utc(dialect: str, column: ColumnElement[Any]) -> ColumnElement[str]:
    """The time as pydantic writes a UTC datetime: 2026-01-02T03:04:05.678900Z, without the
    fraction when it is zero."""
    if dialect == "postgresql":
        utc = column.op("AT TIME ZONE")(literal_column("'UTC'"))
        whole = func.date_trunc(literal_column("'second'"), column) == column
        seconds = func.to_char(utc, literal_column("""'YYYY-MM-DD"T"HH24:MI:SS"Z"'"""))
        fraction = func.to_char(utc, literal_column("""'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"""))
        return case((whole, seconds), else_=fraction)
    # SQLAlchemy stores UTC as text: 'YYYY-MM-DD HH:MM:SS.ffffff'
    whole = func.substr(column, 20).in_([literal_column("''"), literal_column("'.000000'")])
    time = case((whole, func.substr(column, 12, 8)), else_=func.substr(column, 12))
    return (
        func.substr(column, 1, 10)
        .op("||")(literal_column("'T'"))
        .op("||")(time)
        .op("||")(literal_column("'Z'"))
    )


def _key(name: str) -> ColumnElement[str]:
    return literal_column(f"'{name}'")
