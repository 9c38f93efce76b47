from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.city import LoadedCity
from actions.domain import Privacy, TicketKind
from actions.models import Area, Resident, Ticket
from actions.people import get_or_create_resident

# A Monday in WIB working hours, with no holiday near.
MONDAY = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)


@pytest.fixture
def resident(session: Session) -> Resident:
    return get_or_create_resident(
        session, channel="telegram", platform_user_id="5001", display_name="Siti"
    )


@pytest.fixture
def make_ticket(session: Session, city: LoadedCity, resident: Resident) -> Callable[..., Ticket]:
    from actions.tickets import create_ticket

    def make(
        category: str = "jalan",
        kelurahan: str | None = None,
        kind: TicketKind = TicketKind.LAPOR,
        reporter: Resident | None = None,
        now: datetime = MONDAY,
    ) -> Ticket:
        area = None
        if kelurahan is not None:
            area = session.scalar(select(Area).where(Area.name == kelurahan))
            assert area is not None, kelurahan
        return create_ticket(
            session,
            city=city.config,
            reporter=reporter or resident,
            kind=kind,
            category_code=category,
            description="jalan berlubang besar, hati-hati 0812-3456-7890",
            location_text="Jl. Garuda Sakti km 2",
            area=area,
            privacy=Privacy.BIASA,
            now=now,
        )

    return make
