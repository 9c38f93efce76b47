"""The resident conversation: one Incoming in, a list of Outgoing back, state in the database."""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache, cached_property
from typing import Any, Protocol

from sqlalchemy import Executable, bindparam, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from actions.city import LoadedCity
from actions.desk import ReopenTooLate, officer_of, rate, reopen
from actions.domain import AreaLevel, DomainError, Privacy, TicketKind, TicketStatus
from actions.inbox import record_update
from actions.models import (
    Agency,
    Area,
    Category,
    Conversation,
    Officer,
    Resident,
    Ticket,
    utcnow,
)
from actions.public import PublicView, public_notes, public_view
from actions.tickets import (
    create_ticket,
    find_similar,
    follow_ticket,
    joinable,
    resolve_agency,
    tickets_of,
    visible_ticket,
)
from bot.announce import Announcer
from bot.faq import FaqIndex
from bot.following import Following
from bot.messages import Button, Incoming, Outgoing
from bot.officer_desk import COMMANDS as OFFICER_COMMANDS
from bot.officer_desk import Desk
from bot.responses import Responses
from nlu import redact

log = logging.getLogger(__name__)

# Below this confidence in the category, the resident is asked to pick one.
CATEGORY_THRESHOLD = 0.30
FORM_TIMEOUT = timedelta(hours=24)  # a form left this long starts over


class Understanding(Protocol):
    """What the conversation needs of the NLU (the built-in engine or a Rasa server)."""

    def parse(self, text: str) -> Any: ...


class State(StrEnum):
    IDLE = "idle"
    DESCRIBE = "report.describe"
    CATEGORY = "report.category"
    LOCATION = "report.location"
    SIMILAR = "report.similar"
    PHOTO = "report.photo"
    PRIVACY = "report.privacy"
    CONFIRM = "report.confirm"
    EDIT = "report.edit"
    CLARIFY = "clarify"
    FORWARD = "tanya.forward"
    OFFICER_REPLY = "officer.reply"
    FOLLOW = "follow.name"  # waiting for the name of a place or group to follow
    ANNOUNCE_GROUP = "announce.group"
    ANNOUNCE_TEXT = "announce.text"
    ANNOUNCE_AUDIENCE = "announce.audience"
    ANNOUNCE_WHEN = "announce.when"
    ANNOUNCE_TIME = "announce.time"
    ANNOUNCE_POLL_ASK = "announce.poll_ask"
    ANNOUNCE_POLL = "announce.poll"
    ANNOUNCE_CONFIRM = "announce.confirm"


FORM_STATES = frozenset(State) - {State.IDLE}
# Announcement steps that take typed text (or a photo with its caption) rather than buttons.
_ANNOUNCE_TYPED = frozenset({State.ANNOUNCE_TEXT, State.ANNOUNCE_TIME, State.ANNOUNCE_POLL})
# Intents answered on the side while a form waits for a button.
_ASIDE = frozenset(
    {"cek_status", "tanya", "salam", "terima_kasih", "bantuan", "nilai", "ikuti", "berhenti"}
)


@dataclass(frozen=True)
class Turned:
    """What one update did: whom to answer, and the answers."""

    resident_id: int
    replies: list[Outgoing]


@dataclass
class Assistant:
    """Everything a turn needs, built once at start-up and shared by every turn."""

    city: LoadedCity
    nlu: Understanding
    responses: Responses
    faq: FaqIndex
    sessions: sessionmaker[Session]
    clock: Callable[[], datetime] = utcnow

    def handle(self, incoming: Incoming) -> list[Outgoing]:
        """Handle one update in one transaction (the terminal chat); a redelivered update
        gives no reply."""
        with self.sessions.begin() as session:
            if not record_update(session, channel=incoming.channel, update_id=incoming.update_id):
                log.info("update %s:%s seen before, dropped", incoming.channel, incoming.update_id)
                return []
            return self.turn(session, incoming).replies

    def turn(self, session: Session, incoming: Incoming) -> Turned:
        """Handle one update in the caller's transaction (the inbox has made sure that it is
        handled once)."""
        sender = _load_sender(session, incoming)
        turn = Turn(self, session, sender, incoming)
        replies = turn.run()
        _save_turn(session, sender, turn)
        return Turned(sender.resident_id, [replace(r, language=turn.lang) for r in replies])

    def resident_for(self, session: Session, incoming: Incoming) -> int:
        """The id of the resident who sent `incoming` (recorded on first contact)."""
        return _load_sender(session, incoming).resident_id

    def sorry(self, incoming: Incoming) -> Outgoing:
        """The reply when handling failed: no blame, try again."""
        lang = _platform_language(incoming.language_code) or "id"
        return Outgoing(self.responses.get(lang, "error.try_again"))


def _platform_language(code: str | None) -> str | None:
    return "en" if code and code.lower().startswith("en") else None


@dataclass
class Sender:
    """The resident behind a message and where their conversation stands, read in one query.

    The hot path stays in SQL Core: most messages never need the ORM objects.
    """

    resident_id: int
    display_name: str
    language: str
    state: str | None  # None: no conversation row yet
    data: dict[str, Any]
    updated_at: datetime | None


@cache
def _statements() -> dict[str, Executable]:
    """The statements every message runs, built once: only their parameters change."""
    r, c = Resident.__table__, Conversation.__table__
    return {
        "load": select(r.c.id, r.c.display_name, r.c.language, c.c.state, c.c.data, c.c.updated_at)
        .add_columns(r.c.blocked_at)
        .select_from(r.outerjoin(c, c.c.resident_id == r.c.id))
        .where(r.c.channel == bindparam("channel"), r.c.platform_user_id == bindparam("user"))
        .with_for_update(of=r),
        "add_resident": insert(r).returning(r.c.id),
        "set_resident": update(r).where(r.c.id == bindparam("rid")),
        "add_state": insert(c),
        "set_state": update(c).where(c.c.resident_id == bindparam("rid")),
    }


def _load_sender(session: Session, incoming: Incoming) -> Sender:
    """Load (or create) the sender and their conversation.

    The resident's row is locked (PostgreSQL) so that two processes handling two messages of
    one resident at once take turns instead of overwriting each other's state.
    """
    sql, conn = _statements(), session.connection()
    row = conn.execute(
        sql["load"], {"channel": incoming.channel, "user": incoming.user_id}
    ).first()
    if row is None:  # first contact
        language = _platform_language(incoming.language_code) or "id"
        resident_id = conn.execute(
            sql["add_resident"],
            {
                "channel": incoming.channel,
                "platform_user_id": incoming.user_id,
                "display_name": incoming.display_name,
                "language": language,
                "created_at": utcnow(),
            },
        ).scalar_one()
        return Sender(resident_id, incoming.display_name, language, None, {}, None)
    sender = Sender(
        row.id, row.display_name, row.language, row.state, row.data or {}, row.updated_at
    )
    changed: dict[str, Any] = {}
    if incoming.display_name and row.display_name != incoming.display_name:
        changed["display_name"] = sender.display_name = incoming.display_name
    if row.blocked_at is not None:  # they write again: they have unblocked the bot
        changed["blocked_at"] = None
    if changed:
        conn.execute(sql["set_resident"], {"rid": row.id, **changed})
    return sender


def _save_turn(session: Session, sender: Sender, turn: Turn) -> None:
    """Write the conversation and the language back, only when they changed."""
    sql, conn = _statements(), session.connection()
    if turn.lang != sender.language:
        conn.execute(sql["set_resident"], {"rid": sender.resident_id, "language": turn.lang})
    state = turn.state.value
    idle = state == State.IDLE.value and not turn.data
    values = {"state": state, "data": turn.data, "updated_at": turn.now}
    if sender.state is None:
        if not idle:
            conn.execute(sql["add_state"], {"resident_id": sender.resident_id, **values})
    elif (state, turn.data) != (sender.state, sender.data) or not idle:
        conn.execute(sql["set_state"], {"rid": sender.resident_id, **values})


class Turn:
    """One message of one resident: reads the state, decides, writes the new state."""

    states = State  # for the command sets in other modules

    def __init__(
        self, app: Assistant, session: Session, sender: Sender, incoming: Incoming
    ) -> None:
        self.app, self.session, self.sender, self.incoming = app, session, sender, incoming
        self.now = app.clock()
        known = sender.state in State._value2member_map_
        self.state = State(sender.state) if known else State.IDLE
        self.data: dict[str, Any] = dict(sender.data)
        if self.state in FORM_STATES and (
            sender.updated_at is None or sender.updated_at < self.now - FORM_TIMEOUT
        ):
            self.state, self.data = State.IDLE, {}
        self.lang = sender.language if sender.language in app.responses.tables else "id"

    @cached_property
    def resident(self) -> Resident:
        """The resident as an ORM object, loaded only when a service needs it."""
        return self.session.get_one(Resident, self.sender.resident_id)

    # -- helpers ---------------------------------------------------------------------------

    @cached_property
    def officer(self) -> Officer | None:
        """The sender's officer role, looked up only when a command or button needs it."""
        return officer_of(self.session, self.resident)

    def t(self, key: str, **params: object) -> str:
        return self.app.responses.get(self.lang, key, **params)

    def reply(
        self, key: str, *, buttons: Sequence[Sequence[tuple[str, str]]] = (), **params: object
    ) -> Outgoing:
        rows = tuple(
            tuple(Button(self.t(label), payload) for label, payload in row) for row in buttons
        )
        self.offer(rows)
        return Outgoing(self.t(key, **params), buttons=rows)

    def offer(self, rows: tuple[tuple[Button, ...], ...]) -> None:
        """Remember the buttons just offered, so that typing a label works like a tap."""
        if rows:
            self.data["offered"] = [[b.label, b.payload] for row in rows for b in row]
        else:
            self.data.pop("offered", None)

    def go(self, state: State) -> None:
        self.state = state

    def reset(self) -> None:
        self.state, self.data = State.IDLE, {}

    @property
    def draft(self) -> dict[str, Any]:
        return self.data.setdefault("draft", {})

    # -- entry -------------------------------------------------------------------------------

    def run(self) -> list[Outgoing]:
        text = (self.incoming.text or "").strip()
        if text.startswith("/"):
            return self.command(text)
        if self.incoming.payload and self.incoming.payload.startswith("officer:"):
            if self.officer is None:
                return [self.reply("form.expired")]
            return Desk(self, self.officer).button(self.incoming.payload)
        if self.state is State.OFFICER_REPLY and self.officer is not None and text:
            return Desk(self, self.officer).pending_reply(text)
        if not self.incoming.payload and self.state in _ANNOUNCE_TYPED:
            return self.announce_typed(text)
        payload = self.incoming.payload or self.typed_button(text)
        if payload:
            self.data.pop("offered", None)
            return self.button(payload)
        attached = bool(self.incoming.location or self.incoming.photo)
        if not text:
            return self.attachment() if attached else [self.reply("fallback.empty")]
        parse = self.app.nlu.parse(text)
        if parse.language in self.app.responses.tables:
            self.lang = parse.language
        if parse.intent == "darurat":
            return self.emergency(text)
        if attached:
            # A photo or a pin with a caption: the caption is the story of a new report; inside
            # a report already under way the attachment is added and the form goes on.
            out = self.attachment()
            return self.start_report(text, parse) if not self.draft.get("description") else out
        if parse.intent == "batal":
            return self.cancel()
        if self.state is not State.IDLE and self.state is not State.CLARIFY:
            return self.form_text(text, parse)
        return self.intent(text, parse)

    def typed_button(self, text: str) -> str | None:
        """Accept a button's label typed instead of tapped: whole, or its first word."""
        typed = _words(text)
        if not typed:
            return None
        offered = self.data.get("offered", [])
        for label, payload in offered:
            if typed == _words(label):
                return payload
        first = [(payload, _words(label)[:1]) for label, payload in offered]
        matches = [payload for payload, head in first if head == typed[:1] and len(typed) == 1]
        if len(matches) == 1:
            return matches[0]
        if self.state is State.PHOTO and _SKIP_PHOTO.search(text.casefold()):
            return "photo:skip"
        return None

    # -- commands ------------------------------------------------------------------------------

    def command(self, text: str) -> list[Outgoing]:
        name, _, rest = text[1:].partition(" ")
        name = name.split("@", 1)[0].lower()
        rest = rest.strip()
        if name in OFFICER_COMMANDS:
            if self.officer is None:  # the same answer whatever the arguments: nothing leaks
                return [self.reply("command.officer_only", command=name)]
            return Desk(self, self.officer).command(name, rest)
        if name == "start":
            self.reset()
            return [self.welcome("start.welcome")]
        if name in ("bantuan", "help"):
            return [self.help()]
        if name == "batal":
            return self.cancel()
        if name == "lapor":
            self.reset()
            if rest:
                return self.start_report(rest, self.app.nlu.parse(rest))
            self.go(State.DESCRIBE)
            return [self.reply("report.ask_description")]
        if name in ("status", "cek"):
            return self.status(self.app.nlu.parse(rest) if rest else None)
        if name == "ikuti":
            self.reset()
            return self.follow(rest, self.app.nlu.parse(rest) if rest else None)
        if name == "langganan":
            return Following(self).listing()
        if name == "berhenti":
            return Following(self).stop(rest, self.app.nlu.parse(rest) if rest else None)
        if name == "umumkan":
            return Announcer(self).command(rest)
        if name == "grup":
            return Announcer(self).groups_command(rest)
        return [self.reply("command.unknown", command=name), self.help()]

    # -- intents ---------------------------------------------------------------------------

    def intent(self, text: str, parse: Any) -> list[Outgoing]:
        if parse.fallback:
            return self.clarify(text)
        self.reset()
        if parse.intent == "lapor":
            return self.start_report(text, parse)
        if parse.intent == "tanya":
            return self.answer(text, parse.category)
        if parse.intent == "aspirasi":
            return self.aspiration(text, parse.category, parse)
        if parse.intent == "cek_status":
            return self.status(parse)
        simple = {
            "salam": lambda: [self.welcome("salam.reply")],
            "terima_kasih": lambda: [self.reply("terima_kasih.reply")],
            "bantuan": lambda: [self.help()],
            "nilai": self.ask_rating,
            "ikuti": lambda: self.follow(text, parse),
            "berhenti": lambda: Following(self).stop(text, parse),
            "luar_topik": lambda: [self.reply("luar_topik.reply")],
        }
        handler = simple.get(parse.intent)
        return handler() if handler else self.clarify(text)

    def follow(self, words: str, parse: Any | None) -> list[Outgoing]:
        """Follow what the words name, or offer the choices and wait for a name."""
        following = Following(self)
        if not following.available:
            return [self.reply("ikuti.not_on_channel")]
        followed = following.follow(words, parse)
        if followed is not None:
            return followed
        menu = following.menu()
        self.go(State.FOLLOW)
        return [menu]

    def announce_typed(self, text: str) -> list[Outgoing]:
        announcer = Announcer(self)
        # "batal" alone leaves the form; an announcement may well contain the word.
        if len(text.split()) <= 3 and text and self.app.nlu.parse(text).intent == "batal":
            return self.cancel()
        if self.state is State.ANNOUNCE_TEXT:
            return announcer.text(text, self.incoming.photo)
        if self.state is State.ANNOUNCE_TIME:
            return announcer.typed_time(text)
        return announcer.typed_poll(text)

    def welcome(self, key: str) -> Outgoing:
        name = self.sender.display_name or self.t("resident.default_name")
        return self.reply(
            key,
            name=name,
            city=self.app.city.config.name,
            buttons=[
                [("button.report", "menu:lapor"), ("button.ask", "menu:tanya")],
                [("button.status", "menu:status"), ("button.help", "menu:bantuan")],
            ],
        )

    def help(self) -> Outgoing:
        text = self.t("bantuan.reply", city=self.app.city.config.name)
        if self.officer is not None:
            text += "\n\n" + self.t("officer.help")
        return Outgoing(text)

    def cancel(self) -> list[Outgoing]:
        had_form = self.state is not State.IDLE
        self.reset()
        return [self.reply("batal.done" if had_form else "batal.nothing")]

    def clarify(self, text: str) -> list[Outgoing]:
        self.reset()
        self.data["pending"] = text
        self.go(State.CLARIFY)
        return [
            self.reply(
                "clarify.ask",
                buttons=[
                    [
                        ("button.clarify_report", "clarify:lapor"),
                        ("button.clarify_ask", "clarify:tanya"),
                    ],
                    [("button.clarify_propose", "clarify:aspirasi")],
                ],
            )
        ]

    def emergency(self, text: str) -> list[Outgoing]:
        log.warning(
            "EMERGENCY from resident %s (%s): %s",
            self.sender.resident_id,
            self.incoming.channel,
            redact(text)[:300],
        )
        lines = [
            self.t(
                "darurat.line", number=e.number, name=e.name, note=f" ({e.note})" if e.note else ""
            )
            for e in self.app.city.config.emergency
        ]
        return [Outgoing(self.t("darurat.reply", numbers="\n".join(lines)))]

    # -- reports -----------------------------------------------------------------------------

    def start_report(self, text: str, parse: Any) -> list[Outgoing]:
        photos = self.draft.get("photos", [])
        location = self.draft.get("coords")
        self.data["draft"] = {
            "kind": TicketKind.LAPOR.value,
            "description": text,
            "photos": photos,
        }
        if location:
            self.draft["coords"] = location
        self.take_category(parse)
        self.take_place(parse)
        return self.next_step()

    def take_category(self, parse: Any) -> None:
        confidence = getattr(parse, "category_confidence", None) or parse.confidence
        if parse.category and (parse.intent == "lapor" or confidence >= CATEGORY_THRESHOLD):
            if confidence >= CATEGORY_THRESHOLD:
                self.draft["category"] = parse.category
        ranked = [label.split("/", 1)[1] for label, _ in parse.ranking if "/" in label]
        self.data["ranking"] = list(dict.fromkeys(ranked))[:4]

    def take_place(self, parse: Any) -> None:
        entities = list(parse.entities)
        lokasi = _place_text(parse.text, [e for e in entities if e.type == "lokasi"])
        if lokasi:
            self.draft["location_text"] = lokasi
        for level in (AreaLevel.KELURAHAN, AreaLevel.KECAMATAN):
            names = [e.value for e in entities if e.type == level.value]
            if names and not self.draft.get("area"):
                area = self.session.scalar(
                    select(Area).where(Area.level == level, Area.name == names[0])
                )
                if area is not None:
                    self.draft["area"] = area.code
                    if not lokasi and level is AreaLevel.KELURAHAN:
                        self.draft["location_text"] = self.t("report.kelurahan", name=area.name)

    def has_place(self) -> bool:
        d = self.draft
        return bool(d.get("location_text") or d.get("coords"))

    def next_step(self) -> list[Outgoing]:
        d = self.draft
        if not d.get("description"):
            self.go(State.DESCRIBE)
            return [self.reply("report.ask_description")]
        if not d.get("category"):
            return [self.ask_category()]
        if not self.has_place():
            self.go(State.LOCATION)
            return [self.ask_location(skippable=True)]
        if not d.get("similar_checked"):
            d["similar_checked"] = True
            similar = self.similar()
            view = self.public(similar) if similar is not None else None
            if similar is not None and view is not None:
                d["similar"] = similar.number
                self.go(State.SIMILAR)
                return [
                    self.reply(
                        "report.similar",
                        number=similar.number,
                        status=self.t(f"status.{similar.status.value}"),
                        date=self.date(similar.created_at),
                        place=view.location or view.area or "-",
                        buttons=[
                            [("button.join", "similar:join")],
                            [("button.new", "similar:new")],
                        ],
                    )
                ]
        if "photo_asked" not in d and not d.get("photos"):
            d["photo_asked"] = True
            self.go(State.PHOTO)
            return [self.reply("report.ask_photo", buttons=[[("button.skip", "photo:skip")]])]
        if not d.get("privacy"):
            self.go(State.PRIVACY)
            return [self.ask_privacy()]
        return [self.summary()]

    def ask_location(self, *, skippable: bool) -> Outgoing:
        skip = [[("button.skip_location", "location:none")]] if skippable else []
        return replace(self.reply("report.ask_location", buttons=skip), request_location=True)

    def ask_privacy(self) -> Outgoing:
        return self.reply(
            "report.ask_privacy",
            buttons=[[(f"button.privacy_{p.value}", f"privacy:{p.value}")] for p in Privacy],
        )

    def ask_category(self) -> Outgoing:
        self.go(State.CATEGORY)
        ranked = [c for c in self.data.get("ranking", []) if c in self.app.city.config.categories]
        rest = [c for c in self.app.city.config.categories if c not in ranked]
        codes = ranked + rest
        rows = [codes[i : i + 2] for i in range(0, len(codes), 2)]
        out = self.reply("report.ask_category")
        buttons = tuple(
            tuple(Button(self.category_name(c), f"category:{c}") for c in row) for row in rows
        )
        self.offer(buttons)
        return Outgoing(out.text, buttons=buttons)

    def category_name(self, code: str) -> str:
        key = f"category.{code}"
        table = self.app.responses.tables
        if key in table.get(self.lang, {}) or key in table["id"]:
            return self.t(key)
        return self.app.city.config.categories[code].name

    def similar(self) -> Ticket | None:
        d = self.draft
        area = self.area()
        coords = d.get("coords")
        return find_similar(
            self.session,
            category_code=d["category"],
            area=area if area is not None and area.level is AreaLevel.KELURAHAN else None,
            latitude=coords[0] if coords else None,
            longitude=coords[1] if coords else None,
            now=self.now,
            exclude_reporter=self.sender.resident_id,
        )

    def area(self) -> Area | None:
        code = self.draft.get("area")
        return self.session.scalar(select(Area).where(Area.code == code)) if code else None

    def summary(self) -> Outgoing:
        d = self.draft
        self.go(State.CONFIRM)
        coords = d.get("coords")
        place = d.get("location_text") or ""
        if coords:
            place = (place + " " if place else "") + self.t(
                "report.pin", lat=f"{coords[0]:.5f}", lon=f"{coords[1]:.5f}"
            )
        return self.reply(
            "report.summary",
            category=self.category_name(d["category"]),
            description=d["description"],
            place=place,
            photos=len(d.get("photos", [])),
            privacy=self.t(f"privacy.{d['privacy']}"),
            buttons=[
                [
                    ("button.send", "confirm:send"),
                    ("button.edit", "confirm:edit"),
                    ("button.cancel", "confirm:cancel"),
                ]
            ],
        )

    def submit(self) -> list[Outgoing]:
        d = self.draft
        coords = d.get("coords")
        ticket = create_ticket(
            self.session,
            city=self.app.city.config,
            reporter=self.resident,
            kind=TicketKind(d.get("kind", TicketKind.LAPOR.value)),
            category_code=d["category"],
            description=d["description"],
            location_text=d.get("location_text", ""),
            latitude=coords[0] if coords else None,
            longitude=coords[1] if coords else None,
            area=self.area(),
            privacy=Privacy(d.get("privacy", Privacy.BIASA.value)),
            photos=[(self.incoming.channel, p) for p in d.get("photos", [])],
            now=self.now,
        )
        self.reset()
        offer = Following(self).offer_after_report(ticket.area)
        return [self.created(ticket, "report.created"), *([offer] if offer else [])]

    def created(self, ticket: Ticket, key: str) -> Outgoing:
        return self.reply(
            key,
            number=ticket.number,
            agency=ticket.agency.name if ticket.agency else "-",
            due=self.date(ticket.first_response_due_at),
        )

    def area_name(self, level: str, name: str) -> str:
        """An area as residents read it: "Kelurahan Delima", "Kota Pekanbaru"."""
        return self.t(f"ikuti.level.{level}", name=name)

    def date_time(self, when: datetime) -> str:
        local = when.astimezone(self.app.city.config.tz)
        return self.t("date.with_time", date=self.date(when), time=local.strftime("%H:%M"))

    def date(self, when: datetime | None) -> str:
        if when is None:
            return "-"
        local = when.astimezone(self.app.city.config.tz)
        days = self.t("date.days").split(",")
        months = self.t("date.months").split(",")
        return self.t(
            "date.format",
            day=days[local.weekday()].strip(),
            date=local.day,
            month=months[local.month - 1].strip(),
            year=local.year,
        )

    # -- form steps ---------------------------------------------------------------------------

    def form_text(self, text: str, parse: Any) -> list[Outgoing]:
        state = self.state
        if state is State.FOLLOW:
            followed = Following(self).follow(text, parse)
            if followed is not None:
                return followed
            if parse.fallback or parse.intent == "ikuti":
                return [self.reply("ikuti.not_found", words=text[:60])]
            self.reset()  # something else entirely: answer that
            return self.intent(text, parse)
        if state is State.DESCRIBE:
            return self.start_report(text, parse)
        if state is State.LOCATION:
            self.take_place(parse)
            if not self.draft.get("location_text"):
                self.draft["location_text"] = text
            return self.next_step()
        if state is State.EDIT and self.data.get("editing") == "description":
            self.draft["description"] = text
            return [self.summary()]
        if state is State.EDIT and self.data.get("editing") == "location":
            self.draft.pop("area", None)
            self.draft.pop("location_text", None)
            self.take_place(parse)
            self.draft.setdefault("location_text", text)
            return [self.summary()]
        if not parse.fallback and parse.intent in _ASIDE:
            return self.aside(text, parse)
        return self.reask()

    def aside(self, text: str, parse: Any) -> list[Outgoing]:
        """Answer something else asked mid-form, then keep the form where it was."""
        state, data = self.state, copy.deepcopy(self.data)
        replies = self.intent(text, parse)
        self.state, self.data = state, data
        return [*replies, *self.reask()]

    def reask(self) -> list[Outgoing]:
        """The resident wrote something else than the buttons offer: say so kindly, offer again."""
        offered = self.data.get("offered", [])
        buttons = tuple((Button(label, payload),) for label, payload in offered)
        return [Outgoing(self.t("form.choose"), buttons=buttons)]

    def attachment(self) -> list[Outgoing]:
        inc = self.incoming
        if self.state not in FORM_STATES or self.state in (State.CLARIFY, State.FORWARD):
            self.reset()
            self.data["draft"] = {"kind": TicketKind.LAPOR.value, "photos": []}
        if inc.photo:
            self.draft.setdefault("photos", []).append(inc.photo)
        if inc.location:
            self.draft["coords"] = list(inc.location)
        if not self.draft.get("description"):
            if inc.text:
                return []  # the caption that came with it is the description: handled next
            self.go(State.DESCRIBE)
            return [self.reply("report.ask_description_after_attachment")]
        if self.state is State.CONFIRM or self.state is State.EDIT:
            return [self.summary()]
        return self.next_step()

    # -- buttons -----------------------------------------------------------------------------

    def button(self, payload: str) -> list[Outgoing]:
        kind, _, value = payload.partition(":")
        handler = {
            "menu": self.on_menu,
            "clarify": self.on_clarify,
            "category": self.on_category,
            "location": self.on_location,
            "similar": self.on_similar,
            "photo": self.on_photo,
            "privacy": self.on_privacy,
            "confirm": self.on_confirm,
            "edit": self.on_edit,
            "forward": self.on_forward,
            "rate": self.on_rate,
            "reopen": self.on_reopen,
            "follow": lambda v: Following(self).on_button(v),
            "unfollow": lambda v: Following(self).on_stop_button(v),
            "poll": lambda v: Following(self).on_poll(v),
            "announce": lambda v: Announcer(self).on_button(v),
        }.get(kind)
        if handler is None:
            return [self.reply("form.expired")]
        return handler(value)

    def expects(self, *states: State) -> bool:
        return self.state in states and bool(self.draft or self.data.get("pending"))

    def on_menu(self, value: str) -> list[Outgoing]:
        self.reset()
        if value == "lapor":
            self.go(State.DESCRIBE)
            return [self.reply("report.ask_description")]
        if value == "tanya":
            return [self.reply("tanya.ask")]
        if value == "status":
            return self.status(None)
        return [self.help()]

    def on_clarify(self, value: str) -> list[Outgoing]:
        text = self.data.get("pending")
        if self.state is not State.CLARIFY or not text:
            return [self.reply("form.expired")]
        parse = self.app.nlu.parse(text)
        self.reset()
        if value == "lapor":
            return self.start_report(text, parse)
        if value == "tanya":
            return self.answer(text, parse.category)
        return self.aspiration(text, parse.category, parse)

    def on_category(self, value: str) -> list[Outgoing]:
        if value not in self.app.city.config.categories or not self.expects(
            State.CATEGORY, State.EDIT
        ):
            return [self.reply("form.expired")]
        self.draft["category"] = value
        if self.state is State.EDIT:
            return [self.summary()]
        return self.next_step()

    def on_location(self, value: str) -> list[Outgoing]:
        if not self.expects(State.LOCATION):
            return [self.reply("form.expired")]
        self.draft["location_text"] = self.t("report.no_location")
        return self.next_step()

    def on_similar(self, value: str) -> list[Outgoing]:
        number = self.draft.get("similar")
        if not self.expects(State.SIMILAR) or not number:
            return [self.reply("form.expired")]
        if value == "join":
            ticket = self.session.scalar(select(Ticket).where(Ticket.number == number))
            if ticket is not None and joinable(ticket):
                follow_ticket(self.session, ticket=ticket, resident=self.resident)
                self.reset()
                return [self.reply("report.joined", number=number)]
        return self.next_step()

    def on_photo(self, value: str) -> list[Outgoing]:
        if not self.expects(State.PHOTO, State.EDIT):
            return [self.reply("form.expired")]
        if self.state is State.EDIT:
            return [self.summary()]
        return self.next_step()

    def on_privacy(self, value: str) -> list[Outgoing]:
        if value not in Privacy._value2member_map_ or not self.expects(State.PRIVACY, State.EDIT):
            return [self.reply("form.expired")]
        self.draft["privacy"] = value
        return [self.summary()] if self.state is State.EDIT else self.next_step()

    def on_confirm(self, value: str) -> list[Outgoing]:
        if not self.expects(State.CONFIRM):
            return [self.reply("form.expired")]
        if value == "send":
            return self.submit()
        if value == "cancel":
            return self.cancel()
        self.go(State.EDIT)
        return [
            self.reply(
                "report.edit_what",
                buttons=[
                    [
                        ("button.edit_category", "edit:category"),
                        ("button.edit_location", "edit:location"),
                    ],
                    [("button.edit_photo", "edit:photo"), ("button.edit_privacy", "edit:privacy")],
                    [("button.edit_description", "edit:description")],
                ],
            )
        ]

    def on_edit(self, value: str) -> list[Outgoing]:
        if not self.expects(State.EDIT):
            return [self.reply("form.expired")]
        self.data["editing"] = value
        if value == "category":
            out = self.ask_category()
            self.go(State.EDIT)
            return [out]
        if value == "location":
            return [self.ask_location(skippable=False)]
        if value == "photo":
            return [self.reply("report.ask_photo", buttons=[[("button.skip", "photo:skip")]])]
        if value == "privacy":
            return [self.ask_privacy()]
        return [self.reply("report.ask_description")]

    # -- ratings -----------------------------------------------------------------------------

    def ask_rating(self) -> list[Outgoing]:
        """Offer the stars for the resident's latest resolved report, if there is one."""
        ticket = self.session.scalar(
            select(Ticket)
            .where(
                Ticket.reporter_id == self.sender.resident_id,
                Ticket.status == TicketStatus.RESOLVED,
            )
            .order_by(Ticket.resolved_at.desc())
            .limit(1)
        )
        if ticket is None:
            return [self.reply("nilai.thanks")]
        stars = [(f"button.stars_{n}", f"rate:{ticket.number}:{n}") for n in range(1, 6)]
        return [
            self.reply(
                "rating.ask",
                number=ticket.number,
                buttons=[stars, [("button.not_fixed", f"reopen:{ticket.number}")]],
            )
        ]

    def own_ticket(self, number: str) -> Ticket | None:
        ticket = self.session.scalar(select(Ticket).where(Ticket.number == number))
        return (
            ticket
            if ticket is not None and ticket.reporter_id == self.sender.resident_id
            else None
        )

    def on_rate(self, value: str) -> list[Outgoing]:
        number, _, stars = value.rpartition(":")
        ticket = self.own_ticket(number)
        if ticket is None or not stars.isdigit():
            return [self.reply("form.expired")]
        try:
            rate(
                self.session, resident=self.resident, ticket=ticket, stars=int(stars), now=self.now
            )
        except DomainError:
            return [self.reply("rating.not_now", number=number)]
        return [self.reply("rating.thanks", number=number, stars=stars)]

    def on_reopen(self, value: str) -> list[Outgoing]:
        ticket = self.own_ticket(value)
        if ticket is None:
            return [self.reply("form.expired")]
        try:
            reopen(
                self.session,
                resident=self.resident,
                ticket=ticket,
                city=self.app.city.config,
                now=self.now,
            )
        except ReopenTooLate:
            return [
                self.reply("reopen.too_late", number=value, days=self.app.city.config.reopen_days)
            ]
        except DomainError:
            return [self.reply("rating.not_now", number=value)]
        return [self.reply("reopen.done", number=value)]

    # -- questions and proposals ------------------------------------------------------------

    def answer(self, text: str, category: str | None) -> list[Outgoing]:
        hit = self.app.faq.search(text, category=category)
        if hit is not None:
            entry = hit.entry
            agency = self.session.scalar(select(Agency).where(Agency.code == entry.agency))
            body = entry.answer.get(self.lang) or entry.answer["id"]
            contact = self.contact(agency)
            return [Outgoing(self.t("tanya.answer", answer=body, contact=contact))]
        self.data = {"pending": text, "category": category or "lainnya"}
        self.go(State.FORWARD)
        agency = self.route_name(category or "lainnya")
        return [
            self.reply(
                "tanya.no_answer",
                agency=agency,
                buttons=[[("button.forward", "forward:yes"), ("button.no_thanks", "forward:no")]],
            )
        ]

    def contact(self, agency: Agency | None) -> str:
        if agency is None:
            return ""
        details = ", ".join(f"{v}" for v in (agency.contact or {}).values())
        return self.t(
            "tanya.contact", agency=agency.name, details=f" ({details})" if details else ""
        )

    def route_name(self, category: str) -> str:
        cat = self.session.scalar(select(Category).where(Category.code == category))
        if cat is None:
            return "-"
        return resolve_agency(self.session, category=cat, area=None).name

    def on_forward(self, value: str) -> list[Outgoing]:
        text = self.data.get("pending")
        if self.state is not State.FORWARD or not text:
            return [self.reply("form.expired")]
        category = self.data.get("category", "lainnya")
        self.reset()
        if value != "yes":
            return [self.reply("tanya.not_forwarded")]
        ticket = create_ticket(
            self.session,
            city=self.app.city.config,
            reporter=self.resident,
            kind=TicketKind.TANYA,
            category_code=category,
            description=text,
            now=self.now,
        )
        return [self.created(ticket, "tanya.forwarded")]

    def aspiration(self, text: str, category: str | None, parse: Any) -> list[Outgoing]:
        self.data = {"draft": {}}
        self.take_place(parse)
        area = self.area()
        ticket = create_ticket(
            self.session,
            city=self.app.city.config,
            reporter=self.resident,
            kind=TicketKind.ASPIRASI,
            category_code=category or "lainnya",
            description=text,
            location_text=self.draft.get("location_text", ""),
            area=area,
            now=self.now,
        )
        self.reset()
        return [self.created(ticket, "aspirasi.created")]

    # -- status ---------------------------------------------------------------------------

    def status(self, parse: Any | None) -> list[Outgoing]:
        self.reset()
        numbers = [e.value for e in parse.entities if e.type == "nomor_tiket"] if parse else []
        if numbers:
            out = []
            for number in dict.fromkeys(numbers):
                ticket = visible_ticket(
                    self.session, number=number, resident_id=self.sender.resident_id
                )
                if ticket is None:
                    out.append(self.reply("status.not_found", number=number))
                else:
                    out.append(Outgoing(self.status_line(ticket, detailed=True)))
            return out
        tickets = tickets_of(self.session, resident_id=self.sender.resident_id, limit=5)
        if not tickets:
            return [self.reply("status.none")]
        lines = "\n".join(self.status_line(t) for t in tickets)
        return [Outgoing(self.t("status.list", lines=lines))]

    def public(self, ticket: Ticket) -> PublicView | None:
        """What anyone but the reporter may read of a ticket (None: nothing, it is rahasia)."""
        notes = public_notes(self.session, [ticket.id]).get(ticket.id, "")
        return public_view(ticket, notes=notes, redact=redact)

    def status_line(self, ticket: Ticket, *, detailed: bool = False) -> str:
        # A follower reads the public view; tickets_of and visible_ticket never give them a
        # rahasia one.
        mine = ticket.reporter_id == self.sender.resident_id
        view = None if mine else self.public(ticket)
        if not mine and view is None:
            return ""
        params = dict(
            number=ticket.number,
            status=self.t(f"status.{ticket.status.value}"),
            agency=ticket.agency.short_name if ticket.agency else "-",
            updated=self.date(ticket.updated_at),
            description=_short(view.description if view is not None else ticket.description),
        )
        if not detailed:
            return self.t("status.line", **params)
        last = ticket.events[-1] if ticket.events else None
        note = last.body if last is not None and last.body and last.kind.value != "note" else ""
        if view is not None:
            note = view.notes
        return self.t(
            "status.detail",
            due=self.date(ticket.resolution_due_at),
            note=self.t("status.note", note=note) if note else "",
            **params,
        )


_SKIP_PHOTO = re.compile(r"\b(lewat|skip|ga+k? ada|nggak ada|tidak ada|tdk ada|gada|no photo)")


def _place_text(text: str, spans: list[Any]) -> str:
    """Join the places found; neighbours a few words apart ("Jl. Paus depan SD 12") stay one."""
    parts: list[list[int]] = []
    for e in sorted(spans, key=lambda e: e.start):
        if parts and e.start - parts[-1][1] <= 12:
            parts[-1][1] = max(parts[-1][1], e.end)
        else:
            parts.append([e.start, e.end])
    return ", ".join(text[a:b].strip() for a, b in parts)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
