"""Platform updates already handled, so that a redelivered update is dropped."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from actions.models import ProcessedUpdate, utcnow

_INSERT = {"postgresql": pg_insert, "sqlite": sqlite_insert}


def record_update(session: Session, *, channel: str, update_id: str) -> bool:
    """Record an update as handled; return False when it was handled before.

    Done first, in the transaction that handles the update: if handling fails, the record
    rolls back with it and a redelivery is handled again.
    """
    insert = _INSERT[session.get_bind().dialect.name]
    # Core, not ORM: this runs for every message and needs no identity map.
    inserted = (
        session.connection()
        .execute(
            insert(ProcessedUpdate.__table__)
            .values(channel=channel, update_id=update_id, processed_at=utcnow())
            .on_conflict_do_nothing()
            .returning(ProcessedUpdate.__table__.c.update_id)  # rowcount is unreliable on psycopg
        )
        .scalar()
    )
    return inserted is not None


def forget_updates(session: Session, *, older_than: timedelta, now: datetime | None = None) -> int:
    """Drop records older than any redelivery (Telegram keeps updates for 24 hours)."""
    cutoff = (now or utcnow()) - older_than
    result = session.execute(delete(ProcessedUpdate).where(ProcessedUpdate.processed_at < cutoff))
    return result.rowcount or 0
