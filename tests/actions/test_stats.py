"""`/statistik`: counters, medians and ratings of a window, per agency and for the city."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from actions.domain import EventKind, NotFound, TicketKind
from actions.models import Ticket, TicketEvent
from actions.stats import CategoryStats, Stats, agency_statistics
from actions.tickets import Action, transition

WIB = ZoneInfo("Asia/Jakarta")


def wib(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 12) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=WIB)


NOW = wib(10, 12)  # Thursday 10 Dec 2026, noon
START = NOW - timedelta(days=7)  # Thursday 3 Dec, noon: the 7-day window's first instant


def _rate(session: Session, ticket: Ticket, stars: int, at: datetime) -> None:
    session.add(
        TicketEvent(
            ticket_id=ticket.id,
            kind=EventKind.RATING,
            actor_id=ticket.reporter_id,
            data={"stars": stars},
            created_at=at,
        )
    )


@pytest.fixture
def tickets(session: Session, make_ticket) -> dict[str, Ticket]:
    """The tickets below, with their first-response and resolution hours.

    PUPR (jalan, drainase_banjir), all `lapor` (3 working days to a first response):
      A  jalan     opened Fri 4 Dec 08:00   started +2 h, resolved Mon 7 08:00 (+72 h)  ★4
      B  jalan     opened Mon 7 Dec 08:00   started +6 h, still open
      C  drainase  opened Tue 8 Dec 08:00   resolved the same day 18:00 (+10 h)      ★2 (Wed 9)
      D  jalan     opened Mon 23 Nov        never answered: overdue since 26 Nov
      E  jalan     opened Mon 30 Nov        resolved Fri 4 Dec 08:00 (in the window) ★5;
                                            ★1 a second before the window (not counted)
      G  jalan     opened at START exactly  never answered: overdue since Tue 8 Dec
      H  jalan     opened a second before START, never answered: overdue too
      K  jalan     opened at NOW exactly
      L  jalan     opened a second after NOW (not counted)
    DLHK (sampah):
      S1 sampah    opened Fri 4 Dec 08:00   started +4 h, resolved +12 h           ★3
      S2 sampah    opened Wed 9 Dec 08:00   not answered yet (due Mon 14 Dec)
    """
    t = {
        "D": make_ticket("jalan", now=wib(23, 8, month=11)),
        "E": make_ticket("jalan", now=wib(30, 8, month=11)),
        "H": make_ticket("jalan", now=START - timedelta(seconds=1)),
        "G": make_ticket("jalan", now=START),
        "A": make_ticket("jalan", now=wib(4, 8)),
        "S1": make_ticket("sampah", now=wib(4, 8)),
        "B": make_ticket("jalan", now=wib(7, 8)),
        "C": make_ticket("drainase_banjir", now=wib(8, 8)),
        "S2": make_ticket("sampah", now=wib(9, 8)),
        "K": make_ticket("jalan", now=NOW),
        "L": make_ticket("jalan", now=NOW + timedelta(seconds=1)),
    }
    moves = [
        ("E", Action.START, wib(30, 10, month=11)),
        ("E", Action.RESOLVE, wib(4, 8)),
        ("A", Action.START, wib(4, 10)),
        ("S1", Action.START, wib(4, 12)),
        ("S1", Action.RESOLVE, wib(4, 20)),
        ("A", Action.RESOLVE, wib(7, 8)),
        ("B", Action.START, wib(7, 14)),
        ("C", Action.RESOLVE, wib(8, 18)),
    ]
    for name, action, at in moves:
        transition(session, t[name], action, actor=None, now=at)
    _rate(session, t["E"], 1, START - timedelta(seconds=1))
    _rate(session, t["E"], 5, wib(4, 9))
    _rate(session, t["A"], 4, wib(7, 9))
    _rate(session, t["A"], 9, wib(7, 9))  # not a rating of 1 to 5: ignored
    _rate(session, t["S1"], 3, wib(5, 9))
    _rate(session, t["C"], 2, wib(9, 10))
    session.commit()
    assert {x.agency.code for x in t.values()} == {"PUPR", "DLHK"}
    return t


def test_an_admin_sees_the_whole_city_over_the_last_week(session, tickets):
    stats = agency_statistics(session, agency_code=None, days=7, now=NOW)

    assert stats == Stats(
        days=7,
        agency=None,
        opened=7,  # A B C G K S1 S2 (START and NOW are inside; H and L are not)
        resolved=4,  # A C E S1
        overdue=3,  # D G H: unanswered past their first-response day
        # first responses of tickets opened in the window: A 2, S1 4, B 6, C 10 -> (4+6)/2
        median_first_response_hours=5.0,
        # resolutions of tickets opened in the window: C 10, S1 12, A 72 -> 12
        median_resolution_hours=12.0,
        average_rating=3.5,  # E 5, A 4, S1 3, C 2 -> 14/4
        ratings=4,
        by_category=(
            CategoryStats("jalan", opened=4, resolved=2, overdue=3, average_rating=4.5, ratings=2),
            CategoryStats(
                "sampah", opened=2, resolved=1, overdue=0, average_rating=3.0, ratings=1
            ),
            CategoryStats(
                "drainase_banjir", opened=1, resolved=1, overdue=0, average_rating=2.0, ratings=1
            ),
        ),
    )


def test_a_supervisor_sees_only_their_agency(session, tickets):
    pupr = agency_statistics(session, agency_code="PUPR", days=7, now=NOW)

    assert (pupr.agency, pupr.opened, pupr.resolved, pupr.overdue) == ("PUPR", 5, 3, 3)
    assert pupr.median_first_response_hours == 6.0  # A 2, B 6, C 10
    assert pupr.median_resolution_hours == 41.0  # C 10, A 72 -> (10+72)/2
    assert pupr.average_rating == pytest.approx(11 / 3)  # E 5, A 4, C 2
    assert pupr.ratings == 3
    assert [c.category for c in pupr.by_category] == ["jalan", "drainase_banjir"]

    dlhk = agency_statistics(session, agency_code="DLHK", days=7, now=NOW)
    assert dlhk == Stats(
        days=7,
        agency="DLHK",
        opened=2,
        resolved=1,
        overdue=0,
        median_first_response_hours=4.0,
        median_resolution_hours=12.0,
        average_rating=3.0,
        ratings=1,
        by_category=(
            CategoryStats(
                "sampah", opened=2, resolved=1, overdue=0, average_rating=3.0, ratings=1
            ),
        ),
    )


def test_a_short_window_with_no_answers_has_no_medians_and_no_rating(session, tickets):
    # The last day, from Wed 9 Dec noon: only K was opened (at NOW, unanswered), nothing was
    # resolved and C's rating came at 10:00, before the window; the overdue stay overdue.
    stats = agency_statistics(session, agency_code=None, days=1, now=NOW)

    assert (stats.opened, stats.resolved, stats.overdue, stats.ratings) == (1, 0, 3, 0)
    assert stats.median_first_response_hours is None
    assert stats.median_resolution_hours is None
    assert stats.average_rating is None
    assert stats.by_category == (
        CategoryStats("jalan", opened=1, resolved=0, overdue=3, average_rating=None, ratings=0),
    )


def test_an_agency_with_no_tickets_gets_zeros(session, tickets):
    stats = agency_statistics(session, agency_code="DISHUB", days=30, now=NOW)

    assert (stats.opened, stats.resolved, stats.overdue, stats.ratings) == (0, 0, 0, 0)
    assert stats.average_rating is None and stats.by_category == ()


def test_statistics_refuse_an_unknown_agency_and_an_empty_window(session):
    with pytest.raises(NotFound):
        agency_statistics(session, agency_code="NOPE", days=7, now=NOW)
    with pytest.raises(ValueError, match="at least one day"):
        agency_statistics(session, agency_code=None, days=0, now=NOW)


def test_a_question_counts_like_a_report(session, make_ticket):
    # Kinds are not told apart: a tanya answered in 3 h is a first response like any other.
    ticket = make_ticket("jalan", kind=TicketKind.TANYA, now=wib(9, 8))
    transition(session, ticket, Action.RESOLVE, actor=None, now=wib(9, 11))
    session.commit()

    stats = agency_statistics(session, agency_code="PUPR", days=7, now=NOW)

    assert (stats.opened, stats.resolved) == (1, 1)
    assert stats.median_first_response_hours == stats.median_resolution_hours == 3.0
