"""The lab, headless, as a benchmark: servers from power-on to SPARE.

Each run starts `metalyard serve` on a fresh SQLite data directory, orders and racks the
servers, powers them all on at once through metalyard's API and waits until every one has
settled (SPARE and powered off, or QUARANTINED). Prints, per run: servers/s from the first
power-on to the last SPARE powered off, p50/p99 seconds from a server's power-on to its
power-off as SPARE, the wall time, and the peak memory (RSS) of metalyard's process and of
the lab's; then the medians over the runs.

    python bench/lab.py                           # 100 and 1,000 servers, 10% faults, 3 runs
    python bench/lab.py --servers 1000 --runs 1 --redfish

Target on a 2-core machine: 1,000 servers to SPARE in 60 s with the fake driver.
"""

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metalyard.lab.runner import Lab, Options


def peak_rss_mib(pid: int) -> float:
    """VmHWM of a running process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(servers: int, faults: float, redfish: bool) -> dict:
    lab = Lab(Options(servers=servers, fault_rate=faults, redfish=redfish, timeout=1800))
    try:
        lab.start()
        started = time.monotonic()
        lab.power_on()
        lab.settle()
        wall = time.monotonic() - started
        summary = lab.summary()
        spare = len(summary.seconds_to_spare)
        return {
            "servers/s": spare / wall,
            "p50 s": summary.percentile(0.5),
            "p99 s": summary.percentile(0.99),
            "wall s": wall,
            "spare": spare,
            "quarantined": summary.quarantined,
            "metalyard MiB": peak_rss_mib(lab.control_plane.pid),
            "lab MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    finally:
        lab.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--faults", type=float, default=0.1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--redfish", action="store_true")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for servers in args.servers:
        results = []
        for n in range(args.runs):
            results.append(run(servers, args.faults, args.redfish))
            print(f"{servers} servers, run {n + 1}: {figures(results[-1])}", flush=True)
        medians = {key: statistics.median(r[key] for r in results) for key in results[0]}
        print(f"{servers} servers, median of {args.runs}: {figures(medians)}", flush=True)


def figures(result: dict) -> str:
    return "  ".join(
        f"{name} {value:.1f}" if isinstance(value, float) else f"{name} {value}"
        for name, value in result.items()
    )


if __name__ == "__main__":
    main()
