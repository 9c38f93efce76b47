"""Tests of the fake Bot API: python-telegram-bot's real Bot against its limits and errors."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    Update,
)
from telegram.constants import ChatAction
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
)

from tests.support.fake_bot_api import SECRET_HEADER, JSONDict, Upload, running
from tests.support.fake_bot_updates import (
    callback_update,
    location_update,
    photo_update,
    text_update,
)
from tests.support.servers import serving, wait_for

ROOT = Path(__file__).resolve().parents[2]
CAPTION = "Jalan rusak – dekat SD 🚧"  # multipart form field, not ASCII
TOKEN = "4242:FAKE-test-token"  # noqa: S105 - made up
HOOK_SECRET = "rahasia-123"  # noqa: S105 - made up


@pytest.fixture(autouse=True)
def timedelta_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    """RetryAfter.retry_after as a timedelta (the int form warns, and warnings are errors)."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


def with_bot(url: str, scenario: Callable[[Bot], Awaitable[Any]]) -> Any:
    """Run ``scenario`` with a real PTB Bot pointed at the fake's root ``url``."""

    async def run() -> Any:
        bot = Bot(TOKEN, base_url=f"{url}/bot", base_file_url=f"{url}/file/bot")
        async with bot:  # initialize() calls getMe
            return await scenario(bot)

    return asyncio.run(run())


async def outcome(send: Awaitable[Message]) -> Message | Exception:
    try:
        return await send
    except Exception as exc:  # noqa: BLE001 - the test looks at which one it was
        return exc


def test_bot_sends_text_and_photos_and_gets_telegram_messages() -> None:
    async def scenario(bot: Bot) -> tuple[Message, Message, Message]:
        assert bot.bot.is_bot and bot.bot.id == 4242
        text = await bot.send_message(77, "Laporan Anda sudah diterima.")
        upload = await bot.send_photo(-1001234567890, b"\x89PNG fake bytes", caption=CAPTION)
        by_id = await bot.send_photo(77, "AgACphoto-id")
        return text, upload, by_id

    with running(TOKEN) as fake:
        text, upload, by_id = with_bot(fake.url, scenario)
        sent = fake.state.messages

    assert text.text == "Laporan Anda sudah diterima."
    assert text.chat.id == 77 and text.chat.type == "private"
    assert abs(text.date.timestamp() - time.time()) < 60  # seconds, not milliseconds
    assert text.from_user is not None and text.from_user.id == 4242
    assert upload.chat.type == "supergroup" and upload.caption == CAPTION
    assert by_id.photo[-1].file_id == "AgACphoto-id" and by_id.caption is None
    assert len({text.message_id, upload.message_id, by_id.message_id}) == 3
    assert [(s.chat_id, s.method, s.text) for s in sent] == [
        (77, "sendMessage", "Laporan Anda sudah diterima."),
        (-1001234567890, "sendPhoto", CAPTION),
        (77, "sendPhoto", None),
    ]
    assert sent[1].photo == Upload("application.octet-stream", "application/octet-stream", 15)
    assert sent[2].photo == "AgACphoto-id"
    assert sent[0].at < sent[1].at < sent[2].at


START = 1000.0


class ManualClock:
    """The fake's clock, moved by the test: a burst then arrives "at once" on any machine,
    however long 40 requests take to go through a busy one."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def test_burst_to_40_chats_gets_30_through_in_the_first_second() -> None:
    clock = ManualClock()

    async def scenario(bot: Bot) -> tuple[list[Message | Exception], list[Any]]:
        burst = await asyncio.gather(
            *(outcome(bot.send_message(1000 + i, f"Info banjir {i}")) for i in range(40))
        )
        later = []
        # the bucket has 15 tokens again after 0.5 s, but Telegram penalises hammering until
        # the announced retry_after has passed; exactly then the next message goes through
        for at in (0.5, 0.99, 1.0):
            clock.now = START + at
            later.append(await outcome(bot.send_message(2000, f"lagi {at}")))
        return burst, later

    with running(TOKEN, rate=30, clock=clock) as fake:
        burst, later = with_bot(fake.url, scenario)
        sent = fake.state.messages
        stats = fake.state.stats()

    accepted = [r for r in burst if isinstance(r, Message)]
    refused = [r for r in burst if isinstance(r, RetryAfter)]
    assert len(accepted) == 30 and len(refused) == 10, burst
    assert all(r.retry_after == timedelta(seconds=1) for r in refused)
    assert sorted(s.chat_id for s in sent[:30]) == sorted(m.chat.id for m in accepted)
    assert isinstance(later[0], RetryAfter) and later[0].retry_after == timedelta(seconds=1)
    assert isinstance(later[1], RetryAfter)
    assert isinstance(later[2], Message) and sent[-1].text == "lagi 1.0"
    assert stats["too_many_requests"] == 12 and stats["accepted"] == 31


def test_scale_runs_the_same_limits_faster_and_counts_retry_after_in_scaled_seconds() -> None:
    clock = ManualClock()

    async def scenario(bot: Bot) -> list[Message | Exception]:
        results = [await outcome(bot.send_message(5000 + i, "x")) for i in range(31)]
        clock.now = START + 0.05  # half of the penalty: retry_after=1 is 0.1 s at scale 10
        results.append(await outcome(bot.send_message(6000, "x")))
        clock.now = START + 0.1  # penalty over, and 30 tokens again (300/s)
        results.append(await outcome(bot.send_message(6001, "x")))
        # a group's 21st message waits one token: 3 s at scale 1, 0.3 s here, announced as 3
        results += [await outcome(bot.send_message(-6002, "x")) for _ in range(21)]
        return results

    with running(TOKEN, rate=30, scale=10, clock=clock) as fake:
        results = with_bot(fake.url, scenario)

    kinds = [type(r).__name__ for r in results]
    expected = ["Message"] * 30 + ["RetryAfter", "RetryAfter"] + ["Message"] * 21 + ["RetryAfter"]
    assert kinds == expected
    assert results[30].retry_after == timedelta(seconds=1)  # type: ignore[union-attr]
    assert results[-1].retry_after == timedelta(seconds=3)  # type: ignore[union-attr]


@pytest.mark.parametrize("burst", [1, 3])
def test_one_private_chat_gets_its_burst_then_429(burst: int) -> None:
    # real time: the messages only need to go out within a second of each other
    async def scenario(bot: Bot) -> list[Message | Exception]:
        return [await outcome(bot.send_message(55, f"pesan {i}")) for i in range(burst + 2)]

    with running(TOKEN, chat_burst=burst) as fake:
        results = with_bot(fake.url, scenario)
        texts = [s.text for s in fake.state.messages]

    assert texts == [f"pesan {i}" for i in range(burst)]
    assert all(isinstance(r, Message) for r in results[:burst])
    for refused in results[burst:]:
        assert isinstance(refused, RetryAfter) and refused.retry_after == timedelta(seconds=1)


def test_one_private_chat_refills_at_one_per_scaled_second() -> None:
    async def scenario(bot: Bot) -> list[Message | Exception]:
        first = await outcome(bot.send_message(56, "satu"))
        second = await outcome(bot.send_message(56, "dua"))
        await asyncio.sleep(0.06)  # 1/s at scale 20: a token every 0.05 s
        return [first, second, await outcome(bot.send_message(56, "tiga"))]

    with running(TOKEN, chat_burst=1, scale=20) as fake:
        results = with_bot(fake.url, scenario)
        texts = [s.text for s in fake.state.messages]

    assert [type(r).__name__ for r in results] == ["Message", "RetryAfter", "Message"]
    assert texts == ["satu", "tiga"]


def test_a_group_gets_20_per_minute_and_is_told_to_wait_seconds() -> None:
    clock = ManualClock()

    async def scenario(bot: Bot) -> list[Message | Exception]:
        results = [await outcome(bot.send_message(-4455, f"rapat {i}")) for i in range(21)]
        clock.now = START + 3  # one token every 3 s at 20 per minute
        results.append(await outcome(bot.send_message(-4455, "rapat lagi")))
        return results

    with running(TOKEN, clock=clock) as fake:
        results = with_bot(fake.url, scenario)
        per_chat = fake.state.stats()["per_chat"]

    assert all(isinstance(r, Message) for r in results[:20])
    assert results[0].chat.type == "group"  # type: ignore[union-attr]
    refused = results[20]
    assert isinstance(refused, RetryAfter) and refused.retry_after == timedelta(seconds=3)
    assert isinstance(results[21], Message) and per_chat == {"-4455": 21}


def test_blocked_chat_raises_forbidden_and_is_not_recorded() -> None:
    async def scenario(bot: Bot) -> Message:
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await bot.send_message(13, "Halo")
        ok = await bot.send_message(14, "Halo")
        async with httpx.AsyncClient() as client:
            answer = await client.post(f"{fake.url}/_fake/blocked", json=[14])
        assert answer.json() == {"ok": True, "blocked": [13, 14]}
        with pytest.raises(Forbidden):
            await bot.send_photo(14, "AgACphoto", caption="foto")
        return ok

    with running(TOKEN, blocked={13}) as fake:
        ok = with_bot(fake.url, scenario)
        sent = fake.state.messages
        stats = fake.state.stats()

    assert [s.chat_id for s in sent] == [ok.chat.id] == [14]
    assert stats["forbidden"] == 2 and stats["accepted"] == 1


def test_unknown_chat_and_bad_parameters_raise_bad_request() -> None:
    async def scenario(bot: Bot) -> None:
        with pytest.raises(BadRequest, match="[Cc]hat not found"):
            await bot.send_message(999, "Halo")
        with pytest.raises(BadRequest, match="[Cc]hat not found"):
            await bot.send_message("@kanal_kota", "Halo")
        with pytest.raises(BadRequest, match="text is empty"):
            await bot.send_message(5, " ")
        with pytest.raises(BadRequest, match="too long"):
            await bot.send_message(5, "x" * 4097)

    with running(TOKEN, unknown={999}) as fake:
        with_bot(fake.url, scenario)
        assert fake.state.messages == []
        assert fake.state.stats()["bad_request"] == 4


def test_wrong_token_is_refused() -> None:
    async def scenario() -> None:
        with pytest.raises(InvalidToken, match="rejected"):
            async with Bot("1:wrong", base_url=f"{fake.url}/bot"):
                pass  # initialize() must fail

    with running(TOKEN) as fake:
        asyncio.run(scenario())
        refused = fake.state.refused
        answer = httpx.post(f"{fake.url}/bot1:wrong/sendMessage", data={"chat_id": 1, "text": "x"})

    assert refused[401] == 1
    assert answer.status_code == 401
    assert answer.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


def test_html_text_and_inline_keyboard_are_recorded_as_sent() -> None:
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("Lihat tiket", callback_data="t:12"),
                InlineKeyboardButton("Peta", url="https://example.org/peta"),
            ]
        ]
    )

    async def scenario(bot: Bot) -> Message:
        sent = await bot.send_message(
            31,
            "<b>Tiket #12</b> &amp; status: <i>selesai</i>",
            parse_mode="HTML",
            reply_markup=keyboard,
        )
        with pytest.raises(BadRequest, match="start tag"):
            await bot.send_message(32, "1 <x> 2", parse_mode="HTML")
        with pytest.raises(BadRequest, match="end tag"):
            await bot.send_message(32, "<b>tebal", parse_mode="HTML")
        with pytest.raises(BadRequest, match="end tag"):
            await bot.send_message(32, "<b>tebal <i>miring</b></i>", parse_mode="HTML")
        return sent

    with running(TOKEN) as fake:
        message = with_bot(fake.url, scenario)
        [sent] = fake.state.messages

    assert sent.text == "<b>Tiket #12</b> &amp; status: <i>selesai</i>"
    assert sent.parse_mode == "HTML"
    assert sent.reply_markup == {
        "inline_keyboard": [
            [
                {"text": "Lihat tiket", "callback_data": "t:12"},
                {"text": "Peta", "url": "https://example.org/peta"},
            ]
        ]
    }
    assert message.text == "Tiket #12 & status: selesai"  # Telegram answers without the tags
    assert message.reply_markup == keyboard


def test_lengths_count_after_parsing_and_reply_keyboards_are_not_returned() -> None:
    keyboard = ReplyKeyboardMarkup([[KeyboardButton("Kirim lokasi", request_location=True)]])

    async def scenario(bot: Bot) -> list[Message]:
        tagged = await bot.send_message(41, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML")
        with pytest.raises(BadRequest, match="[Mm]essage is too long"):
            await bot.send_message(41, "<b>" + "x" * 4097 + "</b>", parse_mode="HTML")
        caption = await bot.send_photo(41, "AgACphoto", caption="y" * 1024)
        with pytest.raises(BadRequest, match="[Mm]essage caption is too long"):
            await bot.send_photo(41, "AgACphoto", caption="y" * 1025)
        asking = await bot.send_message(42, "Di mana lokasinya?", reply_markup=keyboard)
        return [tagged, caption, asking]

    with running(TOKEN) as fake:
        tagged, caption, asking = with_bot(fake.url, scenario)
        sent = fake.state.messages

    assert len(tagged.text) == 4096 and caption.caption == "y" * 1024
    assert asking.reply_markup is None  # PTB could not even parse a reply keyboard there
    assert sent[-1].reply_markup == keyboard.to_dict()  # what the bot sent is recorded


def test_stats_report_chats_that_got_the_same_text_twice() -> None:
    async def scenario(bot: Bot) -> None:
        await bot.send_message(1, "Pengumuman")
        await bot.send_message(1, "Pengumuman")  # duplicate
        await bot.send_message(2, "Pengumuman")
        await bot.send_message(2, "Pengumuman kedua")
        await bot.send_photo(3, "AgACsame", caption="Pengumuman")
        await bot.send_photo(3, "AgACsame", caption="Pengumuman")  # duplicate
        await bot.send_photo(4, "AgACone", caption="Pengumuman")
        await bot.send_photo(4, "AgACtwo", caption="Pengumuman")  # another photo

    with running(TOKEN) as fake:
        with_bot(fake.url, scenario)
        stats = httpx.get(f"{fake.url}/_fake/stats").json()
        later = httpx.get(f"{fake.url}/_fake/messages", params={"since": 6}).json()
        assert httpx.post(f"{fake.url}/_fake/reset").json() == {"ok": True}
        after_reset = httpx.get(f"{fake.url}/_fake/stats").json()

    assert stats["duplicates"] == [1, 3]
    assert stats["accepted"] == 8
    assert stats["per_chat"] == {"1": 2, "2": 2, "3": 2, "4": 2}
    assert stats["first_at"] < stats["last_at"]
    assert stats["rate"] == pytest.approx(7 / (stats["last_at"] - stats["first_at"]))
    assert [(m["chat_id"], m["photo"]) for m in later] == [(4, "AgACone"), (4, "AgACtwo")]
    assert after_reset["accepted"] == 0 and after_reset["duplicates"] == []


def test_injected_gateway_errors_then_success() -> None:
    async def scenario(bot: Bot) -> list[Message | Exception]:
        return [await outcome(bot.send_message(chat, "coba")) for chat in (8, 8, 9, 10, 11)]

    with running(TOKEN, fail_chats={8: 1}, fail_every=4) as fake:
        results = with_bot(fake.url, scenario)
        sent = fake.state.messages
        stats = fake.state.stats()

    kinds = [type(r).__name__ for r in results]
    assert kinds == ["NetworkError", "Message", "Message", "NetworkError", "Message"]
    assert isinstance(results[0], NetworkError) and "Bad Gateway" in str(results[0])
    assert [s.chat_id for s in sent] == [8, 9, 11]
    assert stats["server_errors"] == 2


def test_raw_http_json_bodies_and_unknown_methods() -> None:
    with running(TOKEN) as fake, httpx.Client(base_url=f"{fake.url}/bot{TOKEN}") as client:
        markup = {"inline_keyboard": [[{"text": "Ya", "callback_data": "y"}]]}
        ok = client.post(
            "/sendMessage", json={"chat_id": 6, "text": "json", "reply_markup": markup}
        )
        lower = client.post("/sendmessage", data={"chat_id": "6", "text": "form"})
        missing = client.post("/deleteMessage", json={"chat_id": 6, "message_id": 1})
        sent = fake.state.messages

    assert ok.status_code == 200 and ok.json()["ok"] is True
    assert ok.json()["result"]["text"] == "json"
    assert lower.status_code == 200
    assert missing.status_code == 404
    assert missing.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    assert [(s.text, s.reply_markup) for s in sent] == [("json", markup), ("form", None)]


def test_separate_process_announces_ready_and_serves() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.fake_bot_api",
            "--port",
            "0",
            "--token",
            TOKEN,
            "--rate",
            "30",
            "--scale",
            "1",
            "--blocked",
            "66",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY http://127.0.0.1:"), line
        url = line.split()[1]

        async def scenario(bot: Bot) -> tuple[Message, Any, Any, tuple[Update, ...]]:
            with pytest.raises(Forbidden):
                await bot.send_message(66, "x")
            async with httpx.AsyncClient(base_url=url) as client:
                # a test waits for the bot's answer rather than polling for it
                replies = asyncio.create_task(
                    client.get("/_fake/messages", params={"chat_id": 65, "wait": 10})
                )
                await asyncio.sleep(0.1)
                message = await bot.send_message(65, "dari proses lain")
                users = [text_update(65, "/start"), callback_update(65, "ya", message.message_id)]
                pushed = (await client.post("/_fake/updates", json=users)).json()
                return message, (await replies).json(), pushed, await bot.get_updates()

        message, replies, pushed, updates = with_bot(url, scenario)
        messages = httpx.get(f"{url}/_fake/messages").json()
        # a long poll held when the server is told to stop is answered, and the stop is quick
        offset = updates[-1].update_id + 1
        held: list[httpx.Response] = []
        poll = threading.Thread(
            target=lambda: held.append(
                httpx.post(
                    f"{url}/bot{TOKEN}/getUpdates",
                    data={"offset": offset, "timeout": 30},
                    timeout=40,
                )
            )
        )
        poll.start()
        assert wait_for(lambda: httpx.get(f"{url}/_fake/stats").json()["calls"]["getUpdates"] == 2)
        time.sleep(0.05)  # from the counter to the hold
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, proc.stderr.read() if proc.stderr else ""
        stopped_in = time.monotonic() - stopping
        poll.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    assert message.text == "dari proses lain"
    assert [(m["chat_id"], m["text"], m["index"]) for m in replies] == [
        (65, "dari proses lain", 0)
    ]
    assert [(m["chat_id"], m["text"], m["method"]) for m in messages] == [
        (65, "dari proses lain", "sendMessage")
    ]
    assert pushed == {"ok": True, "update_ids": [1, 2]}
    assert updates[0].message.text == "/start"
    assert updates[1].callback_query.message.text == "dari proses lain"
    assert held[0].json() == {"ok": True, "result": []} and stopped_in < 5
    assert time.monotonic() - 60 < messages[0]["at"] <= time.monotonic()  # one clock for both


# -- the methods a running bot calls ------------------------------------------------------------


def test_commands_chat_actions_locations_and_files() -> None:
    commands = [BotCommand("start", "Mulai"), BotCommand("lapor", "Buat laporan")]

    async def scenario(bot: Bot) -> dict[str, Any]:
        out: dict[str, Any] = {}
        assert await bot.set_my_commands(commands)
        assert await bot.set_my_commands(commands[:1], language_code="en")
        out["id"] = await bot.get_my_commands()
        out["en"] = await bot.get_my_commands(language_code="en")
        with pytest.raises(BadRequest, match="(?i)bot_command_invalid"):
            await bot.set_my_commands([BotCommand("Lapor", "huruf besar")])
        assert await bot.delete_my_commands(language_code="en")
        out["en_after"] = await bot.get_my_commands(language_code="en")
        assert await bot.send_chat_action(70, ChatAction.TYPING)
        with pytest.raises(BadRequest, match="[Ww]rong parameter action"):
            await bot.send_chat_action(70, "dancing")
        with pytest.raises(Forbidden):
            await bot.send_chat_action(71, ChatAction.TYPING)
        out["pin"] = await bot.send_location(70, latitude=0.5071, longitude=101.4478)
        with pytest.raises(BadRequest, match="[Ii]nvalid file_id"):
            await bot.get_file("AgACnever-seen")
        [update_id] = fake.state.push(photo_update(70, caption="Jalan rusak", file_id="AgACbig"))
        file = await bot.get_file("AgACbig")
        out["file"], out["bytes"] = file, await file.download_as_bytearray()
        sent = await bot.send_photo(70, b"\x89PNG", caption="bukti")
        out["sent_file"] = await bot.get_file(sent.photo[-1].file_id)
        return out

    with running(TOKEN, blocked={71}) as fake:
        out = with_bot(fake.url, scenario)
        calls = fake.state.calls()
        stats = fake.state.stats()
        assert fake.state.commands() == [c.to_dict() for c in commands]

    assert [c.command for c in out["id"]] == ["start", "lapor"]
    assert [c.command for c in out["en"]] == ["start"] and out["en_after"] == ()
    assert out["pin"].location.latitude == 0.5071 and out["pin"].location.longitude == 101.4478
    assert (
        "/file/bot4242:FAKE-test-token/photos/" in out["file"].file_path
        and out["file"].file_size == 120_000
    )
    assert len(out["bytes"]) == 120_000
    assert out["sent_file"].file_path != out["file"].file_path
    assert [(c.method, c.status) for c in calls if c.method == "sendChatAction"] == [
        ("sendChatAction", 200),
        ("sendChatAction", 400),
        ("sendChatAction", 403),
    ]
    assert stats["calls"]["setMyCommands"] == 3 and stats["accepted"] == 2  # location, photo


def test_edits_and_callback_answers_as_telegram_answers_them() -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Kirim", callback_data="send")]])

    async def scenario(bot: Bot) -> dict[str, Any]:
        out: dict[str, Any] = {}
        summary = await bot.send_message(80, "Ringkasan laporan", reply_markup=keyboard)
        [update_id] = fake.state.push(callback_update(80, "send", summary.message_id))
        [update] = await bot.get_updates()
        query = update.callback_query
        out["query"] = query
        assert await query.answer()
        with pytest.raises(BadRequest, match="[Qq]uery is too old"):
            await query.answer()  # a second answer
        with pytest.raises(BadRequest, match="[Qq]uery is too old"):
            await bot.answer_callback_query("12345")
        out["spent"] = await query.edit_message_reply_markup(None)
        with pytest.raises(BadRequest, match="[Mm]essage is not modified"):
            await query.edit_message_reply_markup(None)
        out["edited"] = await bot.edit_message_text("Terkirim", 80, summary.message_id)
        with pytest.raises(BadRequest, match="[Mm]essage is not modified"):
            await bot.edit_message_text("Terkirim", 80, summary.message_id)
        with pytest.raises(BadRequest, match="[Mm]essage to edit not found"):
            await bot.edit_message_text("x", 80, 9999)
        photo = await bot.send_photo(80, "AgACfoto", caption="foto")
        with pytest.raises(BadRequest, match="[Nn]o text in the message to edit"):
            await bot.edit_message_text("x", 80, photo.message_id)
        [user_message] = fake.state.push(text_update(80, "halo"))
        [mine] = (await bot.get_updates(offset=update_id + 1))[-1:]
        with pytest.raises(BadRequest, match="[Cc]an't be edited"):
            await bot.edit_message_text("x", 80, mine.message.message_id)
        out["inline"] = await bot.edit_message_text("x", inline_message_id="AgAAAinline")
        return out

    with running(TOKEN) as fake:
        out = with_bot(fake.url, scenario)
        stats = fake.state.stats()
        stored = fake.state.bot_message(80, out["edited"].message_id)

    query = out["query"]
    assert query.data == "send" and query.from_user.id == 80 and query.chat_instance
    assert query.message.reply_markup.inline_keyboard[0][0].text == "Kirim"  # as sent
    assert out["spent"].reply_markup is None and out["spent"].text == "Ringkasan laporan"
    assert out["edited"].text == "Terkirim" and out["edited"].edit_date is not None
    assert stored is not None and stored["text"] == "Terkirim" and "reply_markup" not in stored
    assert out["inline"] is True
    assert stats["accepted"] == 2  # edits and answers are not messages
    assert stats["too_many_requests"] == 0


def test_send_location_counts_against_the_chat_limit_and_edits_do_not() -> None:
    clock = ManualClock()

    async def scenario(bot: Bot) -> list[Any]:
        results: list[Any] = [
            await outcome(bot.send_message(90, "Lokasi kantor:")),
            await outcome(bot.send_location(90, latitude=0.5, longitude=101.4)),
            await outcome(bot.send_photo(90, "AgACkantor")),
            await outcome(bot.send_location(90, latitude=0.5, longitude=101.4)),
        ]
        first = results[0]
        results.append(await outcome(bot.edit_message_text("Lokasi kantor", 90, first.id)))
        results.append(await outcome(bot.send_chat_action(90, ChatAction.FIND_LOCATION)))
        clock.now = START + 1
        results.append(await outcome(bot.send_location(90, latitude=0.6, longitude=101.5)))
        return results

    with running(TOKEN, clock=clock) as fake:
        results = with_bot(fake.url, scenario)
        stats = fake.state.stats()
        methods = [s.method for s in fake.state.messages_to(90)]

    kinds = [type(r).__name__ for r in results]
    assert kinds == ["Message", "Message", "Message", "RetryAfter", "Message", "bool", "Message"]
    assert results[3].retry_after == timedelta(seconds=1)
    assert methods == ["sendMessage", "sendLocation", "sendPhoto", "sendLocation"]
    assert stats["too_many_requests_by_bucket"] == {"chat": 1}
    assert stats["too_many_requests_per_chat"] == {"90": 1}


# -- updates: long polling ----------------------------------------------------------------------


def test_long_polling_returns_updates_until_an_offset_confirms_them() -> None:
    clock = ManualClock()

    async def scenario(bot: Bot) -> dict[str, Any]:
        out: dict[str, Any] = {}
        ids = fake.state.push(
            text_update(7, "/start", first_name="Ani"),
            location_update(7, 0.5071, 101.4478),
            photo_update(8, caption="Sampah menumpuk"),
        )
        out["ids"] = ids
        out["first"] = await bot.get_updates()
        clock.now += 1  # past the 0.5 s in which a repeated offset gets a single update
        out["again"] = await bot.get_updates()  # nothing was confirmed
        out["later"] = await bot.get_updates(offset=ids[1] + 1)
        out["quick_repeat"] = len(await bot.get_updates(offset=ids[1] - 5))
        return out

    with running(TOKEN, clock=clock) as fake:
        out = with_bot(fake.url, scenario)
        records = {r.update_id: r for r in fake.state.updates}

    ids = out["ids"]
    assert ids == [1, 2, 3]
    start, pin, photo = out["first"]
    assert [u.update_id for u in out["first"]] == [u.update_id for u in out["again"]] == ids
    assert start.message.text == "/start" and start.message.from_user.first_name == "Ani"
    assert start.message.entities[0].type == "bot_command" and start.message.chat.type == "private"
    assert start.message.from_user.language_code == "id"
    assert pin.message.location.latitude == 0.5071
    assert photo.message.caption == "Sampah menumpuk" and len(photo.message.photo) == 3
    assert start.message.message_id < pin.message.message_id  # the fake numbered them
    assert [u.update_id for u in out["later"]] == [3]
    assert out["quick_repeat"] == 1
    assert records[1].state == records[2].state == "confirmed"
    assert records[1].attempts == 2 and records[1].via == "getUpdates"
    assert records[3].state == "pending" and records[3].acked_at is None


def test_a_long_poll_returns_when_an_update_arrives_and_a_second_poller_conflicts() -> None:
    async def scenario(bot: Bot) -> dict[str, Any]:
        out: dict[str, Any] = {}
        started = time.monotonic()
        poll = asyncio.create_task(bot.get_updates(timeout=timedelta(seconds=10)))
        await asyncio.sleep(0.2)
        fake.state.push(text_update(9, "jalan berlubang"))
        out["updates"] = await poll
        out["waited"] = time.monotonic() - started
        offset = out["updates"][-1].update_id + 1
        held = asyncio.create_task(bot.get_updates(offset, timeout=timedelta(seconds=10)))
        await asyncio.sleep(0.2)
        async with Bot(TOKEN, base_url=f"{fake.url}/bot") as other:  # another instance
            out["second"] = await other.get_updates(offset + 1)
        out["first"] = await outcome(held)
        # with a negative offset only the last updates stay, the others are forgotten
        fake.state.push(text_update(9, "satu"), text_update(9, "dua"), text_update(9, "tiga"))
        out["last"] = await bot.get_updates(-1)
        # updates of a type the bot did not ask for are not created
        await bot.get_updates(allowed_updates=["callback_query"])
        out["not_allowed"] = fake.state.push(text_update(9, "diabaikan"))
        await bot.get_updates(allowed_updates=[])
        return out

    with running(TOKEN, scale=20) as fake:
        out = with_bot(fake.url, scenario)
        stats = fake.state.stats()

    assert [u.message.text for u in out["updates"]] == ["jalan berlubang"]
    assert 0.2 <= out["waited"] < 2
    assert out["second"] == ()
    assert isinstance(out["first"], Conflict)
    assert "terminated by other getUpdates request" in str(out["first"])
    assert [u.message.text for u in out["last"]] == ["tiga"]
    assert out["not_allowed"] == [None]
    assert stats["conflicts"] == 1
    assert stats["updates"] == {
        "pushed": 4,
        "not_allowed": 1,
        "pending": 1,
        "confirmed": 1,
        "dropped": 2,
        "expired": 0,
    }


# -- updates: webhook ---------------------------------------------------------------------------


def test_webhook_delivers_with_the_secret_retries_failures_and_keeps_each_chat_in_order() -> None:
    received: list[tuple[int, str | None]] = []
    failures = {1: 2}  # the first update is refused twice

    async def receive(request: Request) -> Response:
        update = await request.json()
        received.append((update["update_id"], request.headers.get(SECRET_HEADER)))
        if failures.get(update["update_id"], 0) > 0:
            failures[update["update_id"]] -= 1
            return Response("oops", status_code=500)
        return Response(status_code=200)

    receiver = Starlette(routes=[Route("/telegram", receive, methods=["POST"])])

    async def scenario(bot: Bot, hook_url: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        assert await bot.set_webhook(
            hook_url, secret_token=HOOK_SECRET, max_connections=2, allowed_updates=[]
        )
        out["ids"] = fake.state.push(
            text_update(11, "pertama"), text_update(11, "kedua"), text_update(12, "lain")
        )
        await asyncio.to_thread(
            wait_for, lambda: fake.state.stats()["updates"]["confirmed"] == 3, timeout=10
        )
        out["info"] = await bot.get_webhook_info()
        out["polling"] = await outcome(bot.get_updates())
        assert await bot.delete_webhook()
        out["after"] = await bot.get_webhook_info()
        fake.state.push(text_update(11, "lewat polling"))
        out["polled"] = await bot.get_updates()
        return out

    with serving(receiver) as root, running(TOKEN, scale=20) as fake:
        out = with_bot(fake.url, lambda bot: scenario(bot, f"{root}/telegram"))
        records = {r.update_id: r for r in fake.state.updates}
        set_call = fake.state.calls("setWebhook")[0]

    first, second, other = out["ids"]
    assert {secret for _, secret in received} == {HOOK_SECRET}
    chat_11 = [update_id for update_id, _ in received if update_id != other]
    assert chat_11 == [first, first, first, second]  # the second waited for the first's 2xx
    assert records[first].attempts == 3 and records[first].state == "confirmed"
    assert (
        records[first].last_error == "Wrong response from the webhook: 500 Internal Server Error"
    )
    assert records[first].first_sent_at < records[first].acked_at
    assert records[other].attempts == 1 and records[other].via == "webhook"
    info = out["info"]
    assert info.url.endswith("/telegram") and info.pending_update_count == 0
    assert info.max_connections == 2 and info.last_error_message.startswith("Wrong response")
    assert isinstance(out["polling"], Conflict)
    assert "can't use getUpdates method while webhook is active" in str(out["polling"])
    assert out["after"].url == "" and [u.message.text for u in out["polled"]] == ["lewat polling"]
    assert set_call.description == "Webhook was set"
    assert set_call.params["secret_token"] == HOOK_SECRET


def test_set_webhook_is_accepted_once_a_second() -> None:
    clock = ManualClock()

    async def scenario(bot: Bot) -> list[Any]:
        results = [
            await outcome(bot.set_webhook("http://127.0.0.1:9/a")),
            await outcome(bot.set_webhook("http://127.0.0.1:9/b")),
        ]
        clock.now += 1
        results.append(await outcome(bot.set_webhook("http://127.0.0.1:9/b")))
        bad_secret = "a:b"  # noqa: S105 - refused: only A-Z, a-z, 0-9, _ and -
        results.append(
            await outcome(bot.set_webhook("http://127.0.0.1:9/c", secret_token=bad_secret))
        )
        results.append(await outcome(bot.delete_webhook()))
        return results

    with running(TOKEN, clock=clock) as fake:
        results = with_bot(fake.url, scenario)
        stats = fake.state.stats()

    assert results[0] is True and isinstance(results[1], RetryAfter) and results[2] is True
    assert isinstance(results[3], RetryAfter)  # 1 s has not passed again
    assert results[4] is True
    assert stats["too_many_requests_by_bucket"] == {"setWebhook": 2}


def test_a_polling_application_answers_a_command_and_a_button_tap() -> None:
    """PTB's own polling loop, as ``warga run`` uses it, against the fake."""
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Ya", callback_data="ya")]])

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None
        await context.bot.send_message(update.effective_chat.id, "Lanjut?", reply_markup=keyboard)

    async def tapped(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None and update.effective_chat is not None
        await query.answer()
        await query.edit_message_reply_markup(None)
        await context.bot.send_message(update.effective_chat.id, f"Pilihan: {query.data}")

    async def post_init(app: Application) -> None:
        await app.bot.set_my_commands([BotCommand("start", "Mulai")])

    async def scenario() -> list[JSONDict]:
        app = (
            ApplicationBuilder()
            .token(TOKEN)
            .base_url(f"{fake.url}/bot")
            .base_file_url(f"{fake.url}/file/bot")
            .post_init(post_init)
            .build()
        )
        app.add_handler(CommandHandler("start", start))
        app.add_handler(CallbackQueryHandler(tapped))
        async with app:
            await app.post_init(app)  # type: ignore[misc]
            await app.start()
            await app.updater.start_polling(timeout=timedelta(seconds=5))  # type: ignore[union-attr]
            fake.state.push(text_update(21, "/start"))
            async with httpx.AsyncClient(base_url=fake.url) as client:
                ask = (await client.get("/_fake/messages", params={"wait": 5})).json()
                fake.state.push(callback_update(21, "ya", ask[0]["message_id"]))
                params = {"since": 1, "wait": 5}
                answer = (await client.get("/_fake/messages", params=params)).json()
            await app.updater.stop()  # type: ignore[union-attr]
            await app.stop()
        return ask + answer

    with running(TOKEN, scale=20) as fake:
        sent = asyncio.run(scenario())
        stats = fake.state.stats()
        calls = [c.method for c in fake.state.calls()]
        edited = fake.state.bot_message(21, sent[0]["message_id"])

    assert [m["text"] for m in sent] == ["Lanjut?", "Pilihan: ya"]
    assert calls == [
        "setMyCommands",
        "deleteWebhook",
        "answerCallbackQuery",
        "editMessageReplyMarkup",
    ]
    assert edited is not None and "reply_markup" not in edited
    assert stats["updates"]["confirmed"] == 2  # the last getUpdates confirmed the tap too
    assert stats["too_many_requests"] == 0 and stats["conflicts"] == 0
    assert stats["abandoned_polls"] == 1  # the poll PTB gave up on when it stopped
