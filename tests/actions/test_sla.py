"""The SLA clock under a frozen clock, across the Christmas holidays and a weekend.

Pekanbaru's calendar around the end of 2026 (WIB, UTC+7):

    Wed 23 Dec  working day (tickets below are opened here, 09:00)
    Thu 24 Dec  cuti bersama Natal      Fri 25 Dec  Natal
    Sat 26, Sun 27 Dec  weekend
    Mon 28, Tue 29, Wed 30, Thu 31 Dec  working days
    Fri 1 Jan 2027  Tahun Baru          Sat 2, Sun 3 Jan  weekend
    Mon 4, Tue 5 Jan  working days

A question (tanya: 3 working days to a first response, 5 to resolve) opened on Wed 23 Dec is
due a first response by the end of Wed 30 Dec (28, 29, 30) and resolution by the end of
Mon 4 Jan (28, 29, 30, 31, 4).
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.db import make_session_factory
from actions.domain import Audience, OfficerRole, TicketKind, TicketStatus
from actions.models import Outbox, Ticket
from actions.people import add_officer
from actions.sla import (
    FIRST_RESPONSE_OVERDUE,
    REMINDER,
    RESOLUTION_OVERDUE,
    SlaResult,
    is_overdue,
    overdue_condition,
    run_sla_check,
    working_days_late,
)
from actions.tickets import Action, transition
from bot.responses import Responses

WIB = ZoneInfo("Asia/Jakarta")
RESPONSES_DIR = Path(__file__).resolve().parents[2] / "data" / "responses"


def wib(month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    year = 2027 if month == 1 else 2026
    return datetime(year, month, day, hour, minute, second, tzinfo=WIB)


OPENED = wib(12, 23, 9)
NOTHING = SlaResult()


@pytest.fixture
def staff(session: Session) -> dict[str, int]:
    """The resident ids of PUPR's officer and supervisor, and of the two city admins."""
    people = {
        "officer": ("8001", OfficerRole.OFFICER, "PUPR"),
        "supervisor": ("8002", OfficerRole.SUPERVISOR, "PUPR"),
        "admin": ("8003", OfficerRole.ADMIN, None),
        "admin2": ("8004", OfficerRole.ADMIN, None),
        "dlhk_supervisor": ("8005", OfficerRole.SUPERVISOR, "DLHK"),
    }
    ids = {
        name: add_officer(
            session, channel="telegram", platform_user_id=uid, role=role, agency_code=agency
        ).resident_id
        for name, (uid, role, agency) in people.items()
    }
    session.commit()
    return ids


def _question(make_ticket, session: Session, assignee: int | None) -> Ticket:
    ticket = make_ticket("jalan", kind=TicketKind.TANYA, now=OPENED)
    ticket.assignee_id = assignee
    session.commit()
    return ticket


def _run(session: Session, city, at: datetime) -> SlaResult:
    result = run_sla_check(session, city=city.config, now=at)
    session.commit()
    return result


def _sla_rows(session: Session) -> list[Outbox]:
    return list(
        session.scalars(select(Outbox).where(Outbox.template.like("sla.%")).order_by(Outbox.id))
    )


def _sent(session: Session) -> list[tuple[str, int, str]]:
    return [(r.template, r.resident_id, r.params["number"]) for r in _sla_rows(session)]


def test_the_due_dates_skip_the_christmas_holidays_and_the_weekends(session, make_ticket):
    ticket = make_ticket("jalan", kind=TicketKind.TANYA, now=OPENED)
    assert ticket.first_response_due_at == wib(12, 30, 23, 59, 59)
    assert ticket.resolution_due_at == wib(1, 4, 23, 59, 59)


def test_assignee_then_supervisor_then_admins_hear_of_a_late_ticket_once_across_holidays(
    session, make_ticket, city, staff
):
    ticket = _question(make_ticket, session, staff["officer"])
    n, version, updated_at = ticket.number, ticket.version, ticket.updated_at

    # Monday after the holidays, Tuesday, and the last hour of Wednesday: nothing is late
    # yet, and the resolution deadline (Mon 4 Jan) is more than one working day away.
    for at in (wib(12, 28, 10), wib(12, 29, 10), wib(12, 30, 23)):
        assert _run(session, city, at) == NOTHING, at
    assert _sent(session) == []

    # Thursday morning: the first-response deadline passed at midnight; the next working day
    # after Thursday is Monday 4 Jan (New Year and the weekend skipped), the resolution day.
    assert _run(session, city, wib(12, 31, 8)) == SlaResult(
        reminded=(n,), escalated_first_response=(n,)
    )
    assert _sent(session) == [
        (REMINDER, staff["officer"], n),
        (FIRST_RESPONSE_OVERDUE, staff["supervisor"], n),
    ]
    reminder, escalation = _sla_rows(session)
    assert reminder.audience is escalation.audience is Audience.OFFICER
    assert reminder.params == {
        "number": n,
        "category": "jalan",
        "agency": "Dinas PUPR",
        "due": "2027-01-04 23:59",
        "days_late": 0,
    }
    assert escalation.params["due"] == "2026-12-30 23:59"
    assert escalation.params["days_late"] == 1

    # The same afternoon and on Monday evening: already told, nothing again.
    assert _run(session, city, wib(12, 31, 15)) == NOTHING
    assert _run(session, city, wib(1, 4, 20)) == NOTHING
    assert len(_sla_rows(session)) == 2

    # Tuesday 5 Jan: the resolution deadline passed; both admins hear of it, once.
    assert _run(session, city, wib(1, 5, 8)) == SlaResult(escalated_resolution=(n,))
    assert _run(session, city, wib(1, 5, 9)) == NOTHING
    rows = _sla_rows(session)
    assert _sent(session)[2:] == [
        (RESOLUTION_OVERDUE, staff["admin"], n),
        (RESOLUTION_OVERDUE, staff["admin2"], n),
    ]
    assert rows[2].params["due"] == "2027-01-04 23:59"
    assert rows[2].params["days_late"] == 1
    session.refresh(ticket)
    assert ticket.sla_reminded_at == wib(12, 31, 8)
    assert ticket.sla_first_response_escalated_at == wib(12, 31, 8)
    assert ticket.sla_resolution_escalated_at == wib(1, 5, 8)
    # The markers are not a change of the ticket: an officer's edit cannot clash with them.
    assert (ticket.version, ticket.updated_at) == (version, updated_at)


def test_every_sla_message_renders_in_indonesian_and_english(session, make_ticket, city, staff):
    _question(make_ticket, session, staff["officer"])
    _run(session, city, wib(12, 31, 8))
    _run(session, city, wib(1, 5, 8))
    responses = Responses.load(RESPONSES_DIR)
    rows = _sla_rows(session)
    assert {r.template for r in rows} == {REMINDER, FIRST_RESPONSE_OVERDUE, RESOLUTION_OVERDUE}
    for row in rows:
        for lang in ("id", "en"):
            text = responses.get(lang, f"notify.{row.template}", **row.params)
            assert row.params["number"] in text and row.params["due"] in text, (lang, text)
            assert "Dinas PUPR" in text and "{" not in text
            if row.template != REMINDER:  # the lateness is said
                late = responses.get(
                    lang, f"notify.{row.template}", **row.params | {"days_late": 97}
                )
                assert "97" in late, (lang, late)


def test_the_reminder_looks_past_the_holiday_weekend(session, make_ticket, city, staff):
    # Opened Mon 21 Dec and due by the end of Mon 28 Dec: on Tue 22 the next working day is
    # Wed 23 (no reminder yet); on Wed 23 it is Mon 28, past Christmas and the weekend.
    ticket = make_ticket("jalan", now=wib(12, 21, 9))
    ticket.assignee_id = staff["officer"]
    ticket.resolution_due_at = wib(12, 28, 23, 59, 59)
    session.commit()

    assert _run(session, city, wib(12, 22, 10)) == NOTHING
    assert _run(session, city, wib(12, 23, 16)) == SlaResult(reminded=(ticket.number,))
    assert _sent(session) == [(REMINDER, staff["officer"], ticket.number)]


def test_the_assignee_is_reminded_the_working_day_before_the_deadline(
    session, make_ticket, city, staff
):
    # Due by the end of Wed 30 Dec: not yet on Mon 28, reminded on Tue 29.
    assigned = _question(make_ticket, session, staff["officer"])
    unassigned = _question(make_ticket, session, None)
    for ticket in (assigned, unassigned):
        ticket.resolution_due_at = wib(12, 30, 23, 59, 59)
    session.commit()

    assert _run(session, city, wib(12, 28, 10)) == NOTHING
    assert _run(session, city, wib(12, 29, 10)) == SlaResult(reminded=(assigned.number,))
    assert _run(session, city, wib(12, 30, 10)) == NOTHING
    assert _sent(session) == [(REMINDER, staff["officer"], assigned.number)]


def test_supervisor_hears_nothing_of_a_ticket_that_got_a_first_response(
    session, make_ticket, city, staff
):
    ticket = _question(make_ticket, session, staff["officer"])
    transition(session, ticket, Action.START, actor=None, now=wib(12, 29, 10))
    session.commit()

    result = _run(session, city, wib(12, 31, 8))

    assert result == SlaResult(reminded=(ticket.number,))
    assert FIRST_RESPONSE_OVERDUE not in {t for t, _, _ in _sent(session)}
    # Still in progress after its resolution deadline: the admins hear of that.
    assert _run(session, city, wib(1, 5, 8)) == SlaResult(escalated_resolution=(ticket.number,))


@pytest.mark.parametrize(
    ("actions", "status"),
    [
        ([Action.RESOLVE], TicketStatus.RESOLVED),
        ([Action.RESOLVE, Action.CLOSE], TicketStatus.CLOSED),
        ([Action.REJECT], TicketStatus.REJECTED),
    ],
)
def test_a_finished_ticket_is_left_alone_by_the_sla_job(
    session, make_ticket, city, staff, actions, status
):
    ticket = _question(make_ticket, session, staff["officer"])
    for action in actions:
        transition(session, ticket, action, actor=None, note="sudah", now=wib(12, 28, 10))
    # Even with no first response on record, a finished ticket is nobody's worry.
    ticket.first_response_at = None
    session.commit()
    assert ticket.status is status

    for at in (wib(12, 31, 8), wib(1, 5, 8)):
        assert _run(session, city, at) == NOTHING
    assert _sent(session) == []
    assert not is_overdue(ticket, wib(1, 5, 8))


def test_with_no_supervisor_the_admins_hear_of_a_missing_first_response(
    session, make_ticket, city, staff
):
    # Street lights go to PERKIM, which has no supervisor registered.
    ticket = make_ticket("lampu_jalan", kind=TicketKind.TANYA, now=OPENED)
    session.commit()
    assert ticket.agency.code == "PERKIM"

    assert _run(session, city, wib(12, 31, 8)) == SlaResult(
        escalated_first_response=(ticket.number,)
    )
    assert _sent(session) == [
        (FIRST_RESPONSE_OVERDUE, staff["admin"], ticket.number),
        (FIRST_RESPONSE_OVERDUE, staff["admin2"], ticket.number),
    ]


def test_an_escalation_nobody_can_hear_waits_until_someone_is_registered(
    session, make_ticket, city
):
    ticket = make_ticket("jalan", kind=TicketKind.TANYA, now=OPENED)
    session.commit()

    assert _run(session, city, wib(12, 31, 8)) == NOTHING
    assert ticket.sla_first_response_escalated_at is None

    admin = add_officer(
        session,
        channel="telegram",
        platform_user_id="8100",
        role=OfficerRole.ADMIN,
        agency_code=None,
    )
    session.commit()
    assert _run(session, city, wib(12, 31, 9)) == SlaResult(
        escalated_first_response=(ticket.number,)
    )
    assert _sent(session) == [(FIRST_RESPONSE_OVERDUE, admin.resident_id, ticket.number)]


def test_the_late_queue_and_the_sla_agree_on_what_is_overdue(session, make_ticket, staff):
    late = _question(make_ticket, session, None)
    answered = _question(make_ticket, session, None)
    transition(session, answered, Action.START, actor=None, now=wib(12, 28, 10))
    session.commit()

    def overdue_numbers(at: datetime) -> set[str]:
        by_sql = set(session.scalars(select(Ticket.number).where(overdue_condition(at))))
        by_python = {t.number for t in session.scalars(select(Ticket)) if is_overdue(t, at)}
        assert by_sql == by_python
        return by_sql

    assert overdue_numbers(wib(12, 30, 23)) == set()
    assert overdue_numbers(wib(12, 31, 8)) == {late.number}
    assert overdue_numbers(wib(1, 5, 8)) == {late.number, answered.number}


def test_lateness_counts_working_days_and_at_least_one(city):
    # Due end of Wed 30 Dec; on Sat 2 Jan only Thu 31 has been lost (1 Jan is a holiday).
    assert working_days_late(wib(12, 30, 23, 59, 59), wib(1, 2, 10), city=city.config) == 1
    # Due end of Thu 31 Dec; on Sat 2 Jan no working day has been lost yet, but it is late.
    assert working_days_late(wib(12, 31, 23, 59, 59), wib(1, 2, 10), city=city.config) == 1
    # Due end of Wed 23 Dec; on Tue 29 Dec: Mon 28 and Tue 29.
    assert working_days_late(wib(12, 23, 23, 59, 59), wib(12, 29, 10), city=city.config) == 2


def test_the_sla_clock_refuses_a_naive_time(session, city):
    with pytest.raises(ValueError, match="naive"):
        run_sla_check(session, city=city.config, now=datetime(2026, 12, 31, 8))  # noqa: DTZ001


def test_two_processes_running_the_job_at_once_send_each_message_once(
    loaded, session, make_ticket, city, staff
):
    # PUPR's ticket is past both deadlines (supervisor, then the admins); the PUPR question is
    # due soon (its assignee); DLHK's ticket is past its first-response deadline.
    late = _question(make_ticket, session, staff["officer"])
    soon = make_ticket("jalan", kind=TicketKind.TANYA, now=wib(12, 30, 9))
    soon.assignee_id = staff["officer"]
    soon.resolution_due_at = wib(1, 6, 23, 59, 59)  # first response due by the end of 5 Jan
    dlhk = make_ticket("sampah", kind=TicketKind.TANYA, now=OPENED)
    session.commit()
    now = wib(1, 5, 8)
    expected = Counter(
        {
            (FIRST_RESPONSE_OVERDUE, staff["supervisor"], late.number): 1,
            (RESOLUTION_OVERDUE, staff["admin"], late.number): 1,
            (RESOLUTION_OVERDUE, staff["admin2"], late.number): 1,
            (REMINDER, staff["officer"], soon.number): 1,
            (FIRST_RESPONSE_OVERDUE, staff["dlhk_supervisor"], dlhk.number): 1,
            (RESOLUTION_OVERDUE, staff["admin"], dlhk.number): 1,
            (RESOLUTION_OVERDUE, staff["admin2"], dlhk.number): 1,
        }
    )

    factory = make_session_factory(loaded)
    workers = 4
    barrier = threading.Barrier(workers)
    results: list[SlaResult] = []
    errors: list[BaseException] = []

    def job() -> None:
        try:
            with factory() as s:
                barrier.wait(timeout=30)
                result = run_sla_check(s, city=city.config, now=now)
                s.commit()
                results.append(result)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=job) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    assert len(results) == workers

    assert Counter(_sent(session)) == expected
    told = Counter(
        n
        for r in results
        for n in (*r.reminded, *r.escalated_first_response, *r.escalated_resolution)
    )
    assert told == Counter({late.number: 2, soon.number: 1, dlhk.number: 2})
