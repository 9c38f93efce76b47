"""Inbox workers side by side: an update that fails is recorded, given up on and apologised
for once, whichever worker gets to it."""

from __future__ import annotations

from typing import Any

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


def test_a_failure_two_workers_met_is_recorded_and_apologised_for_once(engine):
    # The update is free again as soon as the failed turn rolls back; a second worker may
    # take it, fail and give up before the first records its failure. Then the first used
    # to record it again and apologise a second time (the resident heard "sorry" twice,
    # the second time in answer to their next message).
    sessions = make_session_factory(engine)
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

    def late(stored: StoredUpdate, exc: Exception, now: Any) -> Any:
        assert second.handle_next() is not None  # the second worker gets in between
        return record(stored, exc, now)

    first._failed = late  # type: ignore[method-assign]
    assert first.handle_next() is not None
    assert handler.apologies == ["24"]
    with sessions() as session:
        row = session.execute(select(InboxUpdate)).scalar_one()
        assert (row.state, row.attempts) == (InboxState.FAILED, MAX_ATTEMPTS)
