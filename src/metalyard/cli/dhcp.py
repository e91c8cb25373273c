"""`metalyard dhcp render` and `metalyard dhcp sync`: dnsmasq's configuration and host files.

Like `metalyard db upgrade`, these run on the host of dnsmasq, against the database, with the
server's METALYARD_* settings; server modules are imported inside the commands.
"""

import time
from pathlib import Path
from typing import Annotated

import typer

from metalyard.cli.output import note

dhcp = typer.Typer(
    help="DHCP through dnsmasq: its configuration and its host files (run on its host).",
    no_args_is_help=True,
)

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


@dhcp.command("render")
def dhcp_render(
    site: Annotated[
        str | None, typer.Option(help="Only this site's prefixes (default: every site).")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file (atomically), not stdout."),
    ] = None,
):
    """Print dnsmasq's configuration for the prefixes in IPAM; restart dnsmasq with it."""
    from metalyard.db import models  # noqa: F401  (every mapper, for the queries)
    from metalyard.network import dhcp as service
    from metalyard.startup import load_settings, open_database

    settings = load_settings()
    if not settings.public_url and settings.host in LOOPBACK_HOSTS:
        note(
            f"warning: iPXE is told to fetch {service.boot_url(settings)}, which machines "
            "cannot reach: set METALYARD_PUBLIC_URL"
        )
    database = open_database(settings)
    try:
        with database.transaction(write=False) as session:
            text = service.render(session, settings, site=site)
    finally:
        database.dispose()
    if output is None:
        typer.echo(text, nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    service.write_atomically(output, text)
    note(f"wrote {output}; restart dnsmasq to use it")


@dhcp.command("sync")
def dhcp_sync(
    every: Annotated[
        float,
        typer.Option(min=0, help="Keep syncing, this many seconds apart (0: once), until Ctrl-C."),
    ] = 0,
):
    """Write a host file per known MAC, delete stale ones, SIGHUP dnsmasq if it must forget."""
    from metalyard.db import models  # noqa: F401  (every mapper, for the queries)
    from metalyard.network import dhcp as service
    from metalyard.startup import load_settings, open_database

    settings = load_settings()
    database = open_database(settings)
    try:
        while True:
            with database.transaction(write=False) as session:
                result = service.sync_hosts(session, settings)
            if result.added or result.changed or result.removed or not every:
                typer.echo(
                    f"{settings.dhcp_hosts_dir}: {len(result.added)} added, "
                    f"{len(result.changed)} changed, {len(result.removed)} removed"
                    + ("; dnsmasq told to re-read them" if result.hupped else "")
                )
            if result.problem:
                note(f"warning: {result.problem}")
            if not every:
                break
            time.sleep(every)
    except KeyboardInterrupt:
        pass
    finally:
        database.dispose()
