"""Platform updates: stored before they are acknowledged, handled once, one sender's in order.

A webhook (or the long-polling loop) stores what it received with `put`, in one short
transaction, and only then answers 200 (or confirms the polling offset); an update stored
before (pending, or handled in the last days) is not stored again. A worker takes the next
update of some sender with `take` inside the transaction that handles it, and `handled` marks
it done in that same transaction: a crash at any instant rolls the whole turn back and leaves
the update pending, so nothing acknowledged is lost and nothing is handled twice.

Each sender with updates waiting has a row in `inbox_sender` naming its oldest update (its
head). `take` picks the sender whose head came first and locks that row (`FOR UPDATE SKIP
LOCKED` on PostgreSQL) while the head is handled: that lock is the lease. Other workers pass
over the sender, so its updates go one at a time and in order, while other senders are
served in parallel; the lock is free again the moment its worker dies. Finding work is one
index lookup, however long the queue.

`record_update` keeps the ids of updates the terminal chat handled (it has no inbox).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Executable, and_, bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from actions.domain import InboxState
from actions.models import InboxSender, InboxUpdate, ProcessedUpdate, utcnow

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
    table, senders = InboxUpdate.__table__, InboxSender.__table__
    queue = _INSERT[dialect](senders)
    next_head = (
        select(table.c.id, table.c.next_attempt_at)
        .where(
            table.c.channel == bindparam("of_channel"),
            table.c.sender == bindparam("of_sender"),
            table.c.state == InboxState.PENDING.value,
        )
        .order_by(table.c.id)
        .limit(1)
    )
    sender_is = and_(
        senders.c.channel == bindparam("of_channel"), senders.c.sender == bindparam("of_sender")
    )
    return {
        "put": _INSERT[dialect](table)
        .on_conflict_do_nothing()
        .returning(table.c.id, table.c.sender),
        # A sender already queued keeps its head, and nobody waits for its lock (a worker may
        # hold it for a turn). A sender not queued gets its oldest pending update as head.
        "queue": queue.from_select(
            ["channel", "sender", "head_id", "due_at"],
            select(
                bindparam("of_channel"),
                bindparam("of_sender"),
                func.min(table.c.id),
                bindparam("now"),
            ).where(
                table.c.channel == bindparam("of_channel"),
                table.c.sender == bindparam("of_sender"),
                table.c.state == InboxState.PENDING.value,
            ),
        ).on_conflict_do_nothing(),
        "requeue": queue.from_select(
            ["channel", "sender", "head_id", "due_at"],
            select(table.c.channel, table.c.sender, func.min(table.c.id), bindparam("now"))
            .where(
                table.c.state == InboxState.PENDING.value,
                ~select(senders.c.head_id)
                .where(senders.c.channel == table.c.channel, senders.c.sender == table.c.sender)
                .exists(),
            )
            .group_by(table.c.channel, table.c.sender),
        )
        .on_conflict_do_nothing()
        .returning(senders.c.head_id),  # rowcount is unreliable here on psycopg
        "handled": update(table)
        .where(table.c.id == bindparam("uid"))
        .values(state=InboxState.DONE.value, payload=""),
        "next_head": next_head,
        "move_head": update(senders).where(sender_is),
        "drop_sender": delete(senders).where(sender_is),
        "processed": _INSERT[dialect](ProcessedUpdate.__table__)
        .values(channel=bindparam("c"), update_id=bindparam("u"), processed_at=bindparam("t"))
        .on_conflict_do_nothing()
        .returning(ProcessedUpdate.__table__.c.update_id),  # rowcount is unreliable on psycopg
    }


def _sql(session: Session) -> dict[str, Executable]:
    return _statements(session.get_bind().dialect.name)


@cache
def _take(dialect: str, channels: tuple[str, ...]) -> Executable:
    """The oldest head of a sender who is due, its sender locked; one statement per process
    (its channels written in)."""
    table, senders = InboxUpdate.__table__, InboxSender.__table__
    take = (
        select(senders.c.channel.label("of_channel"), senders.c.sender.label("of_sender"), table)
        .select_from(senders.outerjoin(table, senders.c.head_id == table.c.id))
        .where(senders.c.channel.in_(channels), senders.c.due_at <= bindparam("now"))
        .order_by(senders.c.head_id)
        .limit(1)
    )
    if dialect == "postgresql":
        take = take.with_for_update(skip_locked=True, of=senders)
    return take


def put(session: Session, *, channel: str, updates: Iterable[NewUpdate], now: datetime) -> int:
    """Store updates (one already pending is not stored twice) and queue their senders.
    Return how many were new."""
    rows = [
        {
            "channel": channel,
            "update_id": new.update_id,
            "sender": new.sender,
            "payload": json.dumps(new.payload, separators=(",", ":")),
            "state": InboxState.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now,
            "received_at": now,
            "last_error": "",
        }
        for new in updates
    ]
    if not rows:
        return 0
    sql, conn = _sql(session), session.connection()
    stored = conn.execute(sql["put"], rows).all()
    senders = sorted({row.sender for row in stored})
    if senders:
        conn.execute(
            sql["queue"],
            [{"of_channel": channel, "of_sender": sender, "now": now} for sender in senders],
        )
    return len(stored)


def requeue(session: Session, *, now: datetime) -> int:
    """Queue the senders of pending updates that have no head: a worker that finished a
    sender's last update at the moment a new one was stored may have dropped the sender
    (enqueuing takes no lock, so that no webhook waits for a turn). Run every few seconds."""
    return len(session.connection().execute(_sql(session)["requeue"], {"now": now}).all())


def take(session: Session, *, channels: Sequence[str], now: datetime) -> StoredUpdate | None:
    """Take the next update of the sender who has waited longest, for this transaction.

    None when nothing is due. The caller handles it and calls `handled` (or `failed`)
    before committing.
    """
    statement = _take(session.get_bind().dialect.name, tuple(sorted(channels)))
    conn = session.connection()
    for _ in range(10):
        row = conn.execute(statement, {"now": now}).first()
        if row is None:
            return None
        if row.state == InboxState.PENDING.value:
            return StoredUpdate(
                row.id,
                row.channel,
                row.update_id,
                row.sender,
                json.loads(row.payload),
                row.attempts,
                row.received_at,
            )
        # The head was handled already: `put` queued the sender again with what it saw as
        # pending while the sender's last update was being handled. Move on to the real one.
        _move_head(session, row.of_channel, row.of_sender)
    return None


# PostgreSQL does `handled` in one round trip. (The statement sees the table as it was before
# it: the update just handled is left out of the next head by its id.)
_HANDLED_PG = text(
    """
    WITH done AS (
        UPDATE inbox_update SET state = 'done', payload = '' WHERE id = :uid
    ), head AS (
        SELECT id, next_attempt_at FROM inbox_update
        WHERE channel = :of_channel AND sender = :of_sender AND state = 'pending'
            AND id <> :uid
        ORDER BY id LIMIT 1
    ), moved AS (
        UPDATE inbox_sender SET head_id = head.id, due_at = head.next_attempt_at FROM head
        WHERE inbox_sender.channel = :of_channel AND inbox_sender.sender = :of_sender
    )
    DELETE FROM inbox_sender
    WHERE channel = :of_channel AND sender = :of_sender AND NOT EXISTS (SELECT 1 FROM head)
    """
)


def handled(session: Session, stored: StoredUpdate) -> None:
    """The update is done, with the transaction that handled it (its content is dropped, its
    id kept for a redelivery); its sender's next update (if any) becomes the head."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        key = {"uid": stored.id, "of_channel": stored.channel, "of_sender": stored.sender}
        conn.execute(_HANDLED_PG, key)
        return
    conn.execute(_sql(session)["handled"], {"uid": stored.id})
    _next_head(session, stored)


def failed(
    session: Session, stored: StoredUpdate, *, error: str, now: datetime, give_up: bool
) -> bool:
    """Handling failed: try again later (the sender waits), or (`give_up`) keep it as failed
    for inspection and go on with the sender's next update.

    Called after the failed turn rolled back, in a new transaction: another worker may have
    taken the update meanwhile, failed as well and recorded it. Only the first record of an
    attempt counts; False for the others (nothing done).
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
    if recorded is None:
        return False
    _next_head(session, stored)
    return True


def _next_head(session: Session, stored: StoredUpdate) -> None:
    _move_head(session, stored.channel, stored.sender)


def _move_head(session: Session, channel: str, sender: str) -> None:
    """Make the sender's oldest pending update its head, or drop the sender if none."""
    sql, conn = _sql(session), session.connection()
    key = {"of_channel": channel, "of_sender": sender}
    head = conn.execute(sql["next_head"], key).first()
    if head is None:
        conn.execute(sql["drop_sender"], key)
    else:
        conn.execute(sql["move_head"], {**key, "head_id": head.id, "due_at": head.next_attempt_at})


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
    """Forget what is older than any redelivery (Telegram keeps updates for 24 hours,
    WhatsApp tries for up to 7 days): handled and failed updates, and recorded ids."""
    cutoff = (now or utcnow()) - older_than
    result = session.execute(delete(ProcessedUpdate).where(ProcessedUpdate.processed_at < cutoff))
    gone = session.execute(
        delete(InboxUpdate).where(
            InboxUpdate.state != InboxState.PENDING, InboxUpdate.received_at < cutoff
        )
    )
    return (result.rowcount or 0) + (gone.rowcount or 0)
