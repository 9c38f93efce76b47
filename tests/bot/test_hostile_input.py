"""What an attacker (or a strange client) sent before the webhooks were rewritten, and what must
become of it now: through the real webhooks into the real store (SQLite and PostgreSQL), then
through the real workers and the real renderers out to fakes of the platforms that refuse what
the platforms refuse.

* Bodies no platform sends are refused with 400 (413 when too big), store nothing, and the
  next resident is answered.
* Residents whose text, name or report once got them stuck (a NUL, a lone surrogate, a name
  of 300 characters, a report of 3,990 characters) get through to "Kirim" and a ticket, and
  every message the bot sends them fits the platform.
* A 100 MB body is refused without being read: the webhook stops reading at the limit.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from support.fake_bot_api import FakeServer, running
from support.webhooks import (
    PAIR_INTERVAL,
    WA_TOKEN,
    Failures,
    Hooks,
    TelegramUser,
    WhatsAppUser,
    encode,
    stream,
    wa_body_text,
    wa_choices,
)
from support.whatsapp_graph import (
    FakeGraph,
    button_reply,
    list_reply,
    message_payload,
    status_payload,
    text,
)

from actions.models import Ticket
from bot.channels.telegram import CAPTION_LIMIT, TEXT_LIMIT
from bot.channels.whatsapp import INTERACTIVE_BODY, PATH, TEXT_BODY
from bot.edge import BODY_LIMIT
from bot.messages import utf16_len

SITI_TG = 5001
SITI_WA = "6281276543210"
REPORT = "jalan berlubang besar di Jl. Paus depan SD 12, Tangkerang Barat"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeServer]:
    """The fake Bot API, its limits a thousand times Telegram's (the tests send in bursts)."""
    with running(scale=1000) as server:
        yield server


@pytest.fixture
def graph(clock) -> FakeGraph:
    return FakeGraph(
        token=WA_TOKEN, clock=lambda: clock[0], pair_interval=PAIR_INTERVAL, pair_burst=4
    )


@pytest.fixture
def hooks(assistant, fake, graph, tmp_path) -> Iterator[Hooks]:
    fake.state.reset()
    with Failures() as failures, Hooks(assistant, fake, graph, tmp_path / "media") as h:
        yield h
        assert failures.messages() == []


def count(hooks: Hooks, model: type) -> int:
    with hooks.assistant.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def tg_fits(hooks: Hooks) -> None:
    """Every message Telegram accepted fits it, and it refused none (nothing given up on)."""
    for sent in hooks.fake.state.messages:
        limit = CAPTION_LIMIT if sent.method == "sendPhoto" else TEXT_LIMIT
        assert sent.text is None or utf16_len(sent.text) <= limit  # as Telegram counts
    sends = {"sendMessage", "sendPhoto", "sendLocation"}
    assert not [c for c in hooks.fake.state.calls() if c.method in sends and c.status != 200]
    assert hooks.fake.state.refused == {}, hooks.fake.state.refused
    assert hooks.failed_outbox() == []


def wa_fits(hooks: Hooks) -> None:
    """Every message WhatsApp accepted fits it, and it refused none."""
    assert hooks.graph.refused == []
    for message in hooks.graph.sent:
        limit = INTERACTIVE_BODY if message["type"] == "interactive" else TEXT_BODY
        assert len(wa_body_text(message)) <= limit
    assert hooks.failed_outbox() == []


def greeted(hooks: Hooks) -> None:
    """A known resident on each platform is still answered."""
    siti = TelegramUser(hooks, SITI_TG, first_name="Siti")
    siti.replies()
    siti.send("/start")
    (hello,) = siti.replies()
    assert "Siti" in hello.text
    wa = WhatsAppUser(hooks, SITI_WA)
    wa.replies()
    wa.send(text("halo"))
    assert "Siti" in wa_body_text(wa.replies()[0])


# -- refused bodies --------------------------------------------------------------------------


def nested(depth: int, leaf: Any = 1) -> Any:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def tg_message(**fields: Any) -> dict[str, Any]:
    message = {
        "message_id": 1,
        "date": 1764471600,
        "text": "usul taman di Sail",
        "chat": {"id": 7, "type": "private"},
        "from": {"id": 7, "is_bot": False, "first_name": "Mallory"},
    }
    return {"update_id": 99, "message": {**message, **fields}}


def raw(body: str | bytes) -> bytes:
    """A body given as its bytes (not JSON that json.dumps would write)."""
    return body.encode() if isinstance(body, str) else body


TG_REFUSED = {
    "empty": b"",
    "not-json": b"{update_id: 1}",
    "not-utf8": b'{"update_id": 1, "x": "\xff\xfe"}',
    "nan": raw('{"update_id": NaN}'),
    "deep": b"[" * 50_000 + b"]" * 50_000,
    "deep-object": raw('{"a":' * 5_000 + "1" + "}" * 5_000),
    "nested-33": {"update_id": 1, "x": nested(33)},
    "int-5000-digits": raw('{"update_id": ' + "9" * 5000 + "}"),
    "null": None,
    "list": [],
    "string": "x",
    "number": 1e308,
    "message-string": tg_message() | {"message": "hi"},
    "update-id-string": tg_message() | {"update_id": "99"},
    "update-id-float": tg_message() | {"update_id": 99.0},
    "update-id-negative": tg_message() | {"update_id": -1},
    "update-id-2**64": tg_message() | {"update_id": 2**64},
    "date-1e20": tg_message(date=1e20),
    "date-10**20": tg_message(date=10**20),
    "date-string": tg_message(date="1764471600"),
    "chat-id-list": tg_message(chat={"id": [1], "type": "private"}),
    "chat-id-2**70": tg_message(chat={"id": 2**70, "type": "private"}),
    "chat-type-unknown": tg_message(chat={"id": 7, "type": "secret"}),
    "is-bot-string": tg_message(**{"from": {"id": 7, "is_bot": "false", "first_name": "M"}}),
    "no-is-bot": tg_message(**{"from": {"id": 7, "first_name": "M"}}),
    "first-name-list": tg_message(**{"from": {"id": 7, "is_bot": False, "first_name": ["M"]}}),
    "text-list": tg_message(text=["usul"]),
    "text-number": tg_message(text=12),
    "latitude-91": tg_message(location={"latitude": 91.0, "longitude": 101.4}),
    "latitude-inf": tg_message(location={"latitude": 1e400, "longitude": 101.4}),
    "latitude-string": tg_message(location={"latitude": "0.5", "longitude": 101.4}),
    "photo-empty-id": tg_message(photo=[{"file_id": "\x00"}]),
    "photo-21-sizes": tg_message(photo=[{"file_id": "a"}] * 21),
    "callback-without-from": {"update_id": 5, "callback_query": {"id": "1", "data": "x"}},
}

AT = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)  # the time of the assistant's clock
MESSAGE = ("entry", 0, "changes", 0, "value", "messages", 0)
STATUS = ("entry", 0, "changes", 0, "value", "statuses", 0)


def wa_message(*changes: tuple[tuple[Any, ...], Any]) -> dict[str, Any]:
    """A text message from Mallory with values replaced at (path, value)."""
    payload = message_payload(
        text("usul taman di Sail"),
        wamid="wamid.HBgNNjI4MTMwMDAwMDAwMBUCABIYFjNFQjA",
        at=AT,
        name="Mallory",
        user_id="ID.666",
        wa_id="6281300000000",
    )
    return replaced(payload, changes)


def wa_status(*changes: tuple[tuple[Any, ...], Any]) -> dict[str, Any]:
    payload = status_payload(
        "wamid.HBgNNjI4MTMwMDAwMDAwMBUCABEYEjk", "read", at=AT, wa_id=SITI_WA, user_id="ID.1"
    )
    return replaced(payload, changes)


def replaced(payload: dict[str, Any], changes: tuple[tuple[tuple[Any, ...], Any], ...]) -> dict:
    for path, value in changes:
        where: Any = payload
        for key in path[:-1]:
            where = where[key]
        where[path[-1]] = value
    return payload


WA_REFUSED = {
    "empty": b"",
    "not-json": b"{entry: []}",
    "not-utf8": b'{"entry": "\xff\xfe"}',
    "deep": b"[" * 50_000 + b"]" * 50_000,
    "deep-object": raw('{"a":' * 5_000 + "1" + "}" * 5_000),
    "nested-33": {"object": "whatsapp_business_account", "entry": nested(33)},
    "null": None,
    "list": [],
    "string": "x",
    "entry-string": {"object": "whatsapp_business_account", "entry": "x"},
    "entry-nan": raw('{"entry": NaN}'),
    "changes-number": {"entry": [{"changes": 5}]},
    "timestamp-1e20": wa_message((MESSAGE + ("timestamp",), 1e20)),
    "timestamp-10**20": wa_message((MESSAGE + ("timestamp",), 10**20)),
    "timestamp-str-1e20": wa_message((MESSAGE + ("timestamp",), "1e20")),
    "timestamp-str-10**20": wa_message((MESSAGE + ("timestamp",), "1" + "0" * 20)),
    "timestamp-negative": wa_message((MESSAGE + ("timestamp",), "-1")),
    "timestamp-list": wa_message((MESSAGE + ("timestamp",), [1])),
    "status-timestamp-1e20": wa_status((STATUS + ("timestamp",), 1e20)),
    "message-id-number": wa_message((MESSAGE + ("id",), 12)),
    "from-number": wa_message((MESSAGE + ("from",), 6281300000000)),
    "text-string": wa_message((MESSAGE + ("text",), "usul")),
    "text-body-list": wa_message((MESSAGE + ("text",), {"body": ["usul"]})),
    "location-nan": wa_message(
        (MESSAGE + ("type",), "location"),
        (MESSAGE + ("location",), {"latitude": "nan", "longitude": 101.4}),
    ),
    "location-91": wa_message(
        (MESSAGE + ("type",), "location"),
        (MESSAGE + ("location",), {"latitude": 91, "longitude": 101.4}),
    ),
    "contacts-object": wa_message(
        (("entry", 0, "changes", 0, "value", "contacts"), {"wa_id": "6281300000000"})
    ),
    "profile-string": wa_message(
        (("entry", 0, "changes", 0, "value", "contacts", 0, "profile"), "Mallory")
    ),
    "status-id-number": wa_status((STATUS + ("id",), 12)),
    # A media id names the file a photo is kept in: nothing but what WhatsApp's ids hold.
    "media-id-path": wa_message(
        (MESSAGE + ("type",), "image"),
        (MESSAGE + ("image",), {"id": "../../../etc/cron.d/x", "mime_type": "image/jpeg"}),
    ),
    "media-id-dots": wa_message(
        (MESSAGE + ("type",), "image"), (MESSAGE + ("image",), {"id": ".."})
    ),
    "status-errors-object": wa_status((STATUS + ("errors",), {"code": 1})),
    "status-list": wa_status((STATUS + ("status",), ["read"])),
}


def body(value: Any) -> bytes:
    return value if isinstance(value, bytes) else encode(value)


def test_telegram_bodies_no_client_sends_are_refused_and_store_nothing(hooks):
    for name, value in TG_REFUSED.items():
        response = hooks.telegram_raw(body(value))
        assert response.status_code == 400, (name, response.status_code, response.text)
        assert hooks.inbox() == {}, name
    hooks.settle()
    greeted(hooks)
    assert hooks.handled() == 2  # Siti's two messages alone
    tg_fits(hooks)


def test_whatsapp_bodies_meta_never_sends_are_refused_and_store_nothing(hooks):
    for name, value in WA_REFUSED.items():
        response = hooks.whatsapp_raw(body(value))
        assert response.status_code == 400, (name, response.status_code, response.text)
        assert hooks.inbox() == {}, name
    hooks.settle()
    greeted(hooks)
    assert hooks.handled() == 2
    wa_fits(hooks)


@pytest.mark.parametrize("status", ["sent", "delivered", "read", "failed"])
def test_whatsapp_a_status_about_a_message_id_of_200_characters_is_stored_and_handled(
    hooks, status
):
    # Its inbox id is "<message id>:<status>": a 503 on PostgreSQL (varchar(160)) once, so
    # WhatsApp would have sent it again and again.
    long_id = "wamid." + "A" * 194
    payload = wa_status((STATUS + ("id",), long_id), (STATUS + ("status",), status))
    assert hooks.whatsapp_payload(payload).status_code == 200
    assert hooks.inbox() == {"pending": 1}
    hooks.settle()
    assert hooks.inbox() == {}
    # And a message of a 200-character id from someone with a 200-character number: kept as
    # its first 160, and answered there.
    message = wa_message((MESSAGE + ("id",), long_id), (MESSAGE + ("from",), "62" + "1" * 198))
    hooks.graph.inbound["62" + "1" * 158] = AT
    assert hooks.whatsapp_payload(message).status_code == 200
    hooks.settle()
    assert hooks.inbox() == {}
    assert hooks.handled() == 2  # the status and the message
    assert [m["to"] for m in hooks.graph.sent] == ["62" + "1" * 158]
    wa_fits(hooks)


# -- residents who once got stuck -----------------------------------------------------------


def tg_report(siti: TelegramUser, story: str) -> list[Any]:
    """Report through Telegram up to the summary; return the summary's messages."""
    siti.send(story)
    (photo_q,) = siti.replies()
    siti.press("photo:skip", photo_q.message_id)
    (privacy_q,) = siti.replies()
    siti.press("privacy:biasa", privacy_q.message_id)
    return siti.replies()


def tg_buttons(sent: Any) -> list[str]:
    markup = sent.reply_markup or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]


def tg_send(siti: TelegramUser, summary: Any) -> str:
    """Tap Kirim under the summary; return the ticket number it answered."""
    siti.press("confirm:send", summary.message_id)
    done = siti.replies()[0]
    return next(w.strip(".,") for w in done.text.split() if w.startswith("PKU-"))


def wa_report(siti: WhatsAppUser, story: str) -> list[dict[str, Any]]:
    siti.send(text(story))
    siti.send(button_reply("photo:skip", "Lewati"))
    siti.replies()
    siti.send(list_reply("privacy:biasa", "Biasa (nama tampil)"))
    return siti.replies()


def wa_send(siti: WhatsAppUser) -> str:
    siti.send(button_reply("confirm:send", "✅ Kirim"))
    done = siti.replies()[0]
    return next(w.strip(".,") for w in wa_body_text(done).split() if w.startswith("PKU-"))


def ticket(hooks: Hooks, number: str) -> tuple[str, str]:
    """A ticket's description and its reporter's name."""
    with hooks.assistant.sessions() as s:
        row = s.scalar(select(Ticket).where(Ticket.number == number))
        assert row is not None, number
        return row.description, row.reporter.display_name


HOSTILE = REPORT + " \x00 lubangnya \ud800 dalam \udfff sekali \x1b[31m"
CLEANED = REPORT + "  lubangnya \ufffd dalam \ufffd sekali [31m"


def test_telegram_a_nul_and_lone_surrogates_in_a_report_reach_the_ticket_cleaned(hooks):
    siti = TelegramUser(hooks, SITI_TG, first_name="Siti")
    (summary,) = tg_report(siti, HOSTILE)
    assert tg_buttons(summary) == ["confirm:send", "confirm:edit", "confirm:cancel"]
    number = tg_send(siti, summary)
    assert ticket(hooks, number) == (CLEANED, "Siti")
    tg_fits(hooks)


def test_whatsapp_a_nul_and_lone_surrogates_in_a_report_reach_the_ticket_cleaned(hooks):
    siti = WhatsAppUser(hooks, SITI_WA)
    *_, summary = wa_report(siti, HOSTILE)
    assert "confirm:send" in wa_choices(summary)
    number = wa_send(siti)
    assert ticket(hooks, number) == (CLEANED, "Siti")
    wa_fits(hooks)


def test_telegram_a_nul_in_the_name_and_a_name_of_300_characters_are_kept_cleaned(hooks):
    first, last = "Si\x00ti " + "a" * 150, "b" * 150
    siti = TelegramUser(hooks, SITI_TG, first_name=first, last_name=last)
    siti.send("halo")
    (hello,) = siti.replies()
    (summary,) = tg_report(siti, REPORT)
    number = tg_send(siti, summary)
    expected = ("Siti " + "a" * 150 + " " + "b" * 150)[:200]
    assert ticket(hooks, number) == (REPORT, expected)
    assert expected[:50] in hello.text
    tg_fits(hooks)


def test_whatsapp_a_nul_in_the_name_and_a_name_of_300_characters_are_kept_cleaned(hooks):
    siti = WhatsAppUser(hooks, SITI_WA, name="Si\x00ti " + "a" * 300)
    siti.send(text("halo"))
    *_, summary = wa_report(siti, REPORT)
    number = wa_send(siti)
    assert ticket(hooks, number) == (REPORT, ("Siti " + "a" * 300)[:200])
    wa_fits(hooks)


def long_story(length: int) -> str:
    words = itertools.cycle(["lubangnya", "makin", "dalam", "dan", "lebar", "tiap", "hujan."])
    story = REPORT + "."
    while len(story) < length:
        story += " " + next(words)
    return story[:length].rstrip()


def squeezed(text: str) -> str:
    return "".join(text.split())


@pytest.mark.parametrize("length", [3990, TEXT_LIMIT])
def test_telegram_a_report_as_long_as_a_message_is_summed_up_in_pieces_and_sent(hooks, length):
    story = long_story(length)
    siti = TelegramUser(hooks, SITI_TG, first_name="Siti")
    summary = tg_report(siti, story)
    assert len(summary) >= 2  # longer than one message: in pieces
    *pieces, last = summary
    assert all(tg_buttons(p) == [] for p in pieces)
    assert tg_buttons(last) == ["confirm:send", "confirm:edit", "confirm:cancel"]
    assert squeezed(story) in squeezed("".join(p.text for p in summary))
    number = tg_send(siti, last)
    assert ticket(hooks, number)[0] == story
    tg_fits(hooks)


def test_telegram_a_report_full_of_emoji_is_cut_as_telegram_counts_it(hooks):
    """An emoji outside the BMP counts twice towards Telegram's 4,096: a report of 3,900
    characters with an emoji every few words does not fit one message."""
    story = (REPORT + ". " + "lubangnya makin dalam 🙏😭 " * 200)[:3900]
    assert len(story) < TEXT_LIMIT < utf16_len(story)
    siti = TelegramUser(hooks, SITI_TG, first_name="Siti")
    summary = tg_report(siti, story)
    assert len(summary) >= 2
    assert tg_buttons(summary[-1]) == ["confirm:send", "confirm:edit", "confirm:cancel"]
    tg_fits(hooks)


def test_whatsapp_a_report_of_4096_characters_is_summed_up_in_pieces_and_sent(hooks):
    story = long_story(TEXT_BODY)
    siti = WhatsAppUser(hooks, SITI_WA)
    summary = wa_report(siti, story)
    *texts, choose = summary
    assert len(texts) >= 2 and all(m["type"] == "text" for m in texts)
    assert squeezed(story) in squeezed("".join(wa_body_text(m) for m in texts))
    assert set(wa_choices(choose)) == {"confirm:send", "confirm:edit", "confirm:cancel"}
    number = wa_send(siti)
    assert ticket(hooks, number)[0] == story
    wa_fits(hooks)


# -- bodies too big to read ------------------------------------------------------------------

CHUNK = 64 * 1024
HUNDRED_MB = 100 * 1024 * 1024


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize("channel", ["telegram", "whatsapp"])
def test_a_100_mb_body_is_refused_without_being_read_whole(hooks, channel, declared):
    taken = [0]
    prefix = b'{"update_id": 1, "message": {"text": "'
    chunks = itertools.chain([prefix], itertools.repeat(b"a" * CHUNK, HUNDRED_MB // CHUNK))
    headers = {"Content-Length": str(len(prefix) + HUNDRED_MB)} if declared else {}
    if channel == "telegram":
        response = hooks.telegram_raw(stream(chunks, taken), **headers)
    else:
        response = hooks.post(PATH, stream(chunks, taken), headers)
    assert response.status_code == 413
    # Declared: refused before a byte is read; streamed: reading stops at the limit.
    assert taken[0] <= (0 if declared else BODY_LIMIT + CHUNK + len(prefix))
    assert hooks.inbox() == {}
    greeted(hooks)
