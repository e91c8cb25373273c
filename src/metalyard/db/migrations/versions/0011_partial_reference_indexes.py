"""asset reference indexes without their NULLs

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-21 22:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("machine_class_id", "owner_team_id", "project_id")


def upgrade() -> None:
    for column in COLUMNS:
        op.drop_index(f"ix_assets_{column}", table_name="assets")
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(
            f"ix_assets_{column}",
            "assets",
            [column],
            postgresql_where=where,
            sqlite_where=where,
        )


def downgrade() -> None:
    for column in COLUMNS:
        op.drop_index(f"ix_assets_{column}", table_name="assets")
        op.create_index(f"ix_assets_{column}", "assets", [column])
