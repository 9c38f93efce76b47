"""Inbox workers: handle stored platform updates, many senders at once, each sender in order.

Each update is handled in one transaction that takes it from the inbox (`actions.inbox.take`),
runs the channel's handler (the conversation, a delivery status …), writes the replies to
the outbox and deletes the update: all of it commits, or none. Replies are never sent from
here: the dispatcher sends them, woken at once.

An update whose handling raises is tried again with backoff (the sender's later updates wait
behind it, so their order holds); after `MAX_ATTEMPTS` it is kept as failed, the resident is
told politely, and their later updates go on. Trouble with the database itself is not held
against the update: the worker waits and tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from actions import inbox
from actions.inbox import StoredUpdate
from actions.models import utcnow
from bot.conversation import Assistant
from bot.dispatcher import queue_replies
from bot.messages import Incoming

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2  # a failure of our own code rarely passes on a second try: tell them soon
WORKERS = 8  # updates handled at once (threads: the store is synchronous)
POLL = 0.5  # seconds between looks at the inbox when nothing woke the workers
DB_TROUBLE_WAIT = 1.0  # seconds to wait after the database failed us
REQUEUE_EVERY = 5.0  # seconds between looks for senders to queue again (actions.inbox.requeue)


@dataclass
class Handled:
    """What handling one update left to do after its transaction committed."""

    replied: bool = False  # replies were queued: wake the dispatcher
    after: Callable[[], Awaitable[None]] | None = None  # best effort, e.g. a spinner to stop


class InboxHandler(Protocol):
    """One channel's way to handle its stored updates."""

    def handle(self, session: Session, stored: StoredUpdate) -> Handled:
        """Handle the update in the caller's transaction (which commits it, or not)."""
        ...

    def apologise(self, session: Session, stored: StoredUpdate) -> bool:
        """The update was given up on: queue a polite word for its sender; True if queued."""
        ...


def answer(assistant: Assistant, session: Session, incoming: Incoming) -> bool:
    """The conversation's turn, its replies into the outbox; whether there are any."""
    turned = assistant.turn(session, incoming)
    queue_replies(
        session, resident_id=turned.resident_id, replies=turned.replies, now=assistant.clock()
    )
    return bool(turned.replies)


def apologise(assistant: Assistant, session: Session, incoming: Incoming) -> None:
    """The resident's update was given up on: tell them, politely."""
    resident_id = assistant.resident_for(session, incoming)
    sorry = [assistant.sorry(incoming)]
    queue_replies(session, resident_id=resident_id, replies=sorry, now=assistant.clock())


def database_trouble(exc: BaseException) -> bool:
    """Whether the failure is the database's (down, unreachable, timed out, locked), not the
    update's: such a failure does not count against the update."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError | PoolTimeout)


class InboxWorker:
    """Run `workers` loops that each take the next update of some sender and handle it.

    `clock` times the inbox (arrival, retries) in real time; the handlers keep the
    conversation's own clock.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        handlers: Mapping[str, InboxHandler],
        *,
        workers: int = WORKERS,
        clock: Callable[[], datetime] = utcnow,
        poll: float = POLL,
        on_replies: Callable[[], None] = lambda: None,
    ) -> None:
        self.sessions, self.handlers, self.clock = sessions, dict(handlers), clock
        self.workers, self.poll, self.on_replies = workers, poll, on_replies
        self.wake = asyncio.Event()
        self.stopping = False
        self.heartbeats: list[float] = []
        self.handled = 0  # updates handled by this process (for the benchmarks)
        self._executor: ThreadPoolExecutor | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._after: set[asyncio.Task[None]] = set()

    # -- one update, in a thread ---------------------------------------------------------------

    def handle_next(self) -> Handled | None:
        """Take the next due update and handle it; None when there is none."""
        now = self.clock()
        stored: StoredUpdate | None = None
        try:
            with self.sessions.begin() as session:
                stored = inbox.take(session, channels=list(self.handlers), now=now)
                if stored is None:
                    return None
                done = self.handlers[stored.channel].handle(session, stored)
                inbox.handled(session, stored)
        except Exception as exc:
            if stored is None or database_trouble(exc):
                raise
            return self._failed(stored, exc, now)
        self.handled += 1
        return done

    def _failed(self, stored: StoredUpdate, exc: Exception, now: datetime) -> Handled:
        give_up = stored.attempts + 1 >= MAX_ATTEMPTS
        log.error(
            "%s update %s failed (attempt %d%s)",
            stored.channel,
            stored.update_id,
            stored.attempts + 1,
            ", given up" if give_up else "",
            exc_info=exc,
        )
        with self.sessions.begin() as session:
            if not inbox.failed(session, stored, error=repr(exc), now=now, give_up=give_up):
                return Handled()  # another worker failed it meanwhile and said so
            apologised = give_up and self.handlers[stored.channel].apologise(session, stored)
        return Handled(replied=apologised)

    async def drain(self) -> int:
        """Handle everything due now, one update after the other (tests)."""
        count = 0
        while (done := await asyncio.to_thread(self.handle_next)) is not None:
            count += 1
            if done.after is not None:
                await self._best_effort(done.after)
        return count

    # -- the loops -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="inbox")
        self.heartbeats = [time.monotonic()] * self.workers
        self._loops = [asyncio.create_task(self._loop(i)) for i in range(self.workers)]

    async def stop(self, grace: float = 3.0) -> None:
        """Stop taking updates; the ones in hand finish (within `grace`), the rest wait in the
        store for the next start."""
        self.stopping = True
        self.wake.set()
        if self._loops:
            _done, pending = await asyncio.wait(self._loops, timeout=grace)
            for task in pending:
                task.cancel()
        for task in list(self._after):
            task.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def alive(self, within: float) -> bool:
        """Every loop runs and has looked at the inbox in the last `within` seconds."""
        now = time.monotonic()
        return bool(self._loops) and all(
            not task.done() and now - beat < within
            for task, beat in zip(self._loops, self.heartbeats, strict=True)
        )

    def requeue(self) -> None:
        with self.sessions.begin() as session:
            if inbox.requeue(session, now=self.clock()):
                log.info("inbox: queued again a sender dropped while its update came")

    async def _loop(self, index: int) -> None:
        loop = asyncio.get_running_loop()
        requeued = 0.0
        while not self.stopping:
            self.heartbeats[index] = time.monotonic()
            if index == 0 and time.monotonic() - requeued > REQUEUE_EVERY:
                requeued = time.monotonic()
                with contextlib.suppress(Exception):  # the database: the next round
                    await loop.run_in_executor(self._executor, self.requeue)
            # Cleared before looking: an update stored after this wakes the wait below.
            self.wake.clear()
            try:
                done = await loop.run_in_executor(self._executor, self.handle_next)
            except Exception as exc:  # noqa: BLE001 - the database: wait, then go on
                if not database_trouble(exc):
                    log.exception("inbox worker %d failed", index)
                else:
                    log.warning("inbox worker %d: database trouble: %s", index, exc)
                await asyncio.sleep(DB_TROUBLE_WAIT)
                continue
            if done is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=self.poll)
                continue
            if done.replied:
                self.on_replies()
            if done.after is not None:
                task = asyncio.create_task(self._best_effort(done.after))
                self._after.add(task)
                task.add_done_callback(self._after.discard)

    @staticmethod
    async def _best_effort(after: Callable[[], Awaitable[None]]) -> None:
        try:
            await after()
        except Exception as exc:  # noqa: BLE001 - a courtesy call failed: nothing is lost
            log.info("after an update: %s", exc)
