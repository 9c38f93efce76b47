"""The SLA clock: remind the assignee before a deadline, escalate when one passes.

`run_sla_check` is meant for a scheduled job. Two processes may run it at the same moment:
each of the three messages of a ticket is claimed by setting its marker column with a
conditional UPDATE … RETURNING in the caller's transaction, and only the claimed tickets get
outbox rows. On PostgreSQL the second UPDATE waits for the first transaction's row locks and
then finds the marker set; on SQLite the write transactions are serialised. The marker column
is the record that the message went out; no ticket event is written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, exists, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session, joinedload

from actions.city import CityConfig
from actions.domain import OPEN_STATUSES, Audience, OfficerRole
from actions.models import Officer, Outbox, Ticket
from actions.workdays import due_at, working_days_between

log = logging.getLogger(__name__)

REMINDER = "sla.reminder"
FIRST_RESPONSE_OVERDUE = "sla.first_response_overdue"
RESOLUTION_OVERDUE = "sla.resolution_overdue"
DUE_FORMAT = "%Y-%m-%d %H:%M"

_OPEN = [s.value for s in OPEN_STATUSES]


@dataclass(frozen=True)
class SlaResult:
    """The ticket numbers one run told someone about, per kind of message."""

    reminded: tuple[str, ...] = ()
    escalated_first_response: tuple[str, ...] = ()
    escalated_resolution: tuple[str, ...] = ()


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("naive datetime given to the SLA clock; use an aware one")
    return now.astimezone(UTC)


def overdue_condition(now: datetime) -> ColumnElement[bool]:
    """Return the SQL condition of an overdue ticket at `now` (the officers' late queue).

    Overdue: open, and either still unanswered past its first-response deadline or past its
    resolution deadline.
    """
    now = _aware(now)
    return and_(
        Ticket.status.in_(_OPEN),
        or_(
            and_(Ticket.first_response_at.is_(None), Ticket.first_response_due_at < now),
            Ticket.resolution_due_at < now,
        ),
    )


def is_overdue(ticket: Ticket, now: datetime) -> bool:
    """Say whether a ticket is overdue at `now`; the same rule as `overdue_condition`."""
    now = _aware(now)
    if ticket.status not in OPEN_STATUSES:
        return False
    first = ticket.first_response_due_at
    resolution = ticket.resolution_due_at
    return (ticket.first_response_at is None and first is not None and first < now) or (
        resolution is not None and resolution < now
    )


def working_days_late(due: datetime, now: datetime, *, city: CityConfig) -> int:
    """Count the working days from a passed deadline to `now`, local time; at least 1.

    A deadline is the end of a working day, so a ticket looked at on the weekend after a
    Friday deadline counts as one working day late, not zero.
    """
    tz = city.tz
    days = working_days_between(
        due.astimezone(tz).date(), now.astimezone(tz).date(), city.holiday_dates
    )
    return max(days, 1)


def run_sla_check(session: Session, *, city: CityConfig, now: datetime) -> SlaResult:
    """Send the due reminders and escalations once each, in the caller's transaction.

    - reminder (`sla.reminder`, to the assignee): an open, assigned ticket whose resolution
      deadline is still ahead but before the end of the next working day;
    - first-response escalation (`sla.first_response_overdue`, to the supervisors of the
      ticket's agency, else the admins): an open ticket with no first response past its
      first-response deadline;
    - resolution escalation (`sla.resolution_overdue`, to the admins): an open ticket past its
      resolution deadline.

    An escalation that nobody could hear (no supervisor and no admin registered) is not
    claimed: it goes out on a later run, once someone is registered. The caller commits.
    """
    now = _aware(now)
    session.flush()  # the UPDATEs below must see the caller's pending changes
    horizon = due_at(now, 1, tz=city.tz, holidays=city.holiday_dates)
    is_open = Ticket.status.in_(_OPEN)
    any_admin = exists().where(Officer.role == OfficerRole.ADMIN)
    agency_supervisor = exists().where(
        Officer.role == OfficerRole.SUPERVISOR, Officer.agency_id == Ticket.agency_id
    )

    reminded = _claim(
        session,
        Ticket.sla_reminded_at,
        now,
        is_open,
        Ticket.assignee_id.is_not(None),
        Ticket.resolution_due_at > now,
        Ticket.resolution_due_at <= horizon,
    )
    first = _claim(
        session,
        Ticket.sla_first_response_escalated_at,
        now,
        is_open,
        Ticket.first_response_at.is_(None),
        Ticket.first_response_due_at < now,
        or_(agency_supervisor, any_admin),
    )
    resolution = _claim(
        session,
        Ticket.sla_resolution_escalated_at,
        now,
        is_open,
        Ticket.resolution_due_at < now,
        any_admin,
    )

    tickets = {
        t.id: t
        for t in session.scalars(
            select(Ticket)
            .where(Ticket.id.in_({*reminded, *first, *resolution}))
            .options(joinedload(Ticket.agency), joinedload(Ticket.category))
        )
    }
    admins = list(
        session.scalars(
            select(Officer.resident_id)
            .where(Officer.role == OfficerRole.ADMIN)
            .order_by(Officer.id)
        )
    )
    supervisors: dict[int, list[int]] = {}
    agency_ids = {tickets[i].agency_id for i in first if tickets[i].agency_id is not None}
    for agency_id, resident_id in session.execute(
        select(Officer.agency_id, Officer.resident_id)
        .where(Officer.role == OfficerRole.SUPERVISOR, Officer.agency_id.in_(agency_ids))
        .order_by(Officer.id)
    ):
        supervisors.setdefault(agency_id, []).append(resident_id)

    for ticket_id in reminded:
        ticket = tickets[ticket_id]
        _send(session, ticket, REMINDER, [ticket.assignee_id], ticket.resolution_due_at, now, city)
    for ticket_id in first:
        ticket = tickets[ticket_id]
        heads = supervisors.get(ticket.agency_id or 0) or admins
        _send(
            session, ticket, FIRST_RESPONSE_OVERDUE, heads, ticket.first_response_due_at, now, city
        )
    for ticket_id in resolution:
        ticket = tickets[ticket_id]
        _send(session, ticket, RESOLUTION_OVERDUE, admins, ticket.resolution_due_at, now, city)
    session.flush()

    def numbers(ids: list[int]) -> tuple[str, ...]:
        return tuple(sorted(tickets[i].number for i in ids))

    result = SlaResult(numbers(reminded), numbers(first), numbers(resolution))
    if reminded or first or resolution:
        log.info("SLA check at %s: %s", now.isoformat(), result)
    return result


def _claim(
    session: Session,
    marker: InstrumentedAttribute[datetime | None],
    now: datetime,
    *conditions: ColumnElement[bool],
) -> list[int]:
    """Set `marker` to `now` on the matching tickets where it is unset; return their ids.

    A Core UPDATE: it neither bumps the ticket's version (an officer's concurrent change must
    not fail because of the SLA job) nor touches updated_at (the marker is not a change of the
    ticket).
    """
    table = Ticket.__table__
    column = table.c[marker.key]
    stmt = (
        update(table)
        .where(column.is_(None), *conditions)
        .values({column: now, table.c.updated_at: table.c.updated_at})
        .returning(table.c.id)
    )
    ids = sorted(session.execute(stmt).scalars())
    # Tickets already loaded in this session must not keep the marker they read before.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Ticket):
            session.expire(obj, [marker.key])
    return ids


def _send(
    session: Session,
    ticket: Ticket,
    template: str,
    recipients: list[int],
    due: datetime | None,
    now: datetime,
    city: CityConfig,
) -> None:
    params = {
        "number": ticket.number,
        "category": ticket.category.code,
        "agency": ticket.agency.short_name if ticket.agency is not None else "",
        "due": due.astimezone(city.tz).strftime(DUE_FORMAT) if due is not None else "",
        "days_late": working_days_late(due, now, city=city) if due and due < now else 0,
    }
    for resident_id in dict.fromkeys(recipients):  # one row per person, in order
        session.add(
            Outbox(
                audience=Audience.OFFICER,
                resident_id=resident_id,
                agency_id=ticket.agency_id,
                ticket_id=ticket.id,
                template=template,
                params=params,
                created_at=now,
                next_attempt_at=now,
            )
        )
