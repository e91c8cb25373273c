"""What every route depends on: its transaction, the settings, and who is calling.

Authorisation happens here and only here: each route needs `read` for GET and `write`
otherwise, unless it declares another scope with `requires()`; the OpenAPI document names
that scope as each operation's `x-required-scope` (see `token_scope`).

The dependencies are `async def`: FastAPI runs a plain `def` one in a worker thread, and
the hand-off costs more than these do. Those that may wait on the database hand off
themselves, and only then.
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Depends, Header, Path, Query, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import (
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from metalyard.api.errors import not_json
from metalyard.auth import service as auth_service
from metalyard.auth.actor import Actor
from metalyard.auth.models import User
from metalyard.auth.scopes import Scope
from metalyard.config import Settings
from metalyard.errors import Conflict, Forbidden, InvalidInput, Unauthenticated
from metalyard.schemas import MAX_PAGE_SIZE

T = TypeVar("T")
V = TypeVar("V", bound="HasVersion")

SCOPE_KEY = "x-required-scope"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer = HTTPBearer(
    auto_error=False,
    description=(
        "An API token: `Authorization: Bearer my_…`. Each operation that takes one names the "
        "scope it needs in `x-required-scope` (`read` < `write` < `admin`)."
    ),
)
basic = HTTPBasic(auto_error=False, description="Name and password; only to create a token.")


def requires(scope: Scope) -> dict[str, Any]:
    """Route keyword arguments declaring a scope other than the method's default."""
    return {"openapi_extra": {SCOPE_KEY: scope.value}}


def required_scope(method: str, openapi_extra: dict[str, Any] | None) -> Scope:
    declared = (openapi_extra or {}).get(SCOPE_KEY)
    if declared:
        return Scope(declared)
    return Scope.READ if method in READ_METHODS else Scope.WRITE


def token_scope(route: APIRoute) -> Scope | None:
    """The scope `_admit` will ask of the route's token, for the OpenAPI document to say
    (routing puts it there); None for a route that takes no token."""
    if not _checks_token(route.dependant):
        return None
    scopes = {required_scope(method, route.openapi_extra) for method in route.methods}
    if len(scopes) > 1:  # documenting one would then enforce it for every method
        raise ValueError(f"{route.path}: its methods need different scopes; use requires()")
    return scopes.pop()


def _checks_token(dependant: Dependant) -> bool:
    return any(
        d.call in (authorize, authorize_with_password) or _checks_token(d)
        for d in dependant.dependencies
    )


async def get_session(request: Request) -> Session:
    return request.state.session


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def authorize(
    request: Request,
    session: Annotated[Session, Depends(get_session)],
    token: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    if token is None:
        raise Unauthenticated("this call needs an API token: send 'Authorization: Bearer <token>'")
    holder = auth_service.recall_token(session, secret=token.credentials)
    if holder is None:
        holder = await _authenticated(
            request, auth_service.authenticate_token, session, secret=token.credentials
        )
    return await _admit(request, session, _actor(request, holder))


async def authorize_with_password(
    request: Request,
    session: Annotated[Session, Depends(get_session)],
    token: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    password: Annotated[HTTPBasicCredentials | None, Depends(basic)],
) -> Actor:
    """Like `authorize`, but also takes name and password: the way to a stronger token."""
    if password is not None and token is None:
        user = await _authenticated(
            request,
            auth_service.authenticate_password,
            session,
            name=password.username,
            password=password.password,
        )
        return await _admit(request, session, _actor(request, auth_service.TokenHolder.of(user)))
    return await authorize(request, session, token)


async def _authenticated(request: Request, check: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`check(*args, **kwargs)` in a worker thread; credentials it refuses although they are
    a known user's still name that user to the audit log (an unknown token stays anonymous)."""
    try:
        return await run_in_threadpool(check, *args, **kwargs)
    except auth_service.CredentialsRefused as refused:
        request.state.actor = _actor(request, refused.holder)
        raise


NUL_ESCAPE = b"\\u0000"


async def refuse_nul_characters(request: Request) -> None:
    """PostgreSQL cannot store a NUL character, and JSON carries one only as `\\u0000`.

    Looking for that escape in the raw body is one scan; checking every string as it was
    validated took nearly half the validation of a 10,000-asset import (600 against 340 ms).
    """
    body = await request.body()
    if NUL_ESCAPE not in body:
        return
    try:
        path = _nul_path(json.loads(body), ())
    except (ValueError, RecursionError):
        return  # not JSON, or too deep to walk: FastAPI answers that
    if path is not None:
        raise RequestValidationError(
            [{"loc": ("body", *path), "msg": "text may not contain NUL characters", "type": "nul"}]
        )


def _nul_path(value: Any, path: tuple[str | int, ...]) -> tuple[str | int, ...] | None:
    """Where in a JSON document the first NUL character is, if any."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        if any("\x00" in key for key in value):
            return path
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _nul_path(item, (*path, key))
        if found is not None:
            return found
    return None


def _actor(request: Request, holder: auth_service.TokenHolder) -> Actor:
    return Actor(
        name=holder.user_name,
        scope=holder.scope,
        user_id=holder.user_id,
        token_id=holder.token_id,
        request_id=request.state.request_id,
        client=request.client.host if request.client else "",
    )


async def _admit(request: Request, session: Session, actor: Actor) -> Actor:
    request.state.actor = actor  # the audit log reads it, even when the call is then denied
    route = request.scope["route"]
    needed = required_scope(request.method, route.openapi_extra)
    if not actor.scope.covers(needed):
        user = await run_in_threadpool(auth_service.get_user, session, name=actor.name)
        raise Forbidden(
            f"this call needs a token with scope {needed.value}; yours has {actor.scope.value}. "
            + _way_to(needed, user),
            details={"needed": needed.value, "have": actor.scope.value, "role": user.role.value},
        )
    return actor


def _way_to(needed: Scope, user: User) -> str:
    """How this user gets a token of the `needed` scope, if they can: a hint that is true."""
    if not user.role.covers(needed):
        return (
            f"Your role ({user.role.value}) does not allow it: an admin must grant the role "
            f"(metalyard user update {user.name} --role {needed.value})"
        )
    if user.password_hash:
        return (
            f"Your role ({user.role.value}) allows it: "
            f"metalyard token create --scope {needed.value} --expires-in 1h --password"
        )
    return (
        f"Your role ({user.role.value}) allows it, but you have no password to mint one with: "
        f"use a token of scope {needed.value} or more, or have an admin set a password "
        f"(metalyard user update {user.name} --password)"
    )


@dataclass(frozen=True)
class PageQuery:
    """The paging parameters every list takes."""

    limit: int
    cursor: str | None


async def paging(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = 100,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the page before.")
    ] = None,
) -> PageQuery:
    """A function, not the class itself: FastAPI would run the class in a worker thread."""
    return PageQuery(limit, cursor)


async def raw_body(request: Request) -> bytes:
    """The body as sent, once it is declared JSON (a CSV file sent as is gets a 415)."""
    refusal = not_json(request)
    if refusal is not None:
        raise refusal
    return await request.body()


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """Route keyword `openapi_extra` documenting the JSON body of a route that reads it raw.

    The models it refers to must be in the document's components, as those of other
    routes' bodies are (tests/api/test_openapi.py checks every reference).
    """
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


IdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="Numeric id.")]
"""Ids fit a 32-bit integer column on every backend."""

SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ActorDep = Annotated[Actor, Depends(authorize)]
PageDep = Annotated[PageQuery, Depends(paging)]
RawBody = Annotated[bytes, Depends(raw_body)]
"""The body as sent, for a service that validates it itself."""


# Versions: If-Match on the way in, ETag on the way out ----------------------------------


class HasVersion(Protocol):
    version: Any


ETAG_HEADER = {
    "ETag": {
        "description": 'The object\'s version as an ETag (`"3"`): send it back as If-Match.',
        "schema": {"type": "string"},
    }
}


def etag_responses(*statuses: int, **more: Any) -> dict[str, Any]:
    """Route keyword `responses` documenting the ETag of the answers with these statuses."""
    responses = dict(more.pop("responses", {}))
    for code in statuses:
        responses[code] = {**responses.get(code, {}), "headers": ETAG_HEADER}
    return {"responses": responses, **more}


ETAG = re.compile(r'"([0-9]{1,18})"')


def etag(version: int) -> str:
    return f'"{version}"'


@dataclass(frozen=True)
class ETagged:
    """The answer of a route that returns a versioned object: it carries the ETag."""

    response: Response

    def answer(self, row: T) -> T:
        """`row`, whose version is now the answer's ETag."""
        self.response.headers["ETag"] = etag(row.version)  # type: ignore[attr-defined]
        return row


@dataclass(frozen=True)
class Versioned(ETagged):
    """A change to a versioned object: the version it holds to, and the answer's ETag.

    The version comes from the body's `version`, the If-Match header, or both if they
    agree; `If-Match: *` holds to none (any current version), as sending none does.
    """

    if_match: int | None

    def expected(self, version: int | None) -> int | None:
        """The version the change holds to, given the one its body names."""
        if self.if_match is None or version in (None, self.if_match):
            return self.if_match if version is None else version
        raise Conflict(
            f"If-Match names version {self.if_match} but the body's version is {version}: "
            "send one of them, or the same in both",
            details={"if_match": self.if_match, "version": version},
        )

    def of(self, body: V) -> V:
        """`body` with its `version` the one the change holds to."""
        version = self.expected(body.version)
        if version == body.version:
            return body
        return body.model_copy(update={"version": version})  # type: ignore[attr-defined]


IF_MATCH_HELP = (
    'The ETag of the version you read (`"3"`, as GET answers it), or `*` for any: a change '
    "to an object that has moved on since is refused with 409. Like `version` in the body; "
    "if both are given they must agree."
)


def _version_of(if_match: str | None) -> int | None:
    """The version an If-Match header names; None for none, or `*` (any version)."""
    if if_match is None or if_match.strip() == "*":
        return None
    # W/"3" names version 3 too: a proxy may weaken the ETags we send.
    found = ETAG.fullmatch(if_match.strip().removeprefix("W/"))
    if found:
        return int(found[1])
    message = (
        f'If-Match: {if_match!r} is not an ETag this server gives out: send one like "3" '
        "(as GET answers it), or *"
    )
    raise InvalidInput(message, details=[{"field": "If-Match", "message": message}])


async def versioned(
    response: Response,
    if_match: Annotated[
        str | None, Header(max_length=64, description=IF_MATCH_HELP, alias="If-Match")
    ] = None,
) -> Versioned:
    return Versioned(response, _version_of(if_match))


async def etagged(response: Response) -> ETagged:
    return ETagged(response)


VersionedDep = Annotated[Versioned, Depends(versioned)]
"""What a route that changes a versioned object takes: If-Match, and its answer's ETag."""
ETaggedDep = Annotated[ETagged, Depends(etagged)]
"""What a route that answers with a versioned object takes, to send its ETag."""
