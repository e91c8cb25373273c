"""Reads answer from stored documents while they are current, and never from stale ones."""

import json
import time

import pytest
from sqlalchemy import func, select, text

from metalyard.auth.actor import Actor
from metalyard.inventory import service
from metalyard.inventory.models import StoredDocument
from metalyard.orchestrator.worker import Worker
from tests.inventory.test_asset_reads import model_json, ordered


def stored(database) -> dict[int, int]:
    """asset id -> the version of its stored document."""
    with database.transaction(write=False) as session:
        return {
            asset_id: version
            for asset_id, version in session.execute(
                select(StoredDocument.asset_id, StoredDocument.version)
            )
        }


def mark_stored_documents(database) -> None:
    """Write a marker into every stored document, so a test can see which reads use them."""
    with database.transaction() as session:
        session.execute(text("""UPDATE asset_documents SET json = '{"stored": true}'"""))


def test_stored_documents_answer_as_the_models_do(client, database, furnished):
    client.post("/v1/assets", json={"serial": "SN2"}).raise_for_status()
    built = client.get("/v1/assets", params={"limit": 10}).content

    assert service.store_documents(database, batch=1) == 2
    assert service.store_documents(database) == 0  # all current: nothing to do

    assert sorted(stored(database).values()) == [1, 1]
    assert client.get("/v1/assets", params={"limit": 10}).content == built
    assert ordered(client.get("/v1/assets/SN1").content) == ordered(model_json(database, "SN1"))


def test_reads_use_a_stored_document_while_its_asset_is_unchanged(client, database, furnished):
    service.store_documents(database)
    mark_stored_documents(database)
    assert client.get("/v1/assets/SN1").json() == {"stored": True}
    assert client.get("/v1/assets").json()["items"] == [{"stored": True}]


def test_a_page_builds_the_documents_not_stored_beside_the_stored_ones(client, database, furnished):
    service.store_documents(database)
    mark_stored_documents(database)
    created = client.post("/v1/assets", json={"serial": "SN2", "tags": {"pool": "web"}})
    created.raise_for_status()

    first, second = client.get("/v1/assets").json()["items"]
    assert first == {"stored": True}
    assert ordered(json.dumps(second).encode()) == ordered(model_json(database, "SN2"))
    read = client.get("/v1/assets/SN2")
    assert read.json() == second and read.headers["etag"] == created.headers["etag"]


@pytest.mark.parametrize(
    "change",
    [
        ("PATCH", "/v1/assets/SN1", {"hostname": "renamed"}),
        ("PATCH", "/v1/assets/SN1", {"interfaces": [{"name": "eth9", "mac": "52:54:00:aa:00:09"}]}),
        ("PATCH", "/v1/assets/SN1", {"tags": {"only": "this"}}),
        ("POST", "/v1/assets/SN1/tags", {"set": {"pool": "db"}, "remove": ["env"]}),
        ("POST", "/v1/assets/SN1/transition", {"to": "QUARANTINED", "reason": "test"}),
    ],
    ids=["field", "interfaces", "tags-replaced", "tags-changed", "state"],
)
def test_a_changed_asset_is_never_answered_from_its_old_document(
    client, database, furnished, change
):
    service.store_documents(database)
    mark_stored_documents(database)
    method, path, body = change
    response = client.request(method, path, json=body)
    assert response.status_code in (200, 201), response.text

    expected = ordered(model_json(database, "SN1"))
    assert ordered(client.get("/v1/assets/SN1").content) == expected
    page = client.get("/v1/assets").json()["items"]
    assert page != [{"stored": True}] and page[0]["version"] == response.json()["version"]

    assert service.store_documents(database) == 1  # the changed one, at its new version
    assert list(stored(database).values()) == [response.json()["version"]]
    assert ordered(client.get("/v1/assets/SN1").content) == expected


def test_a_deleted_assets_document_goes_with_it(client, database, furnished):
    service.store_documents(database)
    with database.transaction() as session:  # without the approval the API asks for
        service.delete_asset(
            session, serial="SN1", reason="gone", actor=Actor.system("test"), policy=[]
        )
    assert stored(database) == {}
    # SQLite may give the next asset the id just freed: it must not inherit a document.
    client.post("/v1/assets", json={"serial": "SN3"}).raise_for_status()
    assert client.get("/v1/assets/SN3").json()["serial"] == "SN3"


def test_the_workers_store_the_documents(client, database, furnished):
    worker = Worker(database, concurrency=1, lease=0.2, poll=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while not stored(database) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert list(stored(database).values()) == [1]


def test_documents_are_stored_batch_after_batch_for_every_asset(database, client):
    rows = [{"serial": f"SN{n:03d}", "tags": {"n": str(n)}} for n in range(250)]
    client.post("/v1/assets/import", json={"assets": rows}).raise_for_status()
    assert service.store_documents(database, batch=100) == 250
    with database.transaction(write=False) as session:
        count = session.scalar(select(func.count()).select_from(StoredDocument))
    assert count == 250
    pages = client.get("/v1/assets", params={"limit": 1000}).json()["items"]
    assert [a["tags"] for a in pages] == [{"n": str(n)} for n in range(250)]
