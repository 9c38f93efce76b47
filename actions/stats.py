"""Statistics for `/statistik [hari]`: one agency's tickets (or all) over the last days.

One query reads the tickets that count (created or resolved in the window, or overdue now),
one more the ratings given in the window; medians and averages are computed in Python, so
SQLite and PostgreSQL give the same numbers.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from statistics import mean, median

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from actions.domain import EventKind, NotFound
from actions.models import Agency, Category, Ticket, TicketEvent
from actions.sla import overdue_condition


@dataclass(frozen=True)
class CategoryStats:
    category: str  # the category code
    opened: int
    resolved: int
    overdue: int
    average_rating: float | None
    ratings: int


@dataclass(frozen=True)
class Stats:
    """The counters of a window of `days` days ending at the moment asked.

    `opened` and the medians cover tickets created in the window; `resolved` tickets whose
    resolution fell in it; `overdue` the tickets overdue now, whenever they were created;
    the rating figures the ratings given in the window.
    """

    days: int
    agency: str | None  # the agency code, None for all agencies
    opened: int
    resolved: int
    overdue: int
    median_first_response_hours: float | None
    median_resolution_hours: float | None
    average_rating: float | None
    ratings: int
    by_category: tuple[CategoryStats, ...]


def _hours(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 3600


def _stars(data: object) -> int | None:
    stars = data.get("stars") if isinstance(data, dict) else None
    if isinstance(stars, bool) or not isinstance(stars, int) or not 1 <= stars <= 5:
        return None
    return stars


def agency_statistics(
    session: Session, *, agency_code: str | None, days: int, now: datetime
) -> Stats:
    """Return the statistics of one agency (`agency_code`), or of all when it is None.

    The window is `now - days` to `now`, both ends included. Raise NotFound for an unknown
    agency and ValueError for a window of less than one day.
    """
    if days < 1:
        raise ValueError("the window must be at least one day")
    if now.tzinfo is None:
        raise ValueError("naive datetime given to the statistics; use an aware one")
    now = now.astimezone(UTC)
    start = now - timedelta(days=days)
    agency_filter = []
    if agency_code is not None:
        agency_id = session.scalar(select(Agency.id).where(Agency.code == agency_code))
        if agency_id is None:
            raise NotFound(f"no agency with code {agency_code!r}")
        agency_filter.append(Ticket.agency_id == agency_id)

    created_in = Ticket.created_at.between(start, now)
    resolved_in = Ticket.resolved_at.between(start, now)
    overdue = overdue_condition(now)
    rows = session.execute(
        select(
            Category.code,
            Ticket.created_at,
            Ticket.first_response_at,
            Ticket.resolved_at,
            created_in.label("created_in"),
            resolved_in.label("resolved_in"),
            overdue.label("overdue"),
        )
        .join(Ticket.category)
        .where(or_(created_in, resolved_in, overdue), *agency_filter)
    ).all()

    opened: dict[str, int] = defaultdict(int)
    resolved: dict[str, int] = defaultdict(int)
    late: dict[str, int] = defaultdict(int)
    first_response_hours: list[float] = []
    resolution_hours: list[float] = []
    for code, created_at, first_response_at, resolved_at, is_new, is_resolved, is_late in rows:
        if is_new:
            opened[code] += 1
            if first_response_at is not None:
                first_response_hours.append(_hours(created_at, first_response_at))
            if resolved_at is not None:
                resolution_hours.append(_hours(created_at, resolved_at))
        resolved[code] += bool(is_resolved)
        late[code] += bool(is_late)

    stars: dict[str, list[int]] = defaultdict(list)
    for code, data in session.execute(
        select(Category.code, TicketEvent.data)
        .join(Ticket, Ticket.id == TicketEvent.ticket_id)
        .join(Ticket.category)
        .where(
            and_(TicketEvent.kind == EventKind.RATING, TicketEvent.created_at.between(start, now)),
            *agency_filter,
        )
    ):
        value = _stars(data)
        if value is not None:
            stars[code].append(value)

    all_stars = [s for values in stars.values() for s in values]
    codes = {*opened, *resolved, *late, *stars}
    by_category = tuple(
        sorted(
            (
                CategoryStats(
                    category=code,
                    opened=opened[code],
                    resolved=resolved[code],
                    overdue=late[code],
                    average_rating=float(mean(stars[code])) if stars[code] else None,
                    ratings=len(stars[code]),
                )
                for code in codes
                if opened[code] or resolved[code] or late[code] or stars[code]
            ),
            key=lambda c: (-c.opened, -c.overdue, c.category),
        )
    )
    return Stats(
        days=days,
        agency=agency_code,
        opened=sum(opened.values()),
        resolved=sum(resolved.values()),
        overdue=sum(late.values()),
        median_first_response_hours=median(first_response_hours) if first_response_hours else None,
        median_resolution_hours=median(resolution_hours) if resolution_hours else None,
        average_rating=float(mean(all_stars)) if all_stars else None,
        ratings=len(all_stars),
        by_category=by_category,
    )
