"""Every API call is one unit of work, and every mutating call leaves one audit entry.

What writes runs in one transaction; a read on PostgreSQL needs none (db.engine._reader).
"""

import functools
import inspect
import json
import logging
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from metalyard.api.deps import (
    READ_METHODS,
    SCOPE_KEY,
    authorize,
    refuse_nul_characters,
    token_scope,
)
from metalyard.api.errors import error_response
from metalyard.auth.audit import service as audit
from metalyard.auth.audit.models import Outcome
from metalyard.db import Database
from metalyard.errors import MetalyardError, WrongRegion
from metalyard.schemas import REGION_HEADER, ErrorBody

log = logging.getLogger(__name__)

API_PREFIX = "/v1"
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "The request body cannot be read (not UTF-8)"),
        (401, "No valid token"),
        (403, "The token's scope does not allow this call"),
        (404, "Not found"),
        (409, "Conflicts with the current state (stale version, forbidden move, duplicate)"),
        (413, "Request too large"),
        (422, "Invalid input: `details` names each field and why"),
    )
}
"""What any API call may answer besides its success, for the OpenAPI document."""
NOT_JSON = {"model": ErrorBody, "description": "The body was not sent as application/json"}
REGION_PARAMETER = {
    "name": REGION_HEADER,
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": (
        "The region the request is meant for: a server of another region refuses it with "
        "421 (`wrong_region`) before authenticating it or changing anything. Without it, "
        "no check."
    ),
}
"""Documented on every operation, and read by the middleware alone: as a parameter of each
route, it would be parsed on every request."""
MISDIRECTED = {
    "model": ErrorBody,
    "description": "The request names another region than this server serves (`wrong_region`)",
}

MAX_SUMMARY_BYTES = 4096
SECRET_WORDS = ("password", "secret", "token", "credential_value")


_session: ContextVar[Session] = ContextVar("metalyard_request_session")
"""The request's session, for a read-only route's worker thread to end its transaction."""


_REFUSING_NUL = Depends(refuse_nul_characters)


class UnitOfWorkRoute(APIRoute):
    records: bool = False
    """Its reads write too (what was served to whom), though they change nothing anyone
    audits: they need a writing transaction all the same."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        read_only = set(kwargs.get("methods") or ["GET"]) <= READ_METHODS
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = _in_one_worker_thread(endpoint, ending_its_read=read_only)
        if not read_only:  # after the router's own, so that authorisation comes first
            kwargs["dependencies"] = [*(kwargs.get("dependencies") or []), _REFUSING_NUL]
        super().__init__(path, endpoint, **kwargs)
        if self.body_field is not None or "requestBody" in (self.openapi_extra or {}):
            self.responses = {415: NOT_JSON, **self.responses}
        self.responses = {**self.responses, 421: MISDIRECTED}
        # A new dict: requires() may have given several routes one.
        extra = dict(self.openapi_extra or {})
        extra["parameters"] = [*extra.get("parameters", []), REGION_PARAMETER]
        scope = token_scope(self)
        if scope is not None:
            extra[SCOPE_KEY] = scope.value
        self.openapi_extra = extra

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        mutating = not (self.methods or set()) <= READ_METHODS
        writes = mutating or self.records
        action = self.name

        async def run(request: Request) -> Response:
            database: Database = request.app.state.database
            session = (database.writes if writes else database.sessions)()
            request.state.session = session
            _session.set(session)
            try:
                response = await handler(request)
                if mutating:
                    summary = await _summary(request)
                    await run_in_threadpool(
                        _audit_and_commit, session, request, action, response, summary
                    )
                elif session.in_transaction():  # SQL ran after the route's own commit
                    await run_in_threadpool(session.commit)
                return response
            except Exception as error:
                await run_in_threadpool(session.rollback)
                if mutating:
                    summary = await _summary(request)
                    await run_in_threadpool(
                        _audit_refusal, database, request, action, _status_of(error), summary
                    )
                raise
            finally:
                # After a commit or a rollback the connection is back in the pool: closing
                # only lets go of the objects, which needs no worker thread.
                if session.in_transaction():
                    await run_in_threadpool(session.close)
                else:
                    session.close()

        return run


def _in_one_worker_thread(
    endpoint: Callable[..., Any], *, ending_its_read: bool
) -> Callable[..., Any]:
    """A `def` route as a coroutine that runs it in one worker thread; a read-only one
    ends its transaction there too (a mutating call commits with its audit entry).

    FastAPI would run the route in a worker thread, then check its answer against the
    response model in another; ending a read's transaction afterwards would take a third.
    Each hand-off costs ~0.3 ms on a 2-core machine, more than a small read itself.
    """

    def run(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        answer = endpoint(*args, **kwargs)
        if ending_its_read:
            _session.get().commit()
        return answer

    @functools.wraps(endpoint)
    async def in_a_worker_thread(*args: Any, **kwargs: Any) -> Any:
        return await run_in_threadpool(run, args, kwargs)

    return in_a_worker_thread


def _audit_and_commit(
    session, request: Request, action: str, response: Response, summary: dict
) -> None:
    _audit(session, request, action, response.status_code, summary, _target(request, response))
    session.commit()


def _audit_refusal(
    database: Database, request: Request, action: str, status: int, summary: dict
) -> None:
    """A refused call's own transaction was rolled back; its audit entry gets a new one."""
    with database.transaction() as session:
        _audit(session, request, action, status, summary, _path(request))


def _audit(session, request: Request, action: str, status: int, summary: dict, target: str) -> None:
    if target != _path(request):
        summary = {**summary, "path": _path(request)}
    audit.record(
        session,
        settings=request.app.state.settings,
        action=action,
        target=target,
        outcome=_outcome(status),
        status=status,
        summary=summary,
        actor=getattr(request.state, "actor", None),
        request_id=request.state.request_id,
        client=request.client.host if request.client else "",
    )


def _path(request: Request) -> str:
    return request.url.path.removeprefix(API_PREFIX + "/")


def _target(request: Request, response: Response) -> str:
    """What a call acted on: what the route named (`request.state.audit_target`), else a
    created object's own path (POST /v1/assets → assets/SN1), else the call's path."""
    named = getattr(request.state, "audit_target", None)
    if named:
        return named
    path = _path(request)
    if response.status_code != 201:
        return path
    fields = _item_fields(request.app.routes, request.scope["route"].path)
    try:
        created = json.loads(response.body) if fields else None
    except (AttributeError, ValueError):  # a streamed or non-JSON answer
        return path
    if not isinstance(created, dict):
        return path
    # The item route's parameters, from the created object: {serial} is its serial, and
    # {rack_id} its id.
    values = [created.get(f, created.get("id") if f.endswith("_id") else None) for f in fields]
    if any(value is None or isinstance(value, dict | list) for value in values):
        return path
    return "/".join([path, *map(str, values)])


def _item_fields(routes: list[Any], collection: str) -> list[str]:
    """The parameters of the route of one item of `collection` (`/v1/assets/{serial}` →
    serial); none if it has no such route."""
    for route in routes:
        rest = getattr(route, "path", "").removeprefix(collection + "/")
        segments = rest.split("/")
        if rest != route.path and all(s.startswith("{") and s.endswith("}") for s in segments):
            return [s[1:-1].split(":")[0] for s in segments]
    return []


def _outcome(status: int) -> Outcome:
    if status < 400:
        return Outcome.SUCCESS
    if status in (401, 403, WrongRegion.status):
        return Outcome.DENIED
    return Outcome.REJECTED if status < 500 else Outcome.ERROR


def _status_of(error: Exception) -> int:
    if isinstance(error, MetalyardError):
        return error.status
    if isinstance(error, HTTPException):
        return error.status_code
    if isinstance(error, RequestValidationError):
        return 422
    return 500


async def refuse_misdirected(scope: Scope, receive: Receive, send: Send, meant: str) -> None:
    """Answer 421 to a request meant for region `meant`, which this server does not serve.

    The middleware calls it before the request is authenticated or reaches its route; a
    mutating call's refusal is audited as denied all the same, as one whose token was refused
    is (by nobody: no token was looked at).
    """
    request = Request(scope, receive)
    serves = request.app.state.settings.region
    error = WrongRegion(
        f"this server serves region {serves!r}, not {meant!r} as the request says "
        f"({REGION_HEADER}): nothing was done",
        details={"serves": serves, "requested": meant},
    )
    route = _route_of(request)
    if route is not None and request.method not in READ_METHODS:
        summary = {**await _summary(request, body=False), "region": meant}
        database: Database = request.app.state.database
        await run_in_threadpool(
            _audit_refusal, database, request, route.name, error.status, summary
        )
    await error_response(error)(scope, receive, send)


def _route_of(request: Request) -> UnitOfWorkRoute | None:
    """The route that would have run the request, if one of ours matches it whole."""
    for route in request.app.router.routes:
        if isinstance(route, UnitOfWorkRoute) and route.matches(request.scope)[0] is Match.FULL:
            return route
    return None


async def _summary(request: Request, *, body: bool = True) -> dict[str, Any]:
    """What was asked, with secrets blanked and large bodies reduced to their size (`body`
    False: the body left unread, for a call refused before the body limit applies)."""
    summary: dict[str, Any] = dict(getattr(request.state, "audit_summary", {}))
    if request.query_params:
        summary["query"] = dict(request.query_params)
    if not body:
        return summary
    try:
        body = await request.body()
    except RuntimeError:  # the body stream was consumed without caching
        body = b""
    if not body:
        return summary
    if len(body) > MAX_SUMMARY_BYTES:
        summary["body_bytes"] = len(body)
        return summary
    try:
        summary["body"] = _redact(json.loads(body))
    except ValueError:
        summary["body_bytes"] = len(body)
    return summary


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: "***" if any(word in str(key).lower() for word in SECRET_WORDS) else _redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact(item) for item in value]
    return value


def secured_router(*, prefix: str = "", **kwargs: Any) -> APIRouter:
    """A router under /v1 whose every route runs in a transaction and needs a token (see
    deps)."""
    dependencies = [Depends(authorize), *kwargs.pop("dependencies", [])]
    return APIRouter(
        prefix=API_PREFIX + prefix,
        route_class=UnitOfWorkRoute,
        dependencies=dependencies,
        responses={**ERROR_RESPONSES, **kwargs.pop("responses", {})},
        **kwargs,
    )


class RecordingRoute(UnitOfWorkRoute):
    records = True


def open_router(
    *, prefix: str = "", records: bool = False, versioned: bool = True, **kwargs: Any
) -> APIRouter:
    """A router that authenticates per route (token creation, the region, the machines
    booting); `records`: its reads write (see UnitOfWorkRoute.records); `versioned`: under
    /v1, with the API's error responses."""
    return APIRouter(
        prefix=(API_PREFIX if versioned else "") + prefix,
        route_class=RecordingRoute if records else UnitOfWorkRoute,
        responses={**ERROR_RESPONSES, **kwargs.pop("responses", {})} if versioned else None,
        **kwargs,
    )


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """Put the router's routes in the app's own list, where they are matched in one pass.

    Since FastAPI 0.137, `include_router` keeps each included router as a layer that is
    matched on every request, twice (to pick the route, then to run it); with our thirty
    routers that cost from 0.2 ms for the first route to 1 ms for the last. Our routers
    already carry their full path, dependencies and responses, so nothing is lost.
    """
    app.router.routes.extend(router.routes)
