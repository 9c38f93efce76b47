"""A resident asks where their reports stand: by number, or all of theirs."""

from __future__ import annotations

from typing import Any

from actions.models import Ticket
from actions.tickets import tickets_of, visible_ticket
from bot.messages import Outgoing
from bot.turn import Turn, shorten


class Status:
    def __init__(self, turn: Turn) -> None:
        self.turn, self.session = turn, turn.session

    def answer(self, parse: Any | None) -> list[Outgoing]:
        turn = self.turn
        numbers = [e.value for e in parse.entities if e.type == "nomor_tiket"] if parse else []
        if numbers:
            out = []
            for number in dict.fromkeys(numbers):
                ticket = visible_ticket(
                    self.session, number=number, resident_id=turn.sender.resident_id
                )
                if ticket is None:
                    out.append(turn.reply("status.not_found", number=number))
                else:
                    out.append(Outgoing(self.line(ticket, detailed=True)))
            return out
        tickets = tickets_of(self.session, resident_id=turn.sender.resident_id, limit=5)
        if not tickets:
            return [turn.reply("status.none")]
        lines = "\n".join(self.line(t) for t in tickets)
        return [Outgoing(turn.t("status.list", lines=lines))]

    def line(self, ticket: Ticket, *, detailed: bool = False) -> str:
        # A follower reads the public view; tickets_of and visible_ticket never give them a
        # rahasia one.
        turn = self.turn
        mine = ticket.reporter_id == turn.sender.resident_id
        view = None if mine else turn.public(ticket)
        if not mine and view is None:
            return ""
        params = dict(
            number=ticket.number,
            status=turn.t(f"status.{ticket.status.value}"),
            agency=ticket.agency.short_name if ticket.agency else "-",
            updated=turn.date(ticket.updated_at),
            description=shorten(view.description if view is not None else ticket.description, 60),
        )
        if not detailed:
            return turn.t("status.line", **params)
        last = ticket.events[-1] if ticket.events else None
        note = last.body if last is not None and last.body and last.kind.value != "note" else ""
        if view is not None:
            note = view.notes
        return turn.t(
            "status.detail",
            due=turn.date(ticket.resolution_due_at),
            note=turn.t("status.note", note=note) if note else "",
            **params,
        )
