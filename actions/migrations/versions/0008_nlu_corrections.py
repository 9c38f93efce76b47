"""NLU corrections: messages the city's people labelled differently from the NLU

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 18:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "nlu_correction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("predicted", sa.String(length=80), nullable=False),
        sa.Column("corrected", sa.String(length=80), nullable=False),
        sa.Column(
            "source",
            sa.Enum(
                "reroute",
                "resident_edit",
                "fallback",
                name="correctionsource",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "review",
            sa.Enum(
                "pending",
                "accepted",
                "relabelled",
                "skipped",
                name="reviewstate",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("final_label", sa.String(length=80), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["ticket.id"], name=op.f("fk_nlu_correction_ticket_id_ticket")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nlu_correction")),
    )
    with op.batch_alter_table("nlu_correction", schema=None) as batch_op:
        batch_op.create_index("ix_nlu_correction_review_id", ["review", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("nlu_correction", schema=None) as batch_op:
        batch_op.drop_index("ix_nlu_correction_review_id")
    op.drop_table("nlu_correction")
