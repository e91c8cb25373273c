"""One run of the lab: metalyard and a simulated datacenter side by side, the servers taken
from purchase order to SPARE, and (with `fix`) the faulty ones repaired and brought back.

`Lab` is what `metalyard lab`, its test and `bench/lab.py` share; they differ only in how
they show a `Census` as it changes.
"""

import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from metalyard.discovery.schemas import DiscoveryRowOut
from metalyard.errors import InvalidInput, MetalyardError
from metalyard.inventory.lifecycle import AssetState
from metalyard.lab import scenario
from metalyard.lab.bmcs import FakeBmcs, RedfishBmcs
from metalyard.lab.controlplane import ControlPlane
from metalyard.lab.datacenter import Datacenter, Phase, Server
from metalyard.lab.machines import Fault, SimulatedMachine
from metalyard.orchestrator.states import RunState
from metalyard.sdk import Client

SETTLED = (AssetState.SPARE, AssetState.QUARANTINED)
CENSUS_SECONDS = 0.5


@dataclass(frozen=True)
class Options:
    servers: int = 50
    racks: int | None = None
    fault_rate: float = 0.1
    redfish: bool = False
    seed: int = 0
    data_dir: Path | None = None
    """Empty or missing; None: a temporary one, removed at the end."""
    port: int = 0
    timeout: float = 600.0
    """Seconds the servers may take to settle."""


@dataclass(frozen=True)
class Problem:
    serial: str
    message: str


@dataclass(frozen=True)
class Census:
    """Where the servers stand, as metalyard and the datacenter see them."""

    elapsed: float
    total: int
    states: dict[str, int]
    """metalyard's lifecycle state → servers; `not booted` for the ones it has not seen."""
    settled: int
    """Servers whose evaluation ended: SPARE and powered off, or QUARANTINED."""
    problems: list[Problem]

    @property
    def done(self) -> bool:
        return self.settled == self.total


@dataclass(frozen=True)
class Summary:
    elapsed: float
    states: dict[str, int]
    reasons: dict[str, list[str]]
    """Each quarantined server → why, as metalyard says it."""
    injected: dict[str, set[Fault]]
    """Each faulty server → the faults the lab put in it."""
    unknown_assets: list[str]
    order: str
    order_state: str
    seconds_to_spare: list[float] = field(default_factory=list)
    """For each server that reached SPARE this round: power-on to powered off as SPARE."""

    @property
    def spare(self) -> int:
        return self.states.get(AssetState.SPARE, 0)

    @property
    def quarantined(self) -> int:
        return self.states.get(AssetState.QUARANTINED, 0)

    def percentile(self, share: float) -> float | None:
        if not self.seconds_to_spare:
            return None
        if len(self.seconds_to_spare) == 1:
            return self.seconds_to_spare[0]
        return statistics.quantiles(self.seconds_to_spare, n=100, method="inclusive")[
            round(share * 100) - 1
        ]

    def by_fault(self) -> dict[Fault, list[str]]:
        """Each injected fault → the servers that had it."""
        found: dict[Fault, list[str]] = {}
        for serial, faults in sorted(self.injected.items()):
            for fault in faults:
                found.setdefault(fault, []).append(serial)
        return dict(sorted(found.items()))

    def caught(self, fault: Fault) -> list[str]:
        """The servers with `fault` that are quarantined with a reason naming its check
        (`memory: ...`, `nic eno2: ...`)."""
        named = fault.check.replace(":", " ")
        return [
            serial
            for serial in self.by_fault().get(fault, [])
            if any(r.startswith((named + ":", named + " ")) for r in self.reasons.get(serial, []))
        ]

    @property
    def servers_per_second(self) -> float:
        return len(self.seconds_to_spare) / self.elapsed if self.elapsed else 0.0


class Lab:
    def __init__(self, options: Options) -> None:
        racks = options.racks or scenario.default_racks(options.servers)
        plan = scenario.Plan(options.servers, racks, options.fault_rate, options.seed)
        self.options = options
        self.racks = racks
        self.machines: list[SimulatedMachine] = scenario.build(plan)
        self._owns_data_dir = options.data_dir is None
        self.data_dir = options.data_dir or Path(tempfile.mkdtemp(prefix="metalyard-lab-"))
        if (self.data_dir / "metalyard.db").exists():
            raise InvalidInput(f"{self.data_dir} holds a metalyard database: the lab needs its own")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.bmcs = RedfishBmcs() if options.redfish else FakeBmcs()
        self.control_plane = ControlPlane(self.data_dir, port=options.port)
        self.client: Client | None = None
        self.datacenter: Datacenter | None = None
        self.order = ""
        self._started_at = 0.0

    @property
    def url(self) -> str:
        return self.control_plane.url

    @property
    def token(self) -> str:
        return self.control_plane.token

    # --- the run -----------------------------------------------------------------------

    def start(self) -> "Lab":
        """metalyard up, the order placed, the BMCs answering, the delivery racked."""
        self.control_plane.start()
        self.client = Client(self.control_plane.url, self.control_plane.token, timeout=60.0)
        self.order = scenario.order(self.client, self.machines, self.racks)
        self.datacenter = Datacenter(self.control_plane.url, [Server(m) for m in self.machines])
        self.bmcs.start(self.machines, self.datacenter.power_changed)
        scenario.rack(self.client, self.order, self.machines, self.bmcs)
        return self

    def power_on(self) -> None:
        """Every server on: through metalyard and its BMC for the servers it has enrolled, by
        hand for the ones nobody could scan in."""
        self._started_at = time.monotonic()
        enrolled = {m.serial for m in scenario.known(self.machines)}
        _each(
            self.machines,
            lambda m: (
                self.client.bmc.power(m.serial, "on")
                if m.serial in enrolled
                else self.datacenter.press_power_button(m.serial)
            ),
        )

    def settle(self, show: Callable[[Census], None] = lambda _census: None) -> Census:
        """Wait until every server's evaluation ended, showing each census on the way."""
        deadline = time.monotonic() + self.options.timeout
        while True:
            census = self.census()
            show(census)
            if census.done:
                return census
            if time.monotonic() > deadline:
                raise LabTimeout(census)
            time.sleep(CENSUS_SECONDS)

    def census(self) -> Census:
        return self._census(self.client.discovery.booting())

    def _census(self, booting: list[DiscoveryRowOut]) -> Census:
        rows = {row.serial: row for row in booting}
        states: Counter[str] = Counter()
        settled = 0
        for server in self.datacenter.servers.values():
            row = rows.get(server.serial)
            states[row.state.value if row else "not booted"] += 1
            if row is None or row.state not in SETTLED or row.evaluation == RunState.RUNNING:
                continue
            # A rebooted server counts again once its agent has booted and been answered.
            if server.phase is Phase.AGENT and server.state is None:
                continue
            if row.state is AssetState.SPARE and server.phase is not Phase.OFF:
                continue
            settled += 1
        latest = sorted(
            (s for s in self.datacenter.servers.values() if s.problems),
            key=lambda s: s.problems_at,
        )
        problems = [Problem(s.serial, message) for s in latest for message in s.problems]
        return Census(
            elapsed=time.monotonic() - self._started_at,
            total=len(self.machines),
            states=dict(states),
            settled=settled,
            problems=problems[-8:],
        )

    def summary(self) -> Summary:
        booting = self.client.discovery.booting()
        census = self._census(booting)
        quarantined = [row.serial for row in booting if row.state is AssetState.QUARANTINED]
        why = _each(quarantined, lambda serial: self.client.discovery.why(serial).reasons)
        reasons = dict(zip(quarantined, why, strict=True))
        report = self.client.procurement.report()
        servers = self.datacenter.servers.values()
        return Summary(
            elapsed=census.elapsed,
            states=census.states,
            reasons=reasons,
            injected={m.serial: set(m.faults) for m in self.machines if m.faults},
            unknown_assets=[a for region in report.regions for a in region.unknown_assets],
            order=self.order,
            order_state=self.client.purchase_orders.get(self.order).state.value,
            seconds_to_spare=sorted(
                s.powered_off_at - s.powered_on_at
                for s in servers
                if s.powered_on_at is not None
                and s.powered_off_at is not None
                and s.powered_on_at >= self._started_at
            ),
        )

    def fix(self) -> list[str]:
        """Repair every fault and reboot the quarantined servers through metalyard; the
        serials of the repaired servers."""
        unknown = [m for m in self.machines if Fault.UNKNOWN_SERIAL in m.faults]
        if unknown:  # the vendor sends the corrected packing list; site-ops record the rest
            packing = "serial\n" + "".join(f"{m.serial}\n" for m in unknown)
            self.client.purchase_orders.import_serials(self.order, packing)
            _each(unknown, lambda m: self.client.assets.update(m.serial, self._recorded(m)))
        repaired = [m for m in self.machines if m.faults]
        for machine in repaired:
            machine.repair()
        self._started_at = time.monotonic()
        _each(repaired, lambda m: self.client.bmc.power(m.serial, "cycle"))
        return [m.serial for m in repaired]

    def _recorded(self, machine: SimulatedMachine) -> dict:
        enrolment = scenario.enrolment(machine, self.bmcs)
        return {key: enrolment[key] for key in ("site", "rack", "rack_position_u", "bmc_driver",
                                                "bmc_address", "bmc_credential")}  # fmt: skip

    def stop(self) -> None:
        if self.datacenter is not None:
            self.datacenter.stop()
        if self.client is not None:
            self.client.close()
        self.control_plane.stop()
        self.bmcs.stop()
        if self._owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def _each(items: list, call: Callable) -> list:
    """`call` on every item, 4 at a time, as a script driving the API would."""
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(call, items))


class LabTimeout(MetalyardError):
    status = 504
    code = "lab_timeout"

    def __init__(self, census: Census) -> None:
        super().__init__(
            f"{census.total - census.settled} of {census.total} servers had not settled after "
            f"{census.elapsed:.0f} s: {census.states}"
        )
        self.census = census
