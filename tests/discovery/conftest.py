"""A worker that reaches BMCs, and an agent calling from a discovery network."""

import pytest
from fastapi.testclient import TestClient

from metalyard.drivers.service import SubjectDrivers
from metalyard.orchestrator.worker import Worker

AGENT_ADDRESS = ("10.77.0.23", 40123)


@pytest.fixture
def discovery_worker(database, settings):
    worker = Worker(
        database, concurrency=8, lease=2.0, poll=0.05, drivers=SubjectDrivers(database, settings)
    ).start()
    yield worker
    worker.stop()


@pytest.fixture
def agent(app):
    """HTTP as an agent on a booted server sends it: from its address, with no user token."""
    with TestClient(app, client=AGENT_ADDRESS) as booted:
        yield booted
