"""`metalyard user|team|project|token …` and `metalyard whoami`."""

import dataclasses
import getpass
import os
import socket
import sys
from typing import Annotated

import typer

from metalyard.auth.scopes import Scope
from metalyard.cli import parsing
from metalyard.cli.common import Cursor, Description, Limit, Version, changes, list_page, paging
from metalyard.cli.context import connect, target
from metalyard.cli.output import Output, OutputOption, note, show

user = typer.Typer(help="Users, and the highest scope their tokens may carry.")
team = typer.Typer(help="Teams: they own assets and projects.")
project = typer.Typer(help="Projects, each owned by a team.")
token = typer.Typer(help="API tokens: create (shown once), list, revoke.")
for _app in (user, team, project, token):
    _app.info.no_args_is_help = True

USER_COLUMNS = ["name", "email", "role", "active", "teams"]
TEAM_COLUMNS = ["name", "description", "members"]
PROJECT_COLUMNS = ["name", "team", "description"]
TOKEN_COLUMNS = ["id", "user", "name", "scope", "created_at", "expires_at", "revoked_at"]

Email = Annotated[str | None, typer.Option(help="E-mail address.")]
Role = Annotated[
    Scope | None, typer.Option(case_sensitive=False, help="Highest scope of the user's tokens.")
]
SetPassword = Annotated[
    bool, typer.Option("--password", help="Ask for a password (lets the user mint tokens).")
]
Members = Annotated[list[str] | None, typer.Option("--member", help="A user name; repeatable.")]


def _ask(label: str, *, secret: bool = False) -> str:
    """Ask on stderr, so that stdout carries only the answer (`$(metalyard token create …)`);
    from a pipe, read the line given (getpass would wait on the terminal instead)."""
    if secret and sys.stdin.isatty():
        return getpass.getpass(f"{label}: ", stream=sys.stderr)
    typer.echo(f"{label}: ", nl=False, err=True)
    answer = sys.stdin.readline()
    if not answer:
        raise typer.BadParameter(f"no {label} given on standard input")
    return answer.rstrip("\r\n")


def _new_password(wanted: bool) -> dict[str, str]:
    if not wanted:
        return {}
    return {
        "password": typer.prompt("password", hide_input=True, confirmation_prompt=True, err=True)
    }


# Users ---------------------------------------------------------------------------------


@user.command("list")
def user_list(limit: Limit = None, cursor: Cursor = None, output: OutputOption = Output.table):
    """List users."""
    list_page(connect().users.list(**paging(limit, cursor)), output, USER_COLUMNS)


@user.command("show")
def user_show(name: str, output: OutputOption = Output.table):
    """Show one user."""
    show(connect().users.get(name), output)


@user.command("create")
def user_create(
    name: str,
    email: Email = None,
    role: Role = None,
    password: SetPassword = False,
    output: OutputOption = Output.table,
):
    """Create a user (admin)."""
    fields = {**parsing.drop_none(email=email, role=role), **_new_password(password)}
    show(connect().users.create(name=name, **fields), output)


@user.command("update")
def user_update(
    name: str,
    email: Email = None,
    role: Role = None,
    password: SetPassword = False,
    active: Annotated[
        bool | None, typer.Option("--active/--disabled", help="Enable or disable the user.")
    ] = None,
    version: Version = None,
    output: OutputOption = Output.table,
):
    """Change a user's e-mail, role or password, or disable them (admin)."""
    fields = {**parsing.drop_none(email=email, role=role, active=active), **_new_password(password)}
    show(connect().users.update(name, version=version, **changes(fields)), output)


@user.command("recover-admin")
def user_recover_admin(name: Annotated[str, typer.Argument(help="The user to make admin.")]):
    """Make NAME an active admin and print a new admin token, once (run on the server).

    For when no admin can log in (the bootstrap token lost, the last admin locked out): it
    works on the database itself, configured by METALYARD_* variables as for `metalyard
    serve`, needs no token, and is recorded in the audit log.
    """
    from metalyard.auth.actor import Actor
    from metalyard.auth.service import recover_admin
    from metalyard.startup import load_settings, open_database

    settings = load_settings()
    database = open_database(settings)
    actor = dataclasses.replace(Actor.system("recover-admin"), client=_local_account())
    try:
        with database.transaction() as session:
            _, secret = recover_admin(session, name=name, actor=actor, settings=settings)
    finally:
        database.dispose()
    note(f"user {name!r} is an active admin; its new admin token is shown only this once:")
    typer.echo(secret)


def _local_account() -> str:
    """Who ran a local command, as the audit log's client: user@host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container's uid with no name
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"[:64]


# Teams ---------------------------------------------------------------------------------


@team.command("list")
def team_list(limit: Limit = None, cursor: Cursor = None, output: OutputOption = Output.table):
    """List teams."""
    list_page(connect().teams.list(**paging(limit, cursor)), output, TEAM_COLUMNS)


@team.command("show")
def team_show(name: str, output: OutputOption = Output.table):
    """Show one team."""
    show(connect().teams.get(name), output)


@team.command("create")
def team_create(
    name: str,
    description: Description = None,
    member: Members = None,
    output: OutputOption = Output.table,
):
    """Create a team (admin)."""
    fields = parsing.drop_none(description=description, members=member)
    show(connect().teams.create(name=name, **fields), output)


@team.command("update")
def team_update(
    name: str,
    description: Description = None,
    member: Annotated[
        list[str] | None, typer.Option("--member", help="A user name; repeatable; replaces all.")
    ] = None,
    version: Version = None,
    output: OutputOption = Output.table,
):
    """Change a team's description or members (admin)."""
    fields = parsing.drop_none(description=description, members=member)
    show(connect().teams.update(name, version=version, **changes(fields)), output)


@team.command("delete")
def team_delete(name: str):
    """Delete a team that owns nothing (admin)."""
    connect().teams.delete(name)
    note(f"deleted team {name!r}")


# Projects ------------------------------------------------------------------------------

TeamName = Annotated[str | None, typer.Option("--team", help="Team name.")]


@project.command("list")
def project_list(
    team: TeamName = None,
    limit: Limit = None,
    cursor: Cursor = None,
    output: OutputOption = Output.table,
):
    """List projects."""
    projects = connect().projects.list(team=team, **paging(limit, cursor))
    list_page(projects, output, PROJECT_COLUMNS)


@project.command("show")
def project_show(name: str, output: OutputOption = Output.table):
    """Show one project."""
    show(connect().projects.get(name), output)


@project.command("create")
def project_create(
    name: str,
    team: Annotated[str, typer.Option(help="The team that owns the project.")],
    description: Description = None,
    output: OutputOption = Output.table,
):
    """Create a project."""
    fields = parsing.drop_none(description=description)
    show(connect().projects.create(name=name, team=team, **fields), output)


@project.command("update")
def project_update(
    name: str,
    team: TeamName = None,
    description: Description = None,
    version: Version = None,
    output: OutputOption = Output.table,
):
    """Change a project's team or description."""
    fields = parsing.drop_none(team=team, description=description)
    show(connect().projects.update(name, version=version, **changes(fields)), output)


@project.command("delete")
def project_delete(name: str):
    """Delete a project no asset serves."""
    connect().projects.delete(name)
    note(f"deleted project {name!r}")


# Tokens --------------------------------------------------------------------------------


@token.command("create")
def token_create(
    scope: Annotated[Scope, typer.Option(case_sensitive=False, help="read, write or admin.")] = (
        Scope.READ
    ),
    name: Annotated[str, typer.Option(help="A label, to recognise the token later.")] = "",
    expires_in: Annotated[
        str | None, typer.Option(help="Lifetime: 30m, 1h, 2d or seconds; default never.")
    ] = None,
    password: Annotated[
        bool,
        typer.Option(
            "--password", help="Authenticate with user name and password (to get a write token)."
        ),
    ] = False,
    output: OutputOption = Output.table,
):
    """Create a token for yourself and print its secret, once.

    A read token cannot mint a write token: use --password for that (the sudo way), e.g.
    export METALYARD_TOKEN=$(metalyard token create --scope write --expires-in 1h --password)
    """
    seconds = parsing.duration(expires_in)
    basic = (_ask("user name"), _ask("password", secret=True)) if password else None
    client = connect(token=not password)
    created = client.tokens.create(scope=scope, name=name, expires_in=seconds, basic=basic)
    if output is not Output.table:
        show(created, output)
        return
    expiry = (
        f"expires {created.expires_at:%Y-%m-%d %H:%M %Z}" if created.expires_at else "no expiry"
    )
    note(f"token {created.id} for {created.user}, scope {created.scope}, {expiry}")
    note("the secret below is shown only this once:")
    typer.echo(created.token)


@token.command("list")
def token_list(
    all_users: Annotated[bool, typer.Option("--all", help="Everyone's tokens (admin).")] = False,
    limit: Limit = None,
    cursor: Cursor = None,
    output: OutputOption = Output.table,
):
    """List your tokens (never their secrets)."""
    tokens = connect().tokens.list(all_users, **paging(limit, cursor))
    list_page(tokens, output, TOKEN_COLUMNS)


@token.command("revoke")
def token_revoke(token_id: int, output: OutputOption = Output.table):
    """Revoke one of your tokens (an admin may revoke anyone's)."""
    revoked = connect().tokens.revoke(token_id)
    if output is Output.table:
        note(f"revoked token {revoked.id} ({revoked.user}, {revoked.name or 'unnamed'})")
    else:
        show(revoked, output)


def whoami(output: OutputOption = Output.table):
    """Who the token of this region belongs to, and its scope."""
    client = connect()
    show(client.whoami(), output, extra={"region": target().name, "url": client.url})
