"""Listing assets costs a fixed number of SQL statements, whatever the page size (no N+1)."""

from contextlib import contextmanager

from sqlalchemy import event

BUDGET = 2  # the page with its stored documents; one more builds those not stored yet


@contextmanager
def count_statements(database):
    statements = []

    def record(conn, cursor, statement, *args):
        if not statement.startswith(("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA")):
            statements.append(statement)

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(database.engine, "before_cursor_execute", record)


def test_listing_assets_with_interfaces_and_tags_is_not_n_plus_one(client, database):
    client.post("/v1/sites", json={"name": "dub1"}).raise_for_status()
    client.post("/v1/racks", json={"site": "dub1", "name": "r01"}).raise_for_status()
    rows = [
        {
            "serial": f"SN{n:03d}",
            "site": "dub1",
            "rack": "r01",
            "tags": {"pool": "web", "row": str(n % 3)},
            "interfaces": [
                {"name": "eno1", "mac": f"52:54:00:00:{n // 256:02x}:{n % 256:02x}"},
                {"name": "eno2", "mac": f"52:54:00:01:{n // 256:02x}:{n % 256:02x}"},
            ],
        }
        for n in range(150)
    ]
    client.post("/v1/assets/import", json={"assets": rows}).raise_for_status()

    counts = {}
    for limit in (10, 100):
        # The same token just before: its lookup is cached for 2 s, so neither count has it
        # (the import may take longer than that on a loaded machine).
        client.get("/v1/assets", params={"limit": 1}).raise_for_status()
        with count_statements(database) as statements:
            page = client.get("/v1/assets", params={"limit": limit, "tag": "pool=web"}).json()
        assert len(page["items"]) == limit
        assert all(len(a["interfaces"]) == 2 and len(a["tags"]) == 2 for a in page["items"])
        counts[limit] = len(statements)
    assert counts[10] == counts[100] <= BUDGET, counts
