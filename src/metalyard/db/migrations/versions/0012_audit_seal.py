"""audit entries carry a MAC; a seal vouches for the chain's head

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-22 10:00:00.000000

Entries already written keep their plain SHA-256 hash (NULL key_id and mac) and still
verify; the first entry written after this upgrade starts the keyed part, and the seal
records where. The migration cannot seal the head itself: it has no secret key.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("mac", sa.String(length=64), nullable=True))
    op.create_table(
        "audit_seal",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("keyed_from", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_seal")),
    )


def downgrade() -> None:
    op.drop_table("audit_seal")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_column("mac")
        batch_op.drop_column("key_id")
