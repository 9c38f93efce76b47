"""After a ticket is resolved: the resident rates it, or says it is still broken."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from actions.desk import ReopenTooLate, rate, reopen
from actions.domain import DomainError, TicketStatus
from actions.models import Ticket
from bot.messages import Outgoing
from bot.turn import Turn


class Rating:
    def __init__(self, turn: Turn) -> None:
        self.turn, self.session = turn, turn.session

    def latest_resolved(self) -> Ticket | None:
        return self.session.scalar(
            select(Ticket)
            .where(
                Ticket.reporter_id == self.turn.sender.resident_id,
                Ticket.status == TicketStatus.RESOLVED,
            )
            .order_by(Ticket.resolved_at.desc())
            .limit(1)
        )

    def ask(self) -> list[Outgoing]:
        """Offer the stars for the resident's latest resolved report, if there is one."""
        turn = self.turn
        ticket = self.latest_resolved()
        if ticket is None:
            return [turn.reply("nilai.thanks")]
        stars = [(f"button.stars_{n}", f"rate:{ticket.number}:{n}") for n in range(1, 6)]
        return [
            turn.reply(
                "rating.ask",
                number=ticket.number,
                buttons=[stars, [("button.not_fixed", f"reopen:{ticket.number}")]],
                answers={
                    "still_broken": f"reopen:{ticket.number}",
                    "no": f"reopen:{ticket.number}",
                },
            )
        ]

    def still_broken(self, text: str, parse: Any) -> list[Outgoing] | None:
        """ "belum beres" with no question pending means the ticket resolved last: reopened
        when the message says only that, or says it of the same kind of problem ("lampunya
        masih mati pak"). None: it is about something else."""
        ticket = self.latest_resolved()
        if ticket is None:
            return None
        only_that = self.turn.app.answers.kinds(text) == {"still_broken"}
        same_problem = (
            parse.intent in ("lapor", "nilai", "cek_status")
            and parse.category in (None, ticket.category.code)
            and len(text.split()) <= 12
        )
        return self.on_reopen(ticket.number) if only_that or same_problem else None

    def typed_stars(self, text: str) -> str | None:
        """ "5", "bintang 4", "⭐⭐⭐⭐" typed while the latest resolved ticket awaits its stars
        (the prompt came as a notification: no buttons were stored)."""
        text = _OUT_OF_FIVE.sub(r"\1", text.casefold())  # "4 dari 5", "4/5": four
        words = re.findall(r"\w+", text)
        stars = text.count("⭐")
        if not stars:
            numbers = [w for w in words if w in "12345" and len(w) == 1]
            rest = [w for w in words if w not in numbers and w not in _STAR_WORDS]
            stars = int(numbers[0]) if len(numbers) == 1 and not rest else 0
        elif any(w not in _STAR_WORDS for w in words):
            return None
        if not 1 <= stars <= 5:
            return None
        ticket = self.latest_resolved()
        return f"rate:{ticket.number}:{stars}" if ticket is not None else None

    def own(self, number: str) -> Ticket | None:
        ticket = self.session.scalar(select(Ticket).where(Ticket.number == number))
        mine = ticket is not None and ticket.reporter_id == self.turn.sender.resident_id
        return ticket if mine else None

    def on_rate(self, value: str) -> list[Outgoing]:
        turn = self.turn
        number, _, stars = value.rpartition(":")
        ticket = self.own(number)
        if ticket is None or not stars.isdigit():
            return [turn.reply("form.expired")]
        try:
            rate(
                self.session, resident=turn.resident, ticket=ticket, stars=int(stars), now=turn.now
            )
        except DomainError:
            return [turn.reply("rating.not_now", number=number)]
        return [turn.reply("rating.thanks", number=number, stars=stars)]

    def on_reopen(self, value: str) -> list[Outgoing]:
        turn = self.turn
        ticket = self.own(value)
        if ticket is None:
            return [turn.reply("form.expired")]
        city = turn.app.city.config
        try:
            reopen(self.session, resident=turn.resident, ticket=ticket, city=city, now=turn.now)
        except ReopenTooLate:
            return [turn.reply("reopen.too_late", number=value, days=city.reopen_days)]
        except DomainError:
            return [turn.reply("rating.not_now", number=value)]
        return [turn.reply("reopen.done", number=value)]


_OUT_OF_FIVE = re.compile(r"\b([1-5])\s*(?:dari|/|of|out of)\s*5\b")
# Words around a typed rating: "bintang 4 min", "nilai 5", "5 stars".
_STAR_WORDS = frozenset(
    {"bintang", "nilai", "nilainya", "kasih", "saya", "sy", "min", "pak", "bu", "kak", "aja"}
    | {"star", "stars", "rating", "dari", "of"}
)
