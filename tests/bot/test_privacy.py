"""Complainant confidentiality: what another resident reads of a report, at each privacy level.

Siti reports a pothole with her name, phone number and NIK in the text; officers answer her
(naming her and her number); Rudi then reports the same thing in the same kelurahan. Every path
from her ticket to Rudi is driven through the real conversation and the real dispatcher: the
similar-report offer, joining, "laporan saya", the status by number, every notification. Rudi
never reads her name, phone number or NIK; a `rahasia` ticket never reaches him at all; Siti
still reads her own ticket in full.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from actions.domain import Audience, OfficerRole, OutboxState, TicketStatus
from actions.models import Conversation, Outbox, Resident, Ticket, TicketFollower
from actions.open311 import Open311Error, public_request_by_number
from actions.people import add_officer
from bot.conversation import Assistant
from bot.dispatcher import Dispatcher
from bot.messages import Incoming, Outgoing
from nlu import redact

SITI_REPORT = (
    "nama saya Siti Aminah 0812 3456 7890 NIK 1471010101900001, "
    "jalan berlubang besar di Jl. Paus depan SD 12, Tangkerang Barat"
)
RUDI_REPORT = "ada lubang gede di jalan paus, tangkerang barat, hampir jatuh tadi"
REPLY = "Bu Siti Aminah, petugas kami akan menelepon ibu di 0812 3456 7890"
START = "tim meninjau lokasi, konfirmasi ke Siti Aminah 081234567890"
INTERNAL = "rumah Siti Aminah no 7, NIK 1471010101900001"
REROUTE = "saluran di depan rumah Siti Aminah, bukan jalan"
RESOLVE = "sudah ditimbun, terima kasih bu Siti Aminah"

# What the public view makes of them: phone and NIK masked, her name out.
PUBLIC_REPORT = (
    "nama saya *** *** 0812-****-7890 NIK 1471************, "
    "jalan berlubang besar di Jl. Paus depan SD 12, Tangkerang Barat"
)
PUBLIC_REPLY = "Bu *** ***, petugas kami akan menelepon ibu di 0812-****-7890"
PUBLIC_START = "tim meninjau lokasi, konfirmasi ke *** *** 0812-****-7890"
PUBLIC_RESOLVE = "sudah ditimbun, terima kasih bu *** ***"

TODAY = "Senin, 30 November 2026"  # the conftest's clock
# Anything that would identify Siti.
SECRETS = re.compile(r"\bsiti\b|\baminah\b|3456|01019000", re.IGNORECASE)
PHONE_OR_NIK = re.compile(r"3456|01019000")


class Person:
    """Someone writing to the bot through the real conversation."""

    def __init__(self, assistant: Assistant, user_id: str, name: str) -> None:
        self.assistant, self.user_id, self.name = assistant, user_id, name
        self.received: list[Outgoing] = []  # every reply to what they wrote

    def __call__(self, text: str = "", payload: str | None = None) -> str:
        replies = self.assistant.handle(
            Incoming(
                channel="console",
                user_id=self.user_id,
                update_id=uuid.uuid4().hex,
                text=text,
                display_name=self.name,
                payload=payload,
            )
        )
        self.received += replies
        return "\n".join(r.text for r in replies)

    def t(self, key: str, **params: object) -> str:
        return self.assistant.responses.get("id", key, **params)


class Recorder:
    """Stands in for the chat platform: keeps what each chat would have received."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Outgoing]] = []

    async def send(self, chat_id: str, message: Outgoing) -> None:
        self.sent.append((chat_id, message))

    def to(self, chat_id: str) -> list[Outgoing]:
        return [m for c, m in self.sent if c == chat_id]


@dataclass
class Story:
    privacy: str
    number: str  # Siti's ticket
    offer: str  # the reply to Rudi's report
    siti: Person
    rudi: Person
    chat: Recorder  # every notification delivered, to anyone


def deliver(assistant: Assistant, recorder: Recorder) -> None:
    dispatcher = Dispatcher(
        assistant.sessions, assistant.responses, {"console": recorder}, clock=assistant.clock
    )
    while asyncio.run(dispatcher.run_once()):
        pass


@pytest.fixture
def staff(assistant: Assistant) -> None:
    """Budi works for PUPR (roads), Dedi for DLHK (environment), Ani is an admin."""
    with assistant.sessions.begin() as s:
        for uid, name, role, agency in [
            ("budi", "Budi", OfficerRole.OFFICER, "PUPR"),
            ("dedi", "Dedi", OfficerRole.OFFICER, "DLHK"),
            ("ani", "Ani", OfficerRole.ADMIN, None),
        ]:
            add_officer(
                s,
                channel="console",
                platform_user_id=uid,
                role=role,
                agency_code=agency,
                display_name=name,
            )


def siti_reports(assistant: Assistant, privacy: str) -> tuple[Person, str]:
    siti = Person(assistant, "siti", "Siti Aminah")
    assert siti.t("report.ask_photo") in siti(SITI_REPORT)
    siti("Lewati")
    siti(privacy.capitalize())
    out = siti("Kirim")
    return siti, [w for w in out.split() if w.startswith("PKU-")][0]


def officers_work_it(assistant: Assistant, number: str) -> None:
    """A reply, a status note, an internal note, a reroute with its reason, a resolution."""
    budi = Person(assistant, "budi", "Budi")
    assert budi.t("officer.replied", number=number) in budi(f"/balas {number} {REPLY}")
    budi(f"/proses {number} {START}")
    assert budi.t("officer.noted", number=number) in budi(f"/catatan {number} {INTERNAL}")
    budi(f"/alihkan {number} DLHK {REROUTE}")
    dedi = Person(assistant, "dedi", "Dedi")
    assert dedi.t("status.resolved") in dedi(f"/selesai {number} {RESOLVE}")


@pytest.fixture(params=["biasa", "anonim", "rahasia"])
def story(request: pytest.FixtureRequest, assistant: Assistant, staff: None) -> Story:
    privacy = request.param
    siti, number = siti_reports(assistant, privacy)
    rudi = Person(assistant, "rudi", "Rudi")
    offer = rudi(RUDI_REPORT)
    if rudi.t("button.join") in offer:
        rudi("Ikut laporan ini")
    else:  # nothing to join: he sends his own report
        rudi("Lewati")
        rudi("Biasa")
        rudi("Kirim")
    officers_work_it(assistant, number)
    recorder = Recorder()
    deliver(assistant, recorder)
    return Story(privacy, number, offer, siti, rudi, recorder)


def everything_rudi_received(story: Story) -> list[str]:
    """Every reply Rudi got and every notification sent to him, with its template's params."""
    texts = [m.text for m in story.rudi.received]
    for message in story.chat.to("rudi"):
        texts.append(message.text)
        if message.notice is not None:  # what WhatsApp would fill its template with
            texts += [str(v) for v in message.notice.params.values()]
    return texts


# ---------------------------------------------------------------- the paths, level by level


def test_the_similar_report_offer(story: Story):
    rudi = story.rudi
    if story.privacy == "rahasia":  # never offered: straight on with his own report
        assert story.number not in story.offer
        assert rudi.t("report.ask_photo") in story.offer
        return
    place = {"biasa": "Jl. Paus depan SD 12", "anonim": "Tangkerang Barat"}[story.privacy]
    assert story.offer == rudi.t(
        "report.similar",
        number=story.number,
        status=rudi.t("status.routed"),
        date=TODAY,
        place=place,
    )


def test_joining(story: Story, assistant: Assistant):
    with assistant.sessions() as s:
        followers = s.scalars(
            select(Resident.platform_user_id)
            .join(TicketFollower, TicketFollower.resident_id == Resident.id)
            .join(Ticket, Ticket.id == TicketFollower.ticket_id)
            .where(Ticket.number == story.number)
        ).all()
    joined = story.rudi.t("report.joined", number=story.number)
    if story.privacy == "rahasia":
        assert followers == []
        assert all(joined not in m.text for m in story.rudi.received)
    else:
        assert followers == ["rudi"]
        assert joined in [m.text for m in story.rudi.received]


def test_my_reports_and_the_status_by_number(story: Story):
    rudi = story.rudi
    listing, detail = rudi("laporan saya"), rudi(f"status {story.number}")
    if story.privacy == "rahasia":
        assert story.number not in listing  # only his own report
        assert "PKU-2026-000002" in listing
        assert detail == rudi.t("status.not_found", number=story.number)
        return
    line = rudi.t(
        "status.line",
        number=story.number,
        status=rudi.t("status.resolved"),
        agency="DLHK",
        updated=TODAY,
        description=PUBLIC_REPORT[:59] + "…",
    )
    assert listing == rudi.t("status.list", lines=line)
    assert detail == rudi.t(
        "status.detail",
        number=story.number,
        status=rudi.t("status.resolved"),
        agency="DLHK",
        updated=TODAY,
        due="Kamis, 25 Februari 2027",
        note=rudi.t("status.note", note=PUBLIC_RESOLVE),
    )


def test_notifications(story: Story):
    t, number = story.rudi.t, story.number
    received = [m.text for m in story.chat.to("rudi")]
    if story.privacy == "rahasia":
        assert received == []
        return

    def note(text: str) -> str:
        return t("notify.ticket.note", note=text)

    # The reply and the status notes, cleaned; no internal note, no reroute reason, no rating.
    assert received == [
        t("notify.ticket.reply", number=number, agency="Dinas PUPR", text=PUBLIC_REPLY),
        t(
            "notify.ticket.status.in_progress",
            number=number,
            agency="Dinas PUPR",
            note=note(PUBLIC_START),
        ),
        t("notify.ticket.status.routed", number=number, agency="DLHK", note=""),
        t(
            "notify.ticket.status.resolved",
            number=number,
            agency="DLHK",
            note=note(PUBLIC_RESOLVE),
        ),
    ]


def test_nothing_rudi_receives_identifies_siti(story: Story):
    story.rudi("laporan saya")
    story.rudi(f"status {story.number}")
    texts = everything_rudi_received(story)
    assert texts
    assert [text for text in texts if SECRETS.search(text)] == []


def test_siti_still_reads_her_own_ticket_in_full(story: Story):
    siti, number = story.siti, story.number
    assert "Siti Aminah 0812 3456 7890" in siti("laporan saya")
    assert RESOLVE in siti(f"status {number}")
    received = [m.text for m in story.chat.to("siti")]
    assert received == [
        siti.t("notify.ticket.reply", number=number, agency="Dinas PUPR", text=REPLY),
        siti.t(
            "notify.ticket.status.in_progress",
            number=number,
            agency="Dinas PUPR",
            note=siti.t("notify.ticket.note", note=START),
        ),
        siti.t(
            "notify.ticket.status.routed",
            number=number,
            agency="DLHK",
            note=siti.t("notify.ticket.note", note=REROUTE),
        ),
        siti.t(
            "notify.ticket.status.resolved",
            number=number,
            agency="DLHK",
            note=siti.t("notify.ticket.note", note=RESOLVE),
        ),
        siti.t("notify.ticket.ask_rating", number=number),
    ]


def test_open311_publishes_the_same_public_view(story: Story, assistant: Assistant):
    with assistant.sessions() as s:
        if story.privacy == "rahasia":
            with pytest.raises(Open311Error):
                public_request_by_number(
                    s, number=story.number, city=assistant.city.config, redact=redact
                )
            return
        published = public_request_by_number(
            s, number=story.number, city=assistant.city.config, redact=redact
        )
    assert published["description"] == PUBLIC_REPORT
    assert published["status_notes"] == PUBLIC_RESOLVE
    place = {"biasa": "Jl. Paus depan SD 12, Tangkerang Barat", "anonim": "Tangkerang Barat"}
    assert published["address"] == place[story.privacy]


def test_officers_outside_the_agency_and_admins(story: Story, assistant: Assistant):
    # Rerouted to DLHK: for PUPR's Budi it is now as unknown as a ticket that does not exist.
    budi = Person(assistant, "budi", "Budi")
    assert budi(f"/tiket {story.number}") == budi.t("officer.not_found")
    dedi = Person(assistant, "dedi", "Dedi")  # the handling agency reads everything
    inside = dedi(f"/tiket {story.number}")
    assert "Siti Aminah" in inside and "0812 3456 7890" in inside and INTERNAL in inside
    # The admin: phone numbers and NIK redacted everywhere, the history included; for anonim
    # and rahasia the privacy level instead of the name.
    admin = Person(assistant, "ani", "Ani")(f"/tiket {story.number}")
    assert story.number in admin and "0812-****-7890" in admin
    assert not PHONE_OR_NIK.search(admin)
    if story.privacy == "biasa":
        assert "Siti Aminah (console:siti)" in admin
    else:
        assert not SECRETS.search(admin)
        assert budi.t(f"privacy.{story.privacy}") in admin


# ---------------------------------------------------------------- data from before the rules


def test_a_follower_of_a_rahasia_ticket_from_before_gets_nothing(
    assistant: Assistant, staff: None
):
    siti, number = siti_reports(assistant, "rahasia")
    rudi = Person(assistant, "rudi", "Rudi")
    rudi("halo")
    with assistant.sessions.begin() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == number))
        rudi_id = s.scalar(select(Resident.id).where(Resident.platform_user_id == "rudi"))
        # He joined it before rahasia tickets were kept out of the similar reports, and a
        # reply was queued for him then, not sent yet.
        s.add(TicketFollower(ticket_id=ticket.id, resident_id=rudi_id))
        s.add(
            Outbox(
                audience=Audience.RESIDENT,
                resident_id=rudi_id,
                ticket_id=ticket.id,
                template="ticket.reply",
                params={"number": number, "agency": "Dinas PUPR", "text": REPLY},
                created_at=assistant.clock(),
                next_attempt_at=assistant.clock(),
            )
        )
        # And his form from then still offers it.
        s.merge(
            Conversation(
                resident_id=rudi_id,
                state="report.similar",
                data={
                    "draft": {
                        "kind": "lapor",
                        "description": RUDI_REPORT,
                        "category": "jalan",
                        "location_text": "jalan paus",
                        "similar_checked": True,
                        "similar": number,
                    }
                },
                updated_at=assistant.clock(),
            )
        )
    # Tapping "Ikut laporan ini" now goes on with his own report.
    assert rudi.t("report.ask_photo") in rudi(payload="similar:join")
    rudi("/batal")
    assert rudi("laporan saya") == rudi.t("status.none")
    assert rudi(f"status {number}") == rudi.t("status.not_found", number=number)
    officers_work_it(assistant, number)
    recorder = Recorder()
    deliver(assistant, recorder)
    assert recorder.to("rudi") == []
    assert [m.text for m in recorder.to("siti")][0] == siti.t(
        "notify.ticket.reply", number=number, agency="Dinas PUPR", text=REPLY
    )
    assert len(recorder.to("siti")) == 5
    with assistant.sessions() as s:
        old = s.scalar(select(Outbox).where(Outbox.resident_id == rudi_id))
        assert old.state is OutboxState.FAILED and "rahasia" in old.last_error
        assert s.scalar(select(Ticket.status).where(Ticket.number == number)) is (
            TicketStatus.RESOLVED
        )
