"""What every command shares: the client of the chosen region, and errors as exit codes."""

import os
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from metalyard.cli import config
from metalyard.cli.exit_codes import ExitCode, exit_code_for
from metalyard.cli.output import note
from metalyard.errors import MetalyardError
from metalyard.sdk import Client, WrongRegion

DEBUG_ENV = "METALYARD_DEBUG"


@dataclass
class State:
    """The global options of the command being run, and its root context."""

    region: str | None = None
    context: typer.Context | None = None
    target: config.Target | None = None
    """The server this command connected to, to name its region in errors."""


_state: ContextVar[State] = ContextVar("metalyard_cli_state")


def begin(context: typer.Context, *, region: str | None) -> None:
    """Called by the root callback before any command runs."""
    _state.set(State(region=region, context=context))


def state() -> State:
    try:
        return _state.get()
    except LookupError:
        return State()


def target() -> config.Target:
    return config.resolve(config.load(), state().region)


def connect(*, token: bool = True) -> Client:
    """A client of the region this command talks to; closed when the command ends."""
    chosen = target()
    if chosen.insecure:
        note(f"warning: TLS certificates of region {chosen.name!r} are not checked (--insecure)")
    try:
        client = Client(
            chosen.url,
            chosen.token if token else None,
            region=chosen.region,  # a server of another region refuses every command
            verify=chosen.verify,
        )
    except MetalyardError as error:  # its CA bundle went missing or bad since `region add`
        raise type(error)(f"region {chosen.name!r}: {error.message}") from None
    current = state()
    current.target = chosen
    if current.context:
        current.context.call_on_close(client.close)
    return client


def explain(error: MetalyardError) -> str:
    """The error's message, with what the region it came from tells about it."""
    chosen = state().target
    if chosen is None:
        return error.message
    details = error.details if isinstance(error.details, dict) else {}
    if details.get("tls"):
        bundle = isinstance(chosen.verify, str)
        hint = "" if bundle else "; give its CA with `metalyard region add … --ca-bundle FILE`"
        return f"region {chosen.name!r}: {error.message}{hint}"
    if isinstance(error, WrongRegion):
        return (
            f"the server at {chosen.url} serves region {details.get('serves')!r}, not "
            f"{chosen.region!r} (profile {chosen.name!r}), and did nothing; if it was replaced "
            "on purpose, add the profile again with `metalyard region add`"
        )
    return error.message


def fail(message: str, code: ExitCode) -> NoReturn:
    note(f"error: {message}")
    raise typer.Exit(int(code))


class Group(TyperGroup):
    """The root command: turns every metalyard error into one line and its exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except MetalyardError as error:
            fail(explain(error), exit_code_for(error))
        except Exception as error:
            # Typer's own exits and usage errors (which carry an exit code) keep their way out;
            # so does a closed pipe (`metalyard asset list | head`), which Typer quiets.
            passes = isinstance(error, typer.Exit | typer.Abort | BrokenPipeError)
            if passes or hasattr(error, "exit_code") or os.environ.get(DEBUG_ENV):
                raise
            detail = str(error) or type(error).__name__
            fail(f"{detail} (set {DEBUG_ENV}=1 to see where)", ExitCode.PROBLEMS)
