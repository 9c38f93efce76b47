"""Residents and officers: who writes to the bot, and who works tickets."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from actions.domain import OPEN_STATUSES, DomainError, EventKind, NotFound, OfficerRole
from actions.models import Agency, Officer, Resident, Ticket, TicketEvent


def get_or_create_resident(
    session: Session,
    *,
    channel: str,
    platform_user_id: str,
    display_name: str = "",
    language: str | None = None,
) -> Resident:
    """Return the resident known on a channel by that id, creating the record on first contact."""
    resident = session.scalar(
        select(Resident).where(
            Resident.channel == channel, Resident.platform_user_id == platform_user_id
        )
    )
    if resident is None:
        resident = Resident(
            channel=channel,
            platform_user_id=platform_user_id,
            display_name=display_name,
            language=language or "id",
        )
        session.add(resident)
        session.flush()
    elif display_name and resident.display_name != display_name:
        resident.display_name = display_name
    return resident


def add_officer(
    session: Session,
    *,
    channel: str,
    platform_user_id: str,
    role: OfficerRole,
    agency_code: str | None,
    display_name: str = "",
) -> Officer:
    """Make a resident identity an officer of an agency (admins may have none); idempotent."""
    agency = None
    if agency_code is not None:
        agency = session.scalar(select(Agency).where(Agency.code == agency_code))
        if agency is None or not agency.active:
            raise NotFound(f"no active agency with code {agency_code!r}")
    elif role is not OfficerRole.ADMIN:
        raise DomainError(f"the {role.value} role needs an agency")
    resident = get_or_create_resident(
        session, channel=channel, platform_user_id=platform_user_id, display_name=display_name
    )
    officer = session.scalar(select(Officer).where(Officer.resident_id == resident.id))
    if officer is None:
        officer = Officer(resident=resident)
        session.add(officer)
    officer.role, officer.agency = role, agency
    session.flush()
    return officer


def find_officer(session: Session, *, channel: str, platform_user_id: str) -> Officer | None:
    return session.scalar(
        select(Officer)
        .join(Officer.resident)
        .where(Resident.channel == channel, Resident.platform_user_id == platform_user_id)
        .options(joinedload(Officer.agency), joinedload(Officer.resident))
    )


def remove_officer(session: Session, *, channel: str, platform_user_id: str) -> None:
    """Take away a person's officer role; their resident identity and history stay."""
    officer = find_officer(session, channel=channel, platform_user_id=platform_user_id)
    if officer is None:
        raise NotFound(f"no officer {channel}:{platform_user_id}")
    # Their open tickets go back to the agency's queue, with a trace in the history.
    for ticket in session.scalars(
        select(Ticket).where(
            Ticket.assignee_id == officer.resident_id, Ticket.status.in_(OPEN_STATUSES)
        )
    ):
        ticket.assignee_id = None
        session.add(
            TicketEvent(
                ticket_id=ticket.id,
                kind=EventKind.ASSIGNED,
                data={"unassigned": officer.resident_id, "why": "officer removed"},
            )
        )
    session.delete(officer)
    session.flush()


def list_officers(session: Session, *, agency_code: str | None = None) -> list[Officer]:
    stmt = (
        select(Officer)
        .join(Officer.resident)
        .outerjoin(Officer.agency)
        .options(joinedload(Officer.agency), joinedload(Officer.resident))
        .order_by(Agency.code, Resident.display_name, Officer.id)
    )
    if agency_code is not None:
        stmt = stmt.where(Agency.code == agency_code)
    return list(session.scalars(stmt))
