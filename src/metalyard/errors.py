"""One hierarchy of errors, shared by the services, the API, the SDK and the CLI.

Each error knows its HTTP status and a stable machine-readable code; the API turns any of
them into the body ``{"code", "message", "details"}`` and the SDK turns that body back
into the same class.
"""

from collections.abc import Sequence
from typing import Any, ClassVar


class MetalyardError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.http_status: int | None = None
        """The status of the answer this error came from (set by the SDK)."""
        self.request_id = ""
        """The X-Request-ID of that answer, to quote when asking for help (set by the SDK)."""

    def to_body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidInput(MetalyardError):
    """A 422. Its details are always a list of problems, each naming its `field` ("" for
    the request as a whole) and its `message`, so a client reads every 422 the same way."""

    status = 422
    code = "invalid_input"

    def __init__(self, message: str, *, details: Any = None) -> None:
        if not isinstance(details, list):
            details = [{"field": "", "message": message, **(details or {})}]
        super().__init__(message, details=details)


def dotted(loc: Sequence[str | int]) -> str:
    """Where a pydantic problem is, as the API names a field: `interfaces.0.mac`."""
    return ".".join(str(part) for part in loc)


def invalid_fields(problems: list[dict[str, Any]]) -> InvalidInput:
    """One error for pydantic's problems (each with `loc`, `msg` and `type`): its message
    names the first field and counts the others, its details name each."""
    details = [
        {"field": field, "message": message, "type": problem["type"]}
        for problem in problems
        for field, message in [_said(problem)]
    ]
    first = details[0] if details else {"field": "", "message": "invalid request"}
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    where = f"{first['field']}: " if first["field"] else ""
    return InvalidInput(f"{where}{first['message']}{more}", details=details)


def _said(problem: dict[str, Any]) -> tuple[str, str]:
    """A problem's field and message; in words of the body as a whole where pydantic says
    "1: JSON decode error" or "Field required" of no field."""
    loc, kind = problem["loc"], problem["type"]
    if kind == "json_invalid":
        reason = problem.get("ctx", {}).get("error") or problem["msg"]
        where = f" at character {loc[-1]}" if loc and isinstance(loc[-1], int) else ""
        return "body", f"not valid JSON: {reason.removeprefix('Invalid JSON: ')}{where}"
    if not loc and kind == "missing":
        return "body", "required: send a JSON object"
    if not loc and kind in ("model_type", "model_attributes_type", "dict_type"):
        return "body", "must be a JSON object"
    return dotted(loc), message_of(problem)


def message_of(problem: dict[str, Any]) -> str:
    """pydantic's message for a problem, less the "Value error, " it puts before the words
    of our own validators."""
    return problem["msg"].removeprefix("Value error, ")


class PayloadTooLarge(MetalyardError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(MetalyardError):
    status = 415
    code = "unsupported_media_type"


class Unauthenticated(MetalyardError):
    status = 401
    code = "unauthenticated"


class Forbidden(MetalyardError):
    status = 403
    code = "forbidden"


class NotFound(MetalyardError):
    status = 404
    code = "not_found"


class Conflict(MetalyardError):
    status = 409
    code = "conflict"


class AlreadyExists(Conflict):
    code = "already_exists"


class StaleVersion(Conflict):
    code = "stale_version"


class ForbiddenTransition(Conflict):
    code = "forbidden_transition"


class OutsideNetworks(Conflict):
    """A BMC credential would reach an address outside the networks it may be sent into."""

    code = "outside_networks"


class NoBmc(Conflict):
    """The asset has no BMC driver or address on record: a BMC call is refused rather than
    pretended, until someone sets them."""

    code = "no_bmc"


class ServerError(MetalyardError):
    """The server failed; raised by the SDK for 5xx answers."""


class Unreachable(MetalyardError):
    """The SDK could not reach the server at all."""

    status = 0
    code = "unreachable"


class OutcomeUnknown(Unreachable):
    """A change (POST, PATCH, PUT, DELETE) was sent but its answer never came back: the server
    may have carried it out (powered a machine on, moved an asset), so look before repeating it.

    An `Unreachable`, so code that catches that still does; never retried by the SDK.
    `details["outcome"]` is "unknown".
    """

    code = "outcome_unknown"


class WrongRegion(MetalyardError):
    """The request named another region (X-Metalyard-Region) than the server serves: it did
    nothing. `details` name the region it `serves` and the one `requested`."""

    status = 421
    code = "wrong_region"


class DatabaseNotReady(MetalyardError):
    """A server-side process found its database's schema behind the code's."""

    code = "database_not_ready"


ERRORS_BY_CODE: dict[str, type[MetalyardError]] = {
    cls.code: cls
    for cls in (
        InvalidInput,
        PayloadTooLarge,
        Unauthenticated,
        Forbidden,
        NotFound,
        Conflict,
        AlreadyExists,
        StaleVersion,
        ForbiddenTransition,
        OutsideNetworks,
        NoBmc,
        WrongRegion,
    )
}


class TransientError(MetalyardError):
    """Worth trying again later (a timeout, a busy BMC, a 5xx): beans retry these with backoff."""

    status = 503
    code = "transient"


class FatalError(MetalyardError):
    """Will not get better by retrying (bad credentials, unsupported): the bean fails."""

    status = 502
    code = "fatal"


class BmcTransient(TransientError):
    """A BMC timed out, refused the connection, answered 5xx, ran out of sessions or is busy."""

    code = "bmc_transient"


class BmcFatal(FatalError):
    """A BMC refused the request or answered something malformed: retrying will not help."""

    code = "bmc_error"


class BmcAuthFailed(BmcFatal):
    code = "bmc_auth_failed"


class Unsupported(BmcFatal):
    """The asset's driver, or its BMC, cannot do what was asked."""

    status = 422
    code = "unsupported"


ERRORS_BY_CODE.update(
    {cls.code: cls for cls in (BmcTransient, BmcFatal, BmcAuthFailed, Unsupported)}
)
