"""Workers killed with SIGKILL mid-flight lose nothing, and pools are never exceeded.

500 runs of test.crash (prepare → flash ∥ inventory → report, which waits for a signal);
on PostgreSQL two `metalyard worker` processes share them, on SQLite one; one worker is
killed with SIGKILL in the middle and started again.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from metalyard.orchestrator import service
from metalyard.orchestrator.beans import Subject
from metalyard.orchestrator.models import BeanAttempt, Pool, Run, RunBean
from metalyard.orchestrator.states import BeanState, RunState
from tests.orchestrator.flows import crash_flow

RUNS = 500
RACKS = 10
POOL_SIZE = 3  # test-switch:<rack>, see tests/orchestrator/flows.py
LEASE = 2.0
REPO = Path(__file__).resolve().parents[2]


def start_worker(database, ledger: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """A `metalyard worker` process and its name, once it said it runs (and handles SIGTERM)."""
    env = {
        **os.environ,
        "METALYARD_DATABASE_URL": database.url,
        "METALYARD_DATA_DIR": str(ledger.parent / "data"),  # a first start makes its key there
        "METALYARD_TEST_LEDGER": str(ledger),
        "METALYARD_WORKER_LEASE_SECONDS": str(LEASE),
        "METALYARD_WORKER_CONCURRENCY": "32",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "metalyard", "worker", "--flows", "tests.orchestrator.flows"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log.open("a"),  # a file, not a pipe nobody reads that could fill and block it
        text=True,
    )
    started = process.stdout.readline()
    assert " worker " in started, log.read_text()[-2000:]
    return process, started.split(" worker ", 1)[1].split()[0]


def kill_mid_bean(database, process: subprocess.Popen, name: str) -> None:
    """SIGKILL the worker while it holds running beans (frozen first, so it cannot end them)."""
    for _ in range(200):
        process.send_signal(signal.SIGSTOP)
        with database.transaction(write=False) as session:
            running = session.scalar(
                select(func.count())
                .select_from(RunBean)
                .where(RunBean.state == BeanState.RUNNING, RunBean.lease_owner == name)
            )
        if running:
            break
        process.send_signal(signal.SIGCONT)
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()


def answer_waits(database, stop: threading.Event) -> None:
    """The agents: whoever waits for a report gets it."""
    while not stop.is_set():
        with database.transaction() as session:
            keys = session.scalars(
                select(RunBean.wait_key).where(RunBean.state == BeanState.WAITING)
            ).all()
            for key in keys:
                service.signal(session, key=key, payload={"ok": True})
        stop.wait(0.2)


def counts(database) -> dict[RunState, int]:
    with database.transaction(write=False) as session:
        return dict(session.execute(select(Run.state, func.count()).group_by(Run.state)).all())


def test_killed_worker_loses_nothing_and_pools_hold(database, tmp_path):
    ledger = tmp_path / "ledger"
    ledger.touch()
    targets = [
        (Subject("asset", f"SN{n:04d}"), {"rack": f"r{n % RACKS}", "sleep": 0.02})
        for n in range(RUNS)
    ]
    with database.transaction() as session:
        service.start_runs(session, flow=crash_flow, targets=targets, actor="test")

    workers = 1 if database.is_sqlite else 2
    started = [start_worker(database, ledger, tmp_path / f"w{n}.log") for n in range(workers)]
    processes = [process for process, _ in started]
    stop = threading.Event()
    agents = threading.Thread(target=answer_waits, args=(database, stop), daemon=True)
    agents.start()
    try:
        deadline = time.monotonic() + 120
        while counts(database).get(RunState.SUCCEEDED, 0) < RUNS // 3:
            assert time.monotonic() < deadline, "no progress before the kill"
            time.sleep(0.1)
        kill_mid_bean(database, *started[0])
        killed_at = time.time()
        processes[0], _ = start_worker(database, ledger, tmp_path / "w0.log")
        while counts(database).get(RunState.RUNNING, 0):
            assert time.monotonic() < deadline, f"runs left: {counts(database)}"
            time.sleep(0.2)
    finally:
        stop.set()
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for n, process in enumerate(processes):
            assert process.wait(timeout=30) == 0, (tmp_path / f"w{n}.log").read_text()[-2000:]

    assert counts(database) == {RunState.SUCCEEDED: RUNS}
    with database.transaction(write=False) as session:
        assert session.scalar(select(func.coalesce(func.sum(Pool.in_use), 0))) == 0
        finished = {
            (run_id, name): at
            for run_id, name, at in session.execute(
                select(RunBean.run_id, RunBean.name, RunBean.finished_at)
            )
        }
        lost = session.scalar(
            select(func.count()).select_from(BeanAttempt).where(BeanAttempt.outcome == "lost")
        )
    executions = [line.split() for line in ledger.read_text().splitlines()]
    # No bean recorded done ran again: every execution started before its bean was done.
    late = [
        e
        for e in executions
        if datetime.fromtimestamp(float(e[3]), UTC) > finished[(int(e[0]), e[1])]
    ]
    assert late == []
    # Each pool key's observed concurrency stayed within its size (an execution cut by
    # the kill ends at the kill).
    spans: dict[tuple[str, str], list[float]] = defaultdict(list)
    racks = {}
    for run_id, bean, attempt, at, *note in executions:
        if bean == "flash":
            spans[(run_id, attempt)].append(float(at))
            racks[(run_id, attempt)] = note[1]
    events = defaultdict(list)
    for key, times in spans.items():
        start, end = times[0], times[1] if len(times) > 1 else killed_at
        events[racks[key]] += [(start, 1), (end, -1)]
    peak = {}
    for rack, marks in events.items():
        level = peak[rack] = 0
        for _, step in sorted(marks, key=lambda m: (m[0], m[1])):
            level += step
            peak[rack] = max(peak[rack], level)
    assert max(peak.values()) <= POOL_SIZE, peak
    assert max(peak.values()) == POOL_SIZE  # the pools were the bottleneck, really tested
    assert lost >= 1  # the kill did cut beans short
