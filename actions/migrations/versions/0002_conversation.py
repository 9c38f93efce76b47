"""conversation state, followers, processed updates, outbox leases

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 06:07:59.772870
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_EVENT_KINDS = ("created", "status_changed", "reply", "note", "rerouted", "assigned", "rating")


def _event_kinds(kinds: tuple[str, ...]) -> None:
    with op.batch_alter_table("ticket_event", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_ticket_event_eventkind"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_ticket_event_eventkind"), sa.column("kind").in_(kinds)
        )


def upgrade() -> None:
    op.create_table(
        "processed_update",
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("update_id", sa.String(length=64), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", "update_id", name=op.f("pk_processed_update")),
    )
    with op.batch_alter_table("processed_update", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_processed_update_processed_at"), ["processed_at"], unique=False
        )

    op.create_table(
        "conversation",
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=40), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["resident.id"], name=op.f("fk_conversation_resident_id_resident")
        ),
        sa.PrimaryKeyConstraint("resident_id", name=op.f("pk_conversation")),
    )
    op.create_table(
        "ticket_follower",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["resident.id"], name=op.f("fk_ticket_follower_resident_id_resident")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["ticket.id"], name=op.f("fk_ticket_follower_ticket_id_ticket")
        ),
        sa.PrimaryKeyConstraint("ticket_id", "resident_id", name=op.f("pk_ticket_follower")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("claimed_by", sa.String(length=64), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
    _event_kinds((*_EVENT_KINDS, "followed"))


def downgrade() -> None:
    op.execute("DELETE FROM ticket_event WHERE kind = 'followed'")
    _event_kinds(_EVENT_KINDS)
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("claimed_until")
        batch_op.drop_column("claimed_by")

    op.drop_table("ticket_follower")
    op.drop_table("conversation")
    with op.batch_alter_table("processed_update", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_processed_update_processed_at"))

    op.drop_table("processed_update")
