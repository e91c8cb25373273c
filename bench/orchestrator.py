"""Orchestrator throughput: runs × 4 beans through real workers, on PostgreSQL and SQLite.

Each run is `prepare → (flash ∥ inventory) → finish`; every bean sleeps 0–10 ms and holds a
slot of one of 50 pool keys (limit 8 each). Workers are separate processes, so their CPU
time is their own. Prints beans/s, worker CPU ms per bean, the part of the elapsed time spent
starting the runs, and the ratio of the elapsed time to the capacity-bound lower limit (the
busiest pool key's sleep divided by its limit, or all sleep divided by the worker threads,
whichever is larger).

    python bench/orchestrator.py                      # both backends, 2,000 runs
    python bench/orchestrator.py --backend postgresql --runs 500 --workers 2
"""

import argparse
import multiprocessing
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metalyard.db import Database, upgrade
from metalyard.orchestrator import service
from metalyard.orchestrator.beans import Done, FunctionTask, Subject
from metalyard.orchestrator.flows import Bean, Condition, Flow, PoolClaim, flows
from metalyard.orchestrator.states import RunState

THREADS = 64
POOL_KEYS = 50
POOL_LIMIT = 8


def sleep_bean(ctx):
    time.sleep(ctx.params["sleep"][ctx.bean])
    return Done()


def _bean(name: str, **kwargs) -> Bean:
    return Bean(
        name, FunctionTask(sleep_bean), pools=(PoolClaim("bench", "key", POOL_LIMIT),), **kwargs
    )


BENCH_FLOW = flows.register(
    Flow(
        name="bench.four",
        required_params=("key",),
        beans=(
            _bean("prepare"),
            _bean("flash", depends_on={"prepare": Condition.SUCCEEDED}),
            _bean("inventory", depends_on={"prepare": Condition.SUCCEEDED}),
            _bean(
                "finish",
                depends_on={"flash": Condition.SUCCEEDED, "inventory": Condition.SUCCEEDED},
            ),
        ),
    )
)


def worker_process(url: str, stop, results) -> None:
    from metalyard.orchestrator.worker import Worker

    database = Database(url)
    worker = Worker(database, concurrency=THREADS, batch=64, lease=30.0, poll=0.5).start()
    stop.wait()
    worker.stop()
    results.put((worker.executed, time.process_time()))


def run(backend: str, url: str, runs: int, workers: int, seed: int) -> dict:
    upgrade(url)
    database = Database(url)
    rng = random.Random(seed)
    targets = []
    for n in range(runs):
        sleeps = {
            name: rng.uniform(0, 0.010) for name in ("prepare", "flash", "inventory", "finish")
        }
        targets.append((Subject("bench", str(n)), {"key": str(n % POOL_KEYS), "sleep": sleeps}))
    per_key: dict[str, float] = {}
    for _, params in targets:
        per_key[params["key"]] = per_key.get(params["key"], 0) + sum(params["sleep"].values())
    total_sleep = sum(per_key.values())
    lower_bound = max(max(per_key.values()) / POOL_LIMIT, total_sleep / (THREADS * workers))

    context = multiprocessing.get_context("spawn")
    stop, results = context.Event(), context.Queue()
    processes = [
        context.Process(target=worker_process, args=(url, stop, results)) for _ in range(workers)
    ]
    for process in processes:
        process.start()
    time.sleep(2.0)  # let the workers import and connect before the clock starts

    started = time.perf_counter()
    with database.transaction() as session:
        for chunk in range(0, runs, 1000):
            service.start_runs(
                session, flow=BENCH_FLOW, targets=targets[chunk : chunk + 1000], actor="bench"
            )
    start = time.perf_counter() - started
    while True:
        with database.transaction(write=False) as session:
            from sqlalchemy import func, select

            from metalyard.orchestrator.models import Run

            open_runs = session.scalar(
                select(func.count()).select_from(Run).where(Run.state == RunState.RUNNING)
            )
        if not open_runs:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    stop.set()
    executed = cpu = 0.0
    for _ in processes:
        count, seconds = results.get(timeout=60)
        executed += count
        cpu += seconds
    for process in processes:
        process.join(timeout=30)
    with database.transaction(write=False) as session:
        from sqlalchemy import func, select

        from metalyard.orchestrator.models import Pool, Run

        failed = session.scalar(
            select(func.count()).select_from(Run).where(Run.state != RunState.SUCCEEDED)
        )
        held = session.scalar(select(func.sum(Pool.in_use)))
    beans = runs * 4
    return {
        "backend": backend,
        "runs": runs,
        "workers": workers,
        "beans": beans,
        "executed": int(executed),
        "elapsed": elapsed,
        "start": start,
        "beans_per_s": beans / elapsed,
        "cpu_ms_per_bean": 1000 * cpu / beans,
        "lower_bound": lower_bound,
        "ratio": elapsed / lower_bound,
        "not_succeeded": failed,
        "slots_left": held or 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes on PostgreSQL")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    rows = []
    if args.backend in ("sqlite", "both"):
        path = Path(tempfile.mkdtemp(prefix="metalyard-bench-")) / "bench.db"
        rows.append(run("sqlite", f"sqlite:///{path}", args.runs, 1, args.seed))
    if args.backend in ("postgresql", "both"):
        from tests.peers.postgres import PostgresCluster, find_bindir

        cluster = PostgresCluster(find_bindir())
        cluster.start()
        try:
            rows.append(run("postgresql", cluster.url, args.runs, args.workers, args.seed))
        finally:
            cluster.stop()

    print(
        f"\norchestrator: {args.runs} runs × 4 beans, {POOL_KEYS} pool keys × {POOL_LIMIT}, "
        f"{THREADS} threads per worker"
    )
    header = (
        "backend",
        "workers",
        "beans/s",
        "CPU ms/bean",
        "elapsed s",
        "start s",
        "lower bound s",
        "ratio",
        "not ok",
        "slots left",
    )
    print(" | ".join(header))
    for r in rows:
        print(
            " | ".join(
                [
                    r["backend"],
                    str(r["workers"]),
                    f"{r['beans_per_s']:.0f}",
                    f"{r['cpu_ms_per_bean']:.2f}",
                    f"{r['elapsed']:.2f}",
                    f"{r['start']:.2f}",
                    f"{r['lower_bound']:.2f}",
                    f"{r['ratio']:.1f}",
                    str(r["not_succeeded"]),
                    str(r["slots_left"]),
                ]
            )
        )
    print("targets (PostgreSQL): ≥ 1000 beans/s, ≤ 1 ms CPU per bean")


if __name__ == "__main__":
    main()
