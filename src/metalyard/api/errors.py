"""One error body everywhere: {code, message, details}."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException

from metalyard.errors import (
    Conflict,
    MetalyardError,
    StaleVersion,
    UnsupportedMediaType,
    invalid_fields,
)

log = logging.getLogger(__name__)

RACE_MESSAGE = "the change conflicts with data written at the same time"

HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def install(app: FastAPI) -> None:
    app.add_exception_handler(MetalyardError, _metalyard_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(StaleDataError, _stale_data)
    app.add_exception_handler(Exception, _unexpected)


def error_response(error: MetalyardError, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error.to_body(), status_code=error.status, headers=headers)


async def _metalyard_error(request: Request, error: MetalyardError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return error_response(error, headers)


def not_json(request: Request) -> UnsupportedMediaType | None:
    """The 415 for a body not declared JSON, as every body of the API is; None if it is."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if _is_json(media_type):
        return None
    sent = f"not {media_type}" if media_type else "and none was given"
    return UnsupportedMediaType(
        f"send the body as JSON (Content-Type: application/json), {sent}",
        details={"content_type": media_type},
    )


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    refusal = not_json(request) if _body_unread(error) else None
    if refusal is not None:
        return error_response(refusal)
    problems = [
        {**problem, "loc": tuple(part for part in problem["loc"] if part != "body")}
        for problem in error.errors()
    ]
    return error_response(invalid_fields(problems))


def _body_unread(error: RequestValidationError) -> bool:
    """FastAPI left a body that was not declared JSON as bytes: the model then finds no object
    at all (and an empty body is just missing)."""
    return any(
        tuple(problem["loc"]) == ("body",) and isinstance(problem.get("input"), bytes | str)
        for problem in error.errors()
    )


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    code = HTTP_CODES.get(error.status_code, "http_error")
    return JSONResponse(
        {"code": code, "message": str(error.detail), "details": None},
        status_code=error.status_code,
        headers=getattr(error, "headers", None),
    )


async def _integrity_error(request: Request, error: IntegrityError) -> JSONResponse:
    if not _is_race(error):
        return await _unexpected(request, error)  # a constraint caught what validation missed
    # Two writers raced past a check; the unique or foreign key kept the data right.
    return error_response(Conflict(RACE_MESSAGE))


def _is_race(error: IntegrityError) -> bool:
    """Unique and foreign-key violations, the constraints a concurrent writer can trip."""
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate in ("23505", "23503")
    return str(error.orig).startswith(("UNIQUE constraint failed", "FOREIGN KEY constraint"))


async def _stale_data(request: Request, error: StaleDataError) -> JSONResponse:
    return error_response(StaleVersion("the object changed while this change was being made"))


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", "")
    log.exception("unexpected error in request %s", request_id)
    return JSONResponse(
        {
            "code": "internal_error",
            "message": f"internal error; request id {request_id}",
            "details": None,
        },
        status_code=500,
    )
