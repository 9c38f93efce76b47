"""Tickets: numbering, routing, creation and the one function that changes their status."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.exc import StaleDataError

from actions.city import CityConfig
from actions.domain import (
    OPEN_STATUSES,
    Audience,
    ConcurrentChange,
    DomainError,
    EventKind,
    IllegalTransition,
    MissingReason,
    NotFound,
    Privacy,
    TicketKind,
    TicketStatus,
)
from actions.models import (
    Agency,
    Area,
    Category,
    City,
    Outbox,
    Resident,
    RoutingRule,
    Ticket,
    TicketEvent,
    TicketPhoto,
    TicketSequence,
    utcnow,
)
from actions.workdays import due_at


class Action(StrEnum):
    """What someone does to a ticket; each moves it to one status."""

    ROUTE = "route"
    REROUTE = "reroute"
    START = "start"
    RESOLVE = "resolve"
    REJECT = "reject"
    REOPEN = "reopen"
    CLOSE = "close"


_S = TicketStatus
_WORKING = frozenset({_S.ROUTED, _S.IN_PROGRESS, _S.REOPENED})
TRANSITIONS: dict[Action, tuple[frozenset[TicketStatus], TicketStatus]] = {
    Action.ROUTE: (frozenset({_S.NEW}), _S.ROUTED),
    Action.REROUTE: (_WORKING, _S.ROUTED),
    Action.START: (frozenset({_S.ROUTED, _S.REOPENED}), _S.IN_PROGRESS),
    Action.RESOLVE: (_WORKING, _S.RESOLVED),
    Action.REJECT: (frozenset({_S.NEW}) | _WORKING, _S.REJECTED),
    Action.REOPEN: (frozenset({_S.RESOLVED}), _S.REOPENED),
    Action.CLOSE: (frozenset({_S.RESOLVED}), _S.CLOSED),
}
# A first answer from the agency stops the first-response clock.
_FIRST_RESPONSE = frozenset({Action.START, Action.RESOLVE, Action.REJECT})


def format_number(prefix: str, year: int, sequence: int) -> str:
    return f"{prefix}-{year}-{sequence:06d}"


def next_ticket_number(session: Session, *, prefix: str, year: int) -> str:
    """Take the next number of a prefix and year.

    The counter row is bumped with UPDATE … RETURNING inside the caller's transaction: the row
    lock serialises concurrent creators, and a rolled-back creation gives its number back, so
    numbers have no gaps and no duplicates.
    """
    key = (TicketSequence.prefix == prefix, TicketSequence.year == year)
    if session.scalar(select(func.count()).select_from(TicketSequence).where(*key)) == 0:
        insert = {"postgresql": pg_insert, "sqlite": sqlite_insert}.get(
            session.get_bind().dialect.name
        )
        if insert is None:
            raise DomainError("ticket numbering supports SQLite and PostgreSQL only")
        # Two first tickets of a year may race to create the row: one insert is a no-op.
        session.execute(
            insert(TicketSequence)
            .values(prefix=prefix, year=year, last_value=0)
            .on_conflict_do_nothing()
        )
    value = session.execute(
        update(TicketSequence)
        .where(*key)
        .values(last_value=TicketSequence.last_value + 1)
        .returning(TicketSequence.last_value)
    ).scalar_one()
    return format_number(prefix, year, value)


def resolve_agency(session: Session, *, category: Category, area: Area | None) -> Agency:
    """Return the agency for a category in an area: the most specific rule, else the fallback."""
    city = session.scalar(select(City).options(joinedload(City.fallback_agency)))
    if city is None:
        raise DomainError("no city is loaded: run 'warga city load' first")
    chain = area.ancestors() if area is not None else []
    chain_ids = [a.id for a in chain] or [city.area_id]
    if city.area_id not in chain_ids:
        chain_ids.append(city.area_id)
    rules = {
        r.area_id: r
        for r in session.scalars(
            select(RoutingRule)
            .where(RoutingRule.category_id == category.id, RoutingRule.area_id.in_(chain_ids))
            .options(joinedload(RoutingRule.agency))
        )
    }
    for area_id in chain_ids:
        rule = rules.get(area_id)
        if rule is not None and rule.agency.active:
            return rule.agency
    if city.fallback_agency is None:
        raise DomainError("the city has no fallback agency")
    return city.fallback_agency


def _queue(
    session: Session,
    ticket: Ticket,
    template: str,
    *,
    audience: Audience,
    resident_id: int | None = None,
    agency_id: int | None = None,
    **params: object,
) -> None:
    session.add(
        Outbox(
            audience=audience,
            resident_id=resident_id,
            agency_id=agency_id,
            ticket_id=ticket.id,
            template=template,
            params={"number": ticket.number, **params},
        )
    )


def create_ticket(
    session: Session,
    *,
    city: CityConfig,
    reporter: Resident,
    kind: TicketKind,
    category_code: str,
    description: str,
    location_text: str = "",
    latitude: float | None = None,
    longitude: float | None = None,
    area: Area | None = None,
    privacy: Privacy = Privacy.BIASA,
    photos: Sequence[tuple[str, str]] = (),
    now: datetime | None = None,
) -> Ticket:
    """Create a ticket, give it a number and due dates, and route it to its agency.

    `photos` are (channel, platform file id) pairs. The agency is told through the outbox;
    the reporter hears the number in the reply to the message that created it.
    """
    now = now or utcnow()
    if not description.strip():
        raise DomainError("a ticket needs a description")
    category = session.scalar(select(Category).where(Category.code == category_code))
    if category is None:
        raise NotFound(f"no category {category_code!r}")
    target = city.sla_for(kind, category.code)
    holidays = city.holiday_dates
    ticket = Ticket(
        number=next_ticket_number(
            session, prefix=city.ticket_prefix, year=now.astimezone(city.tz).year
        ),
        kind=kind,
        category=category,
        reporter=reporter,
        description=description.strip(),
        location_text=location_text.strip(),
        latitude=latitude,
        longitude=longitude,
        area=area,
        privacy=privacy,
        status=TicketStatus.NEW,
        first_response_due_at=due_at(now, target.first_response, tz=city.tz, holidays=holidays),
        resolution_due_at=due_at(now, target.resolution, tz=city.tz, holidays=holidays),
        created_at=now,
        updated_at=now,
        photos=[
            TicketPhoto(channel=ch, file_id=fid, added_by_id=reporter.id, created_at=now)
            for ch, fid in photos
        ],
    )
    session.add(ticket)
    session.flush()
    session.add(
        TicketEvent(
            ticket_id=ticket.id,
            kind=EventKind.CREATED,
            actor_id=reporter.id,
            to_status=TicketStatus.NEW,
            created_at=now,
        )
    )
    agency = resolve_agency(session, category=category, area=area)
    transition(session, ticket, Action.ROUTE, actor=None, agency=agency, now=now, notify=False)
    return ticket


def transition(
    session: Session,
    ticket: Ticket,
    action: Action,
    *,
    actor: Resident | None,
    note: str = "",
    agency: Agency | None = None,
    now: datetime | None = None,
    notify: bool = True,
) -> TicketEvent:
    """Move a ticket by one action: check it, record the event, queue the notifications.

    Everything happens in the caller's transaction. `actor` None is the system. `note` is the
    reason for a rejection (required) or a reroute, and the officer's words otherwise.
    Raise IllegalTransition when the action is not allowed from the current status.
    """
    now = now or utcnow()
    number = ticket.number
    allowed_from, to_status = TRANSITIONS[action]
    if ticket.status not in allowed_from:
        raise IllegalTransition(ticket.number, ticket.status, action.value)
    note = note.strip()
    if action in (Action.REJECT, Action.REROUTE) and not note:
        raise MissingReason(f"'{action.value}' of {ticket.number} needs a reason")
    if action in (Action.ROUTE, Action.REROUTE) and agency is None:
        raise DomainError(f"'{action.value}' needs the agency to send {ticket.number} to")
    if action is Action.REOPEN and (actor is None or actor.id != ticket.reporter_id):
        raise DomainError(f"only the reporter of {ticket.number} can reopen it")

    # No autoflush midway: a concurrent change must surface at the one flush below.
    with session.no_autoflush:
        from_status, previous_agency = ticket.status, ticket.agency
        ticket.status, ticket.updated_at = to_status, now
        data: dict[str, object] = {"action": action.value}
        if agency is not None:
            ticket.agency = agency
            data["agency"] = agency.code
            if previous_agency is not None:
                data["from_agency"] = previous_agency.code
        if action is Action.REROUTE:
            ticket.assignee = None
        if action in _FIRST_RESPONSE and ticket.first_response_at is None:
            ticket.first_response_at = now
        if action is Action.RESOLVE:
            ticket.resolved_at = now
        elif action is Action.REOPEN:
            ticket.resolved_at = None
        elif action is Action.CLOSE:
            ticket.closed_at = now

        event = TicketEvent(
            ticket_id=ticket.id,
            kind=EventKind.REROUTED if action is Action.REROUTE else EventKind.STATUS_CHANGED,
            actor_id=actor.id if actor is not None else None,
            from_status=from_status,
            to_status=to_status,
            body=note,
            data=data,
            created_at=now,
        )
        session.add(event)
        if notify:
            _queue(
                session,
                ticket,
                f"ticket.status.{to_status.value}",
                audience=Audience.RESIDENT,
                resident_id=ticket.reporter_id,
                status=to_status.value,
                note=note,
                agency=ticket.agency.short_name if ticket.agency else "",
            )
        if action in (Action.ROUTE, Action.REROUTE) and agency is not None:
            _queue(
                session,
                ticket,
                "agency.ticket_routed",
                audience=Audience.AGENCY,
                agency_id=agency.id,
                category=ticket.category.code,
                kind=ticket.kind.value,
            )
        if action is Action.REOPEN and ticket.assignee_id is not None:
            _queue(
                session,
                ticket,
                "officer.ticket_reopened",
                audience=Audience.OFFICER,
                resident_id=ticket.assignee_id,
                note=note,
            )
    try:
        session.flush()
    except StaleDataError:
        raise ConcurrentChange(f"ticket {number} was changed meanwhile") from None
    return event


def get_ticket(session: Session, number: str) -> Ticket:
    ticket = session.scalar(
        select(Ticket)
        .where(Ticket.number == number.strip().upper())
        .options(joinedload(Ticket.agency), joinedload(Ticket.category))
    )
    if ticket is None:
        raise NotFound(f"no ticket {number}")
    return ticket


def list_tickets(
    session: Session,
    *,
    agency_code: str | None = None,
    statuses: Iterable[TicketStatus] | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Ticket]:
    """List tickets oldest first, by agency and status (default: the open ones)."""
    stmt = (
        select(Ticket)
        .where(Ticket.status.in_(list(statuses or OPEN_STATUSES)))
        .options(joinedload(Ticket.agency), joinedload(Ticket.category))
        .order_by(Ticket.created_at, Ticket.id)
        .limit(limit)
        .offset(offset)
    )
    if agency_code is not None:
        agency_id = session.scalar(select(Agency.id).where(Agency.code == agency_code))
        if agency_id is None:
            raise NotFound(f"no agency with code {agency_code!r}")
        stmt = stmt.where(Ticket.agency_id == agency_id)
    return list(session.scalars(stmt))
