"""What a bot process runs beside its HTTP routes: inbox workers, the outbox dispatcher, the
broadcaster, the SLA clock and housekeeping, and each channel's own tasks.

Started and stopped by `warga serve` (the web app's lifespan) and `warga run` (long
polling). `readiness()` is what `/readyz` reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import text
from starlette.routing import Route

from actions import inbox, migrate
from actions.models import utcnow
from bot.broadcaster import Broadcaster, broadcast_forever
from bot.conversation import Assistant
from bot.dispatcher import Dispatcher, Pace, Sender, housekeeping_forever
from bot.inbox import WORKERS, InboxHandler, InboxWorker

log = logging.getLogger(__name__)

STALE = 60.0  # seconds without a heartbeat before a worker counts as dead
LAG_LIMIT = 60.0  # seconds the oldest stored update may wait before the process is behind
CHECK_TIMEOUT = 3.0  # seconds the database has to answer a readiness check
# SQLite takes one writer at a time: more workers would only queue for its lock (and keep the
# dispatcher from recording what it sent).
SQLITE_WORKERS = 2


class Channel(Protocol):
    """A chat platform as the service runs it (bot/channels/telegram.py, whatsapp.py)."""

    name: str
    pace: Pace
    handler: InboxHandler
    on_stored: Any  # Callable[[], None], set by the service: wake the inbox workers

    @property
    def sender(self) -> Sender: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def routes(self) -> list[Route]: ...

    def status(self) -> dict[str, Any]: ...

    def alive(self, within: float) -> bool: ...


@dataclass
class Service:
    """The background work of one process; several processes may share one database."""

    assistant: Assistant
    channels: Sequence[Channel]
    workers: int | None = None  # None: WORKERS on PostgreSQL, SQLITE_WORKERS on SQLite
    broadcasts: bool = True  # Telegram announcements (WhatsApp residents do not follow yet)
    housekeeping: bool = True
    background: bool = True  # False: build the workers but run none (a test drives them)
    paced: bool = True  # False: send as fast as claimed (tests against fakes without limits)
    dispatcher: Dispatcher | None = field(default=None, init=False)
    inbox: InboxWorker | None = field(default=None, init=False)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, init=False)
    _broadcaster: Broadcaster | None = field(default=None, init=False)

    async def start(self) -> None:
        a = self.assistant
        for channel in self.channels:
            await channel.start()
        senders = {c.name: c.sender for c in self.channels}
        self.dispatcher = Dispatcher(
            a.sessions,
            a.responses,
            senders,
            clock=a.clock,
            paces={c.name: c.pace for c in self.channels} if self.paced else {},
        )
        dispatcher = self.dispatcher
        workers = self.workers
        if workers is None:
            sqlite = a.sessions.kw["bind"].dialect.name == "sqlite"
            workers = SQLITE_WORKERS if sqlite else WORKERS
        self.inbox = InboxWorker(
            a.sessions,
            {c.name: c.handler for c in self.channels},
            workers=workers,
            on_replies=dispatcher.wake.set,
        )
        for channel in self.channels:
            channel.on_stored = self.inbox.wake.set
        if not self.background:
            return
        await self.inbox.start()
        self._tasks.append(asyncio.create_task(dispatcher.run()))
        telegram = [c for c in self.channels if c.name == "telegram"]
        if self.broadcasts and telegram:
            self._broadcaster = Broadcaster(
                a.sessions,
                a.responses,
                {"telegram": telegram[0].sender},
                clock=a.clock,
                pace_key=telegram[0].pace.key,
            )
            self._tasks.append(asyncio.create_task(broadcast_forever(self._broadcaster)))
        if self.housekeeping:
            self._tasks.append(asyncio.create_task(housekeeping_forever(a)))

    async def settle(self) -> None:
        """Handle every stored update and send everything due, here and now (tests, with
        `background` off)."""
        assert self.inbox is not None and self.dispatcher is not None  # noqa: S101 - started
        await self.inbox.drain()
        while await self.dispatcher.run_once():
            pass

    async def stop(self, grace: float = 3.0) -> None:
        """Stop within about `grace` seconds: updates in hand finish, messages not yet sent
        are given back to the store for the next start."""
        started = time.monotonic()
        if self.inbox is not None:
            await self.inbox.stop(grace)
        if self._broadcaster is not None:
            self._broadcaster.stopping = True
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        for task in self._tasks:
            task.cancel()
        left = max(0.1, grace - (time.monotonic() - started))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), left)
        for channel in self.channels:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(channel.stop(), 1.0)

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether this process should get traffic: the database answers at the schema this
        code knows, every worker runs, and stored updates do not wait too long."""
        checks: dict[str, Any] = {}
        ready = True
        try:
            db = await asyncio.wait_for(asyncio.to_thread(self._database), CHECK_TIMEOUT)
        except TimeoutError:
            db = {"ok": False, "error": f"no answer within {CHECK_TIMEOUT:.0f} s"}
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            db = {"ok": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
        checks["database"] = db
        ready &= db["ok"]
        workers = self.inbox is not None and self.inbox.alive(STALE)
        dispatching = self.dispatcher is not None and (
            time.monotonic() - self.dispatcher.heartbeat < STALE
        )
        lag = db.get("oldest_update_seconds") or 0.0
        checks["inbox"] = {"workers_alive": workers, "oldest_update_seconds": lag}
        checks["dispatcher"] = {"alive": dispatching}
        ready &= workers and dispatching and lag <= LAG_LIMIT
        for channel in self.channels:
            alive = channel.alive(STALE)
            checks[channel.name] = {"alive": alive, **channel.status()}
            ready &= alive
        return ready, checks

    def _database(self) -> dict[str, Any]:
        with self.assistant.sessions() as session:
            session.execute(text("SELECT 1"))
            have = migrate.current_revision(session.connection())
            backlog = inbox.backlog(session, [c.name for c in self.channels])
        head = migrate.head()
        oldest = (utcnow() - backlog.oldest).total_seconds() if backlog.oldest is not None else 0.0
        return {
            "ok": have == head,
            "schema": have,
            **({"expected_schema": head} if have != head else {}),
            "pending_updates": backlog.pending,
            "failed_updates": backlog.failed,
            "oldest_update_seconds": round(max(0.0, oldest), 1),
        }
