"""Engines and sessions for SQLite (embedded, WAL) and PostgreSQL (scale-out)."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT = 30.0
"""Seconds a writer waits for SQLite's write lock before its transaction fails."""


class Database:
    """One engine and its session factory; create once per process, not per request."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine = _create_engine(url, echo=echo)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
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


def _create_engine(url: str, *, echo: bool) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, echo=echo, connect_args={"timeout": 30, "check_same_thread": False}
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
    return create_engine(url, echo=echo, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _sqlite_on_connect(dbapi_connection, _record) -> None:
    # Let SQLAlchemy, not pysqlite, decide when transactions begin (see _sqlite_on_begin).
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
