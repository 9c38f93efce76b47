"""Inbox workers side by side: an update that fails is recorded, given up on and apologised
for once, whichever worker gets to it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from actions import inbox
from actions.db import make_session_factory
from actions.domain import InboxState
from actions.inbox import NewUpdate, StoredUpdate
from actions.models import InboxUpdate, utcnow
from bot.inbox import MAX_ATTEMPTS, InboxWorker


class Broken:
    """A handler that fails every update (a bug), counting its apologies."""

    def __init__(self) -> None:
        self.apologies: list[str] = []

    def handle(self, session: Any, stored: StoredUpdate) -> Any:
        raise RuntimeError("a bug in a handler")

    def apologise(self, session: Any, stored: StoredUpdate) -> bool:
        self.apologies.append(stored.update_id)
        return True


@pytest.mark.postgres
def test_a_failing_update_is_held_until_its_failure_is_recorded(postgres_engine):
    """The failed turn is undone in a savepoint while the update stays locked: a second
    worker cannot take it before the failure (and the apology) is recorded, so the resident
    hears "sorry" once."""
    sessions = make_session_factory(postgres_engine)
    with sessions.begin() as session:
        inbox.put(
            session,
            channel="telegram",
            updates=[NewUpdate("24", "5001", {"text": "meledak"})],
            now=utcnow(),
        )
        session.execute(select(InboxUpdate)).scalar_one().attempts = MAX_ATTEMPTS - 1
    handler = Broken()
    first = InboxWorker(sessions, {"telegram": handler})
    second = InboxWorker(sessions, {"telegram": handler})
    record = first._failed
    seen: list[Any] = []

    def meanwhile(*args: Any) -> Any:
        seen.append(second.handle_next())  # the other worker looks while the first records
        return record(*args)

    first._failed = meanwhile  # type: ignore[method-assign]
    try:
        assert first.handle_next() is not None
        assert seen == [None]
        assert handler.apologies == ["24"]
        with sessions() as session:
            row = session.execute(select(InboxUpdate)).scalar_one()
            assert (row.state, row.attempts) == (InboxState.FAILED, MAX_ATTEMPTS)
        assert second.handle_next() is None  # given up: nobody tries it again
    finally:
        with sessions.begin() as session:
            session.execute(InboxUpdate.__table__.delete())
