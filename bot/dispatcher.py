"""Deliver the outbox: replies and notifications, each once, in order per chat, paced.

Everything the bot says goes through here: the replies of a turn are written to the outbox
in the turn's transaction (`queue_replies`), beside the notifications that changes queue.
A dispatcher claims due rows with a lease and sends them through the recipient's channel:

* one chat's messages leave in the order they were written (a row waits while an older one
  of its recipient is pending), while different chats are served side by side;
* each channel's overall rate is one clock in the store (`send_pace`, shared with the
  broadcasts), on which every dispatcher of every process books its send slots, so together
  they keep to the platform's limit;
* each chat's own pace (a short burst, then one message per interval) is kept in the store
  too (`chat_pace`), whichever process sends;
* "retry after N" holds the channel for N seconds everywhere; a blocked bot ends that chat's
  messages; other failures are retried with backoff.

A dispatcher that dies mid-send leaves its lease to expire and the row is sent again: the
platforms have no way to ask whether a message went out, so a hard kill may repeat the few
messages that were in flight; none is skipped. Stopped gracefully, it gives back what it had
not sent yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Executable, bindparam, exists, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased, sessionmaker

from actions.broadcasts import book_slots, hold_all
from actions.domain import Audience, OutboxState
from actions.inbox import forget_updates
from actions.models import Agency, ChatPace, Officer, Outbox, Resident, utcnow
from actions.open311 import Forwarder, ForwardError, ForwardJob, ForwardResult
from actions.public import public_params
from actions.sla import run_sla_check
from bot.messages import Button, Notice, Outgoing
from bot.responses import Responses
from nlu import redact

if TYPE_CHECKING:
    from bot.conversation import Assistant

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=30)  # beyond a row's send slot
MAX_ATTEMPTS = 8
BACKOFF_BASE = timedelta(seconds=10)  # 10 s, 20 s, 40 s … capped at an hour
SLA_EVERY = 300.0  # seconds between runs of the SLA clock
HOUSEKEEPING_EVERY = 3600.0  # seconds between clean-ups of processed update ids
REPLY = "reply"  # the outbox template of a turn's replies: the message itself, rendered
BATCH = 8  # rows claimed at once: about a quarter of a second at Telegram's rate
IN_FLIGHT = 16  # sends under way at once (the platforms answer in tens of milliseconds)
# Seconds between looks at the outbox when nothing was due: a chat's next message (after the
# one just sent) and notifications from other processes wait at most this long.
IDLE = 0.25
EXPAND_EVERY = 1.0  # seconds between turning agencies' messages into their officers' own
RECORD_EVERY = 0.05  # seconds: messages sent within this are recorded together
STOP_GRACE = 2.0  # seconds a stopping dispatcher gives the sends under way


@dataclass(frozen=True)
class Pace:
    """A channel's limits: `rate` messages/s overall, shared by every process through the
    store's clock `key`; to one chat a burst of `chat_burst`, then one every `chat_interval`
    seconds."""

    key: str
    rate: float
    chat_interval: float
    chat_burst: int = 2

    @property
    def tolerance(self) -> timedelta:
        return timedelta(seconds=(self.chat_burst - 1) * self.chat_interval)


# Telegram: about 30 messages/s overall and one a second to one chat, short bursts tolerated.
# The burst is kept below what Telegram tolerates, so that jitter in the network never adds
# up to a refusal.
TELEGRAM_PACE = Pace("telegram", rate=29.5, chat_interval=1.0, chat_burst=2)
# WhatsApp: 80 messages/s per business number; about one message every 6 s to one person.
WHATSAPP_PACE = Pace("whatsapp", rate=78.0, chat_interval=6.0, chat_burst=3)


class DeliveryError(Exception):
    """A send that failed; `permanent` when retrying cannot help (blocked bot, unknown chat),
    `blocked` when the recipient blocked the bot, `retry_after` when the platform said wait."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        blocked: bool = False,
        retry_after: float = 0,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent or blocked
        self.blocked = blocked
        self.retry_after = retry_after


class Sender(Protocol):
    """One channel's way to send a message to a chat."""

    async def send(self, chat_id: str, message: Outgoing) -> None: ...


@dataclass(frozen=True)
class Delivery:
    outbox_id: int
    channel: str
    chat_id: str
    message: Outgoing | None
    job: ForwardJob | None = None  # a ticket for an agency's own system, not a chat message
    slot: datetime | None = None  # not before then (real time): its place on the channel clock


def queue_replies(
    session: Session, *, resident_id: int, replies: Sequence[Outgoing], now: datetime
) -> None:
    """Write a turn's replies to the outbox, in its transaction: they leave after it commits."""
    if replies:
        session.connection().execute(
            insert(Outbox.__table__),
            [
                {
                    "audience": Audience.RESIDENT,
                    "resident_id": resident_id,
                    "template": REPLY,
                    "params": reply.to_json(),
                    "state": OutboxState.PENDING,
                    "attempts": 0,
                    "last_error": "",
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for reply in replies
            ],
        )


@cache
def _heads(
    dialect: str, channels: tuple[str, ...], only_chats: frozenset[str] | None
) -> Executable:
    """Due chat messages that are the next of their recipient, whose chat is ready, oldest
    first (built once per dispatcher: every sweep runs it)."""
    earlier = aliased(Outbox)
    first_of_chat = ~exists().where(
        earlier.resident_id == Outbox.resident_id,
        earlier.state == OutboxState.PENDING,
        earlier.id < Outbox.id,
    )
    now = bindparam("now")
    heads = (
        select(Outbox, Resident, ChatPace.tat)
        .join(Resident, Resident.id == Outbox.resident_id)
        .outerjoin(ChatPace, ChatPace.resident_id == Outbox.resident_id)
        .where(
            Outbox.state == OutboxState.PENDING,
            Outbox.next_attempt_at <= now,
            or_(Outbox.claimed_until.is_(None), Outbox.claimed_until < now),
            Resident.channel.in_(channels),
            or_(ChatPace.ready_at.is_(None), ChatPace.ready_at <= bindparam("wall")),
            first_of_chat,
        )
        .order_by(Outbox.id)
        .limit(bindparam("limit"))
    )
    if only_chats is not None:
        heads = heads.where(Resident.platform_user_id.in_(sorted(only_chats)))
    if dialect == "postgresql":
        heads = heads.with_for_update(skip_locked=True, of=Outbox)
    return heads


def _next_pace(
    resident_id: int, pace: Pace, slot: datetime, tat: datetime | None
) -> dict[str, object]:
    """A chat's clock after one message sent at `slot` (a generic cell rate: the next may go
    once `tat - tolerance` has come)."""
    tat = max(tat or slot, slot) + timedelta(seconds=pace.chat_interval)
    return {"resident_id": resident_id, "tat": tat, "ready_at": tat - pace.tolerance}


@cache
def _upsert_pace(dialect: str) -> Executable:
    """Set a chat's clock (created with its first message); only the dispatcher that holds
    the chat's next message writes it."""
    insert_ = {"postgresql": pg_insert, "sqlite": sqlite_insert}[dialect]
    statement = insert_(ChatPace)
    return statement.on_conflict_do_update(
        index_elements=[ChatPace.resident_id],
        set_={"tat": statement.excluded.tat, "ready_at": statement.excluded.ready_at},
    )


class Dispatcher:
    """Claim due outbox rows with a lease, send them, record the outcome.

    The lease (claimed_by, claimed_until) means two dispatchers never send one row at the
    same time; a dispatcher that dies mid-send leaves a lease that expires, and the row is
    sent by the next one. On PostgreSQL rows are claimed with FOR UPDATE SKIP LOCKED.
    `paces` gives the channels whose limits are kept (none: send as fast as claimed).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        responses: Responses,
        senders: Mapping[str, Sender],
        *,
        clock: Callable[[], datetime] = utcnow,
        worker: str | None = None,
        only_chats: frozenset[str] | None = None,
        forwarder: Forwarder | None = None,
        paces: Mapping[str, Pace] | None = None,
        in_flight: int = IN_FLIGHT,
    ) -> None:
        self.sessions = sessions
        self.responses = responses
        self.senders = dict(senders)
        self.clock = clock
        self.worker = worker or uuid.uuid4().hex[:12]
        self.only_chats = only_chats  # the terminal chat delivers only to its own user
        self.forwarder = forwarder  # hands tickets to agencies' systems (Audience.EXTERNAL)
        self.paces = dict(paces or {})
        # Limits are kept in real time, whatever `clock` says (tests move that one by hand).
        self.wall: Callable[[], datetime] = utcnow
        self.wake = asyncio.Event()  # set when replies were queued: deliver them now
        self.stopping = False
        self.heartbeat = time.monotonic()
        self._slots = asyncio.Semaphore(in_flight)
        self._in_flight = in_flight
        self._tasks: set[asyncio.Task[bool]] = set()
        self._held: dict[str, datetime] = {}  # channel -> no send before (a "retry after")
        self._expanded = 0.0
        self._sent_ids: list[int] = []
        self._waiting: set[asyncio.Task[Any]] = set()  # deliveries still waiting for their slot
        self._recorder: asyncio.Task[None] | None = None

    # -- claiming ------------------------------------------------------------------------------

    def claim(self, limit: int = 50) -> list[Delivery]:
        """Lease up to `limit` due rows for this worker, book their slots and render them."""
        now = self.clock()
        with self.sessions.begin() as session:
            if time.monotonic() - self._expanded >= EXPAND_EVERY:
                self._expanded = time.monotonic()
                self._expand_agency_rows(session, now)
            deliveries = self._claim_chats(session, now, limit) if self.senders else []
            if self.forwarder is not None:
                deliveries += self._claim_external(session, self.forwarder, now, limit)
            return deliveries

    def _claim_chats(self, session: Session, now: datetime, limit: int) -> list[Delivery]:
        dialect = session.get_bind().dialect.name
        stmt = _heads(dialect, tuple(sorted(self.senders)), self.only_chats)
        wall = self.wall()
        params = {"now": now, "wall": wall, "limit": limit}
        rows = []
        for row, resident, tat in session.execute(stmt, params).all():
            if self._params(row) is None:  # queued before rahasia tickets kept followers out
                row.state, row.last_error = OutboxState.FAILED, "withheld: rahasia ticket"
                continue
            rows.append((row, resident, tat))
        slots = self._book(session, [resident.channel for _, resident, _ in rows], wall)
        deliveries, paced = [], []
        for (row, resident, tat), slot in zip(rows, slots, strict=True):
            pace = self.paces.get(resident.channel)
            if pace is not None:
                paced.append(_next_pace(resident.id, pace, slot, tat))
            row.claimed_by, row.claimed_until = self.worker, now + (slot - wall) + LEASE
            deliveries.append(
                Delivery(
                    row.id,
                    resident.channel,
                    resident.platform_user_id,
                    self.render(row, resident.language),
                    slot=slot,
                )
            )
        if paced:
            session.execute(_upsert_pace(session.get_bind().dialect.name), paced)
        return deliveries

    def _book(self, session: Session, channels: list[str], now: datetime) -> list[datetime]:
        """A slot for each row on its channel's shared clock (now, for channels not paced)."""
        slots = [now] * len(channels)
        for channel in set(channels):
            pace = self.paces.get(channel)
            if pace is None:
                continue
            indices = [i for i, c in enumerate(channels) if c == channel]
            first = book_slots(
                session, channel=pace.key, count=len(indices), rate=pace.rate, now=now
            )
            for n, i in enumerate(indices):
                slots[i] = first + timedelta(seconds=n / pace.rate)
        return slots

    def _claim_external(
        self, session: Session, forwarder: Forwarder, now: datetime, limit: int
    ) -> list[Delivery]:
        """Lease due hand-overs to agencies' systems and read what each will send."""
        stmt = (
            select(Outbox)
            .where(
                Outbox.state == OutboxState.PENDING,
                Outbox.audience == Audience.EXTERNAL,
                Outbox.next_attempt_at <= now,
                or_(Outbox.claimed_until.is_(None), Outbox.claimed_until < now),
            )
            .order_by(Outbox.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        deliveries = []
        for row in session.scalars(stmt):
            try:
                job = forwarder.prepare(session, row)
            except ForwardError as exc:
                row.attempts += 1
                row.state, row.last_error = OutboxState.FAILED, str(exc)[:500]
                continue
            row.claimed_by, row.claimed_until = self.worker, now + LEASE
            deliveries.append(Delivery(row.id, Audience.EXTERNAL.value, job.agency, None, job))
        return deliveries

    def _expand_agency_rows(self, session: Session, now: datetime) -> None:
        """Turn a message for an agency into one message per officer (no group chat yet)."""
        stmt = select(Outbox).where(
            Outbox.state == OutboxState.PENDING,
            Outbox.audience == Audience.AGENCY,
            Outbox.next_attempt_at <= now,
        )
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        for row in session.scalars(stmt):
            officers = session.scalars(
                select(Officer.resident_id).where(Officer.agency_id == row.agency_id)
            ).all()
            for resident_id in officers:
                session.add(
                    Outbox(
                        audience=Audience.OFFICER,
                        resident_id=resident_id,
                        agency_id=row.agency_id,
                        ticket_id=row.ticket_id,
                        template=row.template,
                        params=dict(row.params),
                        created_at=now,
                        next_attempt_at=now,
                    )
                )
            row.state, row.sent_at = OutboxState.SENT, now
            if not officers:
                agency = session.get(Agency, row.agency_id)
                row.state = OutboxState.FAILED
                row.last_error = f"no officer registered for {agency.code if agency else '?'}"

    def render(self, row: Outbox, language: str) -> Outgoing:
        """Render a row in the recipient's language: its text and its buttons, if any.

        A turn's reply is kept rendered; a notification holds a template and its parameters,
        `params["buttons"]` rows of [response key of the label, payload].
        """
        if row.template == REPLY:
            return Outgoing.from_json(row.params)
        params = self._params(row) or {}
        rows = params.pop("buttons", [])
        if "category" in params:  # stored as its code: officers read its name, in their language
            params["category"] = self._category_name(row, language, str(params["category"]))
        notice = Notice(row.id, row.template, dict(params))
        note = str(params.get("note") or "")
        params["note"] = (
            self.responses.get(language, "notify.ticket.note", note=note) if note else ""
        )
        text = self.responses.get(language, f"notify.{row.template}", **params)
        buttons = tuple(
            tuple(Button(self.responses.get(language, key), payload) for key, payload in r)
            for r in rows
        )
        return Outgoing(text, buttons=buttons, language=language, notice=notice)

    def _category_name(self, row: Outbox, language: str, code: str) -> str:
        ticket = row.ticket
        named = ticket.category.name if ticket is not None and ticket.category.code == code else ""
        return self.responses.category(language, code, named or code)

    @staticmethod
    def _params(row: Outbox) -> dict[str, Any] | None:
        """A row's parameters as its recipient may read them: a ticket's update for anyone
        but its reporter is its public view (actions/public.py); None: nothing for them."""
        ticket = row.ticket if row.audience is Audience.RESIDENT else None
        if ticket is None or row.resident_id == ticket.reporter_id:
            return dict(row.params)
        return public_params(ticket, row.params, redact=redact)

    # -- sending -------------------------------------------------------------------------------

    async def run_once(self, limit: int = 50) -> int:
        """Send what is due now (at its slot), and wait for it; return how many were sent."""
        deliveries = await asyncio.to_thread(self.claim, limit)
        results = await asyncio.gather(*(self._deliver(d) for d in deliveries))
        await self.flush()
        return sum(results)

    async def run(self, *, idle: float = IDLE, batch: int = BATCH) -> None:
        """Deliver until `stopping`: claim a batch, send each row at its slot while the next
        batch is claimed; wait for `wake` (or `idle` seconds) when nothing is due."""
        try:
            while not self.stopping:
                self.heartbeat = time.monotonic()
                room = self._in_flight - len(self._tasks)
                if room <= 0:
                    await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
                    continue
                self.wake.clear()
                try:
                    deliveries = await asyncio.to_thread(self.claim, min(batch, room))
                except Exception:  # noqa: BLE001 - the database: wait, then go on
                    log.exception("outbox: claiming failed; trying again")
                    await asyncio.sleep(idle)
                    continue
                for delivery in deliveries:
                    task = asyncio.create_task(self._deliver(delivery))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                if deliveries:
                    # Claim the next batch shortly before this one's last slot comes.
                    last = max(d.slot or self.wall() for d in deliveries)
                    ahead = (last - self.wall()).total_seconds() - 0.05
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=idle)
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Stop sending: what waits for its slot is given back at once, for any dispatcher;
        what was sent is recorded."""
        self.stopping = True
        for task in self._waiting:  # not sent yet: back to the store
            task.cancel()
        if self._tasks:  # under way: let them end (a cut send might have gone out)
            await asyncio.wait(list(self._tasks), timeout=STOP_GRACE)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.flush()

    async def _deliver(self, delivery: Delivery) -> bool:
        try:
            return await self._send(delivery)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - recording failed: the lease brings it back
            log.exception("outbox %s: outcome not recorded", delivery.outbox_id)
            return False

    async def _send(self, delivery: Delivery) -> bool:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - always in a task
        self._waiting.add(task)
        try:
            await self._wait_for_slot(delivery)
        except asyncio.CancelledError:
            await asyncio.to_thread(self.release, [delivery.outbox_id])
            raise
        finally:
            self._waiting.discard(task)
        async with self._slots:
            held = self._held.get(delivery.channel)
            if held is not None and held > self.wall():  # the platform said wait
                later = self.clock() + (held - self.wall())
                await asyncio.to_thread(self.release, [delivery.outbox_id], later)
                return False
            result = None
            try:
                if delivery.job is not None and self.forwarder is not None:
                    result = await self.forwarder.send(delivery.job)
                elif delivery.message is not None:
                    await self.senders[delivery.channel].send(delivery.chat_id, delivery.message)
            except (DeliveryError, ForwardError) as exc:
                await asyncio.to_thread(self.failed, delivery, exc)
                return False
            except Exception as exc:  # noqa: BLE001 - a sender's bug must not stop delivery
                log.exception("outbox %s: sender crashed", delivery.outbox_id)
                await asyncio.to_thread(self.failed, delivery, DeliveryError(repr(exc)))
                return False
            if delivery.job is not None:
                await asyncio.to_thread(self.done, delivery, result)
            else:
                self._sent(delivery.outbox_id)
            return True

    async def _wait_for_slot(self, delivery: Delivery) -> None:
        if delivery.slot is not None:
            delay = (delivery.slot - self.wall()).total_seconds()
            if delay > 0:
                await asyncio.sleep(delay)

    def _sent(self, outbox_id: int) -> None:
        """Record a sent message with the others sent about now, in one statement."""
        self._sent_ids.append(outbox_id)
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._record_sent())

    async def _record_sent(self) -> None:
        await asyncio.sleep(RECORD_EVERY)
        while self._sent_ids:
            ids, self._sent_ids = self._sent_ids, []
            try:
                await asyncio.to_thread(self.mark_sent, ids)
            except Exception:  # noqa: BLE001 - not recorded: their leases bring them back
                log.exception("outbox: %d sent messages not recorded", len(ids))

    async def flush(self) -> None:
        """Wait until every message sent so far is recorded."""
        if self._recorder is not None:
            await self._recorder

    def mark_sent(self, outbox_ids: Sequence[int]) -> None:
        with self.sessions.begin() as session:
            session.execute(
                update(Outbox)
                .where(Outbox.id.in_(outbox_ids))
                .values(state=OutboxState.SENT, sent_at=self.clock(), claimed_until=None)
            )

    def done(self, delivery: Delivery, result: ForwardResult | None = None) -> None:
        now = self.clock()
        with self.sessions.begin() as session:
            session.execute(
                update(Outbox)
                .where(Outbox.id == delivery.outbox_id)
                .values(state=OutboxState.SENT, sent_at=now, claimed_until=None)
            )
            if delivery.job is not None and result is not None and self.forwarder is not None:
                self.forwarder.record(session, delivery.job, result, now)

    def release(self, outbox_ids: Sequence[int], not_before: datetime | None = None) -> None:
        """Give claimed rows back unsent (to be sent from `not_before` on)."""
        values: dict[str, object] = {"claimed_until": None}
        if not_before is not None:
            values["next_attempt_at"] = not_before
        with self.sessions.begin() as session:
            session.execute(update(Outbox).where(Outbox.id.in_(outbox_ids)).values(**values))

    def failed(self, delivery: Delivery, exc: DeliveryError | ForwardError) -> None:
        now = self.clock()
        pace = self.paces.get(delivery.channel)
        with self.sessions.begin() as session:
            row = session.get_one(Outbox, delivery.outbox_id)
            row.claimed_until = None
            row.last_error = str(exc)[:500]
            if isinstance(exc, DeliveryError) and exc.retry_after and pace is not None:
                # Flow control, not a failure of this message: every dispatcher holds.
                wait = timedelta(seconds=exc.retry_after)
                self._held[delivery.channel] = self.wall() + wait
                hold_all(session, channel=pace.key, until=self.wall() + wait)
                row.next_attempt_at = now + wait
                log.warning("%s: told to retry after %.0f s", delivery.channel, exc.retry_after)
                return
            row.attempts += 1
            if isinstance(exc, DeliveryError) and exc.blocked and row.resident_id is not None:
                session.get_one(Resident, row.resident_id).blocked_at = now
            if exc.permanent or row.attempts >= MAX_ATTEMPTS:
                row.state = OutboxState.FAILED
                log.warning("outbox %s failed for good: %s", row.id, exc)
                return
            wait = max(
                timedelta(seconds=exc.retry_after),
                min(BACKOFF_BASE * 2 ** (row.attempts - 1), timedelta(hours=1)),
            )
            row.next_attempt_at = now + wait


async def housekeeping_forever(assistant: Assistant) -> None:
    """Every few minutes run the SLA clock, every hour forget old update ids."""
    last = {"sla": 0.0, "updates": 0.0}
    while True:
        try:
            now = time.monotonic()
            if now - last["sla"] > SLA_EVERY:
                last["sla"] = now
                await asyncio.to_thread(run_sla, assistant)
            if now - last["updates"] > HOUSEKEEPING_EVERY:
                last["updates"] = now
                await asyncio.to_thread(_forget_old_updates, assistant)
        except Exception:  # noqa: BLE001 - keep going; the log has the details
            log.exception("housekeeping failed")
        await asyncio.sleep(30)


def run_sla(assistant: Assistant) -> None:
    """Run the SLA clock once; safe while other processes run it too."""
    with assistant.sessions.begin() as session:
        result = run_sla_check(session, city=assistant.city.config, now=assistant.clock())
    if any((result.reminded, result.escalated_first_response, result.escalated_resolution)):
        log.info("SLA: %s", result)


def _forget_old_updates(assistant: Assistant) -> None:
    # Telegram redelivers for 24 hours, WhatsApp for up to 7 days.
    with assistant.sessions.begin() as session:
        forget_updates(session, older_than=timedelta(days=8), now=assistant.clock())
