"""Beans reach their subject's BMC through the worker's driver seam; BMC errors that may pass
are retried, the others fail the bean with the BMC's message."""

import time

import pytest

from metalyard.auth.actor import Actor
from metalyard.drivers import PowerState
from metalyard.drivers.fake import FLEET
from metalyard.drivers.schemas import BmcCredentialCreate
from metalyard.drivers.service import SubjectDrivers, create_credential
from metalyard.inventory import service as inventory
from metalyard.inventory.schemas import AssetCreate
from metalyard.orchestrator import service as orchestrator
from metalyard.orchestrator.beans import Subject
from metalyard.orchestrator.flows import flows
from metalyard.orchestrator.states import RunState
from metalyard.orchestrator.worker import Worker
from metalyard.secrets import Keyring
from tests.orchestrator import flows as _test_flows  # noqa: F401  (registers test.power_on)
from tests.orchestrator.conftest import wait_until_finished


@pytest.fixture
def bmc_worker(database, settings):
    worker = Worker(
        database, concurrency=4, lease=2.0, poll=0.05, drivers=SubjectDrivers(database, settings)
    ).start()
    yield worker
    worker.stop()


def start(database, serial: str, address: str, **bmc: str | None) -> int:
    with database.transaction() as session:
        inventory.create_asset(
            session,
            data=AssetCreate(serial=serial, bmc_address=address, **{"bmc_driver": "fake", **bmc}),
            actor=Actor.system("test", request_id="req-1"),
        )
        run = orchestrator.start_run(
            session,
            flow=flows.get("test.power_on"),
            subject=Subject("asset", serial),
            params={},
            actor="test",
        )
        return run.id


def bean(database, run_id: int):
    with database.transaction(write=False) as session:
        return orchestrator.get_run(session, run_id=run_id).beans[0]


def test_transient_bmc_errors_are_retried_until_the_bmc_answers(database, bmc_worker, request):
    address = f"flaky-{request.node.callspec.id}"
    machine = FLEET.machine(address)
    machine.faults.transient_rate = 1.0
    run_id = start(database, f"SN-FLAKY-{request.node.callspec.id}", address)
    deadline = time.monotonic() + 20
    while bean(database, run_id).failures < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "is busy" in bean(database, run_id).reason
    machine.faults.transient_rate = 0.0
    (run,) = wait_until_finished(database, [run_id])
    assert run.state is RunState.SUCCEEDED
    assert machine.power is PowerState.ON


def test_a_fatal_bmc_error_fails_the_bean_with_the_bmcs_message(database, bmc_worker, request):
    address = f"broken-{request.node.callspec.id}?fatal=BMC firmware image corrupted"
    run_id = start(database, f"SN-BROKEN-{request.node.callspec.id}", address)
    (run,) = wait_until_finished(database, [run_id])
    assert run.state is RunState.FAILED
    failed = bean(database, run_id)
    assert failed.attempts == 1
    assert "BMC firmware image corrupted" in failed.reason


def test_a_bean_never_sends_a_credential_outside_its_networks(
    database, settings, bmc_worker, rogue, request
):
    name = f"oob-{request.node.callspec.id}"
    with database.transaction() as session:
        data = BmcCredentialCreate(
            name=name, username="root", password="pw", networks=["10.0.0.0/8"]
        )
        create_credential(session, data=data, keyring=Keyring.from_settings(settings))
    serial = f"SN-ROGUE-{request.node.callspec.id}"
    run_id = start(database, serial, rogue.url, bmc_driver="redfish", bmc_credential=name)
    (run,) = wait_until_finished(database, [run_id])
    assert run.state is RunState.FAILED
    assert "outside the networks BMC credential" in bean(database, run_id).reason
    assert rogue.seen == []


def test_a_bean_on_an_asset_with_no_bmc_fails_saying_what_to_set(database, bmc_worker, request):
    serial = f"SN-NOBMC-{request.node.callspec.id}"
    run_id = start(database, serial, "", bmc_driver=None)
    (run,) = wait_until_finished(database, [run_id])
    assert run.state is RunState.FAILED
    failed = bean(database, run_id)
    assert failed.attempts == 1
    assert failed.reason.startswith(f"NoBmc: asset {serial!r} has no BMC driver, address or")
    assert f"`metalyard asset update {serial} --bmc-driver …" in failed.reason
    assert "Traceback" not in failed.reason
