"""Ticket numbers: PKU-2026-000123, unique and gap-free under concurrent creation."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from actions.db import make_session_factory
from actions.domain import TicketKind
from actions.models import Resident, Ticket
from actions.people import get_or_create_resident
from actions.tickets import create_ticket, next_ticket_number


def test_numbers_carry_prefix_year_and_a_six_digit_sequence(session, make_ticket):
    first, second = make_ticket(), make_ticket()
    assert (first.number, second.number) == ("PKU-2026-000001", "PKU-2026-000002")


def test_the_sequence_starts_again_each_year_in_the_city_time_zone(session, make_ticket):
    make_ticket(now=datetime(2026, 12, 31, 16, 0, tzinfo=UTC))  # 23:00 WIB, still 2026
    new_year = make_ticket(now=datetime(2026, 12, 31, 17, 30, tzinfo=UTC))  # 00:30 WIB
    assert new_year.number == "PKU-2027-000001"


def test_a_rolled_back_creation_gives_its_number_back(session, make_ticket):
    make_ticket()
    session.commit()
    make_ticket()
    session.rollback()
    assert make_ticket().number == "PKU-2026-000002"


@pytest.mark.parametrize("workers", [200])
def test_concurrent_creations_get_distinct_numbers_with_no_gaps(loaded, city, workers):
    factory = make_session_factory(loaded)
    with factory.begin() as s:
        reporter_ids = [
            get_or_create_resident(s, channel="telegram", platform_user_id=str(7000 + i)).id
            for i in range(workers)
        ]
    start = threading.Barrier(min(workers, 20))
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            if i < 20:
                start.wait(timeout=30)  # the first twenty start at the same instant
            with factory.begin() as s:
                reporter = s.get(Resident, reporter_ids[i])
                create_ticket(
                    s,
                    city=city.config,
                    reporter=reporter,
                    kind=TicketKind.LAPOR,
                    category_code="sampah",
                    description=f"sampah menumpuk {i}",
                    now=datetime(2026, 11, 2, 3, 0, tzinfo=UTC),
                )
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    with factory() as s:
        numbers = sorted(s.scalars(select(Ticket.number)))
    assert numbers == [f"PKU-2026-{n:06d}" for n in range(1, workers + 1)]


def test_each_prefix_and_year_counts_on_its_own(session):
    assert next_ticket_number(session, prefix="PKU", year=2026) == "PKU-2026-000001"
    assert next_ticket_number(session, prefix="PKU", year=2027) == "PKU-2027-000001"
    assert next_ticket_number(session, prefix="BDG", year=2026) == "BDG-2026-000001"
    assert next_ticket_number(session, prefix="PKU", year=2026) == "PKU-2026-000002"
