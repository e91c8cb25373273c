"""BMC driver throughput: read the power state of many systems with bounded concurrency.

Redfish: N systems in one sushy-tools emulator (a process of its own, started here), read
through our Redfish driver (sushy, one shared session, pooled connections). Fake: the same
reads through the shipped fake driver, without latency and with a BMC-like 20 ms. Prints
total seconds and requests/s per run, and the median over the runs.

    python bench/drivers.py                          # 1,000 systems, 16 threads, 3 runs
    python bench/drivers.py --systems 200 --concurrency 32 --runs 5

The emulator is a Werkzeug development server: it, not our client, is the ceiling (about
360 GET/s per system resource on this machine, see ../shared/PEERS.md).
"""

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.peers.bmcs import RedfishEmulator

from metalyard.drivers import BmcTarget, Driver
from metalyard.drivers.fake import FakeDriver, FakeFleet
from metalyard.drivers.redfish import RedfishDriver, SessionCache


def read_all(drivers: list[Driver], concurrency: int) -> float:
    """Seconds to read every driver's power state, `concurrency` at a time."""
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        states = list(pool.map(lambda driver: driver.get_power_state(), drivers))
    elapsed = time.perf_counter() - started
    assert len(states) == len(drivers)
    return elapsed


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(name: str, count: int, timings: list[float]) -> None:
    for run, seconds in enumerate(timings, 1):
        print(f"  {name:<24} run {run}: {seconds:7.2f} s  {count / seconds:9.0f} requests/s")
    median = statistics.median(timings)
    print(f"  {name:<24} median: {median:6.2f} s  {count / median:9.0f} requests/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--systems", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.systems} systems, {args.concurrency} at a time, {args.runs} runs")

    emulator = RedfishEmulator(count=args.systems).start()
    try:
        sessions = SessionCache()
        redfish = [RedfishDriver(emulator.target(i), sessions) for i in range(args.systems)]
        started = time.perf_counter()
        redfish[0].get_power_state()  # logs in; the emulator builds its systems on first use
        print(f"  first call (login, emulator warm-up): {time.perf_counter() - started:.2f} s")
        emulator_cpu, client_cpu = cpu_seconds(emulator.process.pid), time.process_time()
        timings = [read_all(redfish, args.concurrency) for _ in range(args.runs)]
        emulator_cpu = cpu_seconds(emulator.process.pid) - emulator_cpu
        client_cpu = time.process_time() - client_cpu
        report("redfish (sushy-tools)", args.systems, timings)
        requests = args.systems * args.runs
        print(
            f"  CPU per request: emulator {emulator_cpu / requests * 1000:.2f} ms, "
            f"our client {client_cpu / requests * 1000:.2f} ms (of {os.cpu_count()} cores)"
        )
        print(f"  Redfish sessions opened on the emulator: {len(emulator.open_sessions())}")
    finally:
        emulator.stop()

    for latency in (0.0, 0.02):
        fleet = FakeFleet()
        fake = [
            FakeDriver(BmcTarget("fake", f"node{i}?latency={latency}"), fleet)
            for i in range(args.systems)
        ]
        timings = [read_all(fake, args.concurrency) for _ in range(args.runs)]
        report(f"fake, {latency * 1000:.0f} ms latency", args.systems, timings)


if __name__ == "__main__":
    main()
