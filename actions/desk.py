"""The officers' desk: who may see and change which ticket, and what officers and residents do.

Every function takes an explicit session and never commits. Refusals for tickets outside an
officer's reach are `NotFound`, the same as for tickets that do not exist, so a refusal reveals
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, joinedload

from actions.city import CityConfig
from actions.domain import (
    OPEN_STATUSES,
    DomainError,
    EventKind,
    NotFound,
    OfficerRole,
    Privacy,
    TicketStatus,
)
from actions.models import Agency, Category, Officer, Resident, Ticket, TicketEvent
from actions.sla import overdue_condition
from actions.tickets import Action, add_reply, transition


class AlreadyTaken(DomainError):
    """Someone else took the ticket first."""

    def __init__(self, number: str, holder: Resident | None) -> None:
        super().__init__(f"ticket {number} is already taken")
        self.number = number
        self.holder = holder


class NotAllowed(DomainError):
    """The officer may see the ticket but not do this to it."""


def officer_of(session: Session, resident: Resident) -> Officer | None:
    return session.scalar(
        select(Officer)
        .where(Officer.resident_id == resident.id)
        .options(joinedload(Officer.agency))
    )


def can_view(officer: Officer, ticket: Ticket) -> bool:
    return officer.role is OfficerRole.ADMIN or ticket.agency_id == officer.agency_id


def can_change(officer: Officer, ticket: Ticket) -> bool:
    """Admins change anything; supervisors their agency's; officers their agency's, unless
    another officer has taken the ticket."""
    if officer.role is OfficerRole.ADMIN:
        return True
    if ticket.agency_id != officer.agency_id:
        return False
    if officer.role is OfficerRole.SUPERVISOR:
        return True
    return ticket.assignee_id in (None, officer.resident_id)


def sees_identity(officer: Officer, ticket: Ticket) -> bool:
    """The reporter of an anonim or rahasia ticket is known only to the handling agency."""
    return ticket.privacy is Privacy.BIASA or (
        officer.agency_id is not None and ticket.agency_id == officer.agency_id
    )


def ticket_for(session: Session, *, officer: Officer, number: str) -> Ticket:
    """Return a ticket the officer may see; NotFound otherwise, whether or not it exists."""
    ticket = session.scalar(
        select(Ticket)
        .where(Ticket.number == number.strip().upper())
        .options(joinedload(Ticket.agency), joinedload(Ticket.category))
    )
    if ticket is None or not can_view(officer, ticket):
        raise NotFound(f"no ticket {number} in reach")
    return ticket


def _require_change(officer: Officer, ticket: Ticket) -> None:
    if not can_change(officer, ticket):
        raise NotAllowed(f"officer {officer.id} may not change {ticket.number}")


@dataclass(frozen=True)
class QueuePage:
    tickets: list[Ticket]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def queue(
    session: Session,
    *,
    officer: Officer,
    now: datetime,
    category: str | None = None,
    status: TicketStatus | None = None,
    overdue: bool = False,
    page: int = 1,
    per_page: int = 5,
) -> QueuePage:
    """The officer's agency's open tickets (admins: all), oldest first, paged."""
    where = [Ticket.status.in_([status.value] if status else [s.value for s in OPEN_STATUSES])]
    if officer.role is not OfficerRole.ADMIN:
        where.append(Ticket.agency_id == officer.agency_id)
    if category is not None:
        where.append(Ticket.category.has(Category.code == category))
    if overdue:
        where.append(overdue_condition(now))
    total = session.scalar(select(func.count()).select_from(Ticket).where(*where)) or 0
    page = max(1, page)
    tickets = list(
        session.scalars(
            select(Ticket)
            .where(*where)
            .options(
                joinedload(Ticket.category), joinedload(Ticket.agency), joinedload(Ticket.assignee)
            )
            .order_by(Ticket.created_at, Ticket.id)
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
    )
    return QueuePage(tickets, total, page, per_page)


def take(session: Session, *, officer: Officer, ticket: Ticket, now: datetime) -> None:
    """Assign the ticket to the officer. Of two officers taking it at once, exactly one wins."""
    if officer.role is not OfficerRole.ADMIN and ticket.agency_id != officer.agency_id:
        raise NotAllowed(f"officer {officer.id} may not take {ticket.number}")
    if ticket.assignee_id == officer.resident_id:
        return
    won = session.execute(
        update(Ticket)
        .where(Ticket.id == ticket.id, Ticket.assignee_id.is_(None))
        .values(assignee_id=officer.resident_id, updated_at=now, version=Ticket.version + 1)
        .returning(Ticket.id)
        .execution_options(synchronize_session=False)
    ).scalar()
    session.expire(ticket)
    if won is None:
        holder = session.get(Resident, ticket.assignee_id) if ticket.assignee_id else None
        raise AlreadyTaken(ticket.number, holder)
    session.add(
        TicketEvent(
            ticket_id=ticket.id,
            kind=EventKind.ASSIGNED,
            actor_id=officer.resident_id,
            data={"assignee": officer.resident_id},
            created_at=now,
        )
    )
    session.flush()


def reply(
    session: Session, *, officer: Officer, ticket: Ticket, text: str, now: datetime
) -> TicketEvent:
    """Answer the resident: the reporter and every follower receive it."""
    _require_change(officer, ticket)
    return add_reply(session, ticket, actor_id=officer.resident_id, text=text, now=now)


def note(
    session: Session, *, officer: Officer, ticket: Ticket, text: str, now: datetime
) -> TicketEvent:
    """An internal note: kept in the history, never sent to the resident."""
    _require_change(officer, ticket)
    if not text.strip():
        raise DomainError("a note needs text")
    event = TicketEvent(
        ticket_id=ticket.id,
        kind=EventKind.NOTE,
        actor_id=officer.resident_id,
        body=text.strip(),
        created_at=now,
    )
    session.add(event)
    session.flush()
    return event


def act(
    session: Session,
    *,
    officer: Officer,
    ticket: Ticket,
    action: Action,
    note: str = "",
    agency_code: str | None = None,
    now: datetime,
) -> TicketEvent:
    """Move a ticket (proses, selesai, tolak, alihkan) as an officer."""
    _require_change(officer, ticket)
    agency = None
    if action is Action.REROUTE:
        agency = session.scalar(select(Agency).where(Agency.code == (agency_code or "").upper()))
        if agency is None or not agency.active:
            raise NotFound(f"no agency {agency_code!r}")
        if agency.id == ticket.agency_id:
            raise DomainError(f"{ticket.number} is already with {agency.code}")
    if action is Action.RESOLVE and not note.strip():
        raise DomainError(f"closing {ticket.number} needs a note for the resident")
    actor = session.get_one(Resident, officer.resident_id)
    return transition(session, ticket, action, actor=actor, note=note, agency=agency, now=now)


def rate(
    session: Session, *, resident: Resident, ticket: Ticket, stars: int, now: datetime
) -> TicketEvent:
    """The reporter rates a resolved ticket; the rating closes it."""
    if resident.id != ticket.reporter_id:
        raise NotFound(f"no ticket {ticket.number} of this resident")
    if not 1 <= stars <= 5:
        raise DomainError("a rating is 1 to 5 stars")
    if ticket.status not in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
        raise DomainError(f"{ticket.number} is not resolved yet")
    if session.scalar(
        select(TicketEvent.id).where(
            TicketEvent.ticket_id == ticket.id,
            TicketEvent.kind == EventKind.RATING,
            TicketEvent.created_at >= (ticket.resolved_at or ticket.created_at),
        )
    ):
        raise DomainError(f"{ticket.number} has been rated already")
    event = TicketEvent(
        ticket_id=ticket.id,
        kind=EventKind.RATING,
        actor_id=resident.id,
        data={"stars": stars},
        created_at=now,
    )
    session.add(event)
    if ticket.status is TicketStatus.RESOLVED:
        transition(session, ticket, Action.CLOSE, actor=resident, now=now, notify=False)
    session.flush()
    return event


def reopen(
    session: Session,
    *,
    resident: Resident,
    ticket: Ticket,
    city: CityConfig,
    reason: str = "",
    now: datetime,
) -> TicketEvent:
    """The reporter says it is not fixed: reopen within the city's window, tell the assignee."""
    if resident.id != ticket.reporter_id:
        raise NotFound(f"no ticket {ticket.number} of this resident")
    resolved_at = ticket.resolved_at
    if resolved_at is None or now - resolved_at > timedelta(days=city.reopen_days):
        raise ReopenTooLate(ticket.number)
    return transition(session, ticket, Action.REOPEN, actor=resident, note=reason, now=now)


class ReopenTooLate(DomainError):
    def __init__(self, number: str) -> None:
        super().__init__(f"{number} was resolved too long ago to reopen")
        self.number = number
