"""broadcasts: civic groups, followers, announcements and their deliveries

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 08:06:31.069450
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "civic_group",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "rt_rw",
                "kelurahan",
                "komunitas",
                "agency",
                name="groupkind",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_civic_group")),
        sa.UniqueConstraint("code", name=op.f("uq_civic_group_code")),
    )
    op.create_table(
        "send_pace",
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("next_slot_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", name=op.f("pk_send_pace")),
    )
    op.create_table(
        "area_follower",
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("area_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["area_id"], ["area.id"], name=op.f("fk_area_follower_area_id_area")
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["resident.id"], name=op.f("fk_area_follower_resident_id_resident")
        ),
        sa.PrimaryKeyConstraint("resident_id", "area_id", name=op.f("pk_area_follower")),
    )
    with op.batch_alter_table("area_follower", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_area_follower_area_id"), ["area_id"], unique=False)

    op.create_table(
        "broadcast",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("photo", sa.String(length=255), nullable=False),
        sa.Column("link", sa.String(length=500), nullable=False),
        sa.Column("area_id", sa.Integer(), nullable=True),
        sa.Column("poll_options", sa.JSON(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "scheduled",
                "sending",
                "done",
                "cancelled",
                name="broadcaststate",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["area_id"], ["area.id"], name=op.f("fk_broadcast_area_id_area")),
        sa.ForeignKeyConstraint(
            ["author_id"], ["resident.id"], name=op.f("fk_broadcast_author_id_resident")
        ),
        sa.ForeignKeyConstraint(
            ["cancelled_by_id"],
            ["resident.id"],
            name=op.f("fk_broadcast_cancelled_by_id_resident"),
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["civic_group.id"], name=op.f("fk_broadcast_group_id_civic_group")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast")),
    )
    with op.batch_alter_table("broadcast", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_broadcast_group_id"), ["group_id"], unique=False)
        batch_op.create_index(
            "ix_broadcast_state_scheduled", ["state", "scheduled_at"], unique=False
        )

    op.create_table(
        "group_area",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("area_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["area_id"], ["area.id"], name=op.f("fk_group_area_area_id_area")),
        sa.ForeignKeyConstraint(
            ["group_id"], ["civic_group.id"], name=op.f("fk_group_area_group_id_civic_group")
        ),
        sa.PrimaryKeyConstraint("group_id", "area_id", name=op.f("pk_group_area")),
    )
    op.create_table(
        "group_follower",
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["civic_group.id"], name=op.f("fk_group_follower_group_id_civic_group")
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["resident.id"], name=op.f("fk_group_follower_resident_id_resident")
        ),
        sa.PrimaryKeyConstraint("resident_id", "group_id", name=op.f("pk_group_follower")),
    )
    with op.batch_alter_table("group_follower", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_group_follower_group_id"), ["group_id"], unique=False)

    op.create_table(
        "group_manager",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["civic_group.id"], name=op.f("fk_group_manager_group_id_civic_group")
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["resident.id"], name=op.f("fk_group_manager_resident_id_resident")
        ),
        sa.PrimaryKeyConstraint("group_id", "resident_id", name=op.f("pk_group_manager")),
    )
    op.create_table(
        "broadcast_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("broadcast_id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "sent",
                "failed",
                "blocked",
                "cancelled",
                name="deliverystate",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), server_default="", nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["broadcast_id"],
            ["broadcast.id"],
            name=op.f("fk_broadcast_delivery_broadcast_id_broadcast"),
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["resident.id"],
            name=op.f("fk_broadcast_delivery_resident_id_resident"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast_delivery")),
        sa.UniqueConstraint(
            "broadcast_id",
            "resident_id",
            name=op.f("uq_broadcast_delivery_broadcast_id_resident_id"),
        ),
    )
    with op.batch_alter_table("broadcast_delivery", schema=None) as batch_op:
        batch_op.create_index("ix_broadcast_delivery_queue", ["state", "id"], unique=False)

    op.create_table(
        "poll_vote",
        sa.Column("broadcast_id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("option", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["broadcast_id"], ["broadcast.id"], name=op.f("fk_poll_vote_broadcast_id_broadcast")
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["resident.id"], name=op.f("fk_poll_vote_resident_id_resident")
        ),
        sa.PrimaryKeyConstraint("broadcast_id", "resident_id", name=op.f("pk_poll_vote")),
    )
    with op.batch_alter_table("resident", schema=None) as batch_op:
        batch_op.add_column(sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("follow_offered", sa.Boolean(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("resident", schema=None) as batch_op:
        batch_op.drop_column("follow_offered")
        batch_op.drop_column("blocked_at")

    op.drop_table("poll_vote")
    with op.batch_alter_table("broadcast_delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_broadcast_delivery_queue")

    op.drop_table("broadcast_delivery")
    op.drop_table("group_manager")
    with op.batch_alter_table("group_follower", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_group_follower_group_id"))

    op.drop_table("group_follower")
    op.drop_table("group_area")
    with op.batch_alter_table("broadcast", schema=None) as batch_op:
        batch_op.drop_index("ix_broadcast_state_scheduled")
        batch_op.drop_index(batch_op.f("ix_broadcast_group_id"))

    op.drop_table("broadcast")
    with op.batch_alter_table("area_follower", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_area_follower_area_id"))

    op.drop_table("area_follower")
    op.drop_table("send_pace")
    op.drop_table("civic_group")
