"""WhatsApp end to end: signed webhook calls into the web app, the real conversation and store,
the replies out through a fake Graph API transport; pywa checks the fixtures independently.

The web app runs on its own event loop (an anyio portal) with its lifespan, as uvicorn runs
it; requests reach it through httpx's ASGI transport, which returns once the app is done,
the work after the answer included.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import string
import time
from datetime import timedelta
from typing import Any

import anyio.from_thread
import httpx
import pytest
from pydantic import SecretStr
from pywa import WhatsApp, utils
from pywa.errors import WhatsAppError
from pywa.types import CallbackButton, CallbackSelection, Message, MessageStatus
from pywa.types.base_update import RawUpdate
from sqlalchemy import func, select
from support.webhooks import wa_body_text as body_text
from support.webhooks import wa_choices as choices
from support.whatsapp_graph import (
    API,
    PHONE_NUMBER_ID,
    VERSION,
    WABA_ID,
    FakeGraph,
    button_reply,
    error_response,
    image,
    list_reply,
    location,
    message_payload,
    sign,
    status_payload,
    template_button,
    text,
)

from actions.domain import DeliveryStatus, OfficerRole, OutboxState
from actions.models import InboxUpdate, Outbox, Resident, SentMessage, Ticket
from actions.people import add_officer, note_inbound
from actions.tickets import Action, get_ticket, transition
from bot.channels.whatsapp import (
    PATH,
    SIGNATURE_HEADER,
    Graph,
    GraphError,
    WhatsAppChannel,
    WhatsAppSettings,
    parse_webhook,
    render,
)
from bot.conversation import Assistant
from bot.dispatcher import Dispatcher
from bot.messages import Button, Outgoing
from bot.web import create_app

APP_SECRET = "app-secret-untuk-tes"  # noqa: S105 - test secrets
TOKEN = "EAAGtesttoken"  # noqa: S105
VERIFY = "verifikasi-123"
SITI = ("6281276543210", "ID.1502576394655843")  # wa_id, business-scoped user id
PAIR_INTERVAL = 0.05  # the pair rate, scaled down from 6 s for the tests
# The templates approved for the city's number (WhatsApp Manager): name -> body parameters.
APPROVED = {
    "suarawarga_laporan_diproses": 3,
    "suarawarga_laporan_selesai": 3,
    "suarawarga_balasan_petugas": 3,
    "suarawarga_minta_penilaian": 1,
    "suarawarga_tiket_baru": 4,
}
_wamids = itertools.count(1)


@pytest.fixture
def settings(tmp_path) -> WhatsAppSettings:
    return WhatsAppSettings(
        verify_token=SecretStr(VERIFY),
        app_secret=SecretStr(APP_SECRET),
        access_token=SecretStr(TOKEN),
        phone_number_id=PHONE_NUMBER_ID,
        api_url=API,
        api_version=VERSION,
        media_dir=tmp_path / "media",
    )


@pytest.fixture
def graph(clock) -> FakeGraph:
    return FakeGraph(
        token=TOKEN,
        clock=lambda: clock[0],
        pair_interval=PAIR_INTERVAL,
        pair_burst=4,  # WhatsApp tolerates more than the bot allows itself (3)
        approved=APPROVED,
    )


@pytest.fixture
def pywa() -> WhatsApp:
    """pywa, offline: the independent reader of our fixtures."""
    return WhatsApp(phone_id=PHONE_NUMBER_ID, token=TOKEN, waba_id=WABA_ID)


class Bot:
    """The web app with the WhatsApp channel, running on its own event loop."""

    def __init__(self, assistant: Assistant, settings: WhatsAppSettings, graph: FakeGraph):
        self.assistant, self.graph = assistant, graph
        self.channel = WhatsAppChannel(
            assistant,
            settings,
            transport=graph.transport,
            pair_interval=PAIR_INTERVAL,
            pair_burst=3,
            backoff=0.01,
        )
        # The workers do not run by themselves: each message is settled before the next.
        self.app = create_app(
            assistant,
            channels=[self.channel],
            open311_interval=None,
            background=False,
            paced=False,
        )
        self.t = assistant.responses.get
        self._stack = contextlib.ExitStack()
        self._phones: dict[tuple[str | None, str, str], Phone] = {}

    def __enter__(self) -> Bot:
        self.portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
        self._stack.enter_context(
            self.portal.wrap_async_context_manager(self.app.router.lifespan_context(self.app))
        )
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://warga.test"
        )
        self._stack.callback(self.portal.call, self.http.aclose)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def get(self, params: dict[str, str] | None = None) -> httpx.Response:
        return self.portal.call(lambda: self.http.get(PATH, params=params))

    def post_raw(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return self.portal.call(lambda: self.http.post(PATH, content=body, headers=headers))

    def post(self, payload: dict[str, Any], *, signature: str | None = "valid") -> httpx.Response:
        """Post as Meta would; what was stored is then handled and answered."""
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if signature == "valid":
            headers[SIGNATURE_HEADER] = sign(body, APP_SECRET)
        elif signature is not None:
            headers[SIGNATURE_HEADER] = signature
        response = self.post_raw(body, headers)
        self.settle()
        return response

    def settle(self) -> None:
        """Handle what the webhook stored and send every reply, as the workers would."""
        self.portal.call(self.app.state.service.settle)

    def deliver_outbox(self) -> int:
        """One sweep of the outbox dispatcher through the WhatsApp sender."""
        dispatcher = Dispatcher(
            self.assistant.sessions,
            self.assistant.responses,
            {"whatsapp": self.channel.sender},
            clock=self.assistant.clock,
        )
        return self.portal.call(dispatcher.run_once)

    def phone(self, wa_id: str | None = SITI[0], user_id: str = SITI[1], name: str = "Siti"):
        """The resident's phone (the same one each time it is asked for)."""
        key = (wa_id, user_id, name)
        if key not in self._phones:
            self._phones[key] = Phone(self, wa_id, user_id, name)
        return self._phones[key]


class Phone:
    """A resident's WhatsApp: what they send reaches the webhook signed by Meta; what the bot
    sends them is what the fake Graph API accepted."""

    def __init__(self, bot: Bot, wa_id: str | None, user_id: str, name: str) -> None:
        self.bot, self.wa_id, self.user_id, self.name = bot, wa_id, user_id, name
        self.seen = 0

    @property
    def address(self) -> str:
        return self.wa_id or self.user_id

    def send(self, content: dict[str, Any], *, wamid: str | None = None) -> dict[str, Any]:
        now = self.bot.assistant.clock()
        payload = message_payload(
            content,
            wamid=wamid or f"wamid.HBgNNjI4MTI3NjU0MzIxMBUCABIYFjNFQjA{next(_wamids):08d}AA==",
            at=now,
            name=self.name,
            user_id=self.user_id,
            wa_id=self.wa_id,
        )
        self.bot.graph.inbound[self.address] = now  # WhatsApp's own record of the window
        assert self.bot.post(payload).status_code == 200
        return payload

    def replies(self) -> list[dict[str, Any]]:
        """What reached the phone since the last look."""
        got = self.bot.graph.to(self.address)
        new, self.seen = got[self.seen :], len(got)
        return new


def count(assistant: Assistant, model: type) -> int:
    with assistant.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


# -- the fixtures are WhatsApp's shapes: pywa reads them and checks their signatures ----------


@pytest.mark.parametrize(
    ("content", "handler", "expect"),
    [
        (text("jalan berlubang"), Message, {"text": "jalan berlubang"}),
        (image("1029384756", "ini fotonya"), Message, {"media_id": "1029384756"}),
        (location(0.50713, 101.44775, "SD 12", "Jl. Paus"), Message, {"location": True}),
        (button_reply("confirm:send", "✅ Kirim"), CallbackButton, {"payload": "confirm:send"}),
        (list_reply("privacy:anonim", "Anonim"), CallbackSelection, {"payload": "privacy:anonim"}),
    ],
)
def test_pywa_parses_our_message_fixtures_and_validates_their_signature(
    pywa, clock, content, handler, expect
):
    payload = message_payload(
        content, wamid="wamid.A1", at=clock[0], name="Siti", user_id=SITI[1], wa_id=SITI[0]
    )
    body = json.dumps(payload).encode()
    header = sign(body, APP_SECRET)
    assert utils.webhook_updates_validator(APP_SECRET, body, header)
    assert not utils.webhook_updates_validator(APP_SECRET, body.replace(b"Siti", b"Sita"), header)
    raw = RawUpdate(body, hmac_header=header, update_hash="h")
    theirs = handler.from_update(pywa, raw)
    (ours,), statuses = parse_webhook(payload, phone_number_id=PHONE_NUMBER_ID)
    assert statuses == []
    assert (ours.wa_id, ours.user_id, ours.name) == (
        theirs.from_user.wa_id,
        theirs.from_user.bsuid,
        theirs.from_user.name,
    )
    assert ours.message_id == theirs.id and ours.at == theirs.timestamp
    if "text" in expect:
        assert ours.text == theirs.text == expect["text"]
    if "media_id" in expect:
        assert ours.media_id == theirs.image.id == expect["media_id"]
        assert ours.text == theirs.caption
    if "location" in expect:
        assert ours.location == (theirs.location.latitude, theirs.location.longitude)
    if "payload" in expect:
        assert ours.payload == theirs.data == expect["payload"]


def test_pywa_reads_a_resident_without_a_phone_number_as_we_do(pywa, clock):
    payload = message_payload(
        text("halo"), wamid="wamid.A2", at=clock[0], name="Rina", user_id="ID.77", wa_id=None
    )
    raw = RawUpdate(json.dumps(payload).encode(), hmac_header=None, update_hash="h")
    theirs = Message.from_update(pywa, raw)
    (ours,), _ = parse_webhook(payload, phone_number_id=PHONE_NUMBER_ID)
    assert theirs.from_user.wa_id is None and ours.wa_id is None
    assert ours.user_id == theirs.from_user.bsuid == "ID.77"


@pytest.mark.parametrize("status", ["sent", "delivered", "read", "failed"])
def test_pywa_parses_our_status_fixtures(pywa, clock, status):
    code = 131047 if status == "failed" else None
    payload = status_payload(
        "wamid.S1", status, at=clock[0], wa_id=SITI[0], user_id=SITI[1], error_code=code
    )
    raw = RawUpdate(json.dumps(payload).encode(), hmac_header=None, update_hash="h")
    theirs = MessageStatus.from_update(pywa, raw)
    _, (ours,) = parse_webhook(payload, phone_number_id=PHONE_NUMBER_ID)
    assert ours.message_id == theirs.id and ours.status.value == theirs.status.value
    assert ours.error_code == (theirs.error.code if theirs.error else None)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (131047, "ReEngagementMessage"),
        (131056, "TooManyMessages"),
        (130429, "RateLimitHit"),
        (131000, "UnknownError"),
        (131016, "ServiceUnavailable"),
        (190, "ExpiredAccessToken"),
    ],
)
def test_the_fake_graph_api_answers_errors_that_pywa_recognises(code, kind):
    response = error_response(code)
    assert type(WhatsAppError.from_dict(error=response.json()["error"])).__name__ == kind
    ours = GraphError.of(response)
    assert ours.code == code
    assert ours.transient == (code not in (131047, 190))


# -- the webhook -------------------------------------------------------------------------------


def test_the_verification_handshake_answers_the_challenge_only_with_the_right_token(
    assistant, settings, graph
):
    with Bot(assistant, settings, graph) as bot:
        query = {
            "hub.mode": "subscribe",
            "hub.challenge": "1158201444",
            "hub.verify_token": VERIFY,
        }
        answer = bot.get(query)
        assert (answer.status_code, answer.text) == (200, "1158201444")
        wrong = bot.get({**query, "hub.verify_token": "tebakan"})
        assert wrong.status_code == 403 and "1158201444" not in wrong.text
        assert bot.get().status_code == 403


def test_a_tampered_or_unsigned_webhook_is_refused_and_nothing_is_processed(
    assistant, settings, graph, clock
):
    payload = message_payload(
        text("lampu jalan mati di Jl. Paus, Tangkerang Barat"),
        wamid="wamid.FORGED",
        at=clock[0],
        name="Mallory",
        user_id="ID.666",
        wa_id="6281300000000",
    )
    body = json.dumps(payload).encode()
    with Bot(assistant, settings, graph) as bot:
        assert bot.post(payload, signature=None).status_code == 403
        assert bot.post(payload, signature="sha256=" + "0" * 64).status_code == 403
        latin = ("sha256=" + "é" * 64).encode("latin-1")  # not ASCII: refused, not a crash
        assert bot.post_raw(body, {SIGNATURE_HEADER: latin}).status_code == 403
        assert bot.post(payload, signature=sign(body, "another-app's-secret")).status_code == 403
        # Signed, then changed on the way: the HMAC is over the raw bytes.
        tampered = json.dumps(payload, indent=1).encode()
        response = bot.post_raw(tampered, {SIGNATURE_HEADER: sign(body, APP_SECRET)})
        assert response.status_code == 403
    for model in (InboxUpdate, Resident, Ticket, SentMessage):
        assert count(assistant, model) == 0
    assert graph.calls == []


def test_a_report_end_to_end_from_the_webhook_to_the_ticket_number(
    assistant, settings, graph, tmp_path
):
    graph.media["1029384756"] = (b"\xff\xd8\xff\xe0 jpeg bytes of a dark street", "image/jpeg")
    with Bot(assistant, settings, graph) as bot:
        siti = bot.phone()
        siti.send(text("lampu jalan mati total udah seminggu, gelap bgt min"))
        ask, skip = siti.replies()
        # A location request WhatsApp renders as a "Send location" button, then the way out.
        assert ask["interactive"]["type"] == "location_request_message"
        assert body_text(ask) == bot.t("id", "report.ask_location")
        assert choices(skip) == {"location:none": bot.t("id", "button.skip_location")}
        siti.send(location(0.50713, 101.44775, "Jl. Paus", "Tangkerang Barat"))
        (photo_q,) = siti.replies()
        assert body_text(photo_q) == bot.t("id", "report.ask_photo")
        siti.send(image("1029384756", ""))
        (privacy_q,) = siti.replies()
        # Labels longer than a reply button takes: a list message.
        assert privacy_q["interactive"]["type"] == "list"
        assert "privacy:anonim" in choices(privacy_q)
        siti.send(
            list_reply("privacy:anonim", "Anonim (nama disembu", replying_to=privacy_q["id"])
        )
        (summary,) = siti.replies()
        assert "Anonim" in body_text(summary)
        assert "confirm:send" in choices(summary)
        siti.send(button_reply("confirm:send", "✅ Kirim", replying_to=summary["id"]))
        (done,) = siti.replies()
        assert done["type"] == "text" and done["to"] == SITI[0]
        assert "PKU-2026-000001" in body_text(done)
        assert "Dinas Perumahan Rakyat" in body_text(done)
        # The agency's officer, on WhatsApp too, sees the pin and the photo kept here.
        with assistant.sessions.begin() as s:
            add_officer(
                s,
                channel="whatsapp",
                platform_user_id="6281399990000",
                role=OfficerRole.OFFICER,
                agency_code="PERKIM",
            )
        budi = bot.phone(wa_id="6281399990000", user_id="ID.9001", name="Budi")
        budi.send(text("/tiket PKU-2026-000001"))
        details, pin, photo = budi.replies()
        assert "PKU-2026-000001" in body_text(details)
        assert pin["location"] == {"latitude": 0.50713, "longitude": 101.44775}
        assert graph.uploads[photo["image"]["id"]].count(graph.media["1029384756"][0]) == 1
    assert graph.refused == []
    with assistant.sessions() as s:
        ticket = s.scalar(select(Ticket))
        assert (ticket.latitude, ticket.longitude) == (0.50713, 101.44775)
        assert [(p.channel, p.file_id) for p in ticket.photos] == [("whatsapp", "1029384756")]
        assert ticket.privacy.value == "anonim"
        resident = ticket.reporter  # not "the first resident": row order is not defined
        assert (resident.platform_user_id, resident.platform_alt_id) == SITI
        # Every message WhatsApp accepted is remembered by its id, for the statuses to come.
        sent = s.scalars(select(SentMessage.platform_message_id)).all()
        assert sorted(sent) == sorted(m["id"] for m in graph.sent)
    # The photo was fetched through the Graph API (its URL, then the bytes) and kept.
    kept = tmp_path / "media" / "1029384756.jpg"
    assert kept.read_bytes() == graph.media["1029384756"][0]
    fetched = [str(r.url) for r in graph.calls if r.method == "GET"]
    assert fetched[0] == f"{API}/{VERSION}/1029384756"
    assert fetched[1].startswith("https://lookaside.fbsbx.com/")


def test_a_redelivered_message_is_answered_once(assistant, settings, graph):
    with Bot(assistant, settings, graph) as bot:
        siti = bot.phone()
        payload = siti.send(text("halo min"))
        assert len(siti.replies()) == 1
        assert bot.post(payload).status_code == 200  # Meta sends it again
        assert siti.replies() == []
    assert count(assistant, InboxUpdate) == 1  # known by its id: not stored again


def test_a_resident_without_a_phone_number_is_known_by_the_business_scoped_id(
    assistant, settings, graph
):
    with Bot(assistant, settings, graph) as bot:
        rina = bot.phone(wa_id=None, user_id="ID.4477120098")
        rina.send(text("halo"))
        (hello,) = rina.replies()
        assert hello["recipient"] == "ID.4477120098" and "to" not in hello
        # Later the same person writes with their number shown: still the same resident.
        bot.phone(wa_id="6285211112222", user_id="ID.4477120098").send(text("lapor"))
        # And someone known by number who hides it later stays the same resident too.
        bot.phone().send(text("halo"))
        bot.phone(wa_id=None).send(text("cek laporan saya"))
    with assistant.sessions() as s:
        residents = s.execute(
            select(Resident.platform_user_id, Resident.platform_alt_id).order_by(Resident.id)
        ).all()
    assert residents == [("ID.4477120098", None), (SITI[0], SITI[1])]


# -- the 24-hour window -------------------------------------------------------------------------


def _reported(bot: Bot) -> str:
    """Siti reports through WhatsApp; return the ticket number."""
    siti = bot.phone()
    siti.send(text("jalan berlubang besar di Jl. Paus depan SD 12, Tangkerang Barat"))
    siti.send(button_reply("photo:skip", "Lewati"))
    siti.send(list_reply("privacy:biasa", "Biasa (nama tampil)"))
    siti.send(button_reply("confirm:send", "✅ Kirim"))
    done = siti.replies()[-1]
    return next(w.strip(".,") for w in body_text(done).split() if w.startswith("PKU-"))


def _start(assistant: Assistant, number: str, note: str) -> None:
    with assistant.sessions.begin() as s:
        ticket = get_ticket(s, number)
        transition(s, ticket, Action.START, actor=None, note=note, now=assistant.clock())


def test_an_update_within_24_hours_goes_out_as_text(assistant, settings, graph, clock):
    with Bot(assistant, settings, graph) as bot:
        number = _reported(bot)
        bot.phone().replies()
        clock[0] += timedelta(hours=23)
        _start(assistant, number, "tim menuju lokasi")
        assert bot.deliver_outbox() == 1
        (update,) = bot.phone().replies()
    assert update["type"] == "text"
    assert number in body_text(update) and "tim menuju lokasi" in body_text(update)


def test_an_update_after_24_hours_goes_out_as_the_approved_template_never_as_text(
    assistant, settings, graph, clock
):
    with Bot(assistant, settings, graph) as bot:
        number = _reported(bot)
        bot.phone().replies()
        clock[0] += timedelta(hours=25)
        _start(assistant, number, "tim menuju\nlokasi")
        assert bot.deliver_outbox() == 1
        (update,) = bot.phone().replies()
    assert graph.refused == []  # no free-form text was even tried
    assert update["type"] == "template"
    template = update["template"]
    assert template["name"] == "suarawarga_laporan_diproses"
    assert template["language"] == {"code": "id"}
    (body,) = template["components"]
    # Template parameters take no new lines.
    assert [p["text"] for p in body["parameters"]] == [number, "Dinas PUPR", "tim menuju lokasi"]
    with assistant.sessions() as s:
        assert s.scalar(select(Outbox.state).where(Outbox.template.like("ticket.status%"))) == (
            OutboxState.SENT
        )
        assert s.scalar(select(SentMessage.kind).where(SentMessage.outbox_id.is_not(None))) == (
            "template"
        )


def test_131047_from_the_api_falls_back_to_the_template(assistant, settings, graph, clock):
    with Bot(assistant, settings, graph) as bot:
        number = _reported(bot)
        bot.phone().replies()
        # WhatsApp counts the window otherwise than we do (its clock, a message we missed).
        graph.inbound[SITI[0]] = clock[0] - timedelta(hours=30)
        _start(assistant, number, "dicek")
        assert bot.deliver_outbox() == 1
        (update,) = bot.phone().replies()
    assert [code for code, _ in graph.refused] == [131047]
    assert update["type"] == "template"


def test_a_failed_status_131047_sends_the_update_again_as_the_template(
    assistant, settings, graph, clock
):
    with Bot(assistant, settings, graph) as bot:
        number = _reported(bot)
        bot.phone().replies()
        _start(assistant, number, "dicek")
        assert bot.deliver_outbox() == 1
        (first,) = bot.phone().replies()
        assert first["type"] == "text"
        # Accepted, then refused later: WhatsApp says so in a status.
        failed = status_payload(
            first["id"], "failed", at=clock[0], wa_id=SITI[0], user_id=SITI[1], error_code=131047
        )
        assert bot.post(failed).status_code == 200  # handled, and the template sent
        (again,) = bot.phone().replies()
    assert again["type"] == "template"
    assert again["template"]["name"] == "suarawarga_laporan_diproses"
    with assistant.sessions() as s:
        status = s.scalar(
            select(SentMessage.status).where(SentMessage.platform_message_id == first["id"])
        )
        assert status == DeliveryStatus.FAILED


def test_the_rating_request_as_a_template_keeps_its_buttons(assistant, settings, graph, clock):
    with Bot(assistant, settings, graph) as bot:
        number = _reported(bot)
        clock[0] += timedelta(days=3)
        with assistant.sessions.begin() as s:
            ticket = get_ticket(s, number)
            transition(s, ticket, Action.RESOLVE, actor=None, note="ditambal", now=clock[0])
        while bot.deliver_outbox():
            pass
        siti = bot.phone()
        siti.replies()
        ask = next(
            m
            for m in graph.to(SITI[0])
            if m.get("template", {}).get("name", "").endswith("penilaian")
        )
        buttons = [c for c in ask["template"]["components"] if c["type"] == "button"]
        assert [b["parameters"][0]["payload"] for b in buttons] == [
            *(f"rate:{number}:{n}" for n in range(1, 6)),
            f"reopen:{number}",
        ]
        # The resident taps "5" on the template: a quick-reply "button" message.
        siti.send(template_button(f"rate:{number}:5", "⭐⭐⭐⭐⭐", replying_to=ask["id"]))
        (thanks,) = siti.replies()
    assert body_text(thanks) == bot.t("id", "rating.thanks", number=number, stars=5)


# -- statuses, pacing and retries ---------------------------------------------------------------


def test_delivery_statuses_are_recorded_against_the_message_sent_and_never_go_back(
    assistant, settings, graph, clock
):
    with Bot(assistant, settings, graph) as bot:
        siti = bot.phone()
        siti.send(text("halo"))
        (hello,) = siti.replies()
        for status in ("sent", "read", "delivered"):  # "delivered" arrives after "read"
            clock[0] += timedelta(seconds=5)
            payload = status_payload(
                hello["id"], status, at=clock[0], wa_id=SITI[0], user_id=SITI[1]
            )
            assert bot.post(payload).status_code == 200
        other = status_payload("wamid.NOT-OURS", "read", at=clock[0], wa_id="1", user_id="X.1")
        assert bot.post(other).status_code == 200
    with assistant.sessions() as s:
        row = s.scalar(select(SentMessage).where(SentMessage.platform_message_id == hello["id"]))
        assert row.status is DeliveryStatus.READ
    assert count(assistant, SentMessage) == 1


def _graph_client(settings: WhatsAppSettings, fake: FakeGraph, **pacing: Any):
    async def run(work):
        async with httpx.AsyncClient(transport=fake.transport) as http:
            return await work(Graph(http, settings, **pacing))

    return run


def test_messages_to_one_resident_are_paced_under_the_pair_rate(settings, graph, clock):
    # One message of margin: between the bot's pacing and WhatsApp's count lies the network.
    graph.inbound[SITI[0]] = clock[0]
    run = _graph_client(settings, graph, pair_interval=PAIR_INTERVAL, pair_burst=3)

    async def burst(g: Graph) -> float:
        started = time.monotonic()
        for i in range(8):
            await g.send(SITI[0], {"type": "text", "text": {"body": f"pesan {i}"}})
        return time.monotonic() - started

    elapsed = asyncio.run(run(burst))
    assert graph.refused == [] and len(graph.sent) == 8
    assert elapsed >= 5 * PAIR_INTERVAL * 0.9  # 3 at once, then one per interval


def test_pair_rate_limit_server_errors_and_throughput_limit_are_tried_again(
    settings, graph, clock
):
    graph.inbound[SITI[0]] = clock[0]
    graph.fail_next = [131056, 131000, 130429]
    run = _graph_client(settings, graph, pair_interval=PAIR_INTERVAL, backoff=0.001)

    async def one(g: Graph) -> str:
        return await g.send(SITI[0], {"type": "text", "text": {"body": "halo"}})

    wamid = asyncio.run(run(one))
    assert [m["id"] for m in graph.sent] == [wamid]
    assert len(graph.calls) == 4


def test_errors_retrying_cannot_help_are_not_retried(settings, graph, clock):
    run = _graph_client(settings, graph, backoff=0.001)

    async def outside_window(g: Graph) -> str:
        return await g.send(SITI[0], {"type": "text", "text": {"body": "halo"}})

    with pytest.raises(GraphError) as refused:
        asyncio.run(run(outside_window))
    assert refused.value.code == 131047 and not refused.value.transient
    assert len(graph.calls) == 1


def test_the_outbox_gives_up_on_a_notification_without_an_approved_template(
    assistant, settings, graph, clock
):
    with assistant.sessions.begin() as s:
        add_officer(
            s,
            channel="whatsapp",
            platform_user_id="6281399990000",
            role=OfficerRole.OFFICER,
            agency_code="PUPR",
            display_name="Budi",
        )
    city = assistant.city.config
    templates = city.whatsapp.model_copy(update={"templates": {}})
    assistant.city = assistant.city.__class__(
        assistant.city.path,
        city.model_copy(update={"whatsapp": templates}),
        assistant.city.wilayah,
    )
    with Bot(assistant, settings, graph) as bot:
        _reported(bot)
        bot.deliver_outbox()  # the new ticket for the officer, who never wrote: template only
    with assistant.sessions() as s:
        row = s.scalar(
            select(Outbox).where(
                Outbox.resident_id.is_not(None), Outbox.template == "agency.ticket_routed"
            )
        )
        assert row.state is OutboxState.FAILED
        assert "agency.ticket_routed" in row.last_error
    assert graph.to("6281399990000") == []


# -- the city file and rendering ----------------------------------------------------------------


def test_many_choices_become_list_messages_of_ten_rows(responses):
    buttons = tuple((Button(f"Kategori {i}", f"category:c{i}"),) for i in range(16))
    bodies = render(
        Outgoing("Masalahnya termasuk yang mana?", buttons=buttons),
        lambda k: responses.get("id", k),
    )
    assert [b["interactive"]["type"] for b in bodies] == ["list", "list"]
    assert [len(choices(b)) for b in bodies] == [10, 6]
    assert body_text(bodies[1]) == responses.get("id", "whatsapp.more_choices")


def test_every_notification_has_an_approved_template_with_parameters_it_can_fill(city, responses):
    templates = city.config.whatsapp.templates
    notifications = {
        key.removeprefix("notify.")
        for key in responses.tables["id"]
        if key.startswith("notify.") and key != "notify.ticket.note"
    }
    assert set(templates) == notifications
    for key, template in templates.items():
        text = responses.tables["id"][f"notify.{key}"]
        placeholders = {name for _, name, _, _ in string.Formatter().parse(text) if name}
        assert set(template.params) <= placeholders, key


def test_stopping_does_not_wait_for_a_residents_paced_replies(assistant, settings, graph, clock):
    """Ten replies to one resident go out three at once, then one every 6 s (WhatsApp's pair
    rate). Stopping must not wait for them: the rest stay in the outbox for the next start."""
    from bot.dispatcher import queue_replies
    from bot.service import Service

    channel = WhatsAppChannel(assistant, settings, transport=graph.transport)
    service = Service(assistant, [channel])
    graph.inbound[SITI[0]] = clock[0]  # the resident just wrote: free text is allowed
    with assistant.sessions.begin() as s:
        user_id = note_inbound(s, channel="whatsapp", user_id=SITI[0], alt_id=SITI[1], at=clock[0])
        resident = s.scalar(select(Resident.id).where(Resident.platform_user_id == user_id))
        replies = [Outgoing(f"balasan {i}") for i in range(10)]
        queue_replies(s, resident_id=resident, replies=replies, now=clock[0])

    async def main() -> float:
        await service.start()
        assert service.dispatcher is not None
        service.dispatcher.wake.set()
        deadline = time.monotonic() + 10
        while len(graph.to(SITI[0])) < 3:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        started = time.monotonic()
        await service.stop()
        return time.monotonic() - started

    took = asyncio.run(main())
    assert took < 5
    assert [body_text(m) for m in graph.to(SITI[0])] == ["balasan 0", "balasan 1", "balasan 2"]
    with assistant.sessions() as s:
        waiting = s.scalars(
            select(Outbox.params).where(Outbox.state == OutboxState.PENDING).order_by(Outbox.id)
        ).all()
    assert [p["text"] for p in waiting] == [f"balasan {i}" for i in range(3, 10)]
