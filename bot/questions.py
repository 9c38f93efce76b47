"""Questions (answered from the FAQ, or forwarded to the agency) and proposals (aspirasi)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from actions.domain import TicketKind
from actions.models import Agency
from actions.tickets import create_ticket
from bot.messages import Outgoing
from bot.report import Report
from bot.turn import State, Turn


class Questions:
    def __init__(self, turn: Turn) -> None:
        self.turn, self.session = turn, turn.session

    def answer(self, text: str, category: str | None) -> list[Outgoing]:
        """The FAQ's answer with the agency responsible; with none that fits, offer to forward
        the question (never an answer to another question)."""
        turn = self.turn
        hit = turn.app.faq.search(text, category=category)
        if hit is not None:
            entry = hit.entry
            agency = self.session.scalar(select(Agency).where(Agency.code == entry.agency))
            body = entry.answer.get(turn.lang) or entry.answer["id"]
            return [Outgoing(turn.t("tanya.answer", answer=body, contact=self.contact(agency)))]
        turn.data = {"pending": text, "category": category or "lainnya"}
        turn.go(State.FORWARD)
        agency = turn.agency_of(category or "lainnya")
        return [
            turn.reply(
                "tanya.no_answer",
                agency=agency.name if agency is not None else "-",
                buttons=[[("button.forward", "forward:yes"), ("button.no_thanks", "forward:no")]],
                answers={"yes": "forward:yes", "send": "forward:yes", "no": "forward:no"},
            )
        ]

    def contact(self, agency: Agency | None) -> str:
        if agency is None:
            return ""
        details = ", ".join(f"{v}" for v in (agency.contact or {}).values())
        return self.turn.t(
            "tanya.contact", agency=agency.name, details=f" ({details})" if details else ""
        )

    def on_forward(self, value: str) -> list[Outgoing]:
        turn = self.turn
        text = turn.data.get("pending")
        if turn.state is not State.FORWARD or not text:
            return [turn.reply("form.expired")]
        category = turn.data.get("category", "lainnya")
        turn.reset()
        if value != "yes":
            return [turn.reply("tanya.not_forwarded")]
        ticket = create_ticket(
            self.session,
            city=turn.app.city.config,
            reporter=turn.resident,
            kind=TicketKind.TANYA,
            category_code=category,
            description=text,
            now=turn.now,
        )
        return [turn.created(ticket, "tanya.forwarded")]

    def propose(self, text: str, category: str | None, parse: Any) -> list[Outgoing]:
        """A proposal becomes an aspirasi ticket at once."""
        turn = self.turn
        turn.data = {"draft": {}}
        report = Report(turn)
        report.take_place(parse)
        ticket = create_ticket(
            self.session,
            city=turn.app.city.config,
            reporter=turn.resident,
            kind=TicketKind.ASPIRASI,
            category_code=category or "lainnya",
            description=text,
            location_text=report.draft.get("location_text", ""),
            area=turn.area(report.draft.get("area")),
            now=turn.now,
        )
        turn.reset()
        return [turn.created(ticket, "aspirasi.created")]
