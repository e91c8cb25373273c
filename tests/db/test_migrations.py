"""The Alembic migrations build exactly the schema the models declare, on both backends."""

import json
import uuid
from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, make_url, text

from metalyard.db import Base
from metalyard.db.engine import alembic_config


def test_migrated_schema_matches_the_models(database):
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_migrations_go_down_and_up_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    config = alembic_config(url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    from metalyard.db import Database

    database = Database(url)
    assert set(inspect(database.engine).get_table_names()) == {"alembic_version"}
    command.upgrade(config, "head")
    assert "assets" in inspect(database.engine).get_table_names()
    database.dispose()


def test_moves_recorded_with_a_folded_approver_are_split_on_upgrade(tmp_path):
    """Before 0013 an approved move's actor read 'wanda (approved by otto)'."""
    from metalyard.db import Database

    url = f"sqlite:///{tmp_path / 'm.db'}"
    config = alembic_config(url)
    command.upgrade(config, "0012")
    database = Database(url)
    with database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO assets (serial, hostname, vendor, model, state, health, maintenance,"
                " bmc_driver, bmc_address, bmc_credential, facts, firmware, version, created_at,"
                " updated_at) VALUES ('SN1', '', '', '', 'SPARE', 'UNKNOWN', 0, 'fake', '', '',"
                " '{}', '{}', 1, '2026-01-01', '2026-01-01')"
            )
        )
        for actor in ("wanda (approved by otto)", "system:lab", "odd (approved by) name"):
            connection.execute(
                text(
                    "INSERT INTO asset_state_changes (asset_id, from_state, to_state, actor,"
                    " reason, request_id, at) SELECT id, NULL, 'SPARE', :actor, '', '',"
                    " '2026-01-01' FROM assets"
                ),
                {"actor": actor},
            )
    command.upgrade(config, "head")
    with database.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT actor, approved_by FROM asset_state_changes ORDER BY id")
        ).all()
    assert [tuple(row) for row in rows] == [
        ("wanda", "otto"),
        ("system:lab", ""),
        ("odd (approved by) name", ""),
    ]
    command.downgrade(config, "0012")
    with database.engine.connect() as connection:
        actors = connection.execute(text("SELECT actor FROM asset_state_changes ORDER BY id"))
        assert actors.scalars().all()[0] == "wanda (approved by otto)"
    database.dispose()


def test_credentials_stored_before_networks_existed_keep_reaching_anywhere(tmp_path):
    """0014 gives old credentials 0.0.0.0/0 and ::/0: an upgrade breaks no BMC call, and
    the list shows what an admin should narrow."""
    from metalyard.db import Database

    url = f"sqlite:///{tmp_path / 'm.db'}"
    config = alembic_config(url)
    command.upgrade(config, "0013")
    database = Database(url)
    with database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO bmc_credentials (name, username, password_encrypted, version,"
                " created_at, updated_at) VALUES ('old', 'root', 'gAAAA', 1, '2026-01-01',"
                " '2026-01-01')"
            )
        )
    command.upgrade(config, "head")
    with database.engine.connect() as connection:
        stored = connection.execute(text("SELECT networks FROM bmc_credentials")).scalar_one()
    assert json.loads(stored) == ["0.0.0.0/0", "::/0"]
    command.downgrade(config, "0013")
    database.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path) -> Iterator[str]:
    """A new, empty database on either backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    server = request.getfixturevalue("postgres_url")
    name = f"migrations_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    yield make_url(server).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def test_assets_keep_their_bmc_driver_and_children_when_it_may_be_empty(empty_url):
    """0015 lets an asset have no BMC driver; a "fake" on record may have been chosen, so
    every row keeps its own, and the rows that hang off assets stay (SQLite copies the table)."""
    from metalyard.db import Database

    config = alembic_config(empty_url)
    command.upgrade(config, "0014")
    database = Database(empty_url)
    with database.engine.begin() as connection:
        for serial, driver in (("SN1", "fake"), ("SN2", "redfish")):
            connection.execute(
                text(
                    "INSERT INTO assets (serial, hostname, vendor, model, state, health,"
                    " maintenance, bmc_driver, bmc_address, bmc_credential, facts, firmware,"
                    " version, created_at, updated_at) VALUES (:serial, '', '', '', 'SPARE',"
                    " 'UNKNOWN', false, :driver, '', '', '{}', '{}', 1, '2026-01-01',"
                    " '2026-01-01')"
                ),
                {"serial": serial, "driver": driver},
            )
        connection.execute(
            text(
                "INSERT INTO asset_interfaces (asset_id, name, mac) SELECT id, 'eno1',"
                " '52:54:00:00:00:01' FROM assets WHERE serial = 'SN1'"
            )
        )
        connection.execute(
            text("INSERT INTO asset_tags (asset_id, key, value) SELECT id, 'a', 'b' FROM assets")
        )
    command.upgrade(config, "head")
    with database.engine.begin() as connection:
        rows = connection.execute(text("SELECT serial, bmc_driver FROM assets ORDER BY serial"))
        assert [tuple(row) for row in rows] == [("SN1", "fake"), ("SN2", "redfish")]
        assert connection.execute(text("SELECT count(*) FROM asset_interfaces")).scalar() == 1
        assert connection.execute(text("SELECT count(*) FROM asset_tags")).scalar() == 2
        connection.execute(text("UPDATE assets SET bmc_driver = NULL WHERE serial = 'SN2'"))
    command.downgrade(config, "0014")
    with database.engine.connect() as connection:
        drivers = connection.execute(text("SELECT bmc_driver FROM assets ORDER BY serial"))
        assert drivers.scalars().all() == ["fake", "fake"]  # as 0014's code enrolled it
    database.dispose()
