"""SLA markers on tickets: when the reminder and each escalation went out

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("sla_reminded_at", "sla_first_response_escalated_at", "sla_resolution_escalated_at")


def upgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        for name in _COLUMNS:
            batch_op.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        for name in reversed(_COLUMNS):
            batch_op.drop_column(name)
