"""How every server-side process of a region starts (`serve`, `worker`, the uvicorn factory,
the commands that work on the database): its settings read and checked, its database opened
at the current schema, and its secret key the one every other process of the region has.

Errors are MetalyardErrors naming the setting or file that is wrong: the CLI turns them into
an exit code, the uvicorn factory into a message.
"""

import logging
from typing import Any

from alembic.util import CommandError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from metalyard import secrets
from metalyard.config import BUILTIN_FLOW_MODULES, Settings, check_database_url
from metalyard.db import Database, upgrade
from metalyard.errors import DatabaseNotReady, InvalidInput, Unreachable

log = logging.getLogger(__name__)


def load_settings(**overrides: Any) -> Settings:
    """The METALYARD_* settings, with `overrides` (None: not given); a bad one is refused
    naming its variable."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as error:
        problem = error.errors()[0]
        field = ".".join(str(part) for part in problem["loc"])
        name = f"METALYARD_{field.upper()}" if field else "the settings"
        message = problem["msg"].removeprefix("Value error, ")
        raise InvalidInput(f"{name}: {message}") from None
    except SettingsError as error:
        # pydantic-settings names the field only in its own words: name the variable.
        field = str(error).split('"')[1] if '"' in str(error) else ""
        name = f"METALYARD_{field.upper()}" if field else "a METALYARD_* setting"
        raise InvalidInput(f"{name}: cannot read its value ({error})") from None
    try:
        check_database_url(settings.effective_database_url)
    except ValueError as error:
        raise InvalidInput(f"METALYARD_DATABASE_URL: {error}") from None
    return settings


def load_flows(modules: list[str]) -> list[str]:
    """Import the modules that register flows (the built-in concepts' first); the names of
    every flow this process knows."""
    from metalyard.orchestrator.flows import flows, load_flow_modules

    load_flow_modules([*BUILTIN_FLOW_MODULES, *modules])
    return [flow.name for flow in flows]


def open_database(settings: Settings, *, claim: bool = False) -> Database:
    """The database, its schema current (SQLite upgrades itself, PostgreSQL must be told
    to), and its secret key this process's; `claim` it for that key if nothing did yet
    (see check_secret_key: only the processes that serve the region do)."""
    database = new_database(settings)
    try:
        _make_ready(database, settings, claim=claim)
    except BaseException:
        database.dispose()
        raise
    return database


def _make_ready(database: Database, settings: Settings, *, claim: bool) -> None:
    url = settings.effective_database_url
    try:
        if database.is_sqlite:
            upgrade(url)
        else:
            check_schema(database)
        check_secret_key(database, settings, claim=claim)
        if database.is_sqlite and (sealed := seal_audit_log(database, settings, make_key=claim)):
            log.warning("sealed the audit log's head at entry %s", sealed)
    except SQLAlchemyError as error:
        raise unreachable(url, error) from None
    except CommandError as error:  # an SQLite file of a newer metalyard
        raise DatabaseNotReady(f"cannot upgrade the database {redacted(url)}: {error}") from None
    except OSError as error:  # the key file, made on a first start
        raise InvalidInput(
            f"METALYARD_DATA_DIR: cannot make the secret key file in {settings.data_dir}: "
            f"{error.strerror or error}; make it writable, or set METALYARD_SECRET_KEY"
        ) from None


def new_database(settings: Settings) -> Database:
    """The configured database; the data directory is made (owner only) when the database
    lives there, and an SQLite file elsewhere must have a directory already."""
    if not settings.database_url:
        try:
            settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise InvalidInput(
                f"METALYARD_DATA_DIR: cannot make the data directory {settings.data_dir}: "
                f"{error.strerror or error}"
            ) from None
    try:
        return Database(settings.effective_database_url)
    except FileNotFoundError as error:  # an SQLite file's directory (see db.engine)
        raise InvalidInput(
            f"METALYARD_DATABASE_URL: {error}; create it, or correct the URL"
        ) from None


def check_secret_key(database: Database, settings: Settings, *, claim: bool = False) -> None:
    """Refuse a database whose audit log or BMC passwords were written with a secret key this
    process lacks: its writes would fork the log's signatures (a false tamper alarm in
    `audit verify`) and its BMC calls would fail.

    With `claim` (the processes that serve the region), a database nothing wrote yet is
    claimed for this process's key (made if there is none) by the audit log's first entry,
    under the log's lock: of two processes with different keys starting at once on a new
    database, the second then finds the first's key. Without it no key file is made, so a
    process without one cannot make its own beside a database that already has a key. A
    refusal writes nothing: it is raised inside the transaction.
    """
    from metalyard.auth.audit import service as audit
    from metalyard.drivers.models import BmcCredential

    with database.transaction() as session:
        keys = secrets.configured_keys(settings, make=False)
        secret = session.scalar(
            select(BmcCredential.password_encrypted).order_by(BmcCredential.id.desc()).limit(1)
        )
        if secret is not None and not _decrypts(secret, keys):
            raise _foreign_key(
                database, settings, "its BMC passwords are encrypted with another key"
            )
        if claim:
            foreign = audit.claim(session, settings=settings)
        else:
            foreign = audit.missing_key(session, keys=audit.AuditKeys(keys) if keys else None)
        if foreign is not None:
            raise _foreign_key(database, settings, f"its audit log is signed with key {foreign}")


def _foreign_key(database: Database, settings: Settings, found: str) -> InvalidInput:
    path = secrets.key_file(settings)
    if settings.secret_key:
        held = "METALYARD_SECRET_KEY does not hold that key"
    elif path.exists():
        held = f"METALYARD_SECRET_KEY is unset and the key file {path} does not hold that key"
    else:
        held = f"METALYARD_SECRET_KEY is unset and there is no key file {path}"
    return InvalidInput(
        f"the database {redacted(database.url)} was written with a secret key this process "
        f"does not have: {found}, and {held}. Give every process of the region (serve, "
        "worker, db) the same METALYARD_SECRET_KEY, or the same key file; after a rotation, "
        "keep the old key after the new one until `metalyard db rotate-key` has run"
    )


def _decrypts(secret: str, keys: list[str]) -> bool:
    if not keys:
        return False
    try:
        secrets.Keyring(keys).decrypt(secret)
    except secrets.SecretKeyError:
        return False
    return True


def check_schema(database: Database) -> None:
    from metalyard.db.engine import schema_revisions

    current, latest = schema_revisions(database)
    if current != latest:
        raise DatabaseNotReady(
            f"the schema of {redacted(database.url)} is at revision "
            f"{', '.join(sorted(current)) or 'none'}, not {', '.join(sorted(latest))}: "
            "run `metalyard db upgrade` first"
        )


def seal_audit_log(database: Database, settings: Settings, *, make_key: bool) -> int | None:
    """Seal the head of an audit log written before entries carried a MAC, so `audit verify`
    can tell a deleted end from then on; the entry sealed, if it needed sealing. Only a
    process that may claim the database (see check_secret_key) may make a key for it."""
    from metalyard.auth.audit import service as audit

    with database.transaction() as session:
        sealed = audit.seal(session, settings=settings, make_key=make_key)
    return None if sealed is None else sealed.seq


def redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def unreachable(url: str, error: Exception) -> Unreachable:
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    return Unreachable(f"cannot use the database {redacted(url)}: {reason}")
