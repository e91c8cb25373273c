"""a BMC credential names the networks it may be sent into

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-22 03:00:00.000000

Credentials stored before this revision could be sent to any address, so they keep that:
they get 0.0.0.0/0 and ::/0, which `metalyard bmc-credential list` shows, for an admin to
narrow with `metalyard bmc-credential update NAME --network …`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ANYWHERE = '["0.0.0.0/0", "::/0"]'


def upgrade() -> None:
    with op.batch_alter_table("bmc_credentials", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "networks", sa.JSON(), server_default=sa.text(f"'{ANYWHERE}'"), nullable=False
            )
        )
    with op.batch_alter_table("bmc_credentials", schema=None) as batch_op:
        batch_op.alter_column("networks", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("bmc_credentials", schema=None) as batch_op:
        batch_op.drop_column("networks")
