"""A big import brings PostgreSQL's statistics up to date, so the next pages use the indexes."""

import pytest
from sqlalchemy import text

from metalyard.inventory import service

GROWN = ("assets", "asset_tags", "asset_state_changes")


def vacuums(database) -> dict[str, int]:
    with database.engine.connect() as connection:
        counts = connection.execute(
            text("SELECT relname, vacuum_count + analyze_count FROM pg_stat_user_tables")
        )
        return {table: count for table, count in counts if table in GROWN}


def test_a_big_import_refreshes_the_statistics_of_the_tables_it_grew(client, database, monkeypatch):
    if database.is_sqlite:
        pytest.skip("SQLite plans asset pages from the indexes with or without statistics")
    monkeypatch.setattr(service, "BIG_IMPORT", 2)
    # Earlier tests' rows are deleted, but the planner may still count them (autovacuum's
    # last ANALYZE), and 3 rows would not grow such a table by a fifth: count afresh.
    with database.engine.begin() as connection:
        connection.execute(text(f"ANALYZE {', '.join(GROWN)}"))
    before = vacuums(database)
    rows = [{"serial": f"SN{n}", "tags": {"pool": "web"}} for n in range(3)]
    assert client.post("/v1/assets/import", json={"assets": rows}).status_code == 201
    after = vacuums(database)
    assert all(after[table] >= before[table] + 2 for table in GROWN), (before, after)
