"""Processed update ids: a redelivery is dropped; old records are forgotten."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import delete, update

from actions.db import make_session_factory
from actions.inbox import (
    BACKOFF,
    Backlog,
    NewUpdate,
    backlog,
    failed,
    forget_updates,
    handled,
    put,
    record_update,
    requeue,
    take,
)
from actions.models import InboxSender, InboxUpdate


def test_an_update_is_recorded_once_per_channel(session):
    assert record_update(session, channel="telegram", update_id="42")
    assert not record_update(session, channel="telegram", update_id="42")
    assert record_update(session, channel="whatsapp", update_id="42")


def test_a_rolled_back_update_can_be_handled_again(session):
    assert record_update(session, channel="telegram", update_id="7")
    session.rollback()
    assert record_update(session, channel="telegram", update_id="7")


def test_records_older_than_the_window_are_forgotten(session):
    with time_machine.travel(datetime(2026, 11, 1, tzinfo=UTC), tick=False):
        record_update(session, channel="telegram", update_id="old")
    record_update(session, channel="telegram", update_id="new")
    session.commit()
    assert forget_updates(session, older_than=timedelta(hours=48)) == 1
    assert record_update(session, channel="telegram", update_id="old")
    assert not record_update(session, channel="telegram", update_id="new")


# -- the inbox queue -------------------------------------------------------------------------

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


def _put(session, *updates: tuple[str, str], channel: str = "telegram") -> int:
    new = [NewUpdate(uid, sender, {"n": uid}) for uid, sender in updates]
    return put(session, channel=channel, updates=new, now=NOW)


def test_an_update_pending_in_the_inbox_is_stored_once(session):
    assert _put(session, ("1", "a"), ("2", "a")) == 2
    assert _put(session, ("2", "a"), ("3", "b")) == 1
    session.commit()
    assert backlog(session) == Backlog(pending=3, failed=0, oldest=NOW)


def test_one_senders_updates_are_taken_in_order_and_one_at_a_time(session):
    _put(session, ("1", "a"), ("2", "a"), ("3", "b"))
    session.commit()
    first = take(session, channels=["telegram"], now=NOW)
    assert (first.update_id, first.sender, first.payload) == ("1", "a", {"n": "1"})
    handled(session, first)
    second = take(session, channels=["telegram"], now=NOW)
    assert second.update_id == "2"  # a's next, now that 1 is done
    session.commit()


def test_a_failed_update_holds_its_sender_back_until_retried_and_not_the_others(session):
    _put(session, ("1", "a"), ("2", "a"), ("3", "b"))
    session.commit()
    first = take(session, channels=["telegram"], now=NOW)
    session.rollback()  # the turn failed
    failed(session, first, error="boom", now=NOW, give_up=False)
    session.commit()
    other = take(session, channels=["telegram"], now=NOW)
    assert other.update_id == "3"  # a waits behind its failed update
    handled(session, other)
    session.commit()
    assert take(session, channels=["telegram"], now=NOW) is None
    later = NOW + BACKOFF
    again = take(session, channels=["telegram"], now=later)
    assert (again.update_id, again.attempts) == ("1", 1)
    failed(session, again, error="boom", now=later, give_up=True)
    session.commit()
    assert take(session, channels=["telegram"], now=later).update_id == "2"  # given up: a goes on
    session.rollback()
    assert backlog(session).failed == 1


def test_only_the_channels_asked_for_are_taken(session):
    _put(session, ("1", "a"), channel="whatsapp")
    session.commit()
    assert take(session, channels=["telegram"], now=NOW) is None
    assert take(session, channels=["whatsapp", "telegram"], now=NOW).channel == "whatsapp"
    session.rollback()


@pytest.mark.postgres
def test_concurrent_workers_take_each_update_once_and_never_two_of_one_sender(postgres_engine):
    """Eight workers on PostgreSQL, each update handled in its own transaction."""
    sessions = make_session_factory(postgres_engine)
    senders = [f"s{i}" for i in range(20)]
    with sessions.begin() as session:
        _put(session, *((f"{k}-{s}", s) for k in range(10) for s in senders))
    handled_ids: list[str] = []
    busy: set[str] = set()
    overlap: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with sessions.begin() as session:
                got = take(session, channels=["telegram"], now=NOW)
                if got is None:
                    return
                with lock:
                    if got.sender in busy:
                        overlap.append(got.sender)
                    busy.add(got.sender)
                time.sleep(0.001)
                with lock:
                    busy.discard(got.sender)
                    handled_ids.append(got.update_id)
                handled(session, got)

    try:
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert overlap == []
        assert sorted(handled_ids) == sorted(f"{k}-{s}" for k in range(10) for s in senders)
        for s in senders:  # each sender's updates in the order they came
            assert [u for u in handled_ids if u.endswith(f"-{s}")] == [
                f"{k}-{s}" for k in range(10)
            ]
    finally:
        with sessions.begin() as session:
            session.execute(delete(InboxUpdate))


def test_a_sender_dropped_while_its_update_came_is_queued_again_in_order(session):
    """Enqueuing takes no lock: a worker finishing a sender's last update may drop the sender
    just as a new update of theirs is stored. `requeue` finds them; and a later update never
    jumps ahead of an older one left without a head."""
    _put(session, ("1", "a"), ("2", "a"))
    session.execute(delete(InboxSender))  # as the race leaves it
    session.commit()
    assert take(session, channels=["telegram"], now=NOW) is None
    _put(session, ("3", "a"))  # a's next update: the head is still a's oldest
    session.commit()
    assert take(session, channels=["telegram"], now=NOW).update_id == "1"
    session.rollback()
    session.execute(delete(InboxSender))
    session.commit()
    assert requeue(session, now=NOW) == 1
    session.commit()
    first = take(session, channels=["telegram"], now=NOW)
    assert first.update_id == "1"
    handled(session, first)
    assert take(session, channels=["telegram"], now=NOW).update_id == "2"
    session.rollback()


def test_a_head_already_handled_is_passed_over_for_the_senders_real_next(session):
    """`put` reads the pending updates of a sender it queues without waiting for a lock: it
    may name as head one a worker was just finishing. `take` moves on to the real next."""
    _put(session, ("1", "a"), ("2", "a"), ("3", "b"))
    session.commit()
    first = take(session, channels=["telegram"], now=NOW)
    handled(session, first)
    session.execute(update(InboxSender).where(InboxSender.sender == "a").values(head_id=first.id))
    session.execute(update(InboxSender).where(InboxSender.sender == "b").values(head_id=10**6))
    session.commit()
    assert take(session, channels=["telegram"], now=NOW).update_id == "2"
    session.rollback()
    taken = []
    while (got := take(session, channels=["telegram"], now=NOW)) is not None:
        taken.append(got.update_id)
        handled(session, got)
    assert taken == ["2", "3"]
    session.commit()
