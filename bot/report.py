"""A resident's report, from the first message to the ticket number.

The draft lives in the turn's data: description, category, place (text, kelurahan, pin),
photos, privacy. The flow asks only for what is missing, then shows a summary to send. A new
report started while one is open parks the open one; it is taken up again afterwards.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import select

from actions.corrections import record_correction
from actions.domain import AreaLevel, CorrectionSource, Privacy, TicketKind
from actions.geo import kelurahan_at
from actions.models import Area, Ticket
from actions.tickets import create_ticket, find_similar, follow_ticket, joinable
from bot.following import Following
from bot.messages import Button, Outgoing
from bot.turn import REPORT_STATES, State, Turn, shorten
from nlu import place_text
from nlu.lokasi import PLACE_TEXT_LIMIT

# Below this confidence in the category, the resident is asked to pick one.
CATEGORY_THRESHOLD = 0.30
SHORT_PLACE = 10  # words: an answer to "where?" this short is the place as typed


class Report:
    def __init__(self, turn: Turn) -> None:
        self.turn, self.session = turn, turn.session

    @property
    def draft(self) -> dict[str, Any]:
        return self.turn.draft

    # -- starting ------------------------------------------------------------------------------

    def start(self, text: str, parse: Any) -> list[Outgoing]:
        """Start a report from its story (keeping a photo or pin sent just before)."""
        turn = self.turn
        # A photo or pin sent before the story belongs to it; a parked report keeps its own.
        before = turn.state in (State.DESCRIBE, State.IDLE)
        previous = turn.draft if before and not turn.draft.get("description") else {}
        parked = turn.data.get("parked")
        turn.data = {"draft": {"kind": TicketKind.LAPOR.value, "description": text}}
        if parked:
            turn.data["parked"] = parked
        for key in ("photos", "coords", "area", "area_from_pin"):
            if previous.get(key):
                self.draft[key] = previous[key]
        self.draft.setdefault("photos", [])
        self.take_category(parse)
        self.take_place(parse)
        return self.next_step()

    def under_way(self) -> bool:
        """A report with its story is being filled in."""
        return self.turn.state in REPORT_STATES and bool(self.draft.get("description"))

    def park(self) -> None:
        """Keep the open report for afterwards (one at a time)."""
        if self.under_way() and "parked" not in self.turn.data:
            self.turn.data["parked"] = {"draft": self.draft}

    def park_and_start(self, text: str, parse: Any) -> list[Outgoing]:
        """A new, different report in the middle of one: keep the open one for afterwards."""
        self.park()
        self.turn.go(State.IDLE)
        return self.start(text, parse)

    def resume(self) -> list[Outgoing]:
        """After a report is sent or dropped: take up the one parked before it, if any."""
        parked = self.turn.data.get("parked")
        self.turn.reset()
        if not parked:
            return []
        self.turn.data = {"draft": parked["draft"]}
        description = shorten(self.draft.get("description", ""), 60)
        intro = Outgoing(self.turn.t("report.resume", description=description))
        return [intro, *self.next_step()]

    def take_category(self, parse: Any) -> None:
        confidence = getattr(parse, "category_confidence", None) or parse.confidence
        if parse.category and confidence >= CATEGORY_THRESHOLD:
            self.draft["category"] = parse.category
        # What the NLU made of the story, to compare with what is sent (`record_nlu`).
        self.draft["nlu"] = {
            "label": parse.label,
            "category": self.draft.get("category"),
            "fallback": bool(parse.fallback),
        }
        ranked = [label.split("/", 1)[1] for label, _ in parse.ranking if "/" in label]
        self.turn.data["ranking"] = list(dict.fromkeys(ranked))[:4]

    def take_place(self, parse: Any) -> bool:
        """Keep the places the message names; True when it named one."""
        entities = list(parse.entities)
        lokasi = place_text(parse.text, entities)
        if lokasi:
            self.draft["location_text"], self.draft["place_typed"] = lokasi, True
        found = bool(lokasi)
        for level in (AreaLevel.KELURAHAN, AreaLevel.KECAMATAN):
            names = [e.value for e in entities if e.type == level.value]
            if not names:
                continue
            found = True
            if self.draft.get("area") and not self.draft.get("area_from_pin"):
                continue
            area = self.session.scalar(
                select(Area).where(Area.level == level, Area.name == names[0])
            )
            if area is not None:
                self.draft["area"] = area.code
                self.draft.pop("area_from_pin", None)
                if not lokasi and level is AreaLevel.KELURAHAN:
                    self.draft["location_text"] = self.turn.t("report.kelurahan", name=area.name)
                    self.draft["place_typed"] = False
        return found

    # -- the next question ---------------------------------------------------------------------

    def next_step(self) -> list[Outgoing]:
        turn, d = self.turn, self.draft
        if not d.get("description"):
            turn.go(State.DESCRIBE)
            return [turn.reply("report.ask_description")]
        if not d.get("category"):
            return [self.ask_category()]
        if not (d.get("location_text") or d.get("coords")):
            turn.go(State.LOCATION)
            return [self.ask_location(skippable=True)]
        if not d.get("similar_checked"):
            d["similar_checked"] = True
            offer = self.offer_similar()
            if offer is not None:
                return [offer]
        if "photo_asked" not in d and not d.get("photos"):
            d["photo_asked"] = True
            return [self.ask_photo()]
        if not d.get("privacy"):
            turn.go(State.PRIVACY)
            return [self.ask_privacy()]
        return [self.summary()]

    def offer_similar(self) -> Outgoing | None:
        turn, d = self.turn, self.draft
        similar = self.similar()
        view = turn.public(similar) if similar is not None else None
        if similar is None or view is None:
            return None
        d["similar"] = similar.number
        turn.go(State.SIMILAR)
        return turn.reply(
            "report.similar",
            number=similar.number,
            status=turn.t(f"status.{similar.status.value}"),
            date=turn.date(similar.created_at),
            place=view.location or view.area or "-",
            buttons=[[("button.join", "similar:join")], [("button.new", "similar:new")]],
            answers={
                "join": "similar:join",
                "yes": "similar:join",
                "new": "similar:new",
                "no": "similar:new",
                "send": "similar:new",
            },
        )

    def ask_photo(self) -> Outgoing:
        if self.turn.state is not State.EDIT:  # changing the photo from the summary stays there
            self.turn.go(State.PHOTO)
        return self.turn.reply(
            "report.ask_photo",
            buttons=[[("button.skip", "photo:skip")]],
            answers={"no": "photo:skip", "skip": "photo:skip", "yes": "photo:wait"},
        )

    def ask_location(self, *, skippable: bool) -> Outgoing:
        skip = [[("button.skip_location", "location:none")]] if skippable else []
        answers = {"no": "location:none", "skip": "location:none"} if skippable else None
        out = self.turn.reply("report.ask_location", buttons=skip, answers=answers)
        return replace(out, request_location=True)

    def ask_privacy(self) -> Outgoing:
        # "Boleh dipublikasikan?": yes is biasa; no is the literal "tidak dipublikasikan".
        return self.turn.reply(
            "report.ask_privacy",
            buttons=[[(f"button.privacy_{p.value}", f"privacy:{p.value}")] for p in Privacy],
            answers={
                **{p.value: f"privacy:{p.value}" for p in Privacy},
                "yes": "privacy:biasa",
                "no": "privacy:rahasia",
            },
        )

    def ask_category(self) -> Outgoing:
        turn = self.turn
        turn.go(State.CATEGORY)
        categories = turn.app.city.config.categories
        ranked = [c for c in turn.data.get("ranking", []) if c in categories]
        codes = ranked + [c for c in categories if c not in ranked]
        rows = tuple(
            tuple(Button(turn.category_name(c), f"category:{c}") for c in codes[i : i + 2])
            for i in range(0, len(codes), 2)
        )
        turn.offer(rows)
        return Outgoing(turn.t("report.ask_category"), buttons=rows)

    def similar(self) -> Ticket | None:
        d = self.draft
        area = self.turn.area(d.get("area"))
        coords = d.get("coords")
        return find_similar(
            self.session,
            category_code=d["category"],
            area=area if area is not None and area.level is AreaLevel.KELURAHAN else None,
            latitude=coords[0] if coords else None,
            longitude=coords[1] if coords else None,
            now=self.turn.now,
            exclude_reporter=self.turn.sender.resident_id,
            location_text=d.get("location_text", "") if d.get("place_typed") else "",
            description=d.get("description", ""),
        )

    def place_line(self) -> str:
        """The place as the summary shows it: the text, the kelurahan, the pin."""
        turn, d = self.turn, self.draft
        parts = [d.get("location_text") or ""]
        area = turn.area(d.get("area"))
        if area is not None and area.name.casefold() not in parts[0].casefold():
            key = "report.kelurahan_from_pin" if d.get("area_from_pin") else "report.kelurahan"
            parts.append(turn.t(key, name=area.name))
        coords = d.get("coords")
        if coords:
            parts.append(turn.t("report.pin", lat=f"{coords[0]:.5f}", lon=f"{coords[1]:.5f}"))
        return ", ".join(p for p in parts if p)

    def summary(self) -> Outgoing:
        turn, d = self.turn, self.draft
        turn.go(State.CONFIRM)
        return turn.reply(
            "report.summary",
            category=turn.category_name(d["category"]),
            description=d["description"],
            place=self.place_line(),
            photos=len(d.get("photos", [])),
            privacy=turn.t(f"privacy.{d['privacy']}"),
            buttons=[
                [
                    ("button.send", "confirm:send"),
                    ("button.edit", "confirm:edit"),
                    ("button.cancel", "confirm:cancel"),
                ]
            ],
            answers={
                "yes": "confirm:send",
                "send": "confirm:send",
                "no": "confirm:edit",
                "edit": "confirm:edit",
            },
        )

    def submit(self) -> list[Outgoing]:
        turn, d = self.turn, self.draft
        coords = d.get("coords")
        ticket = create_ticket(
            self.session,
            city=turn.app.city.config,
            reporter=turn.resident,
            kind=TicketKind(d.get("kind", TicketKind.LAPOR.value)),
            category_code=d["category"],
            description=d["description"],
            location_text=d.get("location_text", ""),
            latitude=coords[0] if coords else None,
            longitude=coords[1] if coords else None,
            area=turn.area(d.get("area")),
            privacy=Privacy(d.get("privacy", Privacy.BIASA.value)),
            photos=[(turn.incoming.channel, p) for p in d.get("photos", [])],
            now=turn.now,
        )
        self.record_nlu(ticket)
        created = turn.created(ticket, "report.created")
        resumed = self.resume()
        if resumed:
            return [created, *resumed]
        offer = Following(turn).offer_after_report(ticket.area)
        return [created, *([offer] if offer else [])]

    def record_nlu(self, ticket: Ticket) -> None:
        """Keep where the resident corrected the NLU: a category changed before sending
        (resident_edit), or chosen on the buttons because the NLU was unsure (fallback)."""
        nlu = self.draft.get("nlu")
        if not nlu:
            return
        corrected = f"{ticket.kind.value}/{ticket.category.code}"
        if nlu["fallback"] or not nlu["category"]:
            source = CorrectionSource.FALLBACK
        elif nlu["category"] != ticket.category.code:
            source = CorrectionSource.RESIDENT_EDIT
        else:
            return  # sent as the NLU read it
        record_correction(
            self.session,
            text=ticket.description,
            predicted=nlu["label"],
            corrected=corrected,
            source=source,
            ticket=ticket,
            now=self.turn.now,
        )

    # -- attachments ---------------------------------------------------------------------------

    def attachment(self) -> list[Outgoing]:
        """A photo or a pin: added to the report under way, or the start of a new one."""
        turn, inc = self.turn, self.turn.incoming
        if turn.state not in REPORT_STATES:
            turn.reset()
            turn.data["draft"] = {"kind": TicketKind.LAPOR.value, "photos": []}
        if inc.photo:
            self.draft.setdefault("photos", []).append(inc.photo)
        # Without the city's boundaries a pin is kept as it is: nothing to tell.
        outside = (
            inc.location is not None
            and not self.take_pin(inc.location)
            and turn.app.city.boundaries_path is not None
        )
        said = [turn.reply("report.pin_outside")] if outside else []
        if not self.draft.get("description"):
            if inc.text:
                return said  # the caption that came with it is the description: handled next
            turn.go(State.DESCRIBE)
            return [*said, turn.reply("report.ask_description_after_attachment")]
        if turn.state in (State.CONFIRM, State.EDIT):
            return [*said, self.summary()]
        return [*said, *self.next_step()]

    def take_pin(self, location: tuple[float, float]) -> bool:
        """Keep the pin and, unless the resident named one, its kelurahan; False when the pin
        lies outside the city."""
        self.draft["coords"] = list(location)
        area = kelurahan_at(self.session, self.turn.app.city, *location)
        if self.draft.get("area") and not self.draft.get("area_from_pin"):
            return area is not None  # the kelurahan the resident named stays
        if area is not None:
            self.draft["area"], self.draft["area_from_pin"] = area.code, True
        else:
            self.draft.pop("area", None)
            self.draft.pop("area_from_pin", None)
        return area is not None

    # -- buttons -------------------------------------------------------------------------------

    def on_category(self, value: str) -> list[Outgoing]:
        turn = self.turn
        if value not in turn.app.city.config.categories or not turn.expects(
            State.CATEGORY, State.EDIT
        ):
            return [turn.reply("form.expired")]
        self.draft["category"] = value
        return [self.summary()] if turn.state is State.EDIT else self.next_step()

    def on_location(self, value: str) -> list[Outgoing]:
        if not self.turn.expects(State.LOCATION):
            return [self.turn.reply("form.expired")]
        self.draft["location_text"] = self.turn.t("report.no_location")
        self.draft["place_typed"] = False
        return self.next_step()

    def on_similar(self, value: str) -> list[Outgoing]:
        turn = self.turn
        number = self.draft.get("similar")
        if not turn.expects(State.SIMILAR) or not number:
            return [turn.reply("form.expired")]
        if value == "join":
            ticket = self.session.scalar(select(Ticket).where(Ticket.number == number))
            if ticket is not None and joinable(ticket):
                follow_ticket(self.session, ticket=ticket, resident=turn.resident)
                return [turn.reply("report.joined", number=number), *self.resume()]
        return self.next_step()

    def on_photo(self, value: str) -> list[Outgoing]:
        turn = self.turn
        if not turn.expects(State.PHOTO, State.EDIT):
            return [turn.reply("form.expired")]
        if value == "wait":  # "ya, ada": the photo itself is still to come
            return [self.ask_photo_again()]
        return [self.summary()] if turn.state is State.EDIT else self.next_step()

    def ask_photo_again(self) -> Outgoing:
        out = self.ask_photo()
        return replace(out, text=self.turn.t("report.photo_waiting"))

    def on_privacy(self, value: str) -> list[Outgoing]:
        turn = self.turn
        if value not in Privacy._value2member_map_ or not turn.expects(State.PRIVACY, State.EDIT):
            return [turn.reply("form.expired")]
        self.draft["privacy"] = value
        return [self.summary()] if turn.state is State.EDIT else self.next_step()

    def on_confirm(self, value: str) -> list[Outgoing]:
        turn = self.turn
        if not turn.expects(State.CONFIRM, State.EDIT):
            return [turn.reply("form.expired")]
        if value == "send":
            return self.submit()
        if value == "cancel":
            return self.cancel()
        turn.go(State.EDIT)
        return [
            turn.reply(
                "report.edit_what",
                buttons=[
                    [
                        ("button.edit_category", "edit:category"),
                        ("button.edit_location", "edit:location"),
                    ],
                    [("button.edit_photo", "edit:photo"), ("button.edit_privacy", "edit:privacy")],
                    [("button.edit_description", "edit:description")],
                ],
                answers={"no": "edit:nothing", "yes": "edit:nothing", "send": "confirm:send"},
            )
        ]

    def on_edit(self, value: str) -> list[Outgoing]:
        turn = self.turn
        if not turn.expects(State.EDIT):
            return [turn.reply("form.expired")]
        turn.data["editing"] = value
        if value == "category":
            out = self.ask_category()
            turn.go(State.EDIT)
            return [out]
        if value == "location":
            return [self.ask_location(skippable=False)]
        if value == "photo":
            return [self.ask_photo()]
        if value == "privacy":
            return [self.ask_privacy()]
        if value == "description":
            return [turn.reply("report.ask_description")]
        return [self.summary()]  # nothing to change after all

    def cancel(self) -> list[Outgoing]:
        done = self.turn.reply("batal.done")
        return [done, *self.resume()]

    # -- typed answers -------------------------------------------------------------------------

    def typed(self, text: str, parse: Any) -> list[Outgoing] | None:
        """Text typed at a step of the report that takes text; None when the step takes
        buttons (the router answers that)."""
        turn = self.turn
        if turn.state is State.DESCRIBE:
            return self.start(text, parse)
        if turn.state is State.LOCATION:
            self.take_answered_place(text, parse)
            return self.next_step()
        if turn.state is State.EDIT and turn.data.get("editing") == "description":
            self.draft["description"] = text
            return [self.summary()]
        if turn.state is State.EDIT and turn.data.get("editing") == "location":
            for key in ("area", "area_from_pin", "location_text"):
                self.draft.pop(key, None)
            self.take_answered_place(text, parse)
            return [self.summary()]
        return None

    def take_answered_place(self, text: str, parse: Any) -> None:
        """The answer to "Di mana lokasinya?": a short answer is the place as typed ("depan
        pasar pusat jl. agus salim"); a longer one gives the places it names."""
        self.take_place(parse)
        short = len(text.split()) <= SHORT_PLACE
        if short or not self.draft.get("location_text") or not self.draft.get("place_typed"):
            self.draft["location_text"] = shorten(text, PLACE_TEXT_LIMIT)
            self.draft["place_typed"] = True

    def takes_place(self) -> bool:
        turn = self.turn
        return turn.state is State.LOCATION or (
            turn.state is State.EDIT and turn.data.get("editing") == "location"
        )

    @staticmethod
    def as_place(text: str) -> str:
        """The answer to "Di mana lokasinya?" read as a place ("air dingin" → "di air dingin",
        so that a kelurahan written in lower case is still a kelurahan)."""
        return text if text.casefold().startswith(("di ", "kel", "jl", "jalan")) else f"di {text}"

    def takes_text(self) -> bool:
        turn = self.turn
        return turn.state in (State.DESCRIBE, State.LOCATION) or (
            turn.state is State.EDIT and turn.data.get("editing") in ("description", "location")
        )
