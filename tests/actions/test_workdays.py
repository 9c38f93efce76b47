"""Due dates in working days: weekends and the city's holidays are skipped, in WIB."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from actions.workdays import add_working_days, due_at, working_days_between

WIB = ZoneInfo("Asia/Jakarta")
CHRISTMAS = frozenset({date(2026, 12, 24), date(2026, 12, 25)})


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (date(2026, 11, 30), 3, date(2026, 12, 3)),  # Monday -> Thursday
        (date(2026, 12, 4), 3, date(2026, 12, 9)),  # Friday -> Wednesday, over a weekend
        (date(2026, 12, 5), 1, date(2026, 12, 7)),  # Saturday -> Monday
        (date(2026, 12, 23), 3, date(2026, 12, 30)),  # over Christmas and a weekend
        (date(2026, 12, 23), 0, date(2026, 12, 23)),
    ],
)
def test_add_working_days_skips_weekends_and_holidays(start, days, expected):
    assert add_working_days(start, days, CHRISTMAS) == expected


def test_due_is_the_end_of_the_last_working_day_in_the_city_time_zone():
    # Friday 18 Dec 2026 18:00 UTC is already Saturday 01:00 in Pekanbaru.
    start = datetime(2026, 12, 18, 18, 0, tzinfo=UTC)
    due = due_at(start, 3, tz=WIB, holidays=CHRISTMAS)
    assert due == datetime(2026, 12, 23, 23, 59, 59, tzinfo=WIB)
    assert due.tzinfo is UTC


def test_a_deadline_over_the_christmas_holidays():
    start = datetime(2026, 12, 23, 2, 0, tzinfo=UTC)  # Wednesday 09:00 WIB
    assert due_at(start, 3, tz=WIB, holidays=CHRISTMAS) == datetime(
        2026, 12, 30, 23, 59, 59, tzinfo=WIB
    )
    assert due_at(start, 3, tz=WIB, holidays=frozenset()) == datetime(
        2026, 12, 28, 23, 59, 59, tzinfo=WIB
    )


def test_working_days_between_counts_after_the_start_up_to_the_end():
    assert working_days_between(date(2026, 12, 23), date(2026, 12, 30), CHRISTMAS) == 3
    assert working_days_between(date(2026, 12, 30), date(2026, 12, 23), CHRISTMAS) == 0


def test_negative_days_are_refused():
    with pytest.raises(ValueError, match="negative"):
        add_working_days(date(2026, 1, 1), -1, frozenset())


def test_a_ticket_gets_its_due_dates_from_the_city_file(session, make_ticket):
    # Created Wednesday 23 Dec 2026 09:00 WIB: the city file lists 24 and 25 December.
    ticket = make_ticket("sampah", now=datetime(2026, 12, 23, 2, 0, tzinfo=UTC))
    assert ticket.first_response_due_at == datetime(2026, 12, 30, 23, 59, 59, tzinfo=WIB)
    # sampah, 5 working days: 28, 29, 30, 31 Dec; 1 Jan is New Year's Day, then a weekend.
    assert ticket.resolution_due_at == datetime(2027, 1, 4, 23, 59, 59, tzinfo=WIB)
