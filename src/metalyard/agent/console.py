"""The agent's status screen, for the engineer standing at the rack.

Plain text on a stream: the console of a PXE-booted server may be a serial line or a log,
so the screen is cleared with ANSI codes only when the stream is a terminal.

Standard library only: this module runs in a minimal PXE image.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import TextIO

from metalyard.agent.runtime import Status

CLEAR = "\033[2J\033[H"


def render(status: Status) -> str:
    """The screen's text for ``status``; pure."""
    contact = (
        status.last_contact.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
        if status.last_contact
        else "never"
    )
    rows = [
        ("metalyard", status.url),
        ("serial", status.serial or "unknown"),
        ("state", status.state or "unknown"),
        ("doing", status.doing),
        ("last contact", contact),
        ("command port", str(status.agent_port)),
    ]
    lines = ["metalyard agent", ""]
    lines += [f"  {label:<13}{value}" for label, value in rows]
    if status.error:
        lines += ["", f"  error: {status.error}"]
    if status.problems:
        lines += ["", f"failed checks ({len(status.problems)}):"]
        for problem in status.problems:
            line = f"  {problem.check}: {problem.message}"
            lines.append(f"{line} — fix: {problem.fix}" if problem.fix else line)
    elif status.state is not None:
        lines += ["", "no failed checks"]
    return "\n".join(lines) + "\n"


class ConsoleWriter:
    """Shows each status on ``stream``.

    A terminal is redrawn whenever the text changes. A log (serial console, file) gets a
    new screen only when something other than the last contact time changed, or a
    healthy agent would repeat itself every poll.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._last: str | None = None
        self._lock = threading.Lock()  # the loop and the command server both show

    def show(self, status: Status) -> None:
        text = render(status)
        tty = _isatty(self.stream)
        key = text if tty else render(replace(status, last_contact=None))
        with self._lock:
            if key == self._last:
                return
            separator = "" if self._last is None else "\n"
            self._last = key
            self.stream.write((CLEAR if tty else separator) + text)
            self.stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
