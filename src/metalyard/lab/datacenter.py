"""The simulated datacenter: servers that boot when their BMC powers them on, PXE-boot
through metalyard's iPXE endpoint, and run the real agent on their simulated hardware.

Nothing here calls metalyard's services: servers reach it over HTTP as real ones do, and
their BMCs, driven by metalyard's own drivers, tell the datacenter when they boot a server or
power it off (see `bmcs`).
Thousands of servers share a small pool of threads: each server's next step (a PXE request,
one agent step) is put on a timeline, and a power change makes its pending steps stale.
"""

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum

import httpx

from metalyard.agent.runtime import DEFAULT_PORT, Agent, Status
from metalyard.lab.machines import SimulatedMachine

log = logging.getLogger(__name__)

PXE_RETRY_SECONDS = 2.0
AGENT_POLL_SECONDS = 2.0
"""How long the lab's agents pause after a report (a real agent: 10 s)."""


class Phase(StrEnum):
    OFF = "off"
    PXE = "pxe"
    AGENT = "agent"
    LOCAL_DISK = "local disk"
    HALTED = "halted"


@dataclass
class Server:
    """A simulated machine in its rack, as the datacenter sees it (not as metalyard does)."""

    machine: SimulatedMachine
    phase: Phase = Phase.OFF
    generation: int = 0
    """Grows at every power change: steps scheduled before it are stale."""
    powered_on_at: float | None = None
    powered_off_at: float | None = None
    agent: Agent | None = None
    state: str | None = None
    """What metalyard last told its agent."""
    problems: list[str] = field(default_factory=list)
    problems_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def serial(self) -> str:
        return self.machine.serial


class Timeline:
    """Calls due at a time, run on a pool of threads."""

    def __init__(self, threads: int) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._ready = threading.Condition()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="lab")
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="lab-timeline", daemon=True)
        self._thread.start()

    def after(self, seconds: float, call: Callable[[], None]) -> None:
        with self._ready:
            heapq.heappush(self._heap, (time.monotonic() + seconds, next(self._order), call))
            self._ready.notify()

    def stop(self) -> None:
        with self._ready:
            self._stopped = True
            self._ready.notify()
        self._thread.join()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._ready.wait(timeout)
                if self._stopped:
                    return
                _, _, call = heapq.heappop(self._heap)
            self._pool.submit(self._guarded, call)

    @staticmethod
    def _guarded(call: Callable[[], None]) -> None:
        try:
            call()
        except Exception:  # one server's bad step must not stop the datacenter
            log.exception("a simulated server's step failed")


class Datacenter:
    """Servers wired to their BMCs and to metalyard's URL."""

    def __init__(self, url: str, servers: list[Server], *, threads: int = 8) -> None:
        self.url = url.rstrip("/")
        self.servers = {server.serial: server for server in servers}
        self._timeline = Timeline(threads)
        self._http = httpx.Client(timeout=15.0)

    def stop(self) -> None:
        self._timeline.stop()
        self._http.close()

    # --- what the BMCs tell the motherboards -------------------------------------------

    def power_changed(self, serial: str, booted: bool) -> None:
        """The BMC powered the server on (or reset it), or off."""
        server = self.servers[serial]
        with server.lock:
            server.generation += 1
            server.agent, server.state, server.problems = None, None, []
            now = time.monotonic()
            if booted:
                server.phase = Phase.PXE
                server.powered_on_at, server.powered_off_at = now, None
            else:
                server.phase = Phase.OFF
                server.powered_off_at = now
            generation = server.generation
        if booted:
            self._timeline.after(0, lambda: self._pxe_boot(server, generation))

    # --- what a technician does --------------------------------------------------------

    def press_power_button(self, serial: str) -> None:
        """Power a server on by hand, for one metalyard does not know yet."""
        self.power_changed(serial, True)

    # --- what the servers do -----------------------------------------------------------

    def _pxe_boot(self, server: Server, generation: int) -> None:
        """iPXE asks metalyard what to boot, by the MAC it boots from."""
        try:
            answer = self._http.get(
                f"{self.url}/boot/ipxe", params={"mac": server.machine.macs[0]}
            ).raise_for_status()
        except httpx.HTTPError as error:  # as iPXE does: wait, then try again
            log.warning("%s: PXE boot failed (%s); retrying", server.serial, error)
            self._timeline.after(PXE_RETRY_SECONDS, lambda: self._pxe_boot(server, generation))
            return
        lines = [line.split(" ", 1)[0] for line in answer.text.splitlines()]
        with server.lock:
            if server.generation != generation:
                return
            if "kernel" in lines:
                server.phase = Phase.AGENT
                server.agent = Agent(
                    self.url,
                    server.machine.source(),
                    port=DEFAULT_PORT,
                    poll_seconds=AGENT_POLL_SECONDS,
                    # The OS powers the machine off; its BMC learns it at the next power call.
                    power_off=lambda: self.power_changed(server.serial, False),
                    reboot=lambda: self.power_changed(server.serial, True),
                    display=lambda status: self._show(server, status),
                    sleep=lambda _seconds: None,  # the timeline waits instead of a thread
                    backoff_max=5.0,
                )
            elif "poweroff" in lines:
                server.phase = Phase.HALTED
            else:
                server.phase = Phase.LOCAL_DISK
        if server.phase is Phase.AGENT:
            self._timeline.after(0, lambda: self._agent_step(server, generation))

    def _agent_step(self, server: Server, generation: int) -> None:
        agent = server.agent
        if agent is None or server.generation != generation:
            return
        step = agent.run_once()
        if server.generation == generation:
            self._timeline.after(step.seconds, lambda: self._agent_step(server, generation))

    @staticmethod
    def _show(server: Server, status: Status) -> None:
        """The agent's console: the lab reads it to show the latest problems."""
        problems = [problem.message for problem in status.problems]
        if problems != server.problems:
            server.problems, server.problems_at = problems, time.monotonic()
        server.state = status.state
