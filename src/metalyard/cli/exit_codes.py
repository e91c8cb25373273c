"""Every exit code of `metalyard`, in one place; scripts may rely on them.

 0  success
 1  the command ran and found problems (`audit verify`), or an unexpected local error
 2  usage: an unknown command or option, a malformed argument (Typer's own)
 3  the server (or, for `serve`, the database or the address to listen on) could not be reached
 4  not authenticated or not allowed (HTTP 401 / 403)
 5  not found (HTTP 404)
 6  conflict: a forbidden transition, a stale version, a duplicate (HTTP 409)
 7  invalid input, refused by the server (HTTP 422 / 413) or found in a local file
 8  the server failed (HTTP 5xx) or answered something this CLI does not understand
 9  no region configured, or no region of that name, or the server serves another region
    than the profile's (HTTP 421: it did nothing)
10  `serve`: the database schema is not at the latest revision
11  the asset's BMC failed, refused, or cannot do what was asked (its message is shown)
12  a change was sent but its answer was lost: it may have been carried out, so look
    before repeating it (retrying on 3 is safe, on 12 it is not)
"""

from enum import IntEnum

from metalyard.errors import (
    ERRORS_BY_CODE,
    BmcFatal,
    BmcTransient,
    Conflict,
    DatabaseNotReady,
    Forbidden,
    InvalidInput,
    MetalyardError,
    NotFound,
    OutcomeUnknown,
    PayloadTooLarge,
    ServerError,
    Unauthenticated,
    Unreachable,
    WrongRegion,
)


class ExitCode(IntEnum):
    OK = 0
    PROBLEMS = 1
    USAGE = 2
    UNREACHABLE = 3
    NOT_ALLOWED = 4
    NOT_FOUND = 5
    CONFLICT = 6
    INVALID_INPUT = 7
    SERVER_ERROR = 8
    NO_REGION = 9
    DATABASE_NOT_READY = 10
    BMC_FAILED = 11
    OUTCOME_UNKNOWN = 12


class NoRegion(MetalyardError):
    """The CLI does not know which server to talk to."""

    code = "no_region"


_BY_ERROR: list[tuple[type[MetalyardError], ExitCode]] = [
    (OutcomeUnknown, ExitCode.OUTCOME_UNKNOWN),
    (Unreachable, ExitCode.UNREACHABLE),
    (BmcTransient, ExitCode.BMC_FAILED),
    (BmcFatal, ExitCode.BMC_FAILED),
    (Unauthenticated, ExitCode.NOT_ALLOWED),
    (Forbidden, ExitCode.NOT_ALLOWED),
    (NotFound, ExitCode.NOT_FOUND),
    (Conflict, ExitCode.CONFLICT),
    (InvalidInput, ExitCode.INVALID_INPUT),
    (PayloadTooLarge, ExitCode.INVALID_INPUT),
    (ServerError, ExitCode.SERVER_ERROR),
    (NoRegion, ExitCode.NO_REGION),
    (WrongRegion, ExitCode.NO_REGION),
    (DatabaseNotReady, ExitCode.DATABASE_NOT_READY),
]


def exit_code_for(error: MetalyardError) -> ExitCode:
    for cls, code in _BY_ERROR:
        if isinstance(error, cls):
            return code
    return ExitCode.PROBLEMS


def exit_code_for_code(code: str | None) -> ExitCode:
    """The exit code for an error known only by its body's `code` (a failed change request)."""
    cls = ERRORS_BY_CODE.get(code or "")
    return exit_code_for(cls("")) if cls else ExitCode.PROBLEMS
