"""The resident conversation: one Incoming in, a list of Outgoing back, state in the database.

This module loads the sender and their state, runs the turn through the router and saves what
changed. The router reads a message in this order: a command, a button (tapped, or its label or
number typed), a short answer to the question just asked (data/answers.yml), an emergency, then
what the NLU understood, handed to the flow it belongs to (bot/report.py, status.py,
rating.py, questions.py, following.py, announce.py, officer_desk.py).
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Executable, bindparam, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from actions.city import LoadedCity
from actions.corrections import record_correction
from actions.domain import CorrectionSource
from actions.inbox import record_update
from actions.models import Conversation, Resident, utcnow
from bot.announce import Announcer
from bot.answers import Answers
from bot.faq import FaqIndex
from bot.following import Following
from bot.messages import Button, Incoming, Outgoing
from bot.officer_desk import COMMANDS as OFFICER_COMMANDS
from bot.officer_desk import Desk
from bot.questions import Questions
from bot.rating import Rating
from bot.report import Report
from bot.responses import Responses
from bot.status import Status
from bot.turn import REPORT_STATES, Sender, State, Turn, Understanding
from nlu import redact

log = logging.getLogger(__name__)

__all__ = ["Assistant", "State", "Turned", "Understanding"]

# Announcement steps that take typed text (or a photo with its caption) rather than buttons.
_ANNOUNCE_TYPED = frozenset({State.ANNOUNCE_TEXT, State.ANNOUNCE_TIME, State.ANNOUNCE_POLL})
# Intents answered on the side while a form waits, the form kept where it was.
_ASIDE = frozenset(
    {"cek_status", "tanya", "salam", "terima_kasih", "bantuan", "nilai", "ikuti", "berhenti"}
)
# How sure the NLU must be that a message mid-form is something else (a new report, a status
# question) rather than the answer the form waits for.
ELSEWHERE = 0.75
# Answer kinds in the order they win when a message holds several ("rahasiakan ya": rahasia).
_PRECEDENCE = (
    "cancel",
    "still_broken",
    "anonim",
    "rahasia",
    "biasa",
    "join",
    "new",
    "skip",
    "edit",
    "send",
    "yes",
    "no",
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
    answers: Answers = field(default_factory=Answers.default)

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
        replies = Router(turn).run()
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


class Router:
    """Reads one message and hands it to the flow it belongs to."""

    def __init__(self, turn: Turn) -> None:
        self.turn = turn
        self.answers = turn.app.answers

    def run(self) -> list[Outgoing]:
        turn = self.turn
        text = (turn.incoming.text or "").strip()
        if text.startswith("/"):
            return self.command(text)
        payload = turn.incoming.payload or ""
        if payload.startswith("officer:"):
            if turn.officer is None:
                return [turn.reply("form.expired")]
            return Desk(turn, turn.officer).button(payload)
        if turn.state is State.OFFICER_REPLY and turn.officer is not None and text:
            return Desk(turn, turn.officer).pending_reply(text)
        if not payload and turn.state in _ANNOUNCE_TYPED:
            return self.announce_typed(text)
        payload = (
            payload
            or self.typed_button(text)
            or self.short_answer(text)
            or (Rating(turn).typed_stars(text) if turn.state is State.IDLE else None)
        )
        if payload:
            turn.forget_offer()
            return self.button(payload)
        attached = bool(turn.incoming.location or turn.incoming.photo)
        report = Report(turn)
        if not text:
            return report.attachment() if attached else [turn.reply("fallback.empty")]
        parse = turn.app.nlu.parse(report.as_place(text) if report.takes_place() else text)
        if parse.language in turn.app.responses.tables and not report.takes_place():
            turn.lang = parse.language  # a place's name says nothing of the language
        if parse.intent == "darurat":
            return self.emergency(text)
        if attached:
            # A photo or a pin with a caption: the caption is the story of a new report; inside
            # a report already under way the attachment is added and the form goes on.
            out = report.attachment()
            return out if report.draft.get("description") else [*out, *report.start(text, parse)]
        if self.is_cancel(text, parse):
            return self.cancel()
        want = self.answers.want(text)  # "mau lapor": not yet the report itself
        if want is not None:
            if not report.under_way():
                return self.start(want)
            if want != "lapor":  # asking or proposing waits until this report is done
                return self.reask()
            report.park()  # another report: this one is taken up again afterwards
            return self.start(want)
        if turn.state not in REPORT_STATES and self.answers.mentions(text, "still_broken"):
            reopened = Rating(turn).still_broken(text, parse)
            if reopened is not None:
                return reopened
        if turn.state in (State.IDLE, State.CLARIFY):
            return self.intent(text, parse)
        return self.form_text(text, parse)

    # -- reading the message -----------------------------------------------------------------

    def typed_button(self, text: str) -> str | None:
        """A button's label typed instead of tapped (whole, or its first word), or its number
        (the terminal chat numbers the choices; they are kept with the state)."""
        typed = _words(text)
        offered = self.turn.data.get("offered", [])
        if not typed or not offered:
            return None
        if text.strip().isdigit() and 1 <= int(text) <= len(offered):  # not "#4", a ticket
            return offered[int(typed[0]) - 1][1]
        for label, payload in offered:
            if typed == _words(label):
                return payload
        first = [(payload, _words(label)[:1]) for label, payload in offered]
        matches = [payload for payload, head in first if head == typed[:1] and len(typed) == 1]
        return matches[0] if len(matches) == 1 else None

    def short_answer(self, text: str) -> str | None:
        """What a short answer ("gak", "ya udh bener", "rahasiakan") means at the question
        just asked, when that question said so."""
        meaning = self.turn.data.get("answers")
        kinds = self.answers.kinds(text) if meaning else set()
        if not kinds or ({"yes", "send", "join"} & kinds and "no" in kinds):
            return None  # not a short answer, or a contradictory one: read it as text
        kind = next(k for k in _PRECEDENCE if k in kinds)
        if kind == "cancel" and self.turn.state is not State.IDLE:
            return "form:cancel"
        payload = meaning.get(kind)
        part = self.answers.part(text) if payload == "confirm:edit" else None
        if part is not None:  # "ada yg salah, lokasinya": straight to the place
            self.turn.go(State.EDIT)
            return f"edit:{part}"
        return payload

    def is_cancel(self, text: str, parse: Any) -> bool:
        """Only an explicit cancel cancels: the cancel words alone, or a request to cancel
        that uses one ("batalin laporan tadi"); never a plain "gak"."""
        kinds = self.answers.kinds(text)
        if "cancel" in kinds:
            return True
        return parse.intent == "batal" and self.answers.mentions(text, "cancel")

    # -- commands ------------------------------------------------------------------------------

    def command(self, text: str) -> list[Outgoing]:
        turn = self.turn
        name, _, rest = text[1:].partition(" ")
        name = name.split("@", 1)[0].lower()
        rest = rest.strip()
        nlu = turn.app.nlu
        if name in OFFICER_COMMANDS:
            if turn.officer is None:  # the same answer whatever the arguments: nothing leaks
                return [turn.reply("command.officer_only", command=name)]
            return Desk(turn, turn.officer).command(name, rest)
        if name == "start":
            turn.reset()
            return [self.welcome("start.welcome")]
        if name in ("bantuan", "help"):
            return [self.help()]
        if name == "batal":
            return self.cancel()
        if name == "lapor":  # a report under way is kept for afterwards
            report = Report(turn)
            if rest and self.answers.want(rest) is None:
                return report.park_and_start(rest, nlu.parse(rest))
            report.park()
            return self.start("lapor")
        if name in ("status", "cek"):
            parse = nlu.parse(rest) if rest else None
            if turn.state is State.IDLE:
                return Status(turn).answer(parse)
            return self.keeping_the_form(lambda: Status(turn).answer(parse))
        if name == "ikuti":
            turn.reset()
            return Following(turn).start(rest, nlu.parse(rest) if rest else None)
        if name == "langganan":
            return Following(turn).listing()
        if name == "berhenti":
            return Following(turn).stop(rest, nlu.parse(rest) if rest else None)
        if name == "umumkan":
            return Announcer(turn).command(rest)
        if name == "grup":
            return Announcer(turn).groups_command(rest)
        return [turn.reply("command.unknown", command=name), self.help()]

    # -- buttons -----------------------------------------------------------------------------

    def button(self, payload: str) -> list[Outgoing]:
        turn = self.turn
        kind, _, value = payload.partition(":")
        report, rating, questions = Report(turn), Rating(turn), Questions(turn)
        handler = {
            "form": lambda v: self.cancel(),
            "menu": self.on_menu,
            "clarify": self.on_clarify,
            "category": report.on_category,
            "location": report.on_location,
            "similar": report.on_similar,
            "photo": report.on_photo,
            "privacy": report.on_privacy,
            "confirm": report.on_confirm,
            "edit": report.on_edit,
            "forward": questions.on_forward,
            "rate": rating.on_rate,
            "reopen": rating.on_reopen,
            "follow": lambda v: Following(turn).on_button(v),
            "unfollow": lambda v: Following(turn).on_stop_button(v),
            "poll": lambda v: Following(turn).on_poll(v),
            "announce": lambda v: Announcer(turn).on_button(v),
        }.get(kind)
        if handler is None:
            return [turn.reply("form.expired")]
        return handler(value)

    def on_menu(self, value: str) -> list[Outgoing]:
        self.turn.reset()
        if value == "status":
            return Status(self.turn).answer(None)
        if value in ("lapor", "tanya"):
            return self.start(value)
        return [self.help()]

    def on_clarify(self, value: str) -> list[Outgoing]:
        turn = self.turn
        text = turn.data.get("pending")
        if turn.state is not State.CLARIFY or not text:
            return [turn.reply("form.expired")]
        parse = turn.app.nlu.parse(text)
        turn.reset()
        if value == "lapor":
            return Report(turn).start(text, parse)  # kept when the report is sent
        chosen = "tanya" if value == "tanya" else "aspirasi"
        guesses = [label for label, _ in parse.ranking if label.startswith(f"{chosen}/")]
        record_correction(
            turn.session,
            text=text,
            predicted=parse.label,
            corrected=guesses[0] if guesses else f"{chosen}/lainnya",
            source=CorrectionSource.FALLBACK,
            now=turn.now,
        )
        if value == "tanya":
            return Questions(turn).answer(text, parse.category)
        return Questions(turn).propose(text, parse.category, parse)

    # -- intents ---------------------------------------------------------------------------

    def start(self, want: str) -> list[Outgoing]:
        """The resident said they want to report, ask or propose: ask for it."""
        turn = self.turn
        parked = turn.data.get("parked") if turn.state in REPORT_STATES else None
        turn.reset()
        if want == "lapor":
            if parked:
                turn.data["parked"] = parked
            turn.go(State.DESCRIBE)
            return [turn.reply("report.ask_description")]
        if want == "tanya":
            return [turn.reply("tanya.ask")]
        turn.go(State.PROPOSE)
        return [turn.reply("aspirasi.ask")]

    def intent(self, text: str, parse: Any) -> list[Outgoing]:
        turn = self.turn
        if parse.fallback:
            return self.clarify(text)
        turn.reset()
        if parse.intent == "lapor":
            return Report(turn).start(text, parse)
        if parse.intent == "tanya":
            return Questions(turn).answer(text, parse.category)
        if parse.intent == "aspirasi":
            return Questions(turn).propose(text, parse.category, parse)
        if parse.intent == "cek_status":
            return Status(turn).answer(parse)
        simple = {
            "salam": lambda: [self.welcome("salam.reply")],
            "terima_kasih": lambda: [turn.reply("terima_kasih.reply")],
            "bantuan": lambda: [self.help()],
            "nilai": Rating(turn).ask,
            "ikuti": lambda: Following(turn).start(text, parse),
            "berhenti": lambda: Following(turn).stop(text, parse),
            "luar_topik": lambda: [turn.reply("luar_topik.reply")],
        }
        handler = simple.get(parse.intent)
        return handler() if handler else self.clarify(text)

    def form_text(self, text: str, parse: Any) -> list[Outgoing]:
        """Text while a form waits: its answer, or something else handled without losing it."""
        turn = self.turn
        if turn.state is State.PROPOSE:
            turn.reset()
            return Questions(turn).propose(text, parse.category, parse)
        if turn.state in (State.FOLLOW, State.FORWARD) and self.something_new(parse):
            turn.reset()  # a report or a question of its own, not the answer
            return self.intent(text, parse)
        if turn.state is State.FOLLOW:
            followed = Following(turn).follow(text, parse)
            if followed is not None:
                return followed
            if parse.fallback or parse.intent == "ikuti":
                return [turn.reply("ikuti.not_found", words=text[:60])]
            turn.reset()  # something else entirely: answer that
            return self.intent(text, parse)
        report = Report(turn)
        if turn.state in REPORT_STATES and self.another_report(report, parse):
            return report.park_and_start(text, parse)
        if self.elsewhere(report, parse):
            return self.aside(text, parse)
        if turn.state in REPORT_STATES:
            typed = report.typed(text, parse)
            if typed is not None:
                return typed
        if not parse.fallback and parse.intent in _ASIDE:
            return self.aside(text, parse)
        return self.reask()

    def something_new(self, parse: Any) -> bool:
        """A report, question or proposal of its own: confident, and more than a name."""
        return (
            not parse.fallback
            and parse.intent in ("lapor", "tanya", "aspirasi")
            and parse.confidence >= ELSEWHERE
            and len(_beyond_places(parse)) >= 3
        )

    def another_report(self, report: Report, parse: Any) -> bool:
        """A whole new report of another kind, written while this one waits for an answer."""
        draft = report.draft
        if not draft.get("description") or parse.intent != "lapor" or parse.fallback:
            return False
        if report.takes_text() and self.turn.state is not State.LOCATION:
            return False  # the description (or a new one) is being typed
        category = parse.category
        confidence = getattr(parse, "category_confidence", None) or parse.confidence
        return (
            parse.confidence >= ELSEWHERE
            and category is not None
            and category != draft.get("category")
            and confidence >= ELSEWHERE
            and len(_beyond_places(parse)) >= 3
        )

    def elsewhere(self, report: Report, parse: Any) -> bool:
        """A status question or the like at a step that takes text: answered on the side
        (a place is never taken for one)."""
        if not report.takes_text() or parse.fallback or parse.intent not in _ASIDE:
            return False
        names_place = any(e.type in ("lokasi", "kelurahan", "kecamatan") for e in parse.entities)
        return parse.confidence >= ELSEWHERE and not names_place

    def aside(self, text: str, parse: Any) -> list[Outgoing]:
        """Answer something else asked mid-form, then keep the form where it was."""
        return self.keeping_the_form(lambda: self.intent(text, parse))

    def keeping_the_form(self, answer: Callable[[], list[Outgoing]]) -> list[Outgoing]:
        turn = self.turn
        state, data = turn.state, copy.deepcopy(turn.data)
        replies = answer()
        turn.state, turn.data = state, data
        return [*replies, *self.reask()]

    def reask(self) -> list[Outgoing]:
        """The resident wrote something else than the question asks: say so kindly, offer the
        choices again (or ask again, at a step that takes text)."""
        turn = self.turn
        if Report(turn).takes_text():
            key = {
                State.DESCRIBE: "report.ask_description",
                State.LOCATION: "report.ask_location",
            }.get(turn.state, "report.ask_description")
            return [Outgoing(turn.t(key))]
        offered = turn.data.get("offered", [])
        buttons = tuple((Button(label, payload),) for label, payload in offered)
        question = turn.data.get("question")
        if question:  # "Maaf, belum saya tangkap" and the question itself, once more
            return [Outgoing(f"{turn.t('form.again')}\n{question}", buttons=buttons)]
        return [Outgoing(turn.t("form.choose"), buttons=buttons)]

    def announce_typed(self, text: str) -> list[Outgoing]:
        turn = self.turn
        announcer = Announcer(turn)
        # "batal" alone leaves the form; an announcement may well contain the word.
        if "cancel" in self.answers.kinds(text):
            return self.cancel()
        if turn.state is State.ANNOUNCE_TEXT:
            return announcer.text(text, turn.incoming.photo)
        if turn.state is State.ANNOUNCE_TIME:
            return announcer.typed_time(text)
        return announcer.typed_poll(text)

    # -- simple answers ------------------------------------------------------------------------

    def welcome(self, key: str) -> Outgoing:
        turn = self.turn
        return turn.reply(
            key,
            name=turn.sender.display_name or turn.t("resident.default_name"),
            city=turn.app.city.config.name,
            buttons=[
                [("button.report", "menu:lapor"), ("button.ask", "menu:tanya")],
                [("button.status", "menu:status"), ("button.help", "menu:bantuan")],
            ],
        )

    def help(self) -> Outgoing:
        turn = self.turn
        text = turn.t("bantuan.reply", city=turn.app.city.config.name)
        if turn.officer is not None:
            text += "\n\n" + turn.t("officer.help")
        return Outgoing(text)

    def cancel(self) -> list[Outgoing]:
        turn = self.turn
        if turn.state in REPORT_STATES:
            return Report(turn).cancel()
        had_form = turn.state is not State.IDLE
        turn.reset()
        return [turn.reply("batal.done" if had_form else "batal.nothing")]

    def clarify(self, text: str) -> list[Outgoing]:
        turn = self.turn
        turn.reset()
        turn.data["pending"] = text
        turn.go(State.CLARIFY)
        return [
            turn.reply(
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
        """Emergency numbers at once; an open form is kept for afterwards."""
        turn = self.turn
        log.warning(
            "EMERGENCY from resident %s (%s): %s",
            turn.sender.resident_id,
            turn.incoming.channel,
            redact(text)[:300],
        )
        lines = [
            turn.t(
                "darurat.line", number=e.number, name=e.name, note=f" ({e.note})" if e.note else ""
            )
            for e in turn.app.city.config.emergency
        ]
        return [Outgoing(turn.t("darurat.reply", numbers="\n".join(lines)))]


def _beyond_places(parse: Any) -> list[str]:
    """The words of a message outside the places it names ("ada pohon tumbang di jl X")."""
    text = parse.text
    for e in sorted(parse.entities, key=lambda e: -e.start):
        if e.type in ("lokasi", "kelurahan", "kecamatan"):
            text = text[: e.start] + " " + text[e.end :]
    return [w for w in _words(text) if w not in ("di", "dekat", "depan", "kel", "jl")]


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())
