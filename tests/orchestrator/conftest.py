import time

import pytest

from metalyard.orchestrator import service
from metalyard.orchestrator.states import RunState
from metalyard.orchestrator.worker import Worker
from tests.orchestrator import flows as test_flows  # noqa: F401  (registers the test flows)


@pytest.fixture
def worker(database):
    running = Worker(database, concurrency=8, lease=2.0, poll=0.05).start()
    yield running
    running.stop()


def wait_until_finished(database, run_ids, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with database.transaction(write=False) as session:
            runs = [service.get_run(session, run_id=r) for r in run_ids]
            if all(run.state is not RunState.RUNNING for run in runs):
                return runs
        time.sleep(0.05)
    raise AssertionError(f"runs still running after {timeout}s: {[r.id for r in runs]}")
