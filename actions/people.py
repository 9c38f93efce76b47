"""Residents and officers: who writes to the bot, and who works tickets."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
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


# -- residents known by two ids (WhatsApp: wa_id and the business-scoped user_id) ------------


def note_inbound(
    session: Session,
    *,
    channel: str,
    user_id: str | None,
    alt_id: str | None,
    at: datetime,
    display_name: str = "",
) -> str:
    """Record that someone wrote at `at`; return the id their resident record is known by.

    `user_id` is the id the platform prefers (WhatsApp's wa_id, absent for people who hide
    their number), `alt_id` its second one (the business-scoped user id). Whichever of the
    two is known finds the same resident, and the second id is remembered on first sight.
    """
    ids = [i for i in (user_id, alt_id) if i]
    if not ids:
        raise ValueError("a message with neither id")
    resident = _find_by_ids(session, channel, user_id, ids)
    if resident is None:
        try:
            with session.begin_nested():
                resident = Resident(
                    channel=channel,
                    platform_user_id=ids[0],
                    platform_alt_id=alt_id if alt_id != ids[0] else None,
                    display_name=display_name,
                    last_inbound_at=at,
                )
                session.add(resident)
        except IntegrityError:  # another process created them just now
            resident = _find_by_ids(session, channel, user_id, ids)
            if resident is None:
                raise
        else:
            return resident.platform_user_id
    if alt_id and alt_id not in (resident.platform_user_id, resident.platform_alt_id):
        resident.platform_alt_id = alt_id  # WhatsApp may give a person a new one
    if resident.last_inbound_at is None or resident.last_inbound_at < at:
        resident.last_inbound_at = at
    session.flush()
    return resident.platform_user_id


def _find_by_ids(
    session: Session, channel: str, user_id: str | None, ids: list[str]
) -> Resident | None:
    candidates = session.scalars(
        select(Resident)
        .where(
            Resident.channel == channel,
            or_(Resident.platform_user_id.in_(ids), Resident.platform_alt_id.in_(ids)),
        )
        .order_by(Resident.id)
    ).all()
    # The record under the preferred id wins over one found by the second id.
    return next((r for r in candidates if r.platform_user_id == user_id), None) or next(
        iter(candidates), None
    )


def last_inbound(session: Session, *, channel: str, platform_user_id: str) -> datetime | None:
    """When the resident known by that id last wrote to us, if ever."""
    return session.scalar(
        select(Resident.last_inbound_at).where(
            Resident.channel == channel, Resident.platform_user_id == platform_user_id
        )
    )


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
