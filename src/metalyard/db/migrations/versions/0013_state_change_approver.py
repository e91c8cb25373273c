"""a lifecycle move names its approver in a column of its own

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-22 01:30:00.000000

Moves approved by a second person were recorded with the actor "wanda (approved by otto)";
those are split into actor "wanda" and approved_by "otto".
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOLDED = re.compile(r"^(?P<actor>.*) \(approved by (?P<approver>[^()]*)\)$")

moves = sa.table(
    "asset_state_changes",
    sa.column("id", sa.Integer),
    sa.column("actor", sa.String),
    sa.column("approved_by", sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table("asset_state_changes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("approved_by", sa.String(length=128), server_default="", nullable=False)
        )
    connection = op.get_bind()
    folded = connection.execute(
        sa.select(moves.c.id, moves.c.actor).where(moves.c.actor.like("% (approved by %)"))
    ).all()
    split = [(row.id, FOLDED.match(row.actor)) for row in folded]
    rows = [
        {"move": move, "actor": found["actor"], "approver": found["approver"]}
        for move, found in split
        if found
    ]
    if rows:
        connection.execute(
            moves.update()
            .where(moves.c.id == sa.bindparam("move"))
            .values(actor=sa.bindparam("actor"), approved_by=sa.bindparam("approver")),
            rows,
        )


def downgrade() -> None:
    connection = op.get_bind()
    connection.execute(
        moves.update()
        .where(moves.c.approved_by != "")
        .values(actor=moves.c.actor + " (approved by " + moves.c.approved_by + ")")
    )
    with op.batch_alter_table("asset_state_changes", schema=None) as batch_op:
        batch_op.drop_column("approved_by")
