"""Tickets: numbering, routing, creation and the one function that changes their status."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any

from sqlalchemy import Executable, bindparam, func, or_, select, update
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
    SendMethod,
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
    TicketFollower,
    TicketPhoto,
    TicketSequence,
    utcnow,
)
from actions.public import is_public, is_public_note
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
# Who reported through the Open311 API reads the updates there; no chat to send them to.
API_CHANNEL = "open311"


def format_number(prefix: str, year: int, sequence: int) -> str:
    return f"{prefix}-{year}-{sequence:06d}"


@cache
def _bump_statement() -> Executable:
    """UPDATE … RETURNING of a counter row, built once: it runs for every new ticket."""
    seq = TicketSequence.__table__
    return (
        update(seq)
        .where(seq.c.prefix == bindparam("p"), seq.c.year == bindparam("y"))
        .values(last_value=seq.c.last_value + 1)
        .returning(seq.c.last_value)
    )


def next_ticket_number(session: Session, *, prefix: str, year: int) -> str:
    """Take the next number of a prefix and year.

    The counter row is bumped with UPDATE … RETURNING inside the caller's transaction: the row
    lock serialises concurrent creators, and a rolled-back creation gives its number back, so
    numbers have no gaps and no duplicates.
    """
    bump, key = _bump_statement(), {"p": prefix, "y": year}
    value = session.execute(bump, key).scalar()
    if value is None:  # the year's first ticket
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
        value = session.execute(bump, key).scalar_one()
    return format_number(prefix, year, value)


def resolve_agency(session: Session, *, category: Category, area: Area | None) -> Agency:
    """Return the agency for a category in an area: the most specific rule, else the fallback."""
    # The area, its parents and the kota (the city-wide rule), the most specific first.
    chain_ids = [a.id for a in area.ancestors()] if area is not None else []
    kota = select(City.area_id).scalar_subquery()
    rules = {
        r.area_id: r
        for r in session.scalars(
            select(RoutingRule)
            .where(
                RoutingRule.category_id == category.id,
                RoutingRule.area_id.in_(chain_ids) | (RoutingRule.area_id == kota),
            )
            .options(joinedload(RoutingRule.agency))
        )
    }
    ranked = chain_ids + [a for a in rules if a not in chain_ids]  # the kota rule last
    for area_id in ranked:
        rule = rules.get(area_id)
        if rule is not None and rule.agency.active:
            return rule.agency
    city = session.scalar(select(City).options(joinedload(City.fallback_agency)))
    if city is None:
        raise DomainError("no city is loaded: run 'warga city load' first")
    if city.fallback_agency is None:
        raise DomainError("the city has no fallback agency")
    return city.fallback_agency


def _queue(
    session: Session,
    ticket: Ticket,
    template: str,
    *,
    now: datetime,
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
            ticket=ticket,
            template=template,
            params={"number": ticket.number, **params},
            created_at=now,
            next_attempt_at=now,
        )
    )


def audience_of(session: Session, ticket: Ticket) -> list[int]:
    """Return the residents who hear a ticket's updates: its reporter, then its followers.

    A rahasia ticket reaches its reporter only, even when followers joined it before that rule;
    followers read the public view (`actions.public`, applied when the message is rendered).
    """
    reporter = [] if ticket.reporter.channel == API_CHANNEL else [ticket.reporter_id]
    if not is_public(ticket):
        return reporter
    followers = session.scalars(
        select(TicketFollower.resident_id)
        .where(TicketFollower.ticket_id == ticket.id)
        .order_by(TicketFollower.created_at, TicketFollower.resident_id)
    )
    return [*reporter, *(r for r in followers if r != ticket.reporter_id)]


def add_reply(
    session: Session, ticket: Ticket, *, actor_id: int | None, text: str, now: datetime
) -> TicketEvent:
    """Record the agency's words to the resident; the reporter and every follower receive them.

    `actor_id` None is the agency's own system (its updates through Open311).
    """
    text = text.strip()
    if not text:
        raise DomainError("a reply needs text")
    event = TicketEvent(
        ticket_id=ticket.id, kind=EventKind.REPLY, actor_id=actor_id, body=text, created_at=now
    )
    session.add(event)
    if ticket.first_response_at is None:
        ticket.first_response_at = now
    ticket.updated_at = now
    for resident_id in audience_of(session, ticket):
        _queue(
            session,
            ticket,
            "ticket.reply",
            now=now,
            audience=Audience.RESIDENT,
            resident_id=resident_id,
            text=text,
            agency=ticket.agency.short_name if ticket.agency else "",
        )
    session.flush()
    return event


def joinable(ticket: Ticket) -> bool:
    """Whether another resident may join a ticket: open, and not rahasia."""
    return ticket.status.is_open and is_public(ticket)


def follow_ticket(session: Session, *, ticket: Ticket, resident: Resident) -> bool:
    """Let a resident join a ticket ("Ikut laporan ini"); return False if already following.

    A rahasia ticket cannot be joined (NotFound, as for a ticket that does not exist).
    """
    if not is_public(ticket):
        raise NotFound(f"no ticket {ticket.number} to join")
    if resident.id == ticket.reporter_id or session.get(TicketFollower, (ticket.id, resident.id)):
        return False
    session.add(TicketFollower(ticket_id=ticket.id, resident_id=resident.id))
    session.add(TicketEvent(ticket_id=ticket.id, kind=EventKind.FOLLOWED, actor_id=resident.id))
    session.flush()
    return True


def reporter_count(session: Session, ticket: Ticket) -> int:
    """Count the residents behind a ticket: the reporter and everyone who joined."""
    followers = session.scalar(
        select(func.count())
        .select_from(TicketFollower)
        .where(TicketFollower.ticket_id == ticket.id)
    )
    return 1 + (followers or 0)


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
    # Routing reads only city data: done first, it costs no extra flush of the new rows.
    agency = resolve_agency(session, category=category, area=area)
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
    session.add(
        TicketEvent(
            ticket=ticket,
            kind=EventKind.CREATED,
            actor_id=reporter.id,
            to_status=TicketStatus.NEW,
            created_at=now,
        )
    )
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
            ticket=ticket,
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
            # Followers hear only the agency's words to the public: no reroute reason, nor the
            # reporter's own words when she reopens it.
            actor_id = actor.id if actor is not None else None
            public_note = note if is_public_note(event.kind, actor_id, ticket) else ""
            for resident_id in audience_of(session, ticket):
                if actor is not None and resident_id == actor.id:
                    continue  # they did it: the reply to their own message says so
                _queue(
                    session,
                    ticket,
                    f"ticket.status.{to_status.value}",
                    now=now,
                    audience=Audience.RESIDENT,
                    resident_id=resident_id,
                    status=to_status.value,
                    note=note if resident_id == ticket.reporter_id else public_note,
                    agency=ticket.agency.short_name if ticket.agency else "",
                )
        if action in (Action.ROUTE, Action.REROUTE) and agency is not None:
            _queue(
                session,
                ticket,
                "agency.ticket_routed",
                now=now,
                audience=Audience.AGENCY,
                agency_id=agency.id,
                category=ticket.category.code,
                kind=ticket.kind.value,
                description=ticket.description[:200],
                buttons=[
                    [
                        ["button.take", f"officer:take:{ticket.number}"],
                        ["button.reply", f"officer:reply:{ticket.number}"],
                        ["button.view", f"officer:view:{ticket.number}"],
                    ]
                ],
            )
        if (
            action in (Action.ROUTE, Action.REROUTE)
            and agency is not None
            and agency.send_method is not SendMethod.NONE
        ):
            # Also hand it to the agency's own system (actions/open311.py), once.
            _queue(
                session,
                ticket,
                "open311.forward",
                now=now,
                audience=Audience.EXTERNAL,
                agency_id=agency.id,
            )
        if action is Action.RESOLVE and notify and ticket.reporter.channel != API_CHANNEL:
            # "Apakah masalahnya sudah beres?": stars close it, "belum beres" reopens it.
            _queue(
                session,
                ticket,
                "ticket.ask_rating",
                now=now,
                audience=Audience.RESIDENT,
                resident_id=ticket.reporter_id,
                buttons=[
                    [[f"button.stars_{n}", f"rate:{ticket.number}:{n}"] for n in range(1, 6)],
                    [["button.not_fixed", f"reopen:{ticket.number}"]],
                ],
            )
        if action is Action.REOPEN and ticket.assignee_id is not None:
            _queue(
                session,
                ticket,
                "officer.ticket_reopened",
                now=now,
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


# Similar reports: the same place written alike, or the same words (a forwarded message).
SIMILAR_CANDIDATES = 200  # the newest open tickets of a category compared by their text
DESCRIPTION_OVERLAP = 0.8  # Jaccard of the word sets of two descriptions
DESCRIPTION_MIN_WORDS = 6  # shorter ones ("jalan rusak parah") say too little to match
PLACE_MIN_WORDS = 2  # "Jl. Paus" is a place; "Paus" alone could be anything
TEXT_MATCH_MAX_M = 2_000.0  # a same-named street with pins farther apart is another street

_WORDS = re.compile(r"[^\W_]+", re.UNICODE)
# Spellings of one keyword: "Jl." = "jalan" = "jln", "gg" = "gang" (as nlu.lokasi_key).
_PLACE_WORD = {
    **dict.fromkeys(("jl", "jln", "jlan", "jalan"), "jalan"),
    **dict.fromkeys(("gg", "gng", "gang"), "gang"),
    **dict.fromkeys(("no", "nomor", "nmr"), "no"),
    **dict.fromkeys(("simp", "spg", "simpang"), "simpang"),
    **dict.fromkeys(("perum", "perumahan"), "perumahan"),
    **dict.fromkeys(("komp", "komplek", "kompleks"), "komplek"),
    **dict.fromkeys(("lr", "lorong"), "lorong"),
    **dict.fromkeys(("psr", "pasar"), "pasar"),
}


def place_words(text: str) -> tuple[str, ...]:
    """A place as written, without case, punctuation, keyword spellings or leading zeros."""
    words = _WORDS.findall(unicodedata.normalize("NFKC", text).casefold())
    return tuple(_PLACE_WORD.get(w, w.lstrip("0") or "0") for w in words)


def same_place(a: str, b: str) -> bool:
    """Whether two place texts name the same place: equal once normalised, or one holds the
    other whole ("Jl. Paus" in "jalan paus depan SD 12"); a single word never matches."""
    return _same_place(place_words(a), place_words(b))


def _same_place(wa: tuple[str, ...], wb: tuple[str, ...]) -> bool:
    if len(wa) > len(wb):
        wa, wb = wb, wa
    if len(wa) < PLACE_MIN_WORDS:
        return False
    return any(wb[k : k + len(wa)] == wa for k in range(len(wb) - len(wa) + 1))


def description_words(text: str) -> frozenset[str]:
    return frozenset(_WORDS.findall(unicodedata.normalize("NFKC", text).casefold()))


def near_identical(a: str, b: str) -> bool:
    """Whether two descriptions share nearly all their words (Jaccard of the word sets)."""
    return _near_identical(description_words(a), description_words(b))


def _near_identical(wa: frozenset[str], wb: frozenset[str]) -> bool:
    if min(len(wa), len(wb)) < DESCRIPTION_MIN_WORDS:
        return False
    return len(wa & wb) / len(wa | wb) >= DESCRIPTION_OVERLAP


def _telling(words: Iterable[str], n: int) -> list[str]:
    """The n longest words that are not keywords or numbers: those a same text must share."""
    names = {w for w in words if w not in _PLACE_WORD.values() and not w.isdigit()}
    return sorted(names, key=lambda w: (-len(w), w))[:n]


def _like_any(column: Any, prefix: str, count: int) -> Any:
    """SQL: the column holds one of `count` words bound as `prefix0`… (any case; ASCII case
    in SQLite)."""
    return or_(
        *(func.lower(column).like(bindparam(f"{prefix}{n}"), escape="/") for n in range(count))
    )


def _pattern(word: str) -> str:
    return "%" + word.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"


@cache
def _similar_statement(
    pin: bool, area: bool, place: int, words: int, exclude: bool, limit: int
) -> Executable:
    """The candidates of find_similar, built once per shape: only the parameters change."""
    stmt = (
        select(Ticket)
        .join(Ticket.category)
        .where(
            Category.code == bindparam("category"),
            Ticket.status.in_([s.value for s in OPEN_STATUSES]),
            Ticket.privacy != Privacy.RAHASIA,
            Ticket.created_at >= bindparam("since"),
        )
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(limit)
    )
    if exclude:
        stmt = stmt.where(Ticket.reporter_id != bindparam("reporter"))
    near = []
    if pin:  # a bounding box the index can narrow, then the exact distance
        near.append(
            Ticket.latitude.between(bindparam("lat0"), bindparam("lat1"))
            & Ticket.longitude.between(bindparam("lon0"), bindparam("lon1"))
        )
    if area:
        near.append(Ticket.area_id == bindparam("area"))
    # Texts are compared in Python; SQL keeps only those with one of their telling words.
    if place:
        near.append(_like_any(Ticket.location_text, "place", place))
    if words:
        near.append(_like_any(Ticket.description, "word", words))
    return stmt.where(or_(*near))


def find_similar(
    session: Session,
    *,
    category_code: str,
    area: Area | None,
    latitude: float | None,
    longitude: float | None,
    now: datetime,
    days: int = 30,
    radius_m: float = 300.0,
    exclude_reporter: int | None = None,
    location_text: str = "",
    description: str = "",
) -> Ticket | None:
    """Return the newest open ticket of a category that looks like the same problem.

    The same problem is, among the last `days` of open tickets of the category: one in the
    same kelurahan (`area`), one whose pin is within `radius_m` of this one, one whose place
    text is the same place (`location_text`: case, punctuation and "Jl."/"jalan"/"jln"
    aside, see `same_place`), or one whose description is near-identical (`description`,
    see `near_identical`). A text match is dropped when both tickets have a kelurahan and
    they differ, or both have pins more than TEXT_MATCH_MAX_M apart (a street name repeats
    across a city). Pass as `location_text` only what the resident wrote (no placeholder).
    Rahasia tickets are never offered to anyone.
    """
    has_pin = latitude is not None and longitude is not None
    place = place_words(location_text)
    words = description_words(description)
    by_place = len(place) >= PLACE_MIN_WORDS
    by_words = len(words) >= DESCRIPTION_MIN_WORDS
    by_text = by_place or by_words
    if area is None and not has_pin and not by_text:
        return None
    telling_place = _telling(place, 1) if by_place else []
    telling_words = _telling(words, 3) if by_words else []
    params: dict[str, Any] = {
        "category": category_code,
        "since": now - timedelta(days=days),
        "reporter": exclude_reporter,
        "area": area.id if area is not None else None,
        **{f"place{n}": _pattern(w) for n, w in enumerate(telling_place)},
        **{f"word{n}": _pattern(w) for n, w in enumerate(telling_words)},
    }
    if has_pin:
        dlat = radius_m / 111_320
        dlon = radius_m / (111_320 * max(math.cos(math.radians(latitude)), 0.01))
        params |= {
            "lat0": latitude - dlat,
            "lat1": latitude + dlat,
            "lon0": longitude - dlon,
            "lon1": longitude + dlon,
        }
    stmt = _similar_statement(
        has_pin,
        area is not None,
        len(telling_place),
        len(telling_words),
        exclude_reporter is not None,
        SIMILAR_CANDIDATES if by_text else 50,
    )
    for ticket in session.scalars(stmt, params):
        if area is not None and ticket.area_id == area.id:
            return ticket
        pins = has_pin and ticket.latitude is not None and ticket.longitude is not None
        apart = (
            distance_m(latitude, longitude, ticket.latitude, ticket.longitude) if pins else None
        )
        if apart is not None and apart <= radius_m:
            return ticket
        if not by_text:
            continue
        if area is not None and ticket.area_id not in (None, area.id, area.parent_id):
            continue  # another kelurahan (a kecamatan that holds this one is no conflict)
        if apart is not None and apart > TEXT_MATCH_MAX_M:
            continue
        if by_place and _same_place(place, place_words(ticket.location_text)):
            return ticket
        if by_words and _near_identical(words, description_words(ticket.description)):
            return ticket
    return None


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(h))


def visible_ticket(session: Session, *, number: str, resident_id: int) -> Ticket | None:
    """Return a ticket only to its reporter or a follower; None says nothing about existence.

    A follower reads only its public view, and nothing of a rahasia ticket.
    """
    ticket = session.scalar(select(Ticket).where(Ticket.number == number.strip().upper()))
    if ticket is None:
        return None
    if ticket.reporter_id == resident_id:
        return ticket
    if is_public(ticket) and session.get(TicketFollower, (ticket.id, resident_id)):
        return ticket
    return None


def tickets_of(session: Session, *, resident_id: int, limit: int = 5) -> list[Ticket]:
    """Return a resident's own and followed tickets, the most recently changed first.

    Followed rahasia tickets (joined before they were kept out) are left out.
    """
    # A UNION, not an OR: each half uses its own index.
    followed = (
        select(TicketFollower.ticket_id)
        .join(Ticket, Ticket.id == TicketFollower.ticket_id)
        .where(TicketFollower.resident_id == resident_id, Ticket.privacy != Privacy.RAHASIA)
    )
    mine = select(Ticket.id).where(Ticket.reporter_id == resident_id).union(followed)
    return list(
        session.scalars(
            select(Ticket)
            .where(Ticket.id.in_(mine))
            .options(joinedload(Ticket.agency))
            .order_by(Ticket.updated_at.desc(), Ticket.id.desc())
            .limit(limit)
        )
    )
