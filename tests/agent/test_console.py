"""The status screen tells the engineer at the rack what metalyard thinks and what to fix."""

import io
from datetime import UTC, datetime

from metalyard.agent.console import CLEAR, ConsoleWriter, render
from metalyard.agent.runtime import Problem, Status


def status(**changes):
    base = Status(
        url="http://10.0.0.1:8000",
        agent_port=9100,
        serial="SRV-1",
        state="EVALUATING",
        doing="waiting 30 s, as metalyard said",
        last_contact=datetime(2024, 5, 1, 12, 0, 3, tzinfo=UTC),
        problems=[
            Problem(
                "memory", "256 GiB found, 512 GiB expected", "check DIMM seating in slots A1–A8"
            ),
            Problem("disks", "1 disk failing SMART", "replace /dev/sdb (serial ZL2ABCDE)"),
        ],
    )
    for name, value in changes.items():
        setattr(base, name, value)
    return base


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_render_shows_serial_state_and_each_problem_with_its_fix():
    text = render(status())
    assert "http://10.0.0.1:8000" in text
    assert "SRV-1" in text and "EVALUATING" in text
    assert "waiting 30 s, as metalyard said" in text
    assert "2024-05-01 12:00:03 UTC" in text
    assert (
        "memory: 256 GiB found, 512 GiB expected — fix: check DIMM seating in slots A1–A8" in text
    )
    assert "disks: 1 disk failing SMART — fix: replace /dev/sdb (serial ZL2ABCDE)" in text
    assert "\033" not in text


def test_render_before_metalyard_answered_shows_the_error():
    text = render(
        status(
            serial=None,
            state=None,
            last_contact=None,
            problems=[],
            doing="retrying in 8 s (attempt 4)",
            error="cannot reach http://10.0.0.1:8000: connection refused",
        )
    )
    assert "never" in text and "unknown" in text
    assert "retrying in 8 s (attempt 4)" in text
    assert "connection refused" in text


def test_no_ansi_when_the_stream_is_not_a_tty():
    stream = io.StringIO()
    writer = ConsoleWriter(stream)
    writer.show(status())
    writer.show(status(state="SPARE", problems=[]))
    assert "\033" not in stream.getvalue()
    assert stream.getvalue().count("metalyard agent") == 2


def test_terminal_is_cleared_before_each_screen_and_unchanged_screens_are_skipped():
    stream = Terminal()
    writer = ConsoleWriter(stream)
    writer.show(status())
    writer.show(status())
    writer.show(status(state="SPARE"))
    assert stream.getvalue().count(CLEAR) == 2
    assert stream.getvalue().startswith(CLEAR + "metalyard agent")


def test_a_log_gets_no_new_screen_when_only_the_contact_time_changed():
    stream = io.StringIO()
    writer = ConsoleWriter(stream)
    writer.show(status())
    writer.show(status(last_contact=datetime(2024, 5, 1, 12, 0, 13, tzinfo=UTC)))
    assert stream.getvalue().count("metalyard agent") == 1
    terminal = Terminal()
    writer = ConsoleWriter(terminal)
    writer.show(status())
    writer.show(status(last_contact=datetime(2024, 5, 1, 12, 0, 13, tzinfo=UTC)))
    assert terminal.getvalue().count(CLEAR) == 2
