"""The outbox dispatcher: each message once, with two dispatchers and across a crash."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

from sqlalchemy import select

from actions.domain import OfficerRole, OutboxState
from actions.models import Outbox
from actions.people import add_officer
from actions.tickets import Action, transition
from bot.dispatcher import LEASE, DeliveryError, Dispatcher


class Recorder:
    """Stands in for the chat platform: records what would have been sent."""

    def __init__(self, fail: DeliveryError | None = None) -> None:
        self.sent: list[tuple[str, str]] = []
        self.fail = fail
        self.lock = threading.Lock()

    async def send(self, chat_id: str, message) -> None:
        if self.fail is not None:
            raise self.fail
        with self.lock:
            self.sent.append((chat_id, message.text))


def _resident_messages(session, make_ticket, clock, n: int) -> None:
    for _ in range(n):
        ticket = make_ticket(now=clock[0])
        transition(session, ticket, Action.START, actor=None, note="dicek", now=clock[0])
    session.commit()


def test_status_messages_are_rendered_in_the_residents_language(
    session, make_ticket, responses, clock
):
    _resident_messages(session, make_ticket, clock, 1)
    sender = Recorder()
    dispatcher = Dispatcher(
        _factory(session), responses, {"telegram": sender}, clock=lambda: clock[0]
    )
    assert asyncio.run(dispatcher.run_once()) == 1
    ((chat_id, text),) = sender.sent
    assert chat_id == "5001"
    assert text == responses.get(
        "id",
        "notify.ticket.status.in_progress",
        number="PKU-2026-000001",
        agency="Dinas PUPR",
        note=responses.get("id", "notify.ticket.note", note="dicek"),
    )


def test_two_dispatchers_never_send_one_message_twice(session, make_ticket, responses, clock):
    _resident_messages(session, make_ticket, clock, 30)
    sender = Recorder()
    workers = [
        Dispatcher(
            _factory(session),
            responses,
            {"telegram": sender},
            clock=lambda: clock[0],
            worker=f"w{i}",
        )
        for i in range(2)
    ]

    def work(d: Dispatcher) -> None:
        while asyncio.run(d.run_once(limit=3)):
            pass

    threads = [threading.Thread(target=work, args=(d,)) for d in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(sender.sent) == 30 and len(set(sender.sent)) == 30
    with _factory(session)() as s:
        states = set(s.scalars(select(Outbox.state).where(Outbox.resident_id.is_not(None))))
    assert states == {OutboxState.SENT}


def test_a_message_claimed_by_a_crashed_dispatcher_is_sent_after_its_lease(
    session, make_ticket, responses, clock
):
    _resident_messages(session, make_ticket, clock, 1)
    crashed = Dispatcher(
        _factory(session),
        responses,
        {"telegram": Recorder()},
        clock=lambda: clock[0],
        worker="crashed",
    )
    assert len(crashed.claim()) == 1  # claimed, then the process died before sending
    sender = Recorder()
    other = Dispatcher(
        _factory(session), responses, {"telegram": sender}, clock=lambda: clock[0], worker="other"
    )
    assert asyncio.run(other.run_once()) == 0  # still leased
    clock[0] += LEASE + timedelta(seconds=1)
    assert asyncio.run(other.run_once()) == 1
    assert asyncio.run(other.run_once()) == 0
    assert len(sender.sent) == 1


def test_a_temporary_failure_is_retried_with_backoff_and_a_blocked_bot_is_not(
    session, make_ticket, responses, clock
):
    _resident_messages(session, make_ticket, clock, 1)
    flaky = Dispatcher(
        _factory(session),
        responses,
        {"telegram": Recorder(DeliveryError("502 Bad Gateway"))},
        clock=lambda: clock[0],
    )
    assert asyncio.run(flaky.run_once()) == 0
    with _factory(session)() as s:
        row = s.scalar(select(Outbox).where(Outbox.resident_id.is_not(None)))
        assert (row.state, row.attempts) == (OutboxState.PENDING, 1)
        assert row.next_attempt_at > clock[0]
    assert asyncio.run(flaky.run_once()) == 0  # not due yet
    clock[0] += timedelta(minutes=1)
    blocked = Dispatcher(
        _factory(session),
        responses,
        {"telegram": Recorder(DeliveryError("Forbidden", permanent=True))},
        clock=lambda: clock[0],
    )
    assert asyncio.run(blocked.run_once()) == 0
    with _factory(session)() as s:
        row = s.scalar(select(Outbox).where(Outbox.resident_id.is_not(None)))
        assert (row.state, row.attempts) == (OutboxState.FAILED, 2)
        assert "Forbidden" in row.last_error


def test_a_message_for_an_agency_reaches_each_of_its_officers(
    session, make_ticket, responses, clock
):
    add_officer(
        session,
        channel="telegram",
        platform_user_id="8001",
        role=OfficerRole.OFFICER,
        agency_code="PUPR",
    )
    add_officer(
        session,
        channel="telegram",
        platform_user_id="8002",
        role=OfficerRole.SUPERVISOR,
        agency_code="PUPR",
    )
    add_officer(
        session,
        channel="telegram",
        platform_user_id="8003",
        role=OfficerRole.OFFICER,
        agency_code="DLHK",
    )
    make_ticket("jalan", now=clock[0])
    session.commit()
    sender = Recorder()
    dispatcher = Dispatcher(
        _factory(session), responses, {"telegram": sender}, clock=lambda: clock[0]
    )
    asyncio.run(dispatcher.run_once())
    assert sorted(chat for chat, _ in sender.sent) == ["8001", "8002"]
    assert all("PKU-2026-000001" in text for _, text in sender.sent)


def _factory(session):
    from actions.db import make_session_factory

    return make_session_factory(session.get_bind())
