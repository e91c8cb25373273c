"""Routes for users, teams, projects and tokens."""

from typing import Annotated

from fastapi import Depends, Path, status

from metalyard.api.deps import (
    ActorDep,
    ETaggedDep,
    IdPath,
    PageDep,
    SessionDep,
    VersionedDep,
    authorize_with_password,
    etag_responses,
    requires,
)
from metalyard.api.routing import open_router, secured_router
from metalyard.auth import service
from metalyard.auth.actor import Actor
from metalyard.auth.schemas import (
    ProjectCreate,
    ProjectOut,
    ProjectUpdate,
    TeamCreate,
    TeamOut,
    TeamUpdate,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserCreate,
    UserOut,
    UserUpdate,
    WhoAmI,
)
from metalyard.auth.scopes import Scope
from metalyard.schemas import Name, PageOut

users = secured_router(prefix="/users", tags=["users"])
teams = secured_router(prefix="/teams", tags=["teams"])
projects = secured_router(prefix="/projects", tags=["projects"])
tokens = secured_router(prefix="/tokens", tags=["tokens"])
login = open_router(prefix="/tokens", tags=["tokens"])
me = secured_router(tags=["tokens"])
routers = [users, teams, projects, login, tokens, me]

NamePath = Annotated[str, Path(max_length=64)]
ADMIN = requires(Scope.ADMIN)


def user_out(user) -> UserOut:
    return UserOut(
        name=user.name,
        email=user.email,
        role=user.role,
        active=user.active,
        teams=[t.name for t in user.teams],
        version=user.version,
        created_at=user.created_at,
    )


def team_out(team) -> TeamOut:
    return TeamOut(
        name=team.name,
        description=team.description,
        members=[u.name for u in team.members],
        version=team.version,
        created_at=team.created_at,
    )


def project_out(project) -> ProjectOut:
    return ProjectOut(
        name=project.name,
        team=project.team.name,
        description=project.description,
        version=project.version,
        created_at=project.created_at,
    )


def token_out(token) -> TokenOut:
    return TokenOut(
        id=token.id,
        user=token.user.name,
        name=token.name,
        scope=token.scope,
        created_at=token.created_at,
        expires_at=token.expires_at,
        revoked_at=token.revoked_at,
    )


# Who am I, and tokens ------------------------------------------------------------------


@me.get("/whoami", response_model=WhoAmI)
def whoami(actor: ActorDep):
    return WhoAmI(user=actor.name, scope=actor.scope, token_id=actor.token_id)


@login.post(
    "", response_model=TokenCreated, status_code=status.HTTP_201_CREATED, **requires(Scope.READ)
)
def create_token(
    body: TokenCreate,
    session: SessionDep,
    actor: Annotated[Actor, Depends(authorize_with_password)],
):
    """Mint a token for yourself, up to the scope you authenticated with.

    Work with a read token; to write, authenticate with name and password (HTTP Basic) or a
    write token and mint a short-lived write token (the sudo model). The secret is shown once.
    """
    token, secret = service.create_token(
        session, data=body, user_id=actor.user_id, ceiling=actor.scope
    )
    return TokenCreated(**token_out(token).model_dump(), token=secret)


@tokens.get("", response_model=PageOut[TokenOut])
def list_tokens(session: SessionDep, actor: ActorDep, page: PageDep, all_users: bool = False):
    """Your tokens; with `all_users` (admin), everyone's. Secrets are never returned."""
    result = service.list_tokens(
        session, actor=actor, all_users=all_users, limit=page.limit, cursor=page.cursor
    )
    return PageOut(items=[token_out(t) for t in result.items], next_cursor=result.next_cursor)


@tokens.delete("/{token_id}", response_model=TokenOut, **requires(Scope.READ))
def revoke_token(token_id: IdPath, session: SessionDep, actor: ActorDep):
    """Any token may revoke its owner's tokens; an admin token, anyone's."""
    return token_out(service.revoke_token(session, token_id=token_id, actor=actor))


# Users ---------------------------------------------------------------------------------


@users.get("", response_model=PageOut[UserOut])
def list_users(session: SessionDep, page: PageDep):
    result = service.list_users(session, limit=page.limit, cursor=page.cursor)
    return PageOut(items=[user_out(u) for u in result.items], next_cursor=result.next_cursor)


@users.post(
    "", response_model=UserOut, status_code=status.HTTP_201_CREATED, **ADMIN, **etag_responses(201)
)
def create_user(body: UserCreate, session: SessionDep, reply: ETaggedDep):
    return user_out(reply.answer(service.create_user(session, data=body)))


@users.get("/{name}", response_model=UserOut, **etag_responses(200))
def get_user(name: NamePath, session: SessionDep, reply: ETaggedDep):
    return user_out(reply.answer(service.get_user(session, name=name)))


@users.patch("/{name}", response_model=UserOut, **ADMIN, **etag_responses(200))
def update_user(name: NamePath, body: UserUpdate, session: SessionDep, change: VersionedDep):
    """Change role, e-mail or password, or disable the user (`active: false`)."""
    return user_out(change.answer(service.update_user(session, name=name, data=change.of(body))))


# Teams ---------------------------------------------------------------------------------


@teams.get("", response_model=PageOut[TeamOut])
def list_teams(session: SessionDep, page: PageDep):
    result = service.list_teams(session, limit=page.limit, cursor=page.cursor)
    return PageOut(items=[team_out(t) for t in result.items], next_cursor=result.next_cursor)


@teams.post(
    "", response_model=TeamOut, status_code=status.HTTP_201_CREATED, **ADMIN, **etag_responses(201)
)
def create_team(body: TeamCreate, session: SessionDep, reply: ETaggedDep):
    return team_out(reply.answer(service.create_team(session, data=body)))


@teams.get("/{name}", response_model=TeamOut, **etag_responses(200))
def get_team(name: NamePath, session: SessionDep, reply: ETaggedDep):
    return team_out(reply.answer(service.get_team(session, name=name)))


@teams.patch("/{name}", response_model=TeamOut, **ADMIN, **etag_responses(200))
def update_team(name: NamePath, body: TeamUpdate, session: SessionDep, change: VersionedDep):
    return team_out(change.answer(service.update_team(session, name=name, data=change.of(body))))


@teams.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, **ADMIN)
def delete_team(name: NamePath, session: SessionDep) -> None:
    service.delete_team(session, name=name)


# Projects ------------------------------------------------------------------------------


@projects.get("", response_model=PageOut[ProjectOut])
def list_projects(session: SessionDep, page: PageDep, team: Name | None = None):
    result = service.list_projects(session, team=team, limit=page.limit, cursor=page.cursor)
    return PageOut(items=[project_out(p) for p in result.items], next_cursor=result.next_cursor)


@projects.post(
    "", response_model=ProjectOut, status_code=status.HTTP_201_CREATED, **etag_responses(201)
)
def create_project(body: ProjectCreate, session: SessionDep, reply: ETaggedDep):
    return project_out(reply.answer(service.create_project(session, data=body)))


@projects.get("/{name}", response_model=ProjectOut, **etag_responses(200))
def get_project(name: NamePath, session: SessionDep, reply: ETaggedDep):
    return project_out(reply.answer(service.get_project(session, name=name)))


@projects.patch("/{name}", response_model=ProjectOut, **etag_responses(200))
def update_project(name: NamePath, body: ProjectUpdate, session: SessionDep, change: VersionedDep):
    project = service.update_project(session, name=name, data=change.of(body))
    return project_out(change.answer(project))


@projects.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_project(name: NamePath, session: SessionDep) -> None:
    service.delete_project(session, name=name)
