"""Users, teams, projects and tokens: who may act, and with which scope."""

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from metalyard.auth.actor import Actor
from metalyard.auth.audit import service as audit
from metalyard.auth.audit.models import Outcome
from metalyard.auth.models import ApiToken, Project, Team, User
from metalyard.auth.schemas import (
    ProjectCreate,
    ProjectUpdate,
    TeamCreate,
    TeamUpdate,
    TokenCreate,
    UserCreate,
    UserUpdate,
)
from metalyard.auth.scopes import Scope
from metalyard.config import Settings
from metalyard.db import utcnow
from metalyard.db.lookup import apply_fields, check_version, get_by
from metalyard.db.pagination import Page, SortKey, paginate
from metalyard.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    NotFound,
    Unauthenticated,
    invalid_fields,
)
from metalyard.inventory.models import Asset

TOKEN_PREFIX = "my_"
BOOTSTRAP_USER = "admin"


# Secrets -------------------------------------------------------------------------------


def hash_token(secret: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is safe and keeps each request cheap.
    return hashlib.sha256(secret.encode()).hexdigest()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=2**14, r=8, p=1)
    return hmac.compare_digest(candidate.hex(), digest)


# Authentication ------------------------------------------------------------------------


TOKEN_CACHE_SECONDS = 2.0
"""How long a token found valid is trusted without asking the database again.

A revoke or a user change made through this process takes effect at once; another API
process may accept a revoked token (or a disabled user's) for up to this long.
"""


@dataclass(frozen=True)
class TokenHolder:
    """Who a valid token speaks for, and with which scope."""

    user_id: int
    user_name: str
    token_id: int | None
    """None: the user gave name and password."""
    scope: Scope
    expires_at: datetime | None

    @classmethod
    def of(cls, user: User) -> "TokenHolder":
        """The user who gave name and password, with their role's scope."""
        return cls(user.id, user.name, token_id=None, scope=user.role, expires_at=None)


class CredentialsRefused(Unauthenticated):
    """Credentials of a known user that may not be used (revoked, expired, user disabled).

    `holder` says whose they are, for the audit log; the caller is told only why.
    """

    def __init__(self, message: str, *, holder: TokenHolder) -> None:
        super().__init__(message)
        self.holder = holder


class TokenCache:
    """Valid tokens by secret hash (and database), each for `ttl` seconds.

    Every `forget` bumps a generation: a lookup that began before it does not store its
    (possibly stale) answer, so a revoke cannot be undone by a request racing with it.
    """

    MAX_ENTRIES = 4096

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self.generation = 0
        self._entries: dict[tuple[object, str], tuple[float, TokenHolder]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[object, str]) -> TokenHolder | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored_at, holder = entry
        if self.clock() - stored_at >= self.ttl:
            return None
        if holder.expires_at is not None and holder.expires_at <= utcnow():
            return None
        return holder

    def put(self, key: tuple[object, str], holder: TokenHolder, generation: int) -> None:
        with self._lock:
            if generation != self.generation:
                return
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (self.clock(), holder)

    def forget(self, matches: Callable[[TokenHolder], bool]) -> None:
        with self._lock:
            self.generation += 1
            for key, (_, holder) in list(self._entries.items()):
                if matches(holder):
                    del self._entries[key]


token_cache = TokenCache(TOKEN_CACHE_SECONDS)


def recall_token(session: Session, *, secret: str) -> TokenHolder | None:
    """The holder of a token found valid in the last few seconds, without any SQL."""
    return token_cache.get(_cache_key(session, secret))


def authenticate_token(session: Session, *, secret: str) -> TokenHolder:
    """The token's holder, or Unauthenticated saying why the token does not work."""
    key = _cache_key(session, secret)
    holder = token_cache.get(key)
    if holder is not None:
        return holder
    generation = token_cache.generation
    token = session.scalar(select(ApiToken).where(ApiToken.secret_hash == key[1]))
    if token is None:
        raise Unauthenticated("the token is not valid")
    holder = TokenHolder(
        user_id=token.user.id,
        user_name=token.user.name,
        token_id=token.id,
        # Never above the user's role now: demoting a user demotes the tokens they hold.
        scope=token.scope if token.user.role.covers(token.scope) else token.user.role,
        expires_at=token.expires_at,
    )
    if token.revoked_at is not None:
        raise CredentialsRefused("the token was revoked", holder=holder)
    if token.expires_at is not None and token.expires_at <= utcnow():
        raise CredentialsRefused(
            f"the token expired at {token.expires_at.isoformat()}", holder=holder
        )
    if not token.user.active:
        raise CredentialsRefused(f"user {token.user.name!r} is disabled", holder=holder)
    token_cache.put(key, holder, generation)
    return holder


def _cache_key(session: Session, secret: str) -> tuple[object, str]:
    # Keyed by engine too: one process (the tests, the benchmark) may serve several databases.
    return session.get_bind(), hash_token(secret)


def _forget_tokens(session: Session, matches: Callable[[TokenHolder], bool]) -> None:
    """Forget cached tokens now, and again once the change commits (a racing lookup may
    have read the row as it was before)."""
    token_cache.forget(matches)
    event.listen(session, "after_commit", lambda _: token_cache.forget(matches), once=True)


def authenticate_password(session: Session, *, name: str, password: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None or not user.password_hash or not verify_password(password, user.password_hash):
        raise Unauthenticated("wrong user name or password")
    if not user.active:
        raise CredentialsRefused(f"user {name!r} is disabled", holder=TokenHolder.of(user))
    return user


def bootstrap(session: Session) -> str | None:
    """On an empty database, create the first admin and return its token (else None)."""
    if session.scalar(select(func.count()).select_from(User)):
        return None
    user = User(name=BOOTSTRAP_USER, role=Scope.ADMIN)
    try:
        with session.begin_nested():  # two servers starting at once: one creates the admin
            session.add(user)
    except IntegrityError:
        return None
    _, secret = _mint(session, user, scope=Scope.ADMIN, name="bootstrap", expires_in=None)
    return secret


# Tokens --------------------------------------------------------------------------------


def create_token(
    session: Session, *, data: TokenCreate, user_id: int, ceiling: Scope
) -> tuple[ApiToken, str]:
    """Mint a token for the caller, never above what they authenticated with (`ceiling`)."""
    user = get_by(session, User, "user", id=user_id)
    for limit, why in (
        (user.role, f"user {user.name!r} has role {user.role.value}"),
        (ceiling, f"the credentials used carry scope {ceiling.value}"),
    ):
        if not limit.covers(data.scope):
            article = "an" if data.scope is Scope.ADMIN else "a"
            raise Forbidden(
                f"cannot create {article} {data.scope.value} token: {why}",
                details={"requested": data.scope.value, "allowed": limit.value},
            )
    return _mint(session, user, scope=data.scope, name=data.name, expires_in=data.expires_in)


def _mint(
    session: Session, user: User, *, scope: Scope, name: str, expires_in: int | None
) -> tuple[ApiToken, str]:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user=user,
        scope=scope,
        name=name,
        secret_hash=hash_token(secret),
        expires_at=utcnow() + timedelta(seconds=expires_in) if expires_in else None,
    )
    session.add(token)
    session.flush()
    return token, secret


def list_tokens(
    session: Session, *, actor: Actor, all_users: bool, limit: int, cursor: str | None
) -> Page[ApiToken]:
    stmt = select(ApiToken)
    if all_users:
        if not actor.scope.covers(Scope.ADMIN):
            raise Forbidden("listing every user's tokens needs the admin scope")
    else:
        stmt = stmt.where(ApiToken.user_id == actor.user_id)
    return paginate(
        session, stmt, id_column=ApiToken.id, sort=SortKey(ApiToken.id), limit=limit, cursor=cursor
    )


def revoke_token(session: Session, *, token_id: int, actor: Actor) -> ApiToken:
    """A user revokes their own tokens; an admin revokes anyone's."""
    token = session.get(ApiToken, token_id)
    if token is None or (token.user_id != actor.user_id and not actor.scope.covers(Scope.ADMIN)):
        raise NotFound(f"no token with id {token_id} of yours", details={"id": token_id})
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    session.flush()
    _forget_tokens(session, lambda holder: holder.token_id == token_id)
    return token


# Users ---------------------------------------------------------------------------------


def create_user(session: Session, *, data: UserCreate) -> User:
    if session.scalar(select(User.id).where(User.name == data.name)):
        raise AlreadyExists(f"a user named {data.name!r} already exists")
    user = User(
        name=data.name,
        email=data.email,
        role=data.role,
        password_hash=hash_password(data.password) if data.password else "",
    )
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, *, name: str, for_update: bool = False) -> User:
    return get_by(session, User, "user", for_update=for_update, name=name)


def list_users(session: Session, *, limit: int, cursor: str | None) -> Page[User]:
    return paginate(
        session,
        select(User),
        id_column=User.id,
        sort=SortKey(User.name),
        limit=limit,
        cursor=cursor,
    )


def update_user(session: Session, *, name: str, data: UserUpdate) -> User:
    stepping_down = data.active is False or data.role not in (None, Scope.ADMIN)
    # The admins before the user: every writer locks them in one order (see _keep_an_admin).
    admins = _lock_active_admins(session) if stepping_down else []
    user = get_user(session, name=name, for_update=True)
    check_version(user, data.version, f"user {name!r}")
    changes = data.model_dump(
        exclude_unset=True, exclude_none=True, exclude={"version", "password"}
    )
    if data.password is not None:
        changes["password_hash"] = hash_password(data.password)
    if stepping_down:
        _keep_an_admin(user, admins)
    apply_fields(user, changes)
    user.updated_at = utcnow()
    session.flush()
    _forget_tokens(session, lambda holder: holder.user_id == user.id)
    return user


def recover_admin(
    session: Session, *, name: str, actor: Actor, settings: Settings
) -> tuple[User, str]:
    """Make `name` an active admin (creating the user if need be) with a new admin token.

    The way back in when no admin can log in: it needs the database, not a token, so only
    whoever runs the server can use it; the audit log records it all the same.
    """
    user = session.scalar(
        select(User)
        .where(User.name == name)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    before = None if user is None else {"role": user.role.value, "active": user.active}
    if user is None:
        try:
            data = UserCreate(name=name, role=Scope.ADMIN)
        except ValidationError as error:
            raise invalid_fields(error.errors()) from None
        user = create_user(session, data=data)
    else:
        user.role, user.active, user.updated_at = Scope.ADMIN, True, utcnow()
    token, secret = _mint(session, user, scope=Scope.ADMIN, name="recovery", expires_in=None)
    _forget_tokens(session, lambda holder: holder.user_id == user.id)
    audit.record(
        session,
        settings=settings,
        action="recover_admin",
        target=f"users/{name}",
        outcome=Outcome.SUCCESS,
        status=200 if before else 201,
        summary={"before": before, "token_id": token.id},
        actor=actor,
        request_id=actor.request_id,
        client=actor.client,
    )
    return user, secret


def _lock_active_admins(session: Session) -> list[int]:
    """Lock the active admins, in one order: two admins disabling each other at once would
    otherwise each see the other still active (or wait for each other for ever)."""
    return list(
        session.scalars(
            select(User.id)
            .where(User.role == Scope.ADMIN, User.active.is_(True))
            .order_by(User.id)
            .with_for_update()
        ).all()
    )


def _keep_an_admin(user: User, admins: list[int]) -> None:
    """Refuse to disable or demote the last active admin: nobody could administer after.

    `admins` are the active admins, locked (_lock_active_admins) before `user` was read.
    """
    if not (user.active and user.role is Scope.ADMIN):
        return
    if set(admins) <= {user.id}:
        raise Conflict(
            f"user {user.name!r} is the last active admin: make another user admin first",
            details={"user": user.name},
        )


# Teams ---------------------------------------------------------------------------------


def create_team(session: Session, *, data: TeamCreate) -> Team:
    if session.scalar(select(Team.id).where(Team.name == data.name)):
        raise AlreadyExists(f"a team named {data.name!r} already exists")
    team = Team(name=data.name, description=data.description, members=_users(session, data.members))
    session.add(team)
    session.flush()
    return team


def get_team(session: Session, *, name: str, for_update: bool = False) -> Team:
    return get_by(session, Team, "team", for_update=for_update, name=name)


def list_teams(session: Session, *, limit: int, cursor: str | None) -> Page[Team]:
    return paginate(
        session,
        select(Team),
        id_column=Team.id,
        sort=SortKey(Team.name),
        limit=limit,
        cursor=cursor,
    )


def update_team(session: Session, *, name: str, data: TeamUpdate) -> Team:
    team = get_team(session, name=name, for_update=True)
    check_version(team, data.version, f"team {name!r}")
    if data.description is not None:
        team.description = data.description
    if data.members is not None:
        team.members = _users(session, data.members)
    team.updated_at = utcnow()
    session.flush()
    return team


def delete_team(session: Session, *, name: str) -> None:
    team = get_team(session, name=name, for_update=True)
    for model, column, label in (
        (Project, Project.team_id, "project"),
        (Asset, Asset.owner_team_id, "asset"),
    ):
        count = session.scalar(select(func.count()).select_from(model).where(column == team.id))
        if count:
            raise Conflict(f"team {name!r} still owns {count} {label}(s)")
    session.delete(team)


def _users(session: Session, names: list[str]) -> list[User]:
    users = session.scalars(select(User).where(User.name.in_(set(names)))).all()
    missing = set(names) - {u.name for u in users}
    if missing:
        raise NotFound(
            f"no user named {', '.join(sorted(missing))}", details={"users": sorted(missing)}
        )
    return list(users)


# Projects ------------------------------------------------------------------------------


def create_project(session: Session, *, data: ProjectCreate) -> Project:
    if session.scalar(select(Project.id).where(Project.name == data.name)):
        raise AlreadyExists(f"a project named {data.name!r} already exists")
    project = Project(
        name=data.name, description=data.description, team=get_team(session, name=data.team)
    )
    session.add(project)
    session.flush()
    return project


def get_project(session: Session, *, name: str, for_update: bool = False) -> Project:
    return get_by(session, Project, "project", for_update=for_update, name=name)


def list_projects(
    session: Session, *, team: str | None, limit: int, cursor: str | None
) -> Page[Project]:
    stmt = select(Project)
    if team is not None:
        stmt = stmt.where(Project.team_id.in_(select(Team.id).where(Team.name == team)))
    return paginate(
        session,
        stmt,
        id_column=Project.id,
        sort=SortKey(Project.name),
        limit=limit,
        cursor=cursor,
    )


def update_project(session: Session, *, name: str, data: ProjectUpdate) -> Project:
    project = get_project(session, name=name, for_update=True)
    check_version(project, data.version, f"project {name!r}")
    if data.team is not None:
        project.team = get_team(session, name=data.team)
    if data.description is not None:
        project.description = data.description
    project.updated_at = utcnow()
    session.flush()
    return project


def delete_project(session: Session, *, name: str) -> None:
    project = get_project(session, name=name, for_update=True)
    count = session.scalar(select(func.count()).where(Asset.project_id == project.id))
    if count:
        raise Conflict(f"project {name!r} still has {count} asset(s)")
    session.delete(project)
