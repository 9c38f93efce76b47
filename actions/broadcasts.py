"""Civic groups, followers and announcements: who may say what to whom, and the send queue.

An announcement is written to `broadcast`; when its time comes, its recipients are chosen in
one INSERT … SELECT into `broadcast_delivery` (all or nothing), and workers send those rows:
each claimed with a lease (FOR UPDATE SKIP LOCKED on PostgreSQL), each marked as it goes. The
platform's overall rate is shared through `send_pace`: every worker books its send slots there,
so several workers together keep to one limit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import (
    Executable,
    Select,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from actions.domain import (
    AreaLevel,
    BroadcastState,
    DeliveryState,
    DomainError,
    GroupKind,
    NotFound,
)
from actions.models import (
    Area,
    AreaFollower,
    Broadcast,
    BroadcastDelivery,
    CivicGroup,
    GroupFollower,
    GroupManager,
    PollVote,
    Resident,
    SendPace,
    utcnow,
)

# Channels announcements go out on. WhatsApp would need an approved marketing template for
# everyone outside the 24-hour window: not yet, so its residents are not in the audience.
BROADCAST_CHANNELS = ("telegram", "console")
MAX_TEXT = 4000  # Telegram takes 4096 characters; the header needs a few
MAX_CAPTION = 1000  # a photo's caption: 1024
POLL_OPTIONS = (2, 4)
_URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)


class BroadcastError(DomainError):
    """Refused with a reason the person can be told: `key` names the sentence in the
    responses, `params` fill it (an announcement as written, a group's code, an area)."""

    def __init__(self, key: str, message: str, **params: object) -> None:
        super().__init__(message)
        self.key, self.params = key, params


class NotAllowed(DomainError):
    """The person may not do this for this group."""


# -- groups ----------------------------------------------------------------------------------


def add_group(
    session: Session, *, code: str, name: str, kind: GroupKind, area_codes: Iterable[str]
) -> CivicGroup:
    """Register a group (or update its name, kind and areas)."""
    code = code.strip().lower()
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{1,39}", code):
        raise BroadcastError(
            "grup.error_code", f"group code {code!r}: 2–40 letters, digits, '-' or '_'", code=code
        )
    areas = [find_area(session, c) for c in area_codes]
    if not areas:
        raise BroadcastError(
            "grup.error_no_area", f"group {code!r} needs at least one area it may address"
        )
    group = session.scalar(select(CivicGroup).where(CivicGroup.code == code))
    if group is None:
        group = CivicGroup(code=code)
        session.add(group)
    group.name, group.kind, group.areas, group.active = name.strip(), kind, areas, True
    session.flush()
    return group


def find_area(session: Session, code_or_name: str) -> Area:
    """An area by Kemendagri code, or by name ("Binawidya", "kecamatan Binawidya")."""
    key = " ".join(code_or_name.split())
    level, _, rest = key.partition(" ")
    levels = [lv for lv in AreaLevel if lv.value == level.lower()]
    stmt = select(Area).where(or_(Area.code == key, func.lower(Area.name) == key.lower()))
    if levels and rest:
        stmt = select(Area).where(Area.level == levels[0], func.lower(Area.name) == rest.lower())
    found = list(session.scalars(stmt))
    if not found:
        raise BroadcastError(
            "grup.error_area_unknown",
            f"no area {code_or_name!r} (a Kemendagri code or a name)",
            area=code_or_name,
        )
    if len(found) > 1:
        choices = ", ".join(f"{a.level.value} {a.name} ({a.code})" for a in found)
        raise BroadcastError(
            "grup.error_area_ambiguous",
            f"{code_or_name!r} is ambiguous: {choices}; give the code",
            area=code_or_name,
            choices=choices,
        )
    return found[0]


def get_group(session: Session, code: str) -> CivicGroup:
    group = session.scalar(select(CivicGroup).where(CivicGroup.code == code.strip().lower()))
    if group is None:
        raise BroadcastError("grup.error_group_unknown", f"no group {code!r}", code=code)
    return group


def find_group(session: Session, words: str) -> CivicGroup | None:
    """A group by its code or its name as a resident types it (case and spaces ignored)."""
    key = " ".join(words.casefold().split())
    if not key:
        return None
    groups = list_groups(session)
    for g in groups:
        if key in (g.code, " ".join(g.name.casefold().split())):
            return g
    partial = [g for g in groups if key in g.name.casefold()]
    return partial[0] if len(partial) == 1 else None


def list_groups(session: Session) -> list[CivicGroup]:
    return list(
        session.scalars(
            select(CivicGroup).where(CivicGroup.active.is_(True)).order_by(CivicGroup.name)
        )
    )


def add_manager(session: Session, *, group: CivicGroup, resident: Resident) -> bool:
    """Let a resident announce for a group; False when they already may."""
    if session.get(GroupManager, (group.id, resident.id)) is not None:
        return False
    session.add(GroupManager(group_id=group.id, resident_id=resident.id))
    session.flush()
    return True


def remove_manager(session: Session, *, group: CivicGroup, resident: Resident) -> bool:
    row = session.get(GroupManager, (group.id, resident.id))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def managed_groups(session: Session, resident_id: int) -> list[CivicGroup]:
    return list(
        session.scalars(
            select(CivicGroup)
            .join(GroupManager, GroupManager.group_id == CivicGroup.id)
            .where(GroupManager.resident_id == resident_id, CivicGroup.active.is_(True))
            .order_by(CivicGroup.name)
        )
    )


def managers_of(session: Session, group: CivicGroup) -> list[Resident]:
    return list(
        session.scalars(
            select(Resident)
            .join(GroupManager, GroupManager.resident_id == Resident.id)
            .where(GroupManager.group_id == group.id)
            .order_by(Resident.id)
        )
    )


# -- following -------------------------------------------------------------------------------


def follow_area(session: Session, *, resident_id: int, area: Area) -> bool:
    """Follow an area's announcements; False when already following it."""
    if session.get(AreaFollower, (resident_id, area.id)) is not None:
        return False
    session.add(AreaFollower(resident_id=resident_id, area_id=area.id))
    session.flush()
    return True


def follow_group(session: Session, *, resident_id: int, group: CivicGroup) -> bool:
    if session.get(GroupFollower, (resident_id, group.id)) is not None:
        return False
    session.add(GroupFollower(resident_id=resident_id, group_id=group.id))
    session.flush()
    return True


def unfollow(session: Session, *, resident_id: int, target: str) -> bool:
    """Stop one follow, named `area:<id>` or `group:<id>`; False when it was not followed."""
    kind, _, raw = target.partition(":")
    table = {"area": AreaFollower, "group": GroupFollower}.get(kind)
    if table is None or not raw.isdigit():
        return False
    column = table.area_id if table is AreaFollower else table.group_id
    result = session.execute(
        delete(table).where(table.resident_id == resident_id, column == int(raw))
    )
    return bool(result.rowcount)


def unfollow_all(session: Session, *, resident_id: int) -> int:
    removed = 0
    for table in (AreaFollower, GroupFollower):
        removed += session.execute(delete(table).where(table.resident_id == resident_id)).rowcount
    return removed


@dataclass(frozen=True)
class Follow:
    target: str  # "area:<id>" or "group:<id>"
    name: str
    level: str  # kota / kecamatan / kelurahan, or "group"


def follows_of(session: Session, resident_id: int) -> list[Follow]:
    """What a resident follows: areas (widest first), then groups."""
    areas = session.execute(
        select(Area.id, Area.name, Area.level)
        .join(AreaFollower, AreaFollower.area_id == Area.id)
        .where(AreaFollower.resident_id == resident_id)
        .order_by(Area.code)
    )
    groups = session.execute(
        select(CivicGroup.id, CivicGroup.name)
        .join(GroupFollower, GroupFollower.group_id == CivicGroup.id)
        .where(GroupFollower.resident_id == resident_id)
        .order_by(CivicGroup.name)
    )
    return [Follow(f"area:{i}", n, str(level)) for i, n, level in areas] + [
        Follow(f"group:{i}", n, "group") for i, n in groups
    ]


# -- audience --------------------------------------------------------------------------------


def _children(session: Session) -> dict[int | None, list[int]]:
    tree: dict[int | None, list[int]] = {}
    for area_id, parent_id in session.execute(select(Area.id, Area.parent_id)):
        tree.setdefault(parent_id, []).append(area_id)
    return tree


def area_and_inside(session: Session, area_id: int) -> list[int]:
    """An area and every area inside it (kecamatan -> its kelurahan -> their RW)."""
    tree, out, todo = _children(session), [], [area_id]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(tree.get(current, []))
    return out


def may_address(group: CivicGroup, area: Area) -> bool:
    """A group may address its own areas and any area inside them."""
    own = {a.id for a in group.areas}
    return any(a.id in own for a in area.ancestors())


def audience(session: Session, *, group_id: int, area_id: int | None) -> Select[tuple[int]]:
    """The residents an announcement reaches, each once, blocked ones (and channels that
    cannot carry announcements) left out.

    To the followers: the group's followers. To an area: whoever follows that area or any area
    inside it (a kelurahan's followers hear their kecamatan's announcements). Written as
    EXISTS on the followers' primary keys: a plan that stays index-driven even before the
    planner has statistics (a join to a DISTINCT subquery took minutes for 100,000 followers
    on a freshly loaded PostgreSQL).
    """
    if area_id is None:
        follows = exists().where(
            GroupFollower.resident_id == Resident.id, GroupFollower.group_id == group_id
        )
    else:
        follows = exists().where(
            AreaFollower.resident_id == Resident.id,
            AreaFollower.area_id.in_(area_and_inside(session, area_id)),
        )
    return select(Resident.id).where(
        follows, Resident.blocked_at.is_(None), Resident.channel.in_(BROADCAST_CHANNELS)
    )


def count_audience(session: Session, *, group_id: int, area_id: int | None) -> int:
    stmt = audience(session, group_id=group_id, area_id=area_id).subquery()
    return session.scalar(select(func.count()).select_from(stmt)) or 0


# -- composing -------------------------------------------------------------------------------


def first_link(text: str) -> str:
    found = _URL.search(text)
    return found.group(0).rstrip(".,);") if found else ""


def check_text(text: str, *, photo: str | None) -> str:
    """The announcement's text, stripped; refused when empty or too long for its message."""
    text = text.strip()
    if not text:
        raise BroadcastError("umumkan.error_empty", "an announcement needs text")
    limit = MAX_CAPTION if photo else MAX_TEXT
    if len(text) > limit:
        raise BroadcastError(
            "umumkan.error_too_long",
            f"{len(text)} characters, at most {limit}",
            limit=limit,
            length=len(text),
        )
    return text


def check_poll(options: Iterable[str]) -> list[str]:
    """A poll's answers, stripped: 2 to 4, each at most 40 characters (a button's label)."""
    answers = [o.strip() for o in options if o.strip()]
    low, high = POLL_OPTIONS
    if not low <= len(answers) <= high:
        raise BroadcastError("umumkan.error_poll", f"{len(answers)} poll answers, {low} to {high}")
    if any(len(o) > 40 for o in answers):
        raise BroadcastError("umumkan.error_poll", "a poll answer is longer than 40 characters")
    return answers


def create_broadcast(
    session: Session,
    *,
    group: CivicGroup,
    author: Resident | None,
    text: str,
    area: Area | None = None,
    photo: str = "",
    link: str = "",
    poll_options: Sequence[str] = (),
    scheduled_at: datetime | None = None,
    now: datetime | None = None,
) -> Broadcast:
    """Validate and queue an announcement. The author must manage the group (None: the CLI)."""
    now = now or utcnow()
    text = text.strip()
    if author is not None and session.get(GroupManager, (group.id, author.id)) is None:
        raise NotAllowed(f"resident {author.id} does not manage {group.code}")
    check_text(text, photo=photo)
    if area is not None and not may_address(group, area):
        raise BroadcastError(
            "umumkan.error_area", f"{group.code} may not address {area.name}", area=area.name
        )
    options = check_poll(poll_options) if any(o.strip() for o in poll_options) else []
    link = link.strip() or first_link(text)
    if link and not _URL.fullmatch(link):
        raise BroadcastError("umumkan.error_link", f"not a web address: {link!r}")
    if scheduled_at is not None and scheduled_at < now - timedelta(minutes=1):
        raise BroadcastError("umumkan.error_past", "the time is in the past")
    broadcast = Broadcast(
        group_id=group.id,
        author_id=author.id if author is not None else None,
        text=text,
        photo=photo,
        link=link,
        area_id=area.id if area is not None else None,
        poll_options=options,
        scheduled_at=scheduled_at or now,
        created_at=now,
    )
    session.add(broadcast)
    session.flush()
    return broadcast


def cancel_broadcast(
    session: Session, broadcast: Broadcast, *, by: Resident | None, admin: bool, now: datetime
) -> int:
    """Cancel what has not gone out yet; return how many deliveries were cancelled.

    Admins cancel any; a group's manager their group's; None is the CLI (an admin).
    """
    if (
        by is not None
        and not admin
        and session.get(GroupManager, (broadcast.group_id, by.id)) is None
    ):
        raise NotAllowed(f"resident {by.id} may not cancel broadcast {broadcast.id}")
    if broadcast.state in (BroadcastState.DONE, BroadcastState.CANCELLED):
        return 0
    broadcast.state, broadcast.finished_at = BroadcastState.CANCELLED, now
    broadcast.cancelled_by_id = by.id if by is not None else None
    result = session.execute(
        update(BroadcastDelivery)
        .where(
            BroadcastDelivery.broadcast_id == broadcast.id,
            BroadcastDelivery.state == DeliveryState.PENDING,
        )
        .values(state=DeliveryState.CANCELLED, claimed_until=None)
    )
    session.flush()
    return result.rowcount or 0


def get_broadcast(session: Session, broadcast_id: int) -> Broadcast:
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None:
        raise NotFound(f"no broadcast {broadcast_id}")
    return broadcast


def recent_broadcasts(
    session: Session, *, group_ids: Iterable[int] | None = None, limit: int = 5
) -> list[Broadcast]:
    stmt = select(Broadcast).order_by(Broadcast.id.desc()).limit(limit)
    if group_ids is not None:
        stmt = stmt.where(Broadcast.group_id.in_(list(group_ids)))
    return list(session.scalars(stmt))


@dataclass
class Progress:
    broadcast_id: int
    state: str
    recipients: int
    counts: dict[str, int] = field(default_factory=dict)
    poll: list[tuple[str, int]] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.recipients - self.counts.get(DeliveryState.PENDING.value, 0)


def progress(session: Session, broadcast: Broadcast) -> Progress:
    """Sent, pending, failed, blocked and cancelled deliveries, and the poll's answers."""
    counts = dict.fromkeys((s.value for s in DeliveryState), 0)
    for state, n in session.execute(
        select(BroadcastDelivery.state, func.count())
        .where(BroadcastDelivery.broadcast_id == broadcast.id)
        .group_by(BroadcastDelivery.state)
    ):
        counts[str(state)] = n
    votes = dict(
        session.execute(
            select(PollVote.option, func.count())
            .where(PollVote.broadcast_id == broadcast.id)
            .group_by(PollVote.option)
        ).all()
    )
    poll = [(o, votes.get(i, 0)) for i, o in enumerate(broadcast.poll_options)]
    return Progress(broadcast.id, broadcast.state.value, broadcast.recipients, counts, poll)


def vote(session: Session, *, broadcast_id: int, resident_id: int, option: int) -> str:
    """Record (or change) a resident's answer; return the answer's text."""
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None or not 0 <= option < len(broadcast.poll_options):
        raise NotFound(f"no answer {option} in broadcast {broadcast_id}")
    received = session.scalar(
        select(
            exists().where(
                BroadcastDelivery.broadcast_id == broadcast_id,
                BroadcastDelivery.resident_id == resident_id,
            )
        )
    )
    if not received:
        raise NotAllowed(f"resident {resident_id} did not receive broadcast {broadcast_id}")
    row = session.get(PollVote, (broadcast_id, resident_id))
    if row is None:
        session.add(PollVote(broadcast_id=broadcast_id, resident_id=resident_id, option=option))
    else:
        row.option = option
    session.flush()
    return broadcast.poll_options[option]


# -- sending ---------------------------------------------------------------------------------


def start_due(session: Session, *, now: datetime) -> list[int]:
    """Choose the recipients of every announcement whose time has come.

    One INSERT … SELECT per announcement, in the caller's transaction: a crash leaves either no
    deliveries or all of them.
    """
    stmt = (
        select(Broadcast)
        .where(Broadcast.state == BroadcastState.SCHEDULED, Broadcast.scheduled_at <= now)
        .order_by(Broadcast.id)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    started = []
    for broadcast in session.scalars(stmt).all():
        chosen = audience(session, group_id=broadcast.group_id, area_id=broadcast.area_id)
        rows = chosen.add_columns(
            literal(broadcast.id).label("broadcast_id"),
            literal(DeliveryState.PENDING.value).label("state"),
            literal(0).label("attempts"),
            literal(now, type_=BroadcastDelivery.next_attempt_at.type).label("next_attempt_at"),
            literal("").label("claimed_by"),
            literal("").label("last_error"),
        )
        session.execute(
            insert(BroadcastDelivery).from_select(
                [
                    "resident_id",
                    "broadcast_id",
                    "state",
                    "attempts",
                    "next_attempt_at",
                    "claimed_by",
                    "last_error",
                ],
                rows,
            )
        )
        # Counted, not rowcount: psycopg reports -1 for this INSERT … SELECT.
        broadcast.recipients = session.scalar(
            select(func.count()).where(BroadcastDelivery.broadcast_id == broadcast.id)
        )
        broadcast.state, broadcast.started_at = BroadcastState.SENDING, now
        started.append(broadcast.id)
    session.flush()
    return started


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    broadcast_id: int
    channel: str
    chat_id: str
    language: str


def claim(
    session: Session,
    *,
    worker: str,
    channels: Sequence[str],
    limit: int,
    lease: timedelta,
    now: datetime,
) -> list[Claimed]:
    """Lease up to `limit` due deliveries of running announcements, oldest first."""
    d = BroadcastDelivery
    stmt = (
        select(
            d.id, d.broadcast_id, Resident.channel, Resident.platform_user_id, Resident.language
        )
        .join(Resident, Resident.id == d.resident_id)
        .join(Broadcast, Broadcast.id == d.broadcast_id)
        .where(
            d.state == DeliveryState.PENDING,
            d.next_attempt_at <= now,
            or_(d.claimed_until.is_(None), d.claimed_until < now),
            Broadcast.state == BroadcastState.SENDING,
            Resident.channel.in_(list(channels)),
        )
        .order_by(d.id)  # oldest announcement first: its rows were inserted first
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=d)
    rows = [Claimed(*row) for row in session.execute(stmt)]
    if rows:
        session.execute(
            update(d)
            .where(d.id.in_([r.delivery_id for r in rows]))
            .values(claimed_by=worker, claimed_until=now + lease)
        )
    return rows


def _pace(session: Session, channel: str, now: datetime) -> SendPace:
    """The channel's send clock, locked for this transaction (created on first use)."""
    stmt = select(SendPace).where(SendPace.channel == channel)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt = stmt.with_for_update()
    pace = session.scalar(stmt)
    if pace is None:  # two workers may both get here: one insert is a no-op
        insert_ = {"postgresql": pg_insert, "sqlite": sqlite_insert}[dialect]
        session.execute(
            insert_(SendPace).values(channel=channel, next_slot_at=now).on_conflict_do_nothing()
        )
        pace = session.scalars(stmt).one()
    return pace


def book_slots(
    session: Session, *, channel: str, count: int, rate: float, now: datetime
) -> datetime:
    """Book `count` send slots at `rate` per second on the channel's shared clock.

    Return the first slot's time; the others follow at 1/rate seconds. The row is locked, so
    workers book one after another and never overlap.
    """
    pace = _pace(session, channel, now)
    first = max(pace.next_slot_at, now)
    pace.next_slot_at = first + timedelta(seconds=count / rate)
    session.flush()
    return first


def hold_all(session: Session, *, channel: str, until: datetime) -> None:
    """The platform said "retry after": no worker sends on this channel before `until`."""
    pace = _pace(session, channel, until)
    pace.next_slot_at = max(pace.next_slot_at, until)
    session.flush()


@cache
def _mark_statement() -> Executable:
    d = BroadcastDelivery.__table__
    return update(d).where(d.c.id == bindparam("did"))


def mark(session: Session, delivery_id: int, **values: object) -> None:
    """Record a delivery's outcome (state, attempts, next_attempt_at, …); the lease ends."""
    session.connection().execute(
        _mark_statement(), {"did": delivery_id, "claimed_until": None, **values}
    )


def attempts_of(session: Session, delivery_id: int) -> int:
    return (
        session.scalar(
            select(BroadcastDelivery.attempts).where(BroadcastDelivery.id == delivery_id)
        )
        or 0
    )


def mark_blocked(session: Session, *, delivery_id: int, now: datetime, error: str) -> None:
    """The resident blocked the bot: no retry, and no announcement until they write again."""
    mark(session, delivery_id, state=DeliveryState.BLOCKED.value, last_error=error[:500])
    resident_id = select(BroadcastDelivery.resident_id).where(BroadcastDelivery.id == delivery_id)
    session.execute(
        update(Resident).where(Resident.id == resident_id.scalar_subquery()).values(blocked_at=now)
    )


def renew(session: Session, delivery_ids: Sequence[int], until: datetime) -> None:
    """Extend the lease on deliveries still in hand."""
    if delivery_ids:
        session.execute(
            update(BroadcastDelivery)
            .where(BroadcastDelivery.id.in_(list(delivery_ids)))
            .values(claimed_until=until)
        )


def release(session: Session, delivery_ids: Sequence[int], *, not_before: datetime) -> None:
    """Give claimed deliveries back, to be sent from `not_before` on."""
    if delivery_ids:
        session.execute(
            update(BroadcastDelivery)
            .where(BroadcastDelivery.id.in_(list(delivery_ids)))
            .values(claimed_until=None, next_attempt_at=not_before)
        )


def finish(session: Session, *, now: datetime) -> list[int]:
    """Mark running announcements with nothing left to send as done."""
    pending = exists().where(
        BroadcastDelivery.broadcast_id == Broadcast.id,
        BroadcastDelivery.state == DeliveryState.PENDING,
    )
    ids = list(
        session.scalars(
            select(Broadcast.id).where(Broadcast.state == BroadcastState.SENDING, ~pending)
        )
    )
    if ids:
        session.execute(
            update(Broadcast)
            .where(Broadcast.id.in_(ids))
            .values(state=BroadcastState.DONE, finished_at=now)
        )
    return ids


def state_of(session: Session, broadcast_ids: Iterable[int]) -> dict[int, BroadcastState]:
    return dict(
        session.execute(
            select(Broadcast.id, Broadcast.state).where(Broadcast.id.in_(list(broadcast_ids)))
        ).all()
    )
