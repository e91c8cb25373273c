"""`metalyard region …`: which region (server) the CLI talks to; switching is one command."""

import re
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel

from metalyard.cli import config
from metalyard.cli.context import connect, target
from metalyard.cli.output import Output, OutputOption, listing, note, show
from metalyard.sdk.http import base_url

region = typer.Typer(
    help="Region profiles: add one per region, switch with `region use`.",
    invoke_without_command=True,
)


class ProfileOut(BaseModel):
    """A profile as listed: whether it has a token, never the token itself."""

    current: bool
    name: str
    url: str
    token: bool
    tls: str


@region.callback()
def region_default(ctx: typer.Context, output: OutputOption = Output.table):
    """Without a command: ask the server of the region in use which region it serves."""
    if ctx.invoked_subcommand is None:
        region_show(output)


@region.command("show")
def region_show(output: OutputOption = Output.table):
    """Ask the server of the region in use which region it serves."""
    chosen = target()
    client = connect(token=False)
    show(client.region(), output, extra={"profile": chosen.name, "url": client.url})


@region.command("add")
def region_add(
    name: str,
    url: Annotated[str, typer.Option(help="The server's URL, e.g. https://metalyard.dub1:8080.")],
    token: Annotated[
        str | None, typer.Option(help="An API token; - reads it from standard input.")
    ] = None,
    ca_bundle: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="CA certificates to trust for this region."),
    ] = None,
    insecure: Annotated[
        bool, typer.Option(help="Do not check the server's TLS certificate (testing only).")
    ] = False,
):
    """Add a region profile, or replace the one of that name."""
    if not re.match(config.PROFILE_NAME, name):
        raise typer.BadParameter(f"{name!r}: use letters, digits, '.', '_' and '-'")
    if ca_bundle and insecure:
        raise typer.BadParameter("give --ca-bundle or --insecure, not both")
    if token == "-":
        token = sys.stdin.readline().strip()
    settings = config.load()
    existed = name in settings.regions
    settings.regions[name] = config.Profile(
        url=base_url(url),
        token=token or None,
        ca_bundle=str(ca_bundle.resolve()) if ca_bundle else None,
        insecure=insecure,
    )
    settings.current = settings.current or name
    path = config.save(settings)
    note(f"{'replaced' if existed else 'added'} region {name!r} ({url}) in {path}")
    if insecure:
        note(f"warning: TLS certificates of region {name!r} will not be checked (--insecure)")
    if settings.current == name:
        note(f"region {name!r} is in use")
    else:
        note(f"switch to it with: metalyard region use {name}")


@region.command("use")
def region_use(name: str):
    """Talk to this region from now on."""
    settings = config.load()
    profile = settings.profile(name)
    settings.current = name
    config.save(settings)
    note(f"now using region {name!r} ({profile.url})")


@region.command("list")
def region_list(output: OutputOption = Output.table):
    """List region profiles; the one in use is marked."""
    settings = config.load()
    profiles = [
        ProfileOut(
            current=name == settings.current,
            name=name,
            url=profile.url,
            token=bool(profile.token),
            tls="insecure" if profile.insecure else (profile.ca_bundle or "system CAs"),
        )
        for name, profile in sorted(settings.regions.items())
    ]
    listing(profiles, output, [("current", "IN USE"), "name", "url", "token", ("tls", "TLS")])


@region.command("remove")
def region_remove(name: str):
    """Forget a region profile (and its token)."""
    settings = config.load()
    settings.profile(name)
    del settings.regions[name]
    if settings.current == name:
        settings.current = None
        note(f"removed region {name!r}, which was in use: choose another with `region use`")
    else:
        note(f"removed region {name!r}")
    config.save(settings)
