"""Inbox of platform updates stored before they are acknowledged; shared pace per chat

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbox_update",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("update_id", sa.String(length=160), nullable=False),
        sa.Column("sender", sa.String(length=160), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "done",
                "failed",
                name="inboxstate",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_update")),
        sa.UniqueConstraint(
            "channel", "update_id", name=op.f("uq_inbox_update_channel_update_id")
        ),
    )
    with op.batch_alter_table("inbox_update", schema=None) as batch_op:
        batch_op.create_index("ix_inbox_update_queue", ["state", "id"], unique=False)
        batch_op.create_index(
            "ix_inbox_update_sender", ["channel", "sender", "state", "id"], unique=False
        )
    op.create_table(
        "inbox_sender",
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("sender", sa.String(length=160), nullable=False),
        sa.Column("head_id", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", "sender", name=op.f("pk_inbox_sender")),
    )
    with op.batch_alter_table("inbox_sender", schema=None) as batch_op:
        batch_op.create_index("ix_inbox_sender_head", ["head_id"], unique=False)
    op.create_table(
        "chat_pace",
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tat", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["resident.id"], name=op.f("fk_chat_pace_resident_id_resident")
        ),
        sa.PrimaryKeyConstraint("resident_id", name=op.f("pk_chat_pace")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_resident_state", ["resident_id", "state", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_resident_state")
    op.drop_table("chat_pace")
    with op.batch_alter_table("inbox_sender", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_sender_head")
    op.drop_table("inbox_sender")
    with op.batch_alter_table("inbox_update", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_update_sender")
        batch_op.drop_index("ix_inbox_update_queue")
    op.drop_table("inbox_update")
