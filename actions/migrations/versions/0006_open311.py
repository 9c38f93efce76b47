"""Open311: agencies' send method, forwarded requests, API clients and their submissions

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 08:00:32.294934
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_EVENT_KINDS = (
    "created",
    "status_changed",
    "reply",
    "note",
    "rerouted",
    "assigned",
    "rating",
    "followed",
)
_AUDIENCES = ("resident", "officer", "agency")


def _check(table: str, name: str, column: str, values: tuple[str, ...]) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.drop_constraint(op.f(f"ck_{table}_{name}"), type_="check")
        batch_op.create_check_constraint(op.f(f"ck_{table}_{name}"), sa.column(column).in_(values))


def upgrade() -> None:
    op.create_table(
        "api_client",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_prefix", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_client")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_client_key_hash")),
        sa.UniqueConstraint("name", name=op.f("uq_api_client_name")),
    )
    op.create_table(
        "api_submission",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["api_client.id"], name=op.f("fk_api_submission_client_id_api_client")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["ticket.id"], name=op.f("fk_api_submission_ticket_id_ticket")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_submission")),
        sa.UniqueConstraint("ticket_id", name=op.f("uq_api_submission_ticket_id")),
        sa.UniqueConstraint("token", name=op.f("uq_api_submission_token")),
    )
    with op.batch_alter_table("api_submission", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_submission_client_id"), ["client_id"], unique=False
        )

    op.create_table(
        "external_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("service_request_id", sa.String(length=120), nullable=True),
        sa.Column("token", sa.String(length=120), nullable=True),
        sa.Column("remote_status", sa.String(length=20), nullable=False),
        sa.Column("remote_notes", sa.Text(), nullable=False),
        sa.Column("remote_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agency.id"], name=op.f("fk_external_request_agency_id_agency")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["ticket.id"], name=op.f("fk_external_request_ticket_id_ticket")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_request")),
        sa.UniqueConstraint(
            "ticket_id", "agency_id", name=op.f("uq_external_request_ticket_id_agency_id")
        ),
    )
    with op.batch_alter_table("external_request", schema=None) as batch_op:
        batch_op.create_index(
            "ix_external_request_agency_remote", ["agency_id", "service_request_id"], unique=False
        )

    with op.batch_alter_table("agency", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "send_method",
                sa.Enum(
                    "none",
                    "open311",
                    "webhook",
                    name="sendmethod",
                    native_enum=False,
                    create_constraint=True,
                    length=20,
                ),
                server_default="none",
                nullable=False,
            )
        )
    _check("outbox", "audience", "audience", (*_AUDIENCES, "external"))
    _check("ticket_event", "eventkind", "kind", (*_EVENT_KINDS, "forwarded"))


def downgrade() -> None:
    op.execute("DELETE FROM ticket_event WHERE kind = 'forwarded'")
    _check("ticket_event", "eventkind", "kind", _EVENT_KINDS)
    op.execute("DELETE FROM outbox WHERE audience = 'external'")
    _check("outbox", "audience", "audience", _AUDIENCES)
    with op.batch_alter_table("agency", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_agency_sendmethod"), type_="check")
        batch_op.drop_column("send_method")

    with op.batch_alter_table("external_request", schema=None) as batch_op:
        batch_op.drop_index("ix_external_request_agency_remote")
    op.drop_table("external_request")
    with op.batch_alter_table("api_submission", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_submission_client_id"))
    op.drop_table("api_submission")
    op.drop_table("api_client")
