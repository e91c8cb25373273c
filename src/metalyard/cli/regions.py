"""`metalyard region …`: which region (server) the CLI talks to; switching is one command."""

import re
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel

from metalyard.cli import config
from metalyard.cli.context import connect, fail, target
from metalyard.cli.exit_codes import ExitCode, exit_code_for
from metalyard.cli.output import Output, OutputOption, listing, note, show
from metalyard.errors import MetalyardError, Unauthenticated
from metalyard.sdk import Client
from metalyard.sdk.http import Verify, base_url, ssl_context

CHECK_TIMEOUT = 10.0
"""Seconds `region add` waits for the server: long enough for a far region, short for a typo."""

region = typer.Typer(
    help="Region profiles: add one per region, switch with `region use`.",
    invoke_without_command=True,
)


class ProfileOut(BaseModel):
    """A profile as listed: whether it has a token, never the token itself."""

    current: bool
    name: str
    url: str
    serves: str | None
    """The region the server said it serves when the profile was added."""
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
    answer = client.region()
    if chosen.region and answer.name != chosen.region:
        note(
            f"warning: the server at {client.url} now serves region {answer.name!r}, not "
            f"{chosen.region!r} as when profile {chosen.name!r} was added"
        )
    show(answer, output, extra={"profile": chosen.name, "url": client.url})


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
    serves: Annotated[
        str | None,
        typer.Option(
            metavar="REGION",
            help="The region the server must serve, when NAME is not it "
            "(e.g. a second profile of a region, with a read token).",
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            help="Ask the server which region it serves and whether it takes the token; "
            "--no-check saves the profile unchecked (e.g. before the server is up).",
        ),
    ] = True,
):
    """Add a region profile, or replace the one of that name, once its server confirms it."""
    if not re.match(config.PROFILE_NAME, name):
        raise typer.BadParameter(f"{name!r}: use letters, digits, '.', '_' and '-'")
    if ca_bundle and insecure:
        raise typer.BadParameter("give --ca-bundle or --insecure, not both")
    if token == "-":
        token = sys.stdin.readline().strip()
    verify: Verify = False if insecure else (ca_bundle.resolve() if ca_bundle else True)
    ssl_context(verify)  # a file that is not a PEM CA bundle is named now, not on every command
    url = base_url(url)
    serving = _confirm(name, url, token or None, verify, serves or name) if check else None
    settings = config.load()
    existed = name in settings.regions
    settings.regions[name] = config.Profile(
        url=url,
        token=token or None,
        ca_bundle=str(ca_bundle.resolve()) if ca_bundle else None,
        insecure=insecure,
        region=serving,
    )
    settings.current = settings.current or name
    path = config.save(settings)
    note(f"{'replaced' if existed else 'added'} region {name!r} ({url}) in {path}")
    if not check:
        note(f"warning: region {name!r} was not checked: its server, region and token are unknown")
    if insecure:
        note(f"warning: TLS certificates of region {name!r} will not be checked (--insecure)")
    if settings.current == name:
        note(f"region {name!r} is in use")
    else:
        note(f"switch to it with: metalyard region use {name}")


def _confirm(name: str, url: str, token: str | None, verify: Verify, expected: str) -> str:
    """The region the server at `url` serves, once it is `expected` and takes the token."""
    unsaved = f"region {name!r} was not saved"
    with Client(url, token, verify=verify, timeout=CHECK_TIMEOUT, retries=1) as client:
        try:
            serving = client.region().name
        except MetalyardError as error:
            tls = isinstance(error.details, dict) and error.details.get("tls")
            hint = "; give its CA with --ca-bundle" if tls and verify is True else ""
            fail(
                f"{error.message}{hint}: {unsaved} (--no-check saves it unchecked)",
                exit_code_for(error),
            )
        if serving != expected:
            rename = f"name the profile {serving!r}" if name == expected else "fix --serves"
            fail(
                f"the server at {url} serves region {serving!r}, not {expected!r}: {unsaved}. "
                f"If that is the region you meant, {rename}, or add --serves {serving}",
                ExitCode.NO_REGION,
            )
        if token:
            try:
                me = client.whoami()
            except Unauthenticated as error:
                fail(
                    f"the server of region {serving!r} refused the token: {error.message}: "
                    f"{unsaved}",
                    ExitCode.NOT_ALLOWED,
                )
            note(f"region {serving!r} knows the token as {me.user} ({me.scope})")
    return serving


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
            serves=profile.region,
            token=bool(profile.token),
            tls="insecure" if profile.insecure else (profile.ca_bundle or "system CAs"),
        )
        for name, profile in sorted(settings.regions.items())
    ]
    listing(
        profiles, output, [("current", "IN USE"), "name", "url", "serves", "token", ("tls", "TLS")]
    )


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
