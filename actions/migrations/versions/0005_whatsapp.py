"""WhatsApp: residents' second id and last message, wider platform ids, sent messages

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DELIVERY_STATUSES = ("accepted", "sent", "delivered", "read", "failed")


def upgrade() -> None:
    op.create_table(
        "sent_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("platform_message_id", sa.String(length=160), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=True),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                *_DELIVERY_STATUSES,
                name="deliverystatus",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["outbox_id"], ["outbox.id"], name=op.f("fk_sent_message_outbox_id_outbox")
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["resident.id"], name=op.f("fk_sent_message_resident_id_resident")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sent_message")),
        sa.UniqueConstraint(
            "channel",
            "platform_message_id",
            name=op.f("uq_sent_message_channel_platform_message_id"),
        ),
    )
    with op.batch_alter_table("sent_message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sent_message_outbox_id"), ["outbox_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_sent_message_resident_id"), ["resident_id"], unique=False
        )

    # WhatsApp's message ids (wamid.…) and business-scoped user ids outgrow 64 characters.
    with op.batch_alter_table("processed_update", schema=None) as batch_op:
        batch_op.alter_column(
            "update_id",
            existing_type=sa.String(length=64),
            type_=sa.String(length=160),
            existing_nullable=False,
        )
    with op.batch_alter_table("resident", schema=None) as batch_op:
        batch_op.add_column(sa.Column("platform_alt_id", sa.String(length=160), nullable=True))
        batch_op.add_column(
            sa.Column("last_inbound_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.alter_column(
            "platform_user_id",
            existing_type=sa.String(length=64),
            type_=sa.String(length=160),
            existing_nullable=False,
        )
        batch_op.create_index(
            "ix_resident_channel_platform_alt_id", ["channel", "platform_alt_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("resident", schema=None) as batch_op:
        batch_op.drop_index("ix_resident_channel_platform_alt_id")
        batch_op.alter_column(
            "platform_user_id",
            existing_type=sa.String(length=160),
            type_=sa.String(length=64),
            existing_nullable=False,
        )
        batch_op.drop_column("last_inbound_at")
        batch_op.drop_column("platform_alt_id")
    with op.batch_alter_table("processed_update", schema=None) as batch_op:
        batch_op.alter_column(
            "update_id",
            existing_type=sa.String(length=160),
            type_=sa.String(length=64),
            existing_nullable=False,
        )
    with op.batch_alter_table("sent_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sent_message_resident_id"))
        batch_op.drop_index(batch_op.f("ix_sent_message_outbox_id"))
    op.drop_table("sent_message")
