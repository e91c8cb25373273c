"""`metalyard serve` and `metalyard db upgrade`: run this region's server.

Server modules (FastAPI, SQLAlchemy, uvicorn) are imported inside the commands, so the
client commands start fast and work where only the SDK's dependencies are installed.
"""

import socket
from typing import TYPE_CHECKING, Annotated, Any

import typer

import metalyard
from metalyard.cli.exit_codes import DatabaseNotReady
from metalyard.errors import InvalidInput, Unreachable

if TYPE_CHECKING:
    from metalyard.config import Settings
    from metalyard.db import Database

db = typer.Typer(help="The server's database.", no_args_is_help=True)


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: METALYARD_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Port (default: METALYARD_PORT).")
    ] = None,
):
    """Run this region's API server, configured by METALYARD_* variables.

    SQLite is upgraded in place; PostgreSQL must be upgraded first with `metalyard db upgrade`.
    On the first start the admin's token is printed, once.
    """
    import uvicorn

    from metalyard.api import create_app
    from metalyard.auth.service import bootstrap

    settings = load_settings(host=host, port=port)
    database = open_database(settings)
    with database.transaction() as session:
        token = bootstrap(session)
    url = public_url(settings)
    if token:
        typer.echo("first start: created user 'admin'; its token is shown only this once:")
        typer.echo(f"admin token: {token}")
        typer.echo("configure the CLI with:")
        typer.echo(f"  metalyard region add {settings.region} --url {url} --token {token}")
    typer.echo(
        f"metalyard {metalyard.__version__} serving region {settings.region} at {url} "
        f"(database {redacted(database.url)})"
    )
    tls: dict[str, Any] = {}
    if settings.tls_cert and settings.tls_key:
        tls = {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}
    try:
        uvicorn.run(
            create_app(settings, database),
            host=settings.host,
            port=settings.port,
            log_level="info",
            **tls,
        )
    finally:
        database.dispose()


@db.command("upgrade")
def db_upgrade():
    """Bring the configured database's schema to the latest revision (idempotent)."""
    from sqlalchemy.exc import SQLAlchemyError

    from metalyard.db import upgrade

    settings = load_settings()
    url = settings.effective_database_url
    try:
        upgrade(url)
    except SQLAlchemyError as error:
        raise _unreachable(url, error) from None
    typer.echo(f"database {redacted(url)} is at the latest schema revision")


def load_settings(**overrides: Any) -> "Settings":
    from pydantic import ValidationError

    from metalyard.config import Settings

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as error:
        problem = error.errors()[0]
        field = ".".join(str(part) for part in problem["loc"])
        name = f"METALYARD_{field.upper()}" if field else "the settings"
        raise InvalidInput(f"{name}: {problem['msg']}") from None


def open_database(settings: "Settings") -> "Database":
    """The database, its schema current: SQLite upgrades itself, PostgreSQL must be told to."""
    from sqlalchemy.exc import SQLAlchemyError

    from metalyard.db import Database, upgrade

    url = settings.effective_database_url
    database = Database(url)
    try:
        if database.is_sqlite:
            upgrade(url)
        else:
            _check_schema(database)
    except SQLAlchemyError as error:
        database.dispose()
        raise _unreachable(url, error) from None
    return database


def _check_schema(database: "Database") -> None:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from metalyard.db.engine import alembic_config

    latest = set(ScriptDirectory.from_config(alembic_config(database.url)).get_heads())
    with database.engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    if current != latest:
        database.dispose()
        raise DatabaseNotReady(
            f"the schema of {redacted(database.url)} is at revision "
            f"{', '.join(sorted(current)) or 'none'}, not {', '.join(sorted(latest))}: "
            "run `metalyard db upgrade` first"
        )


def public_url(settings: "Settings") -> str:
    """The URL clients use: a wildcard address is replaced with this host's name."""
    host = settings.host
    if host in ("", "0.0.0.0", "::"):
        host = socket.getfqdn()
    if ":" in host:
        host = f"[{host}]"
    return f"{settings.scheme}://{host}:{settings.port}"


def redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _unreachable(url: str, error: Exception) -> Unreachable:
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    return Unreachable(f"cannot use the database {redacted(url)}: {reason}")
