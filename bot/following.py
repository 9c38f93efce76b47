"""Residents follow their kelurahan, kecamatan, the city or a civic group, and stop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from actions import broadcasts
from actions.domain import AreaLevel, DomainError
from actions.models import Area, CivicGroup, Resident
from bot.messages import Button, Outgoing

if TYPE_CHECKING:
    from bot.turn import Turn

MENU_GROUPS = 6  # groups offered as buttons; the others by name


class Following:
    """One resident's follow, list or stop, inside the turn's transaction."""

    def __init__(self, turn: Turn) -> None:
        self.turn, self.session = turn, turn.session
        self.resident_id = turn.sender.resident_id
        # Announcements reach only some channels (see actions.broadcasts.BROADCAST_CHANNELS).
        self.available = turn.incoming.channel in broadcasts.BROADCAST_CHANNELS

    # -- what the resident names ---------------------------------------------------------------

    def target(self, words: str, parse: Any | None) -> tuple[str, int, str] | None:
        """What a text names: ("area"|"group", id, display name), or None.

        A group's exact code or name first, then a kelurahan or kecamatan, then the city, then
        a group by part of its name.
        """
        group = broadcasts.find_group(self.session, words)
        key = " ".join(words.casefold().split())
        if group is not None and key in (group.code, " ".join(group.name.casefold().split())):
            return "group", group.id, group.name
        if parse is not None:
            for level in (AreaLevel.KELURAHAN, AreaLevel.KECAMATAN):
                names = [e.value for e in parse.entities if e.type == level.value]
                area = names and self.session.scalar(
                    select(Area).where(Area.level == level, Area.name == names[0])
                )
                if area:
                    return "area", area.id, self.turn.area_name(area.level.value, area.name)
        city = self.city_area()
        if key in {city.name.casefold(), *self.words("ikuti.city_words")}:
            return "area", city.id, self.turn.area_name(city.level.value, city.name)
        if group is not None:
            return "group", group.id, group.name
        return None

    def words(self, key: str) -> set[str]:
        """A comma-separated list of words from the responses, in the resident's language."""
        return {w.strip().casefold() for w in self.turn.t(key).split(",") if w.strip()}

    def city_area(self) -> Area:
        return self.session.scalars(select(Area).where(Area.level == AreaLevel.KOTA)).one()

    # -- follow ---------------------------------------------------------------------------------

    def follow(self, words: str, parse: Any | None) -> list[Outgoing] | None:
        """Follow what the words name; None when they name nothing the bot knows."""
        found = self.target(words, parse) if words.strip() else None
        if found is None and 0 < len(words.split()) <= 4:
            # A bare name answering "which kelurahan?": read it as a place ("air dingin").
            found = self.target(words, self.turn.app.nlu.parse(f"di {words}"))
        return self.follow_target(*found) if found is not None else None

    def start(self, words: str, parse: Any | None) -> list[Outgoing]:
        """Follow what the words name, or offer the choices and wait for a name."""
        if not self.available:
            return [self.turn.reply("ikuti.not_on_channel")]
        followed = self.follow(words, parse)
        if followed is not None:
            return followed
        menu = self.menu()
        self.turn.go(self.turn.states.FOLLOW)
        return [menu]

    def menu(self) -> Outgoing:
        """The city and the groups as buttons; any kelurahan or kecamatan by name."""
        city = self.city_area()
        rows = (
            (Button(self.turn.t("ikuti.city_button", city=city.name), f"follow:area:{city.id}"),),
        )
        rows += tuple(
            (Button(g.name, f"follow:group:{g.id}"),)
            for g in broadcasts.list_groups(self.session)[:MENU_GROUPS]
        )
        self.turn.offer(rows)
        return Outgoing(self.turn.t("ikuti.menu", city=city.name), buttons=rows)

    def follow_target(self, kind: str, target_id: int, name: str) -> list[Outgoing]:
        self.turn.reset()
        if kind == "area":
            area = self.session.get(Area, target_id)
            if area is None:
                return [self.turn.reply("form.expired")]
            new = broadcasts.follow_area(self.session, resident_id=self.resident_id, area=area)
        else:
            group = self.session.get(CivicGroup, target_id)
            if group is None or not group.active:
                return [self.turn.reply("form.expired")]
            new = broadcasts.follow_group(self.session, resident_id=self.resident_id, group=group)
        return [self.turn.reply("ikuti.done" if new else "ikuti.already", name=name)]

    def on_button(self, value: str) -> list[Outgoing]:
        """`follow:area:<id>`, `follow:group:<id>`, or `follow:no` (declined the offer)."""
        kind, _, raw = value.partition(":")
        if kind == "no":
            self.turn.reset()
            return [self.turn.reply("ikuti.declined")]
        if kind not in ("area", "group") or not raw.isdigit():
            return [self.turn.reply("form.expired")]
        if kind == "area":
            area = self.session.get(Area, int(raw))
            name = self.turn.area_name(area.level.value, area.name) if area is not None else ""
        else:
            group = self.session.get(CivicGroup, int(raw))
            name = group.name if group is not None else ""
        return self.follow_target(kind, int(raw), name)

    def offer_after_report(self, area: Area | None) -> Outgoing | None:
        """Once per resident: after a report that names a kelurahan, offer to follow it."""
        if area is None or area.level is not AreaLevel.KELURAHAN or not self.available:
            return None
        resident = self.session.get_one(Resident, self.resident_id)
        if resident.follow_offered:
            return None
        self.session.execute(
            update(Resident).where(Resident.id == self.resident_id).values(follow_offered=True)
        )
        if any(f.target == f"area:{area.id}" for f in self.follows()):
            return None
        return self.turn.reply(
            "ikuti.offer",
            name=self.turn.area_name(area.level.value, area.name),
            buttons=[
                [
                    ("ikuti.offer_yes", f"follow:area:{area.id}"),
                    ("ikuti.offer_no", "follow:no"),
                ]
            ],
            answers={
                "yes": f"follow:area:{area.id}",
                "join": f"follow:area:{area.id}",
                "no": "follow:no",
            },
        )

    # -- list and stop --------------------------------------------------------------------------

    def follows(self) -> list[broadcasts.Follow]:
        return broadcasts.follows_of(self.session, self.resident_id)

    def name_of(self, follow: broadcasts.Follow) -> str:
        if follow.level == "group":
            return follow.name
        return self.turn.area_name(follow.level, follow.name)

    def listing(self) -> list[Outgoing]:
        follows = self.follows()
        if not follows:
            return [self.turn.reply("langganan.none")]
        lines = "\n".join(f"• {self.name_of(f)}" for f in follows)
        return [self.stop_buttons("langganan.list", follows, lines=lines)]

    def stop(self, words: str, parse: Any | None) -> list[Outgoing]:
        follows = self.follows()
        if not follows:
            return [self.turn.reply("berhenti.none")]
        if set(words.casefold().split()) & self.words("berhenti.all_words"):
            return self.on_stop_button("all")
        found = self.target(words, parse) if words.strip() else None
        if found is not None:
            kind, target_id, name = found
            if broadcasts.unfollow(
                self.session, resident_id=self.resident_id, target=f"{kind}:{target_id}"
            ):
                return [self.turn.reply("berhenti.done", name=name)]
        if len(follows) == 1:  # "stop sending me announcements": the only one it can be
            return self.on_stop_button(follows[0].target)
        return [self.stop_buttons("berhenti.choose", follows)]

    def stop_buttons(self, key: str, follows: list[broadcasts.Follow], **params: Any) -> Outgoing:
        """A "stop" button per follow, and one to stop them all."""
        rows = tuple(
            (Button(self.turn.t("berhenti.button", name=self.name_of(f)), f"unfollow:{f.target}"),)
            for f in follows
        )
        rows += ((Button(self.turn.t("berhenti.all_button"), "unfollow:all"),),)
        self.turn.offer(rows)
        return Outgoing(self.turn.t(key, **params), buttons=rows)

    def on_stop_button(self, value: str) -> list[Outgoing]:
        if value == "all":
            removed = broadcasts.unfollow_all(self.session, resident_id=self.resident_id)
            return [self.turn.reply("berhenti.all_done" if removed else "berhenti.none")]
        names = {f.target: self.name_of(f) for f in self.follows()}
        if broadcasts.unfollow(self.session, resident_id=self.resident_id, target=value):
            return [self.turn.reply("berhenti.done", name=names.get(value, ""))]
        return [self.turn.reply("berhenti.none")]

    # -- polls ----------------------------------------------------------------------------------

    def on_poll(self, value: str) -> list[Outgoing]:
        raw_id, _, raw_option = value.partition(":")
        if not (raw_id.isdigit() and raw_option.isdigit()):
            return [self.turn.reply("form.expired")]
        try:
            answer = broadcasts.vote(
                self.session,
                broadcast_id=int(raw_id),
                resident_id=self.resident_id,
                option=int(raw_option),
            )
        except DomainError:
            return [self.turn.reply("form.expired")]
        return [self.turn.reply("poll.thanks", answer=answer)]
