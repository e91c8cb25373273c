"""`metalyard serve`, `metalyard worker` and `metalyard db upgrade`: run this region's server.

Server modules (FastAPI, SQLAlchemy, uvicorn) are imported inside the commands, so the
client commands start fast and work where only the SDK's dependencies are installed.
"""

import gc
import logging
import signal
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

import metalyard
from metalyard.cli.context import fail
from metalyard.cli.exit_codes import ExitCode
from metalyard.cli.output import note
from metalyard.errors import InvalidInput

if TYPE_CHECKING:
    from metalyard.config import Settings
    from metalyard.db import Database
    from metalyard.orchestrator.worker import Worker

db = typer.Typer(help="The server's database.", no_args_is_help=True)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
SIGNAL_POLL = 0.2
"""Seconds between the worker command's looks at whether it was told to stop."""


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: METALYARD_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Port (default: METALYARD_PORT).")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the embedded SQLite database lives (default: METALYARD_DATA_DIR).",
            file_okay=False,
        ),
    ] = None,
):
    """Run this region's API server, configured by METALYARD_* variables.

    SQLite is upgraded in place; PostgreSQL must be upgraded first with `metalyard db upgrade`.
    On the first start the admin's token is printed, once. Unless METALYARD_EMBEDDED_WORKER
    is false, a worker runs the flows' beans in the same process.
    """
    import uvicorn

    from metalyard.api import create_app
    from metalyard.auth.service import bootstrap
    from metalyard.startup import load_flows, load_settings, open_database, redacted

    settings = load_settings(host=host, port=port, data_dir=data_dir)
    # Before the first admin is made, like the socket below: its token is shown only once.
    self_signed = _check_tls(settings) if settings.tls_cert and settings.tls_key else False
    # The API needs the flows too: it starts, draws and re-walks runs of them.
    known = load_flows(settings.flow_modules)
    database = open_database(settings, claim=True)
    # Listen first: a first start on a taken port must not spend the admin's one showing.
    listener = _listen(settings.host, settings.port)
    with database.transaction() as session:
        token = bootstrap(session)
    url = public_url(settings, port=listener.getsockname()[1])
    if token:
        typer.echo("first start: created user 'admin'; its token is shown only this once:")
        typer.echo(f"admin token: {token}")
        typer.echo("configure the CLI with:")
        # A self-signed certificate is trusted only when given: make the hint work as printed.
        trust = f" --ca-bundle {settings.tls_cert.resolve()}" if self_signed else ""
        typer.echo(f"  metalyard region add {settings.region} --url {url} --token {token}{trust}")
    typer.echo(
        f"metalyard {metalyard.__version__} serving region {settings.region} at {url} "
        f"(database {redacted(database.url)})"
    )
    tls: dict[str, Any] = {}
    if settings.tls_cert and settings.tls_key:
        tls = {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}
    worker = None
    try:
        # uvicorn stops on SIGTERM or SIGINT, then raises that signal again for the handler it
        # found: this one ends the command normally, so that the worker is stopped too.
        for each in STOP_SIGNALS:
            signal.signal(each, _stopped)
        if settings.embedded_worker:
            worker = new_worker(database, settings).start()
            typer.echo(
                f"with an embedded worker {worker.name} ({worker.concurrency} beans at once) "
                f"running flows: {', '.join(known) or 'none'}"
            )
        app = create_app(settings, database)
        settle_garbage_collector()
        uvicorn.Server(uvicorn.Config(app, log_level="info", **tls)).run(sockets=[listener])
    finally:
        if worker is not None:
            worker.stop()  # waits for the beans it runs, so none waits for its lease to expire
            typer.echo(f"embedded worker stopped after {worker.executed} bean execution(s)")
        database.dispose()


def _check_tls(settings: "Settings") -> bool:
    """Load the certificate and key as uvicorn will, naming the file that is wrong; whether
    the certificate is self-signed (clients trust it only when given it)."""
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    cert, key = settings.tls_cert, settings.tls_key
    assert cert is not None and key is not None
    contents = {}
    for name, path in (("METALYARD_TLS_CERT", cert), ("METALYARD_TLS_KEY", key)):
        if not path.is_file():
            what = "is a directory, not a file" if path.is_dir() else "does not exist"
            raise InvalidInput(f"{name}: {path} {what}")
        try:
            contents[name] = path.read_bytes()
        except OSError as error:
            raise InvalidInput(f"{name}: cannot read {path}: {error.strerror or error}") from None
    try:
        certificate = x509.load_pem_x509_certificate(contents["METALYARD_TLS_CERT"])
    except ValueError:
        raise InvalidInput(f"METALYARD_TLS_CERT: {cert} holds no PEM certificate") from None
    try:
        load_pem_private_key(contents["METALYARD_TLS_KEY"], password=None)
    except (ValueError, TypeError):
        raise InvalidInput(
            f"METALYARD_TLS_KEY: {key} holds no PEM private key (or one with a passphrase, "
            "which serve cannot ask for)"
        ) from None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except ssl.SSLError:
        raise InvalidInput(
            f"METALYARD_TLS_KEY: {key} is not the key of the certificate in {cert}"
        ) from None
    return certificate.issuer == certificate.subject


def _listen(host: str, port: int) -> socket.socket:
    """This server's listening socket, or a clear error if the address cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as error:
        fail(f"cannot listen on {host}:{port}: {error.strerror or error}", ExitCode.UNREACHABLE)


def settle_garbage_collector() -> None:
    """Keep what start-up built out of every later full collection.

    A full collection over the ~160,000 objects of a started server takes 135-215 ms on a
    2-core machine and lands on some request: it was most of a page's p99 (bench/inventory.py).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, *gc.get_threshold()[1:])


def _stopped(_signum: int, _frame: Any) -> None:
    raise typer.Exit()


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1, max=1024, help="Beans run at once (default: METALYARD_WORKER_CONCURRENCY)."
        ),
    ] = None,
    flows: Annotated[
        list[str] | None,
        typer.Option(
            "--flows",
            metavar="MODULE",
            help="A module to import for its flows, besides METALYARD_FLOW_MODULES; repeatable.",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Name recorded on each execution (default: host:pid:…).")
    ] = None,
):
    """Run a worker: it claims ready beans from the database, runs them and records how they end.

    Run as many as needed against one PostgreSQL (with METALYARD_EMBEDDED_WORKER=false on the
    servers). SIGTERM or Ctrl-C stops it once its running beans end; a second one stops it at
    once, and other workers re-run its beans when their leases expire.
    """
    from metalyard.drivers import release_sessions
    from metalyard.startup import load_flows, load_settings, open_database, redacted

    settings = load_settings(worker_concurrency=concurrency)
    known = load_flows([*settings.flow_modules, *(flows or [])])
    database = open_database(settings, claim=True)
    running = new_worker(database, settings, name=name)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # The handler only notes the signal: setting a threading.Event from a handler can deadlock
    # when the signal lands while the main thread holds that Event's lock.
    received: list[signal.Signals] = []

    def on_signal(signum: int, _frame: Any) -> None:
        received.append(signal.Signals(signum))
        for each in STOP_SIGNALS:
            signal.signal(each, signal.SIG_DFL)  # a second signal ends the process at once

    for each in STOP_SIGNALS:
        signal.signal(each, on_signal)
    thread = threading.Thread(target=running.run_forever, name=running.name, daemon=True)
    thread.start()
    typer.echo(
        f"metalyard {metalyard.__version__} worker {running.name} on database "
        f"{redacted(database.url)} ({running.concurrency} beans at once) running flows: "
        f"{', '.join(known) or 'none'}"
    )
    try:
        while not received and thread.is_alive():
            time.sleep(SIGNAL_POLL)
        if received:
            note(f"worker {running.name}: {received[0].name}; finishing the beans it runs")
        running.stop()
        thread.join()
    finally:
        database.dispose()
        release_sessions()  # BMCs have few session slots: give ours back
    if not received:
        fail(f"worker {running.name} stopped unexpectedly (see the log above)", ExitCode.PROBLEMS)
    typer.echo(f"worker {running.name} stopped after {running.executed} bean execution(s)")


@db.command("upgrade")
def db_upgrade():
    """Bring the configured database's schema to the latest revision (idempotent)."""
    from sqlalchemy.exc import SQLAlchemyError

    from metalyard.db import upgrade
    from metalyard.startup import (
        check_secret_key,
        load_settings,
        new_database,
        redacted,
        seal_audit_log,
        unreachable,
    )

    settings = load_settings()
    url = settings.effective_database_url
    database = new_database(settings)
    try:
        upgrade(url)
        check_secret_key(database, settings)
        sealed = seal_audit_log(database, settings, make_key=False)
    except SQLAlchemyError as error:
        raise unreachable(url, error) from None
    finally:
        database.dispose()
    if sealed is not None:
        note(f"sealed the audit log's head at entry {sealed}")
    typer.echo(f"database {redacted(url)} is at the latest schema revision")


@db.command("rotate-key")
def db_rotate_key(
    generate: Annotated[
        bool,
        typer.Option(
            help="Make a new key in the data directory's key file, re-encrypt, drop the old."
        ),
    ] = False,
):
    """Re-encrypt every stored secret (BMC passwords), and sign the audit log again, with the
    first secret key.

    With METALYARD_SECRET_KEY: put the new key first ("new,old"), run this, then drop the
    old key. With the data directory's key file (the default), --generate does all three.
    """
    from cryptography.fernet import Fernet
    from sqlalchemy.exc import SQLAlchemyError

    from metalyard import secrets
    from metalyard.auth.audit import service as audit
    from metalyard.drivers import service
    from metalyard.startup import check_secret_key, load_settings, new_database, unreachable

    settings = load_settings()
    if generate and settings.secret_key:
        raise typer.BadParameter(
            "METALYARD_SECRET_KEY is set, so the keys live there: put a new key first "
            f"(for example {Fernet.generate_key().decode()}) and run this without --generate"
        )
    database = new_database(settings)
    try:
        # The keys that wrote the database must all be here: rotating without one would
        # leave its secrets unreadable and its entries unverifiable.
        check_secret_key(database, settings)
    except SQLAlchemyError as error:
        database.dispose()
        raise unreachable(settings.effective_database_url, error) from None
    except BaseException:
        database.dispose()
        raise
    keys = secrets.configured_keys(settings)
    if generate:
        keys = [Fernet.generate_key().decode(), *keys]
        secrets.write_key_file(secrets.key_file(settings), keys)
    try:
        with database.transaction() as session:
            count = service.rotate_key(session, keyring=secrets.Keyring(keys))
            macs = audit.rotate_key(session, keys=audit.AuditKeys(keys))
    except SQLAlchemyError as error:
        raise unreachable(settings.effective_database_url, error) from None
    finally:
        database.dispose()
    if generate:
        secrets.write_key_file(secrets.key_file(settings), keys[:1])
    typer.echo(f"re-encrypted {count} secret(s) with the first key")
    typer.echo(f"re-signed {macs} audit entries with it")
    if len(keys) > 1 and not generate:
        typer.echo("the other keys are no longer needed: remove them", err=True)


def new_worker(database: "Database", settings: "Settings", name: str | None = None) -> "Worker":
    from metalyard.db import models  # noqa: F401  (every mapper: beans may touch any table)
    from metalyard.drivers.service import SubjectDrivers
    from metalyard.inventory import service  # noqa: F401  (registers its chores)
    from metalyard.orchestrator.worker import Worker

    return Worker(
        database,
        concurrency=settings.worker_concurrency,
        lease=settings.worker_lease_seconds,
        name=name,
        drivers=SubjectDrivers(database, settings),
    )


def public_url(settings: "Settings", port: int | None = None) -> str:
    """The URL clients use: a wildcard address is replaced with this host's name; `port`
    is the one listened on, when asked for any (0)."""
    host = settings.host
    if host in ("", "0.0.0.0", "::"):
        host = socket.getfqdn()
    if ":" in host:
        host = f"[{host}]"
    return f"{settings.scheme}://{host}:{port or settings.port}"
