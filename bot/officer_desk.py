"""Officers work tickets from chat: queue, details, take, reply, move, note, statistics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from actions import desk
from actions.domain import (
    ConcurrentChange,
    DomainError,
    IllegalTransition,
    MissingReason,
    NotFound,
    OfficerRole,
    TicketStatus,
)
from actions.models import Agency, Officer, Resident, Ticket, TicketEvent, TicketPhoto
from actions.open311 import forwarding_of
from actions.people import add_officer, remove_officer
from actions.public import without_name
from actions.sla import is_overdue
from actions.stats import agency_statistics
from actions.tickets import Action
from bot.messages import Button, Outgoing
from nlu import redact

if TYPE_CHECKING:
    from bot.turn import Turn

COMMANDS = frozenset(
    {
        "antrian",
        "tiket",
        "ambil",
        "balas",
        "proses",
        "selesai",
        "tolak",
        "alihkan",
        "catatan",
        "statistik",
        "petugas",
    }
)
ACTIONS = {
    "proses": Action.START,
    "selesai": Action.RESOLVE,
    "tolak": Action.REJECT,
    "alihkan": Action.REROUTE,
}
PER_PAGE = 5


class Desk:
    """One officer's command or button, inside the turn's transaction."""

    def __init__(self, turn: Turn, officer: Officer) -> None:
        self.turn, self.officer = turn, officer
        self.session: Session = turn.session
        self.now = turn.now

    def t(self, key: str, **params: object) -> str:
        return self.turn.t(key, **params)

    def say(self, key: str, **params: object) -> list[Outgoing]:
        return [Outgoing(self.t(key, **params))]

    def number(self, raw: str) -> str:
        """Read a ticket number as an officer types it (any of the resident's forms too)."""
        raw = raw.strip()
        found = [e.value for e in self.turn.app.nlu.parse(raw).entities if e.type == "nomor_tiket"]
        return found[0] if found else raw.upper()

    # -- entry points ------------------------------------------------------------------------

    def command(self, name: str, rest: str) -> list[Outgoing]:
        try:
            return self._command(name, rest)
        except desk.AlreadyTaken as exc:
            holder = exc.holder.display_name or exc.holder.platform_user_id if exc.holder else "-"
            return self.say("officer.already_taken", number=exc.number, holder=holder)
        except desk.NotAllowed:
            return self.say("officer.not_allowed")
        except NotFound:
            return self.say("officer.not_found")
        except IllegalTransition as exc:
            return self.say(
                "officer.illegal", number=exc.number, status=self.t(f"status.{exc.status.value}")
            )
        except ConcurrentChange:
            return self.say("officer.changed_meanwhile")
        except (MissingReason, DomainError):
            return self.say(f"officer.usage.{name}")

    def _command(self, name: str, rest: str) -> list[Outgoing]:
        if name == "antrian":
            return self.queue(rest, page=1)
        if name == "statistik":
            return self.statistics(rest)
        if name == "petugas":
            return self.staff(rest)
        number, _, text = rest.partition(" ")
        if not number:
            return self.say(f"officer.usage.{name}")
        ticket = desk.ticket_for(self.session, officer=self.officer, number=self.number(number))
        text = text.strip()
        if name == "tiket":
            return self.details(ticket)
        if name == "ambil":
            desk.take(self.session, officer=self.officer, ticket=ticket, now=self.now)
            return self.say("officer.taken", number=ticket.number)
        if name == "balas":
            if not text:
                return self.ask_reply(ticket)
            desk.reply(self.session, officer=self.officer, ticket=ticket, text=text, now=self.now)
            return self.say("officer.replied", number=ticket.number)
        if name == "catatan":
            if not text:
                return self.say("officer.usage.catatan")
            desk.note(self.session, officer=self.officer, ticket=ticket, text=text, now=self.now)
            return self.say("officer.noted", number=ticket.number)
        action = ACTIONS[name]
        agency_code = None
        if action is Action.REROUTE:
            agency_code, _, text = text.partition(" ")
            if not agency_code or not text.strip():
                return self.say("officer.usage.alihkan")
        if action in (Action.RESOLVE, Action.REJECT) and not text:
            return self.say(f"officer.usage.{name}")
        desk.act(
            self.session,
            officer=self.officer,
            ticket=ticket,
            action=action,
            note=text,
            agency_code=agency_code,
            now=self.now,
        )
        if self.turn.incoming.photo and action is Action.RESOLVE:
            ticket.photos.append(self._photo())
        if action is Action.REROUTE:
            return self.say(
                "officer.rerouted",
                number=ticket.number,
                agency=ticket.agency.short_name if ticket.agency else "-",
            )
        return self.say(
            "officer.moved", number=ticket.number, status=self.t(f"status.{ticket.status.value}")
        )

    def _photo(self) -> Any:
        return TicketPhoto(
            channel=self.turn.incoming.channel,
            file_id=self.turn.incoming.photo,
            added_by_id=self.officer.resident_id,
            created_at=self.now,
        )

    def button(self, payload: str) -> list[Outgoing]:
        """officer:take|reply|view:NUMBER, officer:queue:FILTER:PAGE."""
        _, verb, rest = payload.split(":", 2)
        if verb == "queue":
            filt, _, page = rest.rpartition(":")
            return self.queue(filt, page=int(page) if page.isdigit() else 1)
        name = {"take": "ambil", "reply": "balas", "view": "tiket"}.get(verb)
        if name is None:
            return self.say("form.expired")
        return self.command(name, rest)

    def ask_reply(self, ticket: Ticket) -> list[Outgoing]:
        """Tapped "Balas": the officer's next message is the reply."""
        self.turn.state, self.turn.data = self.turn.states.OFFICER_REPLY, {"number": ticket.number}
        return self.say("officer.ask_reply", number=ticket.number)

    def pending_reply(self, text: str) -> list[Outgoing]:
        number = self.turn.data.get("number", "")
        self.turn.reset()
        return self.command("balas", f"{number} {text}")

    # -- views -------------------------------------------------------------------------------

    def queue(self, rest: str, *, page: int) -> list[Outgoing]:
        filt = rest.strip().lower()
        kwargs: dict[str, Any] = {}
        if filt in ("terlambat", "overdue"):
            kwargs["overdue"] = True
        elif filt in TicketStatus._value2member_map_:
            kwargs["status"] = TicketStatus(filt)
        elif filt in self.turn.app.city.config.categories:
            kwargs["category"] = filt
        elif filt:
            return self.say("officer.usage.antrian")
        result = desk.queue(
            self.session,
            officer=self.officer,
            now=self.now,
            page=page,
            per_page=PER_PAGE,
            **kwargs,
        )
        if not result.total:
            return self.say("officer.queue.empty")
        lines = [self.queue_line(t) for t in result.tickets]
        rows: list[tuple[Button, ...]] = [
            (Button(self.t("button.view_number", number=t.number), f"officer:view:{t.number}"),)
            for t in result.tickets
        ]
        if result.page < result.pages:
            rows.append(
                (Button(self.t("button.next_page"), f"officer:queue:{filt}:{result.page + 1}"),)
            )
        text = (
            self.t(
                "officer.queue.header", total=result.total, page=result.page, pages=result.pages
            )
            + "\n"
            + "\n".join(lines)
        )
        return [Outgoing(text, buttons=tuple(rows))]

    def queue_line(self, ticket: Ticket) -> str:
        late = self.t("officer.queue.late") if is_overdue(ticket, self.now) else ""
        who = (
            ticket.assignee.display_name or ticket.assignee.platform_user_id
            if ticket.assignee
            else self.t("officer.queue.nobody")
        )
        return self.t(
            "officer.queue.line",
            number=ticket.number,
            late=late,
            category=self.turn.category_name(ticket.category.code),
            status=self.t(f"status.{ticket.status.value}"),
            date=self.turn.date(ticket.created_at),
            who=who,
        )

    def outside(self, ticket: Ticket, text: str) -> str:
        """Text of a ticket as an officer outside its agency (an admin) reads it: phone numbers
        and NIK redacted, and the reporter's name out unless the identity is theirs to see."""
        if ticket.agency_id is not None and ticket.agency_id == self.officer.agency_id:
            return text
        text = redact(text)
        if desk.sees_identity(self.officer, ticket):
            return text
        return without_name(text, ticket.reporter.display_name)

    def details(self, ticket: Ticket) -> list[Outgoing]:
        reporter = ticket.reporter
        if desk.sees_identity(self.officer, ticket):
            who = (
                f"{reporter.display_name or '-'} ({reporter.channel}:{reporter.platform_user_id})"
            )
        else:
            who = self.t(f"privacy.{ticket.privacy.value}")
        description = self.outside(ticket, ticket.description)
        events = self.session.scalars(
            select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id)
        ).all()
        history = "\n".join(self.event_line(e, ticket) for e in events)
        late = self.t("officer.queue.late") if is_overdue(ticket, self.now) else ""
        text = self.t(
            "officer.ticket",
            number=ticket.number,
            late=late,
            status=self.t(f"status.{ticket.status.value}"),
            kind=ticket.kind.value,
            category=self.turn.category_name(ticket.category.code),
            agency=ticket.agency.short_name if ticket.agency else "-",
            assignee=(ticket.assignee.display_name or ticket.assignee.platform_user_id)
            if ticket.assignee
            else self.t("officer.queue.nobody"),
            reporter=who,
            privacy=self.t(f"privacy.{ticket.privacy.value}"),
            place=self.outside(ticket, ticket.location_text)
            or (ticket.area.name if ticket.area else "-"),
            description=description,
            created=self.turn.date(ticket.created_at),
            first_due=self.turn.date(ticket.first_response_due_at),
            due=self.turn.date(ticket.resolution_due_at),
            history=history,
        )
        forwarding = self.forwarding(ticket)
        if forwarding:
            text += "\n" + "\n".join([self.t("officer.forward.header"), *forwarding])
        location = (ticket.latitude, ticket.longitude) if ticket.latitude is not None else None
        buttons = (
            (
                Button(self.t("button.take"), f"officer:take:{ticket.number}"),
                Button(self.t("button.reply"), f"officer:reply:{ticket.number}"),
            ),
        )
        return [
            Outgoing(
                text,
                buttons=buttons,
                location=location,
                photos=tuple(
                    p.file_id for p in ticket.photos if p.channel == self.turn.incoming.channel
                ),
            )
        ]

    def forwarding(self, ticket: Ticket) -> list[str]:
        """The ticket's hand-overs to agencies' systems: sent, retrying or failed, and why."""
        return [
            self.t(
                f"officer.forward.{f.phase}",
                agency=f.agency,
                attempts=f.attempts,
                error=f.last_error,
                id=f.service_request_id or "-",
                status=f.remote_status or "-",
                next=self.turn.date(f.next_attempt_at),
            )
            for f in forwarding_of(self.session, ticket)
        ]

    def event_line(self, event: TicketEvent, ticket: Ticket) -> str:
        actor = self.session.get(Resident, event.actor_id) if event.actor_id else None
        if (
            actor is not None
            and actor.id == ticket.reporter_id
            and not desk.sees_identity(self.officer, ticket)
        ):
            name = self.t("officer.history.reporter")
        elif actor is not None:
            name = actor.display_name or actor.platform_user_id
        else:
            name = self.t("officer.history.system")
        what = self.t(
            f"officer.history.{event.kind.value}",
            status=self.t(f"status.{event.to_status.value}") if event.to_status else "",
            stars=event.data.get("stars", "") if event.data else "",
        )
        body = f": {self.outside(ticket, event.body)}" if event.body else ""
        return self.t(
            "officer.history.line",
            date=self.turn.date(event.created_at),
            who=name,
            what=what,
            body=body,
        )

    def statistics(self, rest: str) -> list[Outgoing]:
        days = int(rest) if rest.strip().isdigit() and int(rest) > 0 else 30
        code = None if self.officer.role is OfficerRole.ADMIN else self.officer.agency.code
        stats = agency_statistics(self.session, agency_code=code, days=days, now=self.now)

        def one_decimal(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f}"

        lines = "\n".join(
            self.t(
                "officer.stats.category",
                category=self.turn.category_name(row.category),
                opened=row.opened,
                resolved=row.resolved,
                overdue=row.overdue,
                rating=one_decimal(row.average_rating),
            )
            for row in stats.by_category
        )
        return self.say(
            "officer.stats.summary",
            days=days,
            scope=code or self.t("officer.stats.all"),
            opened=stats.opened,
            resolved=stats.resolved,
            overdue=stats.overdue,
            first=one_decimal(stats.median_first_response_hours),
            resolution=one_decimal(stats.median_resolution_hours),
            rating=one_decimal(stats.average_rating),
            ratings=stats.ratings,
            categories=lines,
        )

    def staff(self, rest: str) -> list[Outgoing]:
        """Admins add, remove and list officers from chat: /petugas tambah|hapus|daftar."""
        if self.officer.role is not OfficerRole.ADMIN:
            return self.say("officer.admin_only")
        verb, *args = rest.split() or [""]
        channel = self.turn.incoming.channel
        if verb == "tambah" and len(args) >= 2:
            role = (
                OfficerRole(args[2])
                if len(args) > 2 and args[2] in OfficerRole._value2member_map_
                else OfficerRole.OFFICER
            )
            agency = None if args[1] == "-" else args[1].upper()
            added = add_officer(
                self.session,
                channel=channel,
                platform_user_id=args[0],
                role=role,
                agency_code=agency,
            )
            return self.say(
                "officer.staff.added",
                user=args[0],
                role=added.role.value,
                agency=added.agency.code if added.agency else "-",
            )
        if verb == "hapus" and args:
            remove_officer(self.session, channel=channel, platform_user_id=args[0])
            return self.say("officer.staff.removed", user=args[0])
        if verb == "daftar":
            rows = self.session.execute(
                select(Officer, Resident, Agency)
                .join(Resident, Officer.resident_id == Resident.id)
                .outerjoin(Agency, Officer.agency_id == Agency.id)
                .order_by(Agency.code, Resident.platform_user_id)
            ).all()
            lines = "\n".join(
                f"• {r.platform_user_id} {r.display_name} — {o.role.value} {a.code if a else '-'}"
                for o, r, a in rows
            )
            return [Outgoing(lines)]
        return self.say("officer.usage.petugas")
