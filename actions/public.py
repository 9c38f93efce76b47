"""The public view of a ticket: what anyone but its reporter and its agency's officers may read.

One set of rules for every path that shows a ticket to someone else: Open311's service
requests, the similar report offered to another resident, and what a follower reads in their
status and in their notifications.

- `rahasia` tickets have no public view: nobody but the reporter (and the handling agency,
  through the officers' own commands) reads anything of them.
- Phone numbers and NIK are masked (the injected `redact`; actions never import the NLU), and
  the reporter's name is taken out of every text (an officer may have written it).
- `anonim` tickets: the place is only the kelurahan, the pin rounded to about 110 m.
- Notes: only the agency's words to the public (status changes with a note, replies); never
  internal notes, reroute reasons or the reporter's own words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from actions.domain import EventKind, Privacy
from actions.models import Ticket, TicketEvent

Redact = Callable[[str], str]

ANONYMOUS_DECIMALS = 3  # about 110 m: an anonim ticket's pin no longer points at a house
# Events whose words the public may read (not internal notes, not reroutes).
PUBLIC_NOTES = (EventKind.STATUS_CHANGED, EventKind.REPLY)
# Notification parameters that are never free text (kept as they are).
_FIXED_PARAMS = frozenset({"number", "status", "buttons"})


def is_public(ticket: Ticket) -> bool:
    """Whether anything of the ticket may reach someone other than its reporter and agency."""
    return ticket.privacy is not Privacy.RAHASIA


def is_public_note(kind: EventKind, actor_id: int | None, ticket: Ticket) -> bool:
    """Whether an event's words are the agency's words to the public."""
    return kind in PUBLIC_NOTES and (actor_id is None or actor_id != ticket.reporter_id)


def without_name(text: str, name: str) -> str:
    """Hide a name, and each of its words of three letters or more."""
    words = sorted({w for w in re.split(r"\W+", name) if len(w) >= 3}, key=len, reverse=True)
    if not words:
        return text
    pattern = r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b"
    return re.sub(pattern, "***", text, flags=re.IGNORECASE)


def public_text(ticket: Ticket, text: str, *, redact: Redact) -> str:
    """Any text about the ticket as the public may read it: no phone, no NIK, no name."""
    return without_name(redact(text), ticket.reporter.display_name)


@dataclass(frozen=True)
class PublicView:
    """A ticket as anyone may read it. Everything else of a ticket (number, status, category,
    agency, dates, the kelurahan's code) is public as it is."""

    description: str
    location: str  # the street or landmark; "" for anonim
    area: str  # the kelurahan (or kecamatan) named, "" when none
    latitude: float | None
    longitude: float | None
    notes: str  # the agency's newest words to the public

    @property
    def place(self) -> str:
        return ", ".join(p for p in (self.location, self.area) if p)


def public_view(ticket: Ticket, *, notes: str, redact: Redact) -> PublicView | None:
    """Build a ticket's public view from its public notes (`public_notes`); None for rahasia."""
    if not is_public(ticket):
        return None
    anonim = ticket.privacy is Privacy.ANONIM
    lat, lon = ticket.latitude, ticket.longitude
    if anonim and lat is not None and lon is not None:
        lat, lon = round(lat, ANONYMOUS_DECIMALS), round(lon, ANONYMOUS_DECIMALS)
    return PublicView(
        description=public_text(ticket, ticket.description, redact=redact),
        location="" if anonim else public_text(ticket, ticket.location_text, redact=redact),
        area=ticket.area.name if ticket.area is not None else "",
        latitude=lat,
        longitude=lon,
        notes=public_text(ticket, notes, redact=redact),
    )


def public_notes(session: Session, ticket_ids: Sequence[int]) -> dict[int, str]:
    """The newest words of the agency to the public per ticket (not the reporter's own)."""
    if not ticket_ids:
        return {}
    newest = (
        select(func.max(TicketEvent.id))
        .join(Ticket, Ticket.id == TicketEvent.ticket_id)
        .where(
            TicketEvent.ticket_id.in_(ticket_ids),
            TicketEvent.kind.in_([k.value for k in PUBLIC_NOTES]),
            TicketEvent.body != "",
            (TicketEvent.actor_id.is_(None)) | (TicketEvent.actor_id != Ticket.reporter_id),
        )
        .group_by(TicketEvent.ticket_id)
    )
    rows = session.execute(
        select(TicketEvent.ticket_id, TicketEvent.body).where(TicketEvent.id.in_(newest))
    )
    return {ticket_id: body for ticket_id, body in rows}


def public_params(
    ticket: Ticket, params: Mapping[str, Any], *, redact: Redact
) -> dict[str, Any] | None:
    """A notification's parameters as someone other than the reporter may read them.

    None for a rahasia ticket: they get nothing. Which notes are public is decided when the
    notification is queued (`actions.tickets.transition`); here every text is cleaned.
    """
    if not is_public(ticket):
        return None
    return {
        key: public_text(ticket, value, redact=redact)
        if isinstance(value, str) and key not in _FIXED_PARAMS
        else value
        for key, value in params.items()
    }
