"""The agent's loop: introduce the machine to metalyard, then do what metalyard says.

One step of the loop is one question to metalyard and the instruction it answers, so a
test (or the lab) can drive the agent step by step with ``Agent.run_once``. Nothing here
raises for a network problem: a server that booted before metalyard was up keeps trying,
with capped exponential backoff, and says so on its console.

Standard library only: this module runs in a minimal PXE image.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from metalyard.agent.facts import Facts, FactSource, collect
from metalyard.agent.server import CommandServer, parse_networks

log = logging.getLogger(__name__)

DEFAULT_PORT = 9100
TOKEN_HEADER = "X-Agent-Token"
HTTP_TIMEOUT = 15.0
"""Seconds one call to metalyard may take before it counts as unreachable."""

ACTIONS = ("report", "wait", "poweroff", "idle")
"""The instructions metalyard gives; anything else is treated as ``idle``."""


# --- errors -----------------------------------------------------------------------------


class AgentError(Exception):
    """A call to metalyard did not get a usable answer."""


class Unreachable(AgentError):
    """No answer, a 5xx, or an answer that is not the protocol: worth retrying as is."""


class Refused(AgentError):
    """metalyard answered 4xx: ``{"code", "message", "details"}``."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"metalyard refused ({status} {code}): {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class PowerError(AgentError):
    """No way to power off or reboot worked."""


# --- protocol shapes --------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    action: str = "idle"
    """``report``, ``wait``, ``poweroff`` or ``idle``."""
    seconds: int = 0


@dataclass(frozen=True)
class Problem:
    """A check metalyard ran on the reported facts that failed, and how to fix it."""

    check: str
    message: str
    fix: str = ""


@dataclass(frozen=True)
class Answer:
    """What ``boot``, ``whoami`` and ``report`` answer; ``token`` only from ``boot``."""

    serial: str | None
    state: str | None
    instruction: Instruction
    problems: list[Problem]
    token: str | None = None

    @classmethod
    def from_dict(cls, data: Any) -> Answer:
        if not isinstance(data, Mapping):
            raise Unreachable(f"metalyard answered {type(data).__name__}, not a JSON object")
        raw = data.get("instruction") or {}
        try:
            instruction = Instruction(
                str(raw.get("action") or "idle"), int(raw.get("seconds") or 0)
            )
            problems = [
                Problem(str(p["check"]), str(p["message"]), str(p.get("fix") or ""))
                for p in data.get("problems") or []
            ]
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise Unreachable(f"metalyard answered an unexpected shape: {exc!r}") from None
        token = data.get("token")
        return cls(
            serial=_str_or_none(data.get("serial")),
            state=_str_or_none(data.get("state")),
            instruction=instruction,
            problems=problems,
            token=None if token is None else str(token),
        )


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


# --- the client -------------------------------------------------------------------------


class MetalyardClient:
    """The three discovery calls over HTTP; transport failures become ``AgentError``."""

    def __init__(self, url: str, *, timeout: float = HTTP_TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        # The agent talks to metalyard directly on the provisioning network: a proxy from
        # the environment would only be in the way.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def boot(self, facts: Facts, *, agent_port: int) -> Answer:
        answer = self._call(
            "POST", "/v1/discovery/boot", body={"facts": facts.to_dict(), "agent_port": agent_port}
        )
        if not answer.token:
            raise Unreachable("metalyard's boot answer has no token")
        return answer

    def whoami(self, token: str) -> Answer:
        return self._call("GET", "/v1/discovery/whoami", token=token)

    def report(self, token: str, facts: Facts) -> Answer:
        return self._call(
            "POST", "/v1/discovery/report", token=token, body={"facts": facts.to_dict()}
        )

    def _call(
        self, method: str, path: str, *, token: str | None = None, body: Any = None
    ) -> Answer:
        headers = {"Accept": "application/json", "User-Agent": "metalyard-agent"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token is not None:
            headers[TOKEN_HEADER] = token
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise _http_error(exc) from None
        except urllib.error.URLError as exc:
            raise Unreachable(f"cannot reach {self.url}: {_reason(exc.reason)}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise Unreachable(f"cannot reach {self.url}: {_reason(exc)}") from None
        try:
            return Answer.from_dict(json.loads(raw))
        except ValueError:
            raise Unreachable(f"{method} {path}: metalyard's answer is not JSON") from None


def _reason(exc: object) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def _http_error(exc: urllib.error.HTTPError) -> AgentError:
    try:
        body = json.loads(exc.read() or b"null")
    except (OSError, ValueError):
        body = None
    if not isinstance(body, Mapping):
        body = {}
    code = str(body.get("code") or "http_error")
    message = str(body.get("message") or exc.reason or "")
    if exc.code >= 500:
        return Unreachable(f"metalyard answered {exc.code} {code}: {message}")
    return Refused(exc.code, code, message, body.get("details"))


# --- power ------------------------------------------------------------------------------


def _first_that_works(*commands: Sequence[str]) -> None:
    failures = []
    for argv in commands:
        try:
            proc = subprocess.run(
                list(argv), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            failures.append(f"{' '.join(argv)}: {exc}")
            continue
        if proc.returncode == 0:
            return
        failures.append(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    raise PowerError("; ".join(failures))


def system_power_off() -> None:
    """Power this machine off; without systemd as init, ``poweroff`` does it."""
    _first_that_works(["systemctl", "poweroff"], ["poweroff"])


def system_reboot() -> None:
    _first_that_works(["systemctl", "reboot"], ["reboot"])


# --- status and steps -------------------------------------------------------------------


@dataclass
class Status:
    """What the agent knows and does, for the console and for ``GET /status``."""

    url: str
    agent_port: int
    serial: str | None = None
    """metalyard's asset serial once it answered, the machine's own before."""
    state: str | None = None
    doing: str = "starting"
    last_contact: datetime | None = None
    problems: list[Problem] = field(default_factory=list)
    error: str | None = None
    """Why the last call to metalyard failed; None once one succeeds."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["last_contact"] = self.last_contact.isoformat() if self.last_contact else None
        return data


@dataclass(frozen=True)
class Step:
    """What one ``run_once`` did, and how long it slept after."""

    action: str
    """``boot``, ``retry``, ``token-refused`` (metalyard refused the token; boot next),
    ``report``, ``wait``, ``idle`` or ``poweroff``."""
    seconds: float = 0.0
    detail: str = ""


# --- the agent --------------------------------------------------------------------------


class Agent:
    """The agent's loop. Not thread-safe except for the methods the command server calls
    (``request_report``, ``command_reboot``, ``command_power_off``, ``status_dict``)."""

    def __init__(
        self,
        url: str,
        source: FactSource,
        *,
        port: int = DEFAULT_PORT,
        allowed_networks: Sequence[str] = (),
        bind: str = "0.0.0.0",
        poll_seconds: float = 10.0,
        recollect_seconds: float = 600.0,
        power_off: Callable[[], None] = system_power_off,
        reboot: Callable[[], None] = system_reboot,
        display: Callable[[Status], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] | None = None,
        jitter: Callable[[], float] = random.random,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        timeout: float = HTTP_TIMEOUT,
    ) -> None:
        self.client = MetalyardClient(url, timeout=timeout)
        self.source = source
        self.port = port
        parse_networks(allowed_networks)  # a typo fails here, not when the server starts
        self.allowed_networks = list(allowed_networks)
        self.bind = bind
        self.poll_seconds = poll_seconds
        self.recollect_seconds = recollect_seconds
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._power_off = power_off
        self._reboot = reboot
        self._display = display
        self._clock = clock
        self._now = now
        self._sleep = sleep or self._wait_for_wakeup
        self._jitter = jitter

        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._stop: threading.Event | None = None
        self._token: str | None = None
        self._failures = 0
        self._reported: dict[str, Any] | None = None
        self._collected_at = 0.0
        self._report_reason: str | None = None
        self._pending: Facts | None = None
        self._boot_facts: Facts | None = None
        self.status = Status(url=self.client.url, agent_port=port)
        self.last_step: Step | None = None

    # --- what the command server calls --------------------------------------------------

    @property
    def token(self) -> str | None:
        return self._token

    def request_report(self) -> None:
        """Collect and report at the next step, cutting short any sleep."""
        with self._lock:
            self._report_reason = "metalyard asked for a report"
            self._pending = None
        self._wakeup.set()

    def command_reboot(self) -> None:
        self._update(doing="rebooting (metalyard asked)")
        self._show()
        self._reboot()

    def command_power_off(self) -> None:
        self._update(doing="powering off (metalyard asked)")
        self._show()
        self._power_off()

    def status_dict(self) -> dict[str, Any]:
        with self._lock:
            return self.status.to_dict()

    # --- the loop -----------------------------------------------------------------------

    def run_once(self) -> Step:
        """Take one step (boot, report, or ask and obey), sleep as it says, return it."""
        step = self._step()
        self.last_step = step
        log.debug("step: %s", step)
        self._show()
        if step.seconds > 0:
            self._sleep(step.seconds)
        return step

    def run_forever(self, stop_event: threading.Event) -> None:
        """Serve metalyard's commands and loop until ``stop_event`` is set."""
        self._stop = stop_event
        server = CommandServer(
            host=self.bind,
            port=self.port,
            allowed_networks=self.allowed_networks,
            token=lambda: self._token,
            actions={
                "report": self.request_report,
                "reboot": self.command_reboot,
                "poweroff": self.command_power_off,
            },
            status=self.status_dict,
        )
        self.port = server.port
        self._update(agent_port=server.port)
        server.start()
        try:
            while not stop_event.is_set():
                try:
                    self.run_once()
                except Exception as exc:  # nobody reads a traceback on a rack; keep going
                    log.exception("agent step failed")
                    self._update(doing="recovering from an internal error", error=repr(exc))
                    self._show()
                    self._sleep(self.poll_seconds)
        finally:
            server.stop()

    def _wait_for_wakeup(self, seconds: float) -> None:
        # Real time, whatever clock was injected; short slices so that a stop_event set
        # from outside ends the sleep too.
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self._stop is not None and self._stop.is_set():
                return
            if self._wakeup.wait(min(remaining, 0.5)):
                self._wakeup.clear()
                return

    def _step(self) -> Step:
        if self._token is None:
            return self._boot()
        with self._lock:
            reason, facts = self._report_reason, self._pending
        if reason is None and self._due():
            facts = self._collect()
            if facts.to_dict() != self._reported:
                reason = "facts changed"
                with self._lock:
                    self._report_reason, self._pending = reason, facts
        if reason is not None:
            return self._report(reason, facts)
        try:
            answer = self.client.whoami(self._token)
        except AgentError as exc:
            return self._failed(exc)
        self._contact(answer)
        return self._obey(answer.instruction)

    def _boot(self) -> Step:
        # Facts survive failed attempts: collecting runs smartctl on every disk, and a
        # server waiting for metalyard to come up has nothing new to say each minute.
        if self._boot_facts is None or self._due():
            self._boot_facts = self._collect()
        facts = self._boot_facts
        if self.status.serial is None:
            self._update(serial=facts.system.serial)
        try:
            answer = self.client.boot(facts, agent_port=self.port)
        except AgentError as exc:
            return self._failed(exc, booting=True)
        self._token = answer.token
        self._reported = facts.to_dict()
        self._boot_facts = None
        with self._lock:
            self._report_reason = self._pending = None  # the boot carried the facts
        self._contact(answer)
        self._update(doing="booted; asking metalyard what to do")
        return Step("boot", 0, f"serial {answer.serial}, state {answer.state}")

    def _report(self, reason: str, facts: Facts | None) -> Step:
        assert self._token is not None
        if facts is None:
            facts = self._collect()
        try:
            answer = self.client.report(self._token, facts)
        except AgentError as exc:
            return self._failed(exc)
        with self._lock:
            self._report_reason = self._pending = None
        self._reported = facts.to_dict()
        self._contact(answer)
        # The pause gives metalyard time to evaluate the report before the next question.
        self._update(doing=f"reported facts ({reason}); next check in {self.poll_seconds:g} s")
        return Step("report", self.poll_seconds, reason)

    def _obey(self, instruction: Instruction) -> Step:
        seconds = instruction.seconds if instruction.seconds > 0 else self.poll_seconds
        if instruction.action == "report":
            return self._report("metalyard asked for a report", None)
        if instruction.action == "wait":
            self._update(doing=f"waiting {seconds:g} s, as metalyard said")
            return Step("wait", seconds)
        if instruction.action == "poweroff":
            self._update(doing="powering off, as metalyard said")
            self._show()  # the last thing the screen says before it goes dark
            try:
                self._power_off()
            except Exception as exc:
                log.exception("power off failed")
                self._update(doing="power off failed", error=f"power off failed: {exc}")
                return Step("poweroff", self.poll_seconds, f"failed: {exc}")
            # A dry run, or a slow shutdown: look again later rather than spin.
            return Step("poweroff", self.poll_seconds)
        detail = "" if instruction.action == "idle" else f"unknown action {instruction.action!r}"
        self._update(doing=f"idle; next check in {seconds:g} s")
        return Step("idle", seconds, detail)

    def _failed(self, exc: AgentError, *, booting: bool = False) -> Step:
        if isinstance(exc, Refused) and exc.status == 401 and not booting:
            self._token = None
            self._update(doing="metalyard no longer knows this token; booting again", error=None)
            return Step("token-refused", 0, exc.message)
        self._failures += 1
        delay = min(self.backoff_max, self.backoff_initial * 2 ** (self._failures - 1))
        # Equal jitter: a rack that powered on together spreads out, and never hammers.
        delay = delay / 2 + self._jitter() * delay / 2
        self._update(doing=f"retrying in {delay:.1f} s (attempt {self._failures})", error=str(exc))
        log.warning("%s; retrying in %.1f s", exc, delay)
        return Step("retry", delay, str(exc))

    def _due(self) -> bool:
        return self._clock() - self._collected_at >= self.recollect_seconds

    def _collect(self) -> Facts:
        if self._reported is None and self._boot_facts is None:
            # The first collection can take a while; say so rather than show a blank screen.
            self._update(doing="collecting facts")
            self._show()
        facts = collect(self.source)
        self._collected_at = self._clock()
        return facts

    def _contact(self, answer: Answer) -> None:
        self._failures = 0
        self._update(
            serial=answer.serial or self.status.serial,
            state=answer.state,
            problems=list(answer.problems),
            last_contact=self._now(),
            error=None,
        )

    def _update(self, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(self.status, name, value)

    def _show(self) -> None:
        if self._display is not None:
            with self._lock:
                snapshot = replace(self.status, problems=list(self.status.problems))
            self._display(snapshot)
