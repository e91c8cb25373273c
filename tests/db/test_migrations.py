"""The Alembic migrations build exactly the schema the models declare, on both backends."""

import json

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

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
