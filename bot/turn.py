"""One turn of one resident: the states a conversation can be in, and the turn's context.

Every flow (report, status, rating, questions, following, announcements, the officer desk)
receives the `Turn` and reads or changes its state and data; none of them imports another's
module back, so the package has no import cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.desk import officer_of
from actions.models import Agency, Area, Category, Officer, Resident, Ticket
from actions.public import PublicView, public_notes, public_view
from actions.tickets import resolve_agency
from bot.messages import Button, Incoming, Outgoing
from nlu import redact

if TYPE_CHECKING:
    from actions.city import LoadedCity
    from bot.answers import Answers
    from bot.faq import FaqIndex
    from bot.responses import Responses

FORM_TIMEOUT = timedelta(hours=24)  # a form left this long starts over


class Understanding(Protocol):
    """What the conversation needs of the NLU (the built-in engine or a Rasa server)."""

    def parse(self, text: str) -> Any: ...


class Services(Protocol):
    """What a turn needs of the assistant that runs it."""

    city: LoadedCity
    nlu: Understanding
    responses: Responses
    faq: FaqIndex
    answers: Answers
    clock: Callable[[], datetime]


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
    PROPOSE = "aspirasi.describe"  # waiting for the proposal itself
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
REPORT_STATES = frozenset(s for s in State if s.value.startswith("report."))


@dataclass
class Sender:
    """The resident behind a message and where their conversation stands, read in one query."""

    resident_id: int
    display_name: str
    language: str
    state: str | None  # None: no conversation row yet
    data: dict[str, Any]
    updated_at: datetime | None


class Turn:
    """The context of one message: who sent it, the state and data it can change, and the
    helpers every flow uses to answer (texts, buttons, dates, names)."""

    states = State  # for the flows that only hold a Turn

    def __init__(
        self, app: Services, session: Session, sender: Sender, incoming: Incoming
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

    @cached_property
    def officer(self) -> Officer | None:
        """The sender's officer role, looked up only when a command or button needs it."""
        return officer_of(self.session, self.resident)

    # -- state -------------------------------------------------------------------------------

    def go(self, state: State) -> None:
        self.state = state

    def reset(self) -> None:
        self.state, self.data = State.IDLE, {}

    @property
    def draft(self) -> dict[str, Any]:
        return self.data.setdefault("draft", {})

    def expects(self, *states: State) -> bool:
        return self.state in states and bool(self.draft or self.data.get("pending"))

    # -- replies -----------------------------------------------------------------------------

    def t(self, key: str, **params: object) -> str:
        return self.app.responses.get(self.lang, key, **params)

    def reply(
        self,
        key: str,
        *,
        buttons: Sequence[Sequence[tuple[str, str]]] = (),
        answers: dict[str, str] | None = None,
        **params: object,
    ) -> Outgoing:
        """A text from the responses with buttons (label keys and payloads).

        `answers` maps what a typed short answer means ("yes", "no", "skip", …, see
        data/answers.yml) to the payload it stands for at this question.
        """
        rows = tuple(
            tuple(Button(self.t(label), payload) for label, payload in row) for row in buttons
        )
        text = self.t(key, **params)
        self.offer(rows, answers, question=text if answers else None)
        return Outgoing(text, buttons=rows)

    def offer(
        self,
        rows: tuple[tuple[Button, ...], ...],
        answers: dict[str, str] | None = None,
        *,
        question: str | None = None,
    ) -> None:
        """Remember the buttons just offered, what short answers mean and the question asked
        (kept with the state, so that typing a label, a button's number or a short answer
        works like a tap, and the question can be asked again, even after a restart)."""
        self.forget_offer()
        if rows:
            self.data["offered"] = [[b.label, b.payload] for row in rows for b in row]
        if answers:
            self.data["answers"] = answers
        if question:
            self.data["question"] = question

    def forget_offer(self) -> None:
        for key in ("offered", "answers", "question"):
            self.data.pop(key, None)

    def created(self, ticket: Ticket, key: str) -> Outgoing:
        return self.reply(
            key,
            number=ticket.number,
            agency=ticket.agency.name if ticket.agency else "-",
            due=self.date(ticket.first_response_due_at),
        )

    # -- names and dates -----------------------------------------------------------------------

    def category_name(self, code: str) -> str:
        key = f"category.{code}"
        table = self.app.responses.tables
        if key in table.get(self.lang, {}) or key in table["id"]:
            return self.t(key)
        category = self.app.city.config.categories.get(code)
        return category.name if category is not None else code

    def area_name(self, level: str, name: str) -> str:
        """An area as residents read it: "Kelurahan Delima", "Kota Pekanbaru"."""
        return self.t(f"ikuti.level.{level}", name=name)

    def area(self, code: str | None) -> Area | None:
        return self.session.scalar(select(Area).where(Area.code == code)) if code else None

    def agency_of(self, category: str) -> Agency | None:
        cat = self.session.scalar(select(Category).where(Category.code == category))
        return resolve_agency(self.session, category=cat, area=None) if cat else None

    def public(self, ticket: Ticket) -> PublicView | None:
        """What anyone but the reporter may read of a ticket (None: nothing, it is rahasia)."""
        notes = public_notes(self.session, [ticket.id]).get(ticket.id, "")
        return public_view(ticket, notes=notes, redact=redact)

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


def shorten(text: str, limit: int) -> str:
    """At most `limit` characters, cut with "…"."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
