"""Group managers announce from chat (/umumkan); admins register groups (/grup).

Composing: group (when several) → text, optionally with a photo and a link → audience (the
group's followers, or one of its areas) → now or at a time → optional poll → preview with the
number of recipients → send. The draft lives in the conversation like a report's.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from actions import broadcasts
from actions.domain import GroupKind, OfficerRole
from actions.models import Area, Broadcast, CivicGroup, GroupManager
from actions.people import get_or_create_resident
from bot.messages import Button, Outgoing

if TYPE_CHECKING:
    from bot.turn import Turn

_TIME = re.compile(
    r"^\s*(?:(\d{1,2})[/.-](\d{1,2})(?:[/.-](\d{2,4}))?\s+)?(\d{1,2})[:.](\d{2})\s*$"
)


class Announcer:
    """One manager's (or admin's) announcement step, inside the turn's transaction."""

    def __init__(self, turn: Turn) -> None:
        self.turn, self.session = turn, turn.session
        self.resident_id = turn.sender.resident_id

    @property
    def draft(self) -> dict:
        return self.turn.data.setdefault("announce", {})

    def is_admin(self) -> bool:
        officer = self.turn.officer
        return officer is not None and officer.role is OfficerRole.ADMIN

    def say(self, key: str, **params: object) -> list[Outgoing]:
        return [Outgoing(self.turn.t(key, **params))]

    # -- /umumkan -------------------------------------------------------------------------------

    def command(self, rest: str) -> list[Outgoing]:
        word, _, arg = rest.partition(" ")
        if word.lower() == "status":
            return self.status()
        if word.lower() == "batal":
            return self.cancel(arg.strip())
        groups = broadcasts.managed_groups(self.session, self.resident_id)
        if not groups:
            return self.say("umumkan.not_manager")
        self.turn.reset()
        if len(groups) == 1:
            return self.start(groups[0])
        self.turn.go(self.turn.states.ANNOUNCE_GROUP)
        return [
            self.buttons(
                "umumkan.choose_group", [(g.name, f"announce:group:{g.id}") for g in groups]
            )
        ]

    def buttons(self, key: str, choices: list[tuple[str, str]], **params: object) -> Outgoing:
        rows = tuple((Button(label, payload),) for label, payload in choices)
        self.turn.offer(rows)
        return Outgoing(self.turn.t(key, **params), buttons=rows)

    def start(self, group: CivicGroup) -> list[Outgoing]:
        self.turn.data["announce"] = {"group": group.id}
        self.turn.go(self.turn.states.ANNOUNCE_TEXT)
        return self.say("umumkan.ask_text", group=group.name)

    def group(self) -> CivicGroup | None:
        """The draft's group, while the sender still manages it (and it is active)."""
        group = self.session.get(CivicGroup, self.draft.get("group", 0))
        if group is None or not group.active:
            return None
        manages = self.session.get(GroupManager, (group.id, self.resident_id))
        return group if manages is not None else None

    def text(self, text: str, photo: str | None) -> list[Outgoing]:
        """The announcement's words (a photo's caption included)."""
        group = self.group()
        if group is None:
            self.turn.reset()
            return self.say("form.expired")
        if photo:
            self.draft["photo"] = photo
        if not text.strip():
            return self.say("umumkan.ask_text", group=group.name)
        try:  # a photo sent earlier counts too: its caption has the shorter limit
            self.draft["text"] = broadcasts.check_text(text, photo=self.draft.get("photo"))
        except broadcasts.BroadcastError as exc:
            return self.say(exc.key, **exc.params)
        self.draft["link"] = broadcasts.first_link(text)
        self.turn.go(self.turn.states.ANNOUNCE_AUDIENCE)
        choices = [
            (self.turn.t("umumkan.to_followers", group=group.name), "announce:to:followers")
        ]
        choices += [
            (self.turn.area_name(a.level.value, a.name), f"announce:to:{a.id}")
            for a in group.areas
        ]
        return [self.buttons("umumkan.ask_audience", choices)]

    def on_button(self, value: str) -> list[Outgoing]:
        step, _, arg = value.partition(":")
        states = self.turn.states
        if step == "group" and arg.isdigit():
            groups = broadcasts.managed_groups(self.session, self.resident_id)
            chosen = next((g for g in groups if g.id == int(arg)), None)
            return self.start(chosen) if chosen else self.say("form.expired")
        if not self.draft.get("group") or self.group() is None:
            self.turn.reset()
            return self.say("form.expired")
        if step == "to":
            if arg != "followers":
                area = self.session.get(Area, int(arg)) if arg.isdigit() else None
                if area is None or not broadcasts.may_address(self.group(), area):
                    return self.say("form.expired")
                self.draft["area"] = area.id
            else:
                self.draft.pop("area", None)
            self.turn.go(states.ANNOUNCE_WHEN)
            return [
                self.buttons(
                    "umumkan.ask_when",
                    [
                        (self.turn.t("umumkan.when_now"), "announce:when:now"),
                        (self.turn.t("umumkan.when_later"), "announce:when:later"),
                    ],
                )
            ]
        if step == "when":
            if arg == "later":
                self.turn.go(states.ANNOUNCE_TIME)
                return self.say("umumkan.ask_time")
            self.draft.pop("at", None)
            return self.ask_poll()
        if step == "poll":
            if arg == "yes":
                self.turn.go(states.ANNOUNCE_POLL)
                return self.say("umumkan.ask_poll_options")
            self.draft.pop("poll", None)
            return self.preview()
        if step == "confirm":
            return self.send() if arg == "send" else self.abandon()
        return self.say("form.expired")

    def ask_poll(self) -> list[Outgoing]:
        self.turn.go(self.turn.states.ANNOUNCE_POLL_ASK)
        return [
            self.buttons(
                "umumkan.ask_poll",
                [
                    (self.turn.t("umumkan.poll_no"), "announce:poll:no"),
                    (self.turn.t("umumkan.poll_yes"), "announce:poll:yes"),
                ],
            )
        ]

    def typed_time(self, text: str) -> list[Outgoing]:
        at = parse_time(text, now=self.turn.now, tz=self.turn.app.city.config.tz)
        if at is None:
            return self.say("umumkan.error_time")
        self.draft["at"] = at.isoformat()
        return self.ask_poll()

    def typed_poll(self, text: str) -> list[Outgoing]:
        try:
            self.draft["poll"] = broadcasts.check_poll(
                line.strip(" -•*") for line in text.splitlines()
            )
        except broadcasts.BroadcastError as exc:
            return self.say(exc.key, **exc.params)
        return self.preview()

    def preview(self) -> list[Outgoing]:
        d, group = self.draft, self.group()
        if group is None:
            self.turn.reset()
            return self.say("form.expired")
        count = broadcasts.count_audience(self.session, group_id=group.id, area_id=d.get("area"))
        area = self.session.get(Area, d["area"]) if d.get("area") else None
        audience = (
            self.turn.area_name(area.level.value, area.name)
            if area
            else self.turn.t("umumkan.to_followers", group=group.name)
        )
        when = (
            self.turn.date_time(datetime.fromisoformat(d["at"]))
            if d.get("at")
            else self.turn.t("umumkan.when_now")
        )
        shown = Outgoing(
            d["text"],
            title=self.turn.t("umumkan.header", group=group.name),
            buttons=tuple((Button(o, "announce:noop"),) for o in d.get("poll", [])),
            photos=(d["photo"],) if d.get("photo") else (),
        )
        self.turn.go(self.turn.states.ANNOUNCE_CONFIRM)
        confirm = self.buttons(
            "umumkan.preview",
            [
                (self.turn.t("button.send"), "announce:confirm:send"),
                (self.turn.t("button.cancel"), "announce:confirm:cancel"),
            ],
            count=count,
            audience=audience,
            when=when,
        )
        return [shown, confirm]

    def send(self) -> list[Outgoing]:
        d, group = self.draft, self.group()
        if group is None or not d.get("text"):
            self.turn.reset()
            return self.say("form.expired")
        try:
            broadcast = broadcasts.create_broadcast(
                self.session,
                group=group,
                author=self.turn.resident,
                text=d["text"],
                area=self.session.get(Area, d["area"]) if d.get("area") else None,
                photo=d.get("photo", ""),
                link=d.get("link", ""),
                poll_options=d.get("poll", []),
                scheduled_at=datetime.fromisoformat(d["at"]) if d.get("at") else None,
                now=self.turn.now,
            )
        except broadcasts.BroadcastError as exc:
            return self.say(exc.key, **exc.params)
        self.turn.reset()
        return self.say("umumkan.queued", id=broadcast.id)

    def abandon(self) -> list[Outgoing]:
        self.turn.reset()
        return self.say("umumkan.abandoned")

    # -- status and cancel ----------------------------------------------------------------------

    def status(self) -> list[Outgoing]:
        admin = self.is_admin()
        groups = broadcasts.managed_groups(self.session, self.resident_id)
        if not groups and not admin:
            return self.say("umumkan.not_manager")
        recent = broadcasts.recent_broadcasts(
            self.session, group_ids=None if admin else [g.id for g in groups]
        )
        if not recent:
            return self.say("umumkan.status_none")
        return [Outgoing("\n\n".join(self.status_line(b) for b in recent))]

    def status_line(self, broadcast: Broadcast) -> str:
        p = broadcasts.progress(self.session, broadcast)
        c = p.counts
        line = self.turn.t(
            "umumkan.status_line",
            id=broadcast.id,
            group=broadcast.group.name,
            state=self.turn.t(f"umumkan.state.{p.state}"),
            text=broadcast.text[:60],
            recipients=p.recipients,
            sent=c["sent"],
            pending=c["pending"],
            failed=c["failed"],
            blocked=c["blocked"],
        )
        if p.poll:
            line += "\n" + "\n".join(
                self.turn.t("umumkan.poll_line", answer=answer, votes=votes)
                for answer, votes in p.poll
            )
        return line

    def cancel(self, arg: str) -> list[Outgoing]:
        if not arg.isdigit():
            return self.say("umumkan.cancel_usage")
        broadcast = self.session.get(Broadcast, int(arg))
        if broadcast is None:
            return self.say("umumkan.not_found", id=arg)
        try:
            cancelled = broadcasts.cancel_broadcast(
                self.session,
                broadcast,
                by=self.turn.resident,
                admin=self.is_admin(),
                now=self.turn.now,
            )
        except broadcasts.NotAllowed:
            return self.say("umumkan.not_found", id=arg)  # the same answer: nothing leaks
        return self.say("umumkan.cancelled", id=broadcast.id, count=cancelled)

    # -- /grup (admins) -------------------------------------------------------------------------

    def groups_command(self, rest: str) -> list[Outgoing]:
        if not self.is_admin():
            return self.say("command.officer_only", command="grup")
        word, _, arg = rest.partition(" ")
        try:
            if word.lower() == "tambah":
                return self.add_group(arg)
            if word.lower() == "pengelola":
                return self.add_manager(arg)
        except broadcasts.BroadcastError as exc:
            return self.say(exc.key, **exc.params)
        if word:
            return self.say("grup.usage")
        groups = broadcasts.list_groups(self.session)
        if not groups:
            return self.say("grup.none")
        lines = [
            self.turn.t(
                "grup.line",
                code=g.code,
                name=g.name,
                areas=", ".join(a.name for a in g.areas),
                managers=len(broadcasts.managers_of(self.session, g)),
            )
            for g in groups
        ]
        return [Outgoing("\n".join(lines))]

    def add_group(self, arg: str) -> list[Outgoing]:
        parts = [p.strip() for p in arg.split("|")]
        if len(parts) != 4 or not all(parts) or parts[2] not in {k.value for k in GroupKind}:
            return self.say("grup.usage")
        code, name, kind, areas = parts
        group = broadcasts.add_group(
            self.session,
            code=code,
            name=name,
            kind=GroupKind(kind),
            area_codes=[a for a in (x.strip() for x in areas.split(",")) if a],
        )
        return self.say("grup.added", code=group.code, name=group.name)

    def add_manager(self, arg: str) -> list[Outgoing]:
        code, _, user = arg.strip().partition(" ")
        if not code or not user.strip():
            return self.say("grup.usage")
        group = broadcasts.get_group(self.session, code)
        resident = get_or_create_resident(
            self.session, channel=self.turn.incoming.channel, platform_user_id=user.strip()
        )
        broadcasts.add_manager(self.session, group=group, resident=resident)
        return self.say("grup.manager_added", code=group.code, user=user.strip())


def parse_time(text: str, *, now: datetime, tz: tzinfo) -> datetime | None:
    """ "08:00", "1/12 08:00" or "1/12/2026 08:00", in the city's time, never in the past.

    A bare time already gone today means tomorrow.
    """
    m = _TIME.match(text)
    if m is None:
        return None
    day, month, year, hour, minute = m.groups()
    local_now = now.astimezone(tz)
    try:
        if day is None:
            at = local_now.replace(hour=int(hour), minute=int(minute), second=0, microsecond=0)
            if at <= local_now:
                at += timedelta(days=1)
        else:
            full_year = (
                int(year) + 2000 if year and len(year) == 2 else int(year or local_now.year)
            )
            at = datetime(full_year, int(month), int(day), int(hour), int(minute), tzinfo=tz)
    except ValueError:
        return None
    return at if at > local_now else None
