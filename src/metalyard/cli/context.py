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
from metalyard.sdk import Client

DEBUG_ENV = "METALYARD_DEBUG"


@dataclass
class State:
    """The global options of the command being run, and its root context."""

    region: str | None = None
    context: typer.Context | None = None


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
    client = Client(chosen.url, chosen.token if token else None, verify=chosen.verify)
    if context := state().context:
        context.call_on_close(client.close)
    return client


def fail(message: str, code: ExitCode) -> NoReturn:
    note(f"error: {message}")
    raise typer.Exit(int(code))


class Group(TyperGroup):
    """The root command: turns every metalyard error into one line and its exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except MetalyardError as error:
            fail(error.message, exit_code_for(error))
        except Exception as error:
            # Typer's own exits and usage errors (which carry an exit code) keep their way out;
            # so does a closed pipe (`metalyard asset list | head`), which Typer quiets.
            passes = isinstance(error, typer.Exit | typer.Abort | BrokenPipeError)
            if passes or hasattr(error, "exit_code") or os.environ.get(DEBUG_ENV):
                raise
            detail = str(error) or type(error).__name__
            fail(f"{detail} (set {DEBUG_ENV}=1 to see where)", ExitCode.PROBLEMS)
