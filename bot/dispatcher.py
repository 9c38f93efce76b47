"""Deliver the outbox: each message once, through the recipient's channel, with retries."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from actions.domain import Audience, OutboxState
from actions.inbox import forget_updates
from actions.models import Agency, Officer, Outbox, Resident, utcnow
from actions.open311 import Forwarder, ForwardError, ForwardJob, ForwardResult
from actions.public import public_params
from actions.sla import run_sla_check
from bot.messages import Button, Notice, Outgoing
from bot.responses import Responses
from nlu import redact

if TYPE_CHECKING:
    from bot.conversation import Assistant

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
MAX_ATTEMPTS = 8
BACKOFF_BASE = timedelta(seconds=10)  # 10 s, 20 s, 40 s … capped at an hour
SLA_EVERY = 300.0  # seconds between runs of the SLA clock
HOUSEKEEPING_EVERY = 3600.0  # seconds between clean-ups of processed update ids


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


class Dispatcher:
    """Claim due outbox rows with a lease, send them, record the outcome.

    The lease (claimed_by, claimed_until) means two dispatchers never send one row at the
    same time; a dispatcher that dies mid-send leaves a lease that expires, and the row is
    sent by the next one. On PostgreSQL rows are claimed with FOR UPDATE SKIP LOCKED.
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
    ) -> None:
        self.sessions = sessions
        self.responses = responses
        self.senders = dict(senders)
        self.clock = clock
        self.worker = worker or uuid.uuid4().hex[:12]
        self.only_chats = only_chats  # the terminal chat delivers only to its own user
        self.forwarder = forwarder  # hands tickets to agencies' systems (Audience.EXTERNAL)

    def claim(self, limit: int = 50) -> list[Delivery]:
        """Lease up to `limit` due rows for this worker and render them."""
        now = self.clock()
        with self.sessions.begin() as session:
            self._expand_agency_rows(session, now)
            stmt = (
                select(Outbox, Resident)
                .join(Resident, Resident.id == Outbox.resident_id)
                .where(
                    Outbox.state == OutboxState.PENDING,
                    Outbox.next_attempt_at <= now,
                    or_(Outbox.claimed_until.is_(None), Outbox.claimed_until < now),
                    Resident.channel.in_(list(self.senders)),
                )
                .order_by(Outbox.id)
                .limit(limit)
            )
            if self.only_chats is not None:
                stmt = stmt.where(Resident.platform_user_id.in_(self.only_chats))
            if session.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True, of=Outbox)
            deliveries = []
            for row, resident in session.execute(stmt).all():
                if self._params(row) is None:  # queued before rahasia tickets kept followers out
                    row.state, row.last_error = OutboxState.FAILED, "withheld: rahasia ticket"
                    continue
                row.claimed_by, row.claimed_until = self.worker, now + LEASE
                deliveries.append(
                    Delivery(
                        row.id,
                        resident.channel,
                        resident.platform_user_id,
                        self.render(row, resident.language),
                    )
                )
            if self.forwarder is not None:
                deliveries += self._claim_external(session, self.forwarder, now, limit)
            return deliveries

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

        `params["buttons"]` holds rows of [response key of the label, payload].
        """
        params = self._params(row) or {}
        rows = params.pop("buttons", [])
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

    @staticmethod
    def _params(row: Outbox) -> dict[str, Any] | None:
        """A row's parameters as its recipient may read them: a ticket's update for anyone
        but its reporter is its public view (actions/public.py); None: nothing for them."""
        ticket = row.ticket if row.audience is Audience.RESIDENT else None
        if ticket is None or row.resident_id == ticket.reporter_id:
            return dict(row.params)
        return public_params(ticket, row.params, redact=redact)

    async def run_once(self, limit: int = 50) -> int:
        """Send what is due; return how many were sent."""
        sent = 0
        # The store is synchronous: keep its calls off the event loop.
        for delivery in await asyncio.to_thread(self.claim, limit):
            result = None
            try:
                if delivery.job is not None and self.forwarder is not None:
                    result = await self.forwarder.send(delivery.job)
                elif delivery.message is not None:
                    await self.senders[delivery.channel].send(delivery.chat_id, delivery.message)
            except (DeliveryError, ForwardError) as exc:
                await asyncio.to_thread(self.failed, delivery, exc)
                continue
            except Exception as exc:  # noqa: BLE001 - a sender's bug must not stop delivery
                log.exception("outbox %s: sender crashed", delivery.outbox_id)
                await asyncio.to_thread(self.failed, delivery, DeliveryError(repr(exc)))
                continue
            await asyncio.to_thread(self.done, delivery, result)
            sent += 1
        return sent

    def done(self, delivery: Delivery, result: ForwardResult | None = None) -> None:
        now = self.clock()
        with self.sessions.begin() as session:
            row = session.get_one(Outbox, delivery.outbox_id)
            row.state, row.sent_at, row.claimed_until = OutboxState.SENT, now, None
            if delivery.job is not None and result is not None and self.forwarder is not None:
                self.forwarder.record(session, delivery.job, result, now)

    def failed(self, delivery: Delivery, exc: DeliveryError | ForwardError) -> None:
        now = self.clock()
        with self.sessions.begin() as session:
            row = session.get_one(Outbox, delivery.outbox_id)
            row.attempts += 1
            row.last_error = str(exc)[:500]
            row.claimed_until = None
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


async def deliver_forever(assistant: Assistant, dispatcher: Dispatcher, interval: float) -> None:
    """Deliver the outbox; every few minutes run the SLA clock, every hour forget old updates."""
    last: dict[str, float] = {"sla": 0.0, "updates": 0.0}
    while True:
        sent = 0
        try:
            sent = await dispatcher.run_once()
            now = time.monotonic()
            if now - last["sla"] > SLA_EVERY:
                last["sla"] = now
                await asyncio.to_thread(run_sla, assistant)
            if now - last["updates"] > HOUSEKEEPING_EVERY:
                last["updates"] = now
                await asyncio.to_thread(_forget_old_updates, assistant)
        except Exception:  # noqa: BLE001 - keep delivering; the log has the details
            log.exception("background sweep failed")
        if not sent:
            await asyncio.sleep(interval)


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
