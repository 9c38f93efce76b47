"""Platform updates already handled, so that a redelivered update is dropped."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import Executable, bindparam, delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from actions.models import ProcessedUpdate, utcnow

_INSERT = {"postgresql": pg_insert, "sqlite": sqlite_insert}


@cache
def _record_statement(dialect: str) -> Executable:
    """INSERT … ON CONFLICT DO NOTHING RETURNING, built once per dialect: it runs per message."""
    table = ProcessedUpdate.__table__
    return (
        _INSERT[dialect](table)
        .values(channel=bindparam("c"), update_id=bindparam("u"), processed_at=bindparam("t"))
        .on_conflict_do_nothing()
        .returning(table.c.update_id)  # rowcount is unreliable here on psycopg
    )


def record_update(session: Session, *, channel: str, update_id: str) -> bool:
    """Record an update as handled; return False when it was handled before.

    Done first, in the transaction that handles the update: if handling fails, the record
    rolls back with it and a redelivery is handled again.
    """
    statement = _record_statement(session.get_bind().dialect.name)
    inserted = (
        session.connection()
        .execute(statement, {"c": channel, "u": update_id, "t": utcnow()})
        .scalar()
    )
    return inserted is not None


def forget_updates(session: Session, *, older_than: timedelta, now: datetime | None = None) -> int:
    """Drop records older than any redelivery (Telegram keeps updates for 24 hours)."""
    cutoff = (now or utcnow()) - older_than
    result = session.execute(delete(ProcessedUpdate).where(ProcessedUpdate.processed_at < cutoff))
    return result.rowcount or 0
