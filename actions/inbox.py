"""Platform updates: stored before they are acknowledged, handled once, one sender's in order.

A webhook (or the long-polling loop) stores what it received with `put`, in one short
transaction, and only then answers 200 (or confirms the polling offset). A worker takes the
oldest pending update of a sender with `take` inside the transaction that handles it, and
`handled` deletes it in that same transaction: a crash at any instant rolls the whole turn
back and leaves the update pending, so nothing acknowledged is lost and nothing is handled
twice. On PostgreSQL the row is locked (`FOR UPDATE SKIP LOCKED`) while it is handled, which
is its lease: other workers pass over it, and it is free again the moment its worker dies.

`record_update` keeps the ids of updates handled in the last days: a platform that delivers
an update again after it was handled (and left the inbox) finds it there.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Executable, and_, bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased

from actions.domain import InboxState
from actions.models import InboxUpdate, ProcessedUpdate, utcnow

_INSERT = {"postgresql": pg_insert, "sqlite": sqlite_insert}
BACKOFF = timedelta(seconds=2)  # 2 s, 4 s, 8 s … before another try of a failed update


@dataclass(frozen=True)
class NewUpdate:
    """One update to store: its id on the platform, whose turn it is, what it says."""

    update_id: str
    sender: str
    payload: Any  # JSON-serialisable, already cleaned


@dataclass(frozen=True)
class StoredUpdate:
    id: int
    channel: str
    update_id: str
    sender: str
    payload: Any
    attempts: int
    received_at: datetime


@cache
def _statements(dialect: str) -> dict[str, Executable]:
    """The statements every update runs, built once per dialect."""
    table = InboxUpdate.__table__
    earlier = aliased(InboxUpdate)
    first_of_sender = ~(
        select(earlier.id)
        .where(
            earlier.channel == InboxUpdate.channel,
            earlier.sender == InboxUpdate.sender,
            earlier.state == InboxState.PENDING,
            earlier.id < InboxUpdate.id,
        )
        .exists()
    )
    take = (
        select(
            InboxUpdate.id,
            InboxUpdate.channel,
            InboxUpdate.update_id,
            InboxUpdate.sender,
            InboxUpdate.payload,
            InboxUpdate.attempts,
            InboxUpdate.received_at,
        )
        .where(
            InboxUpdate.state == InboxState.PENDING,
            InboxUpdate.next_attempt_at <= bindparam("now"),
            InboxUpdate.channel.in_(bindparam("channels", expanding=True)),
            first_of_sender,
        )
        .order_by(InboxUpdate.id)
        .limit(1)
    )
    if dialect == "postgresql":
        take = take.with_for_update(skip_locked=True, of=InboxUpdate)
    return {
        "put": _INSERT[dialect](table).on_conflict_do_nothing().returning(table.c.id),
        "take": take,
        "handled": delete(table).where(table.c.id == bindparam("uid")),
        "processed": _INSERT[dialect](ProcessedUpdate.__table__)
        .values(channel=bindparam("c"), update_id=bindparam("u"), processed_at=bindparam("t"))
        .on_conflict_do_nothing()
        .returning(ProcessedUpdate.__table__.c.update_id),  # rowcount is unreliable on psycopg
    }


def _sql(session: Session) -> dict[str, Executable]:
    return _statements(session.get_bind().dialect.name)


def put(session: Session, *, channel: str, updates: Iterable[NewUpdate], now: datetime) -> int:
    """Store updates; one already pending is not stored twice. Return how many were new."""
    statement, conn = _sql(session)["put"], session.connection()
    stored = 0
    for update_ in updates:
        row = {
            "channel": channel,
            "update_id": update_.update_id,
            "sender": update_.sender,
            "payload": json.dumps(update_.payload, separators=(",", ":")),
            "state": InboxState.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now,
            "received_at": now,
            "last_error": "",
        }
        stored += conn.execute(statement, row).first() is not None
    return stored


def take(session: Session, *, channels: Sequence[str], now: datetime) -> StoredUpdate | None:
    """Take the oldest update that is the next of its sender, for this transaction.

    None when nothing is due. The caller handles it and calls `handled` before committing.
    """
    row = (
        session.connection()
        .execute(_sql(session)["take"], {"now": now, "channels": list(channels)})
        .first()
    )
    if row is None:
        return None
    return StoredUpdate(
        row.id,
        row.channel,
        row.update_id,
        row.sender,
        json.loads(row.payload),
        row.attempts,
        row.received_at,
    )


def handled(session: Session, stored: StoredUpdate) -> None:
    """The update is done: it leaves the inbox with the transaction that handled it."""
    session.connection().execute(_sql(session)["handled"], {"uid": stored.id})


def failed(
    session: Session, stored: StoredUpdate, *, error: str, now: datetime, give_up: bool
) -> bool:
    """Handling failed: try again later, or (`give_up`) keep it as failed for inspection.

    False when this attempt was recorded already: the update is free again from the moment
    its transaction rolled back, so another worker may have taken it, failed and recorded
    that, before this one got here.
    """
    values: dict[str, Any] = {"attempts": stored.attempts + 1, "last_error": error[:2000]}
    if give_up:
        values["state"] = InboxState.FAILED
    else:
        values["next_attempt_at"] = now + BACKOFF * 2**stored.attempts
    recorded = session.execute(
        update(InboxUpdate)
        .where(
            InboxUpdate.id == stored.id,
            InboxUpdate.attempts == stored.attempts,
            InboxUpdate.state == InboxState.PENDING,
        )
        .values(**values)
        .returning(InboxUpdate.id)
    ).first()
    return recorded is not None


@dataclass(frozen=True)
class Backlog:
    pending: int
    failed: int
    oldest: datetime | None  # when the oldest pending update arrived


def backlog(session: Session, channels: Sequence[str] | None = None) -> Backlog:
    """How much waits, and since when (for /readyz and the benchmarks)."""
    where = [InboxUpdate.channel.in_(list(channels))] if channels is not None else []
    pending, oldest = session.execute(
        select(func.count(), func.min(InboxUpdate.received_at)).where(
            and_(InboxUpdate.state == InboxState.PENDING, *where)
        )
    ).one()
    failed_count = session.scalar(
        select(func.count()).where(and_(InboxUpdate.state == InboxState.FAILED, *where))
    )
    return Backlog(pending or 0, failed_count or 0, oldest)


def record_update(session: Session, *, channel: str, update_id: str) -> bool:
    """Record an update as handled; return False when it was handled before.

    Done first, in the transaction that handles the update: if handling fails, the record
    rolls back with it and a redelivery is handled again.
    """
    inserted = (
        session.connection()
        .execute(_sql(session)["processed"], {"c": channel, "u": update_id, "t": utcnow()})
        .scalar()
    )
    return inserted is not None


def forget_updates(session: Session, *, older_than: timedelta, now: datetime | None = None) -> int:
    """Drop records older than any redelivery (Telegram keeps updates for 24 hours), and
    failed inbox updates as old."""
    cutoff = (now or utcnow()) - older_than
    result = session.execute(delete(ProcessedUpdate).where(ProcessedUpdate.processed_at < cutoff))
    session.execute(
        delete(InboxUpdate).where(
            InboxUpdate.state == InboxState.FAILED, InboxUpdate.received_at < cutoff
        )
    )
    return result.rowcount or 0
