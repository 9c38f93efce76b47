"""Send announcements: claim deliveries, keep to the platform's limits, record each outcome.

Limits (Telegram's, which publishes them only roughly): about 30 messages/s overall, shared by
every worker through slots booked in the store; about one message a second to one chat and 20
a minute to one group, kept per worker. "Retry after N" holds every worker for N seconds; a
blocked bot (403) ends that resident's deliveries until they write again.

Each outcome is committed right after its send. A worker killed between a send and that commit
leaves its lease to expire and the message is sent again: at most one message per killed worker
can arrive twice. A worker stopped with SIGTERM/SIGINT finishes the message in hand first.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from actions import broadcasts
from actions.domain import BroadcastState, DeliveryState
from actions.models import Broadcast, utcnow
from bot.dispatcher import DeliveryError, Sender
from bot.messages import Button, Outgoing
from bot.responses import Responses

log = logging.getLogger(__name__)

RATE = 29.0  # messages/s overall: Telegram allows about 30
CHAT_GAP = 1.0  # seconds between two messages to one private chat
GROUP_GAP = 3.0  # seconds between two messages to one group chat: 20 a minute
LATE_SLOTS = 10  # behind by more slots than this, a batch stops and books again
LEASE = timedelta(seconds=15)  # beyond the batch's last slot; renewed while sending
MAX_ATTEMPTS = 5
BACKOFF = timedelta(seconds=15)  # 15 s, 30 s, 60 s, 120 s


class Broadcaster:
    """One delivery worker; run as many as needed, in one process or several."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        responses: Responses,
        senders: Mapping[str, Sender],
        *,
        rate: float = RATE,
        chat_gap: float = CHAT_GAP,
        group_gap: float = GROUP_GAP,
        clock: Callable[[], datetime] = utcnow,
        worker: str | None = None,
        pace_key: str = "telegram",
    ) -> None:
        self.sessions, self.responses, self.senders = sessions, responses, dict(senders)
        # The store's send clock: in a bot process the channel's own, shared with its replies.
        self.pace_key = pace_key
        self.rate, self.chat_gap, self.group_gap = rate, chat_gap, group_gap
        self.clock = clock
        self.worker = worker or uuid.uuid4().hex[:12]
        self.batch = max(1, min(200, round(rate)))  # about a second of sending per claim
        self.stopping = False
        # Recent sends per chat, oldest first: bounded by rate × gap, whatever the audience.
        self._recent: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._rendered: dict[tuple[int, str], Outgoing] = {}
        self._lease_end = clock()

    # -- one round -----------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Start due announcements, send one batch, close finished ones; return how many went."""
        claimed, first_slot = await asyncio.to_thread(self._claim)
        sent = 0
        if claimed:
            sent = await self._send_batch(claimed, first_slot)
        await asyncio.to_thread(self._finish)
        return sent

    async def run(self, *, idle: float = 1.0, until: Callable[[], bool] | None = None) -> None:
        """Keep sending until stopped (`stopping`, or `until()` true after a round)."""
        while not self.stopping:
            sent = await self.run_once()
            if until is not None and until():
                return
            if not sent:
                await asyncio.sleep(idle)

    def _lease_for(self, count: int) -> timedelta:
        return LEASE + timedelta(seconds=count / self.rate)

    def _claim(self) -> tuple[list[broadcasts.Claimed], datetime]:
        now = self.clock()
        with self.sessions.begin() as session:
            broadcasts.start_due(session, now=now)
        with self.sessions.begin() as session:
            claimed = broadcasts.claim(
                session,
                worker=self.worker,
                channels=list(self.senders),
                limit=self.batch,
                lease=self._lease_for(self.batch),
                now=now,
            )
            if not claimed:
                return [], now
            # One clock for all channels of this worker: the slowest limit rules them all.
            first = broadcasts.book_slots(
                session, channel=self.pace_key, count=len(claimed), rate=self.rate, now=now
            )
            # The lease runs from the last booked slot, however far ahead other workers are.
            self._lease_end = first + self._lease_for(len(claimed))
            broadcasts.renew(session, [c.delivery_id for c in claimed], self._lease_end)
            self._load_rendering(session, {c.broadcast_id for c in claimed})
            return claimed, first

    def _finish(self) -> None:
        with self.sessions.begin() as session:
            for broadcast_id in broadcasts.finish(session, now=self.clock()):
                log.info("broadcast %s: done", broadcast_id)

    async def _send_batch(self, claimed: list[broadcasts.Claimed], first_slot: datetime) -> int:
        sent = 0
        live = await asyncio.to_thread(self._live, {c.broadcast_id for c in claimed})
        for i, item in enumerate(claimed):
            if self.stopping:
                rest = [c.delivery_id for c in claimed[i:]]
                await asyncio.to_thread(self._release, rest, self.clock())
                break
            if item.broadcast_id not in live:  # cancelled meanwhile: nothing more goes out
                continue
            wait = self._wait_for_chat(item.chat_id)
            if wait > 0:  # this chat heard from us a moment ago: later, not now
                later = self.clock() + timedelta(seconds=wait)
                await asyncio.to_thread(self._release, [item.delivery_id], later)
                continue
            slot = first_slot + timedelta(seconds=i / self.rate)
            delay = (slot - self.clock()).total_seconds()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > LATE_SLOTS / self.rate:
                # Far behind our slots (a slow send, a busy machine): catching up would crowd
                # the other workers' slots. Give the rest back and book fresh slots.
                rest = [c.delivery_id for c in claimed[i:]]
                await asyncio.to_thread(self._release, rest, self.clock())
                break
            if self._lease_end - self.clock() < LEASE / 3:  # slow sends: keep the rest ours
                rest = [c.delivery_id for c in claimed[i:]]
                await asyncio.to_thread(self._renew, rest)
            message = self._rendered[(item.broadcast_id, item.language)]
            try:
                await self.senders[item.channel].send(item.chat_id, message)
            except DeliveryError as exc:
                if exc.retry_after:
                    rest = [c.delivery_id for c in claimed[i:]]
                    await asyncio.to_thread(self._hold, rest, exc.retry_after)
                    break
                await asyncio.to_thread(self._failed, item, exc)
                continue
            except Exception as exc:  # noqa: BLE001 - a sender's bug must not stop the worker
                log.exception("broadcast delivery %s: sender crashed", item.delivery_id)
                await asyncio.to_thread(self._failed, item, DeliveryError(repr(exc)))
                continue
            self._sent_to(item.chat_id)
            await asyncio.to_thread(self._done, item.delivery_id)
            sent += 1
        return sent

    # -- pacing per chat ------------------------------------------------------------------------

    def _wait_for_chat(self, chat_id: str) -> float:
        now = time.monotonic()
        horizon = max(self.chat_gap, self.group_gap)
        while self._recent and next(iter(self._recent.values())) < now - horizon:
            self._recent.popitem(last=False)
        last = self._recent.get(chat_id)
        if last is None:
            return 0.0
        gap = self.group_gap if chat_id.startswith("-") else self.chat_gap
        return max(0.0, last + gap - now)

    def _sent_to(self, chat_id: str) -> None:
        self._recent.pop(chat_id, None)
        self._recent[chat_id] = time.monotonic()

    # -- the store -----------------------------------------------------------------------------

    def _live(self, broadcast_ids: set[int]) -> set[int]:
        with self.sessions.begin() as session:
            states = broadcasts.state_of(session, broadcast_ids)
        return {i for i, s in states.items() if s is BroadcastState.SENDING}

    def _done(self, delivery_id: int) -> None:
        with self.sessions.begin() as session:
            broadcasts.mark(
                session,
                delivery_id,
                state=DeliveryState.SENT.value,
                sent_at=self.clock(),
                claimed_by=self.worker,
            )

    def _failed(self, item: broadcasts.Claimed, exc: DeliveryError) -> None:
        now = self.clock()
        with self.sessions.begin() as session:
            if exc.blocked:
                broadcasts.mark_blocked(
                    session, delivery_id=item.delivery_id, now=now, error=str(exc)
                )
                return
            attempts = broadcasts.attempts_of(session, item.delivery_id) + 1
            values: dict[str, object] = {"attempts": attempts, "last_error": str(exc)[:500]}
            if exc.permanent or attempts >= MAX_ATTEMPTS:
                values["state"] = DeliveryState.FAILED.value
                log.warning("broadcast delivery %s failed for good: %s", item.delivery_id, exc)
            else:
                values["next_attempt_at"] = now + BACKOFF * 2 ** (attempts - 1)
            broadcasts.mark(session, item.delivery_id, **values)

    def _hold(self, delivery_ids: list[int], seconds: float) -> None:
        until = self.clock() + timedelta(seconds=seconds)
        log.warning("broadcast: told to retry after %.0f s; every worker waits", seconds)
        with self.sessions.begin() as session:
            broadcasts.hold_all(session, channel=self.pace_key, until=until)
            broadcasts.release(session, delivery_ids, not_before=until)

    def _renew(self, delivery_ids: list[int]) -> None:
        until = self.clock() + self._lease_for(len(delivery_ids))
        with self.sessions.begin() as session:
            broadcasts.renew(session, delivery_ids, until)
        self._lease_end = until

    def _release(self, delivery_ids: list[int], not_before: datetime) -> None:
        with self.sessions.begin() as session:
            broadcasts.release(session, delivery_ids, not_before=not_before)

    # -- rendering -----------------------------------------------------------------------------

    def _load_rendering(self, session: Session, broadcast_ids: set[int]) -> None:
        missing = {i for i in broadcast_ids if not any(k[0] == i for k in self._rendered)}
        for broadcast_id in missing:
            broadcast = session.get_one(Broadcast, broadcast_id)
            for language in self.responses.languages():
                self._rendered[(broadcast_id, language)] = self.render(broadcast, language)

    def render(self, broadcast: Broadcast, language: str) -> Outgoing:
        """The announcement as the resident sees it: header, text, link, poll buttons, photo."""
        buttons: list[tuple[Button, ...]] = []
        if broadcast.link:
            label = self.responses.get(language, "button.open_link")
            buttons.append((Button(label, url=broadcast.link),))
        buttons += [
            (Button(option, f"poll:{broadcast.id}:{i}"),)
            for i, option in enumerate(broadcast.poll_options)
        ]
        return Outgoing(
            broadcast.text,
            title=self.responses.get(language, "umumkan.header", group=broadcast.group.name),
            buttons=tuple(buttons),
            photos=(broadcast.photo,) if broadcast.photo else (),
            language=language,
        )


async def broadcast_forever(broadcaster: Broadcaster) -> None:
    """Send announcements beside the conversation; a failed round is logged and retried."""
    while True:
        try:
            await broadcaster.run()
        except Exception:  # noqa: BLE001 - keep announcing; the log has the details
            log.exception("broadcast round failed")
            await asyncio.sleep(5)
