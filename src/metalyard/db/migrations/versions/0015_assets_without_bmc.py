"""an asset may have no BMC driver on record

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-23 09:00:00.000000

New assets used to get the fake driver when none was given, so a power call on one
"succeeded" while nothing happened. Now they get none (NULL) and BMC calls are refused until
someone sets it. Rows keep their driver: a "fake" on record may have been chosen.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

assets = sa.table("assets", sa.column("bmc_driver", sa.String))


def upgrade() -> None:
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.alter_column("bmc_driver", existing_type=sa.String(length=32), nullable=True)


def downgrade() -> None:
    # What the code of 0014 gave an asset enrolled without a driver.
    op.execute(assets.update().where(assets.c.bmc_driver.is_(None)).values(bmc_driver="fake"))
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.alter_column("bmc_driver", existing_type=sa.String(length=32), nullable=False)
