"""Engines and sessions for SQLite (embedded, WAL) and PostgreSQL (scale-out)."""

import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from select import select as select_sockets
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pydantic_core import from_json
from sqlalchemy import (
    ColumnElement,
    Dialect,
    Engine,
    Row,
    String,
    Table,
    TypeDecorator,
    any_,
    bindparam,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import InvalidatePoolError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT = 30.0
"""Seconds a writer waits for SQLite's write lock before its transaction fails."""

log = logging.getLogger(__name__)


class Database:
    """One engine and its session factory; create once per process, not per request."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine = _create_engine(url, echo=echo)
        self.sessions = sessionmaker(_reader(self.engine), expire_on_commit=False)
        # SQLite: every transaction of a writing session takes the write lock up front, so a
        # read-then-write never fails with SQLITE_BUSY; that holds for the transactions after
        # a commit too (a BMC route commits before calling the BMC, then writes its audit).
        writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        self.writes = sessionmaker(writer, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """One unit of work: commits on success, rolls back on any error."""
        with (self.writes if write else self.sessions)() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()


def _reader(engine: Engine) -> Engine:
    """The engine of read-only sessions.

    On PostgreSQL they run without a transaction: at READ COMMITTED each statement takes
    its own snapshot inside one too, so a read loses nothing, and it saves the BEGIN and
    COMMIT round trips (two of a get's four). A write there would commit statement by
    statement, so it is refused. SQLite's reads keep their transaction: it is the snapshot
    that holds a page's statements together, and costs no round trip.
    """
    if engine.dialect.name != "postgresql":
        return engine
    reader = engine.execution_options(isolation_level="AUTOCOMMIT")
    event.listen(reader, "before_cursor_execute", _refuse_writes)
    return reader


def _refuse_writes(_conn, _cursor, statement: str, *_args: Any) -> None:
    if statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
        raise ReadOnlySession(f"a read-only session may not write: {statement[:80]!r}")


class ReadOnlySession(RuntimeError):
    """A programming error: the route or caller should ask for a writing session."""


class _JsonArray(TypeDecorator):
    """A list bound as one JSON document, for SQLite's json_each."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: list[Any] | None, dialect: Dialect) -> str | None:
        return None if value is None else json.dumps(value)


def among(dialect: str, column: Any, key: str) -> ColumnElement[bool]:
    """`column IN :key` with the list bound as one parameter, however long it is: an array on
    PostgreSQL, a JSON array on SQLite (which limits the number of parameters). The SQL
    does not change with the list, so a statement using it can be built once per dialect."""
    if dialect == "postgresql":
        return column == any_(bindparam(key, type_=ARRAY(column.type)))
    listed = func.json_each(bindparam(key, type_=_JsonArray())).table_valued("value")
    return column.in_(select(listed.c.value))


# Bulk writes ---------------------------------------------------------------------------


def insert_many(
    session: Session, table: Table, rows: list[dict[str, Any]], returning: Sequence[Any] = ()
) -> Sequence[Row]:
    """Insert `rows` (all with the same keys) into SQLite in one statement, whatever their
    number. (PostgreSQL's one bulk write, the asset import, has its own statement:
    `inventory.service._import_sql`.)

    The rows travel as one JSON document that SQLite unpacks with json_each. An
    executemany spent more time in Python converting parameters row by row than the
    database spent inserting them.
    """
    if not rows:
        return []
    dialect = session.get_bind().dialect
    quote = dialect.identifier_preparer.quote
    names = list(rows[0])
    # Each row as an array of the values SQLAlchemy would bind, converted column by column.
    columns = []
    for name in names:
        values = [row[name] for row in rows]
        convert = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        columns.append([convert(value) for value in values] if convert else values)
    # json_extract rather than ->>, which needs SQLite 3.38
    selected = ", ".join(f"json_extract(value, '$[{index}]')" for index in range(len(names)))
    returned = ", ".join(quote(column.name) for column in returning)
    stmt = text(
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(name) for name in names)}) "
        f"SELECT {selected} FROM json_each(:rows)" + (f" RETURNING {returned}" if returning else "")
    )
    result = session.execute(stmt, {"rows": json.dumps(list(zip(*columns, strict=True)))})
    return result.all() if returning else []


def refresh_statistics(session: Session, grown: dict[str, int]) -> None:
    """Bring the planner up to date with the rows a bulk write added (`grown`: table -> rows).

    On PostgreSQL, once this transaction commits, VACUUM (ANALYZE) the tables that grew by a
    fifth or more: their statistics and visibility map stay as they were until autovacuum
    gets there (up to a minute later), and meanwhile a page by state and rack read the
    whole table instead of the (state, rack_id, id) index (5.5 ms instead of 1 ms at 20,000
    assets; ANALYZE alone did not change the plan). SQLite plans these pages from the
    indexes with or without statistics, so it is left alone.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    known = dict(
        session.execute(
            text("SELECT relname, reltuples FROM pg_class WHERE relname = ANY(:tables)"),
            {"tables": list(grown)},
        ).all()
    )
    # reltuples is -1 until a table's first VACUUM or ANALYZE
    stale = [table for table, rows in grown.items() if rows >= 0.2 * known.get(table, 0)]
    if stale:
        engine = session.get_bind()
        event.listen(session, "after_commit", lambda _: _vacuum(engine, stale), once=True)


def _vacuum(engine: Engine, tables: list[str]) -> None:
    """VACUUM (ANALYZE), which cannot run in a transaction; the write has committed by now,
    so a failure here only leaves the work to autovacuum."""
    quote = engine.dialect.identifier_preparer.quote
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql(f"VACUUM (ANALYZE) {', '.join(map(quote, tables))}")
    except Exception:
        log.warning("VACUUM (ANALYZE) %s failed; autovacuum will do it", tables, exc_info=True)


def _create_engine(url: str, *, echo: bool) -> Engine:
    # JSON columns are read with pydantic-core's parser: the same values as json.loads, in a
    # fifth of the time (a page of 100 assets reads 200 documents).
    options: dict[str, Any] = {"echo": echo, "json_deserializer": from_json}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1].split("?", 1)[0]
        if path and path != ":memory:":
            _create_private(Path(path))
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, **options
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        writers = _WriterQueue()
        event.listen(engine, "begin", writers.begin)
        event.listen(engine, "commit", writers.end)
        event.listen(engine, "rollback", writers.end)
        # A connection that fails mid-transaction may end without either: its return to
        # the pool gives the turn back all the same.
        event.listen(engine, "checkin", lambda _dbapi, record: writers.release(record.info))
        return engine
    engine = create_engine(url, pool_size=10, max_overflow=20, **options)
    _ping_rested_connections(engine)
    return engine


def _create_private(path: Path) -> None:
    """Create the database file readable by its owner only, whatever the umask: it holds
    password hashes and the audit log, and SQLite gives its -wal and -shm files the same
    mode. Its directory is not made here: a typo in a URL must not start a new, empty region
    somewhere (the data directory is made by `metalyard serve` and friends)."""
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"the directory {path.parent} of the SQLite database does not exist"
        )
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


IDLE_BEFORE_PING = 1.0
"""Seconds a pooled connection may rest before its next checkout tests it with a round trip."""


def _ping_rested_connections(engine: Engine) -> None:
    """pool_pre_ping without a round trip on every request.

    A connection the server closed (a restart, an administrator) has something to read on
    its socket, the server's farewell or the end of the stream, where an idle one has
    nothing: a zero-timeout select() sees that for free. Only a connection that rested
    longer than IDLE_BEFORE_PING, which a silent network drop could have killed, pays for
    a ping. Either way a dead connection is replaced, and the rest of the pool with it (as
    pool_pre_ping does: a restart kills them all), before a request can fail on it.
    """

    @event.listens_for(engine, "checkin")
    def rest(_dbapi_connection, record) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def check(dbapi_connection, record, _proxy) -> None:
        checked_in = record.info.get("checked_in")
        if checked_in is None:  # a new connection
            return
        if select_sockets([dbapi_connection.fileno()], [], [], 0)[0]:
            raise InvalidatePoolError("the database closed this pooled connection")
        if time.monotonic() - checked_in < IDLE_BEFORE_PING:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise InvalidatePoolError("this pooled connection no longer answers") from error


def _sqlite_on_connect(dbapi_connection, _record) -> None:
    # Let SQLAlchemy, not pysqlite, decide when transactions begin (see _WriterQueue.begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT * 1000:.0f}")
    cursor.close()


class _WriterQueue:
    """This process's SQLite writers take turns on a lock before BEGIN IMMEDIATE.

    SQLite itself makes a waiting writer sleep and poll, up to 100 ms a time: with the API
    and the embedded worker writing at once, most of a transaction's latency was that sleep.
    A lock hands the turn over at once; other processes on the same file still wait in
    SQLite's busy handler (busy_timeout).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def begin(self, connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode == "IMMEDIATE":
            if not self._lock.acquire(timeout=BUSY_TIMEOUT):
                raise OperationalError("BEGIN IMMEDIATE", {}, _Busy("waited too long to write"))
            connection.info["writer"] = True
        try:
            connection.exec_driver_sql(f"BEGIN {mode}")
        except BaseException:
            self.end(connection)
            raise

    def end(self, connection) -> None:
        self.release(connection.info)

    def release(self, info: dict) -> None:
        if info.pop("writer", False):
            self._lock.release()


class _Busy(Exception):
    pass


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def schema_revisions(database: Database) -> tuple[set[str], set[str]]:
    """The revisions the database is at, and the latest ones this code knows."""
    latest = set(ScriptDirectory.from_config(alembic_config(database.url)).get_heads())
    with database.engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    return current, latest


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema at `url` to `revision` (idempotent)."""
    command.upgrade(alembic_config(url), revision)
