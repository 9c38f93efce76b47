"""Tests of the fake Bot API: python-telegram-bot's real Bot against its limits and errors."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
)
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter

from tests.support.fake_bot_api import Upload, running

ROOT = Path(__file__).resolve().parents[2]
CAPTION = "Jalan rusak – dekat SD 🚧"  # multipart form field, not ASCII
TOKEN = "4242:FAKE-test-token"  # noqa: S105 - made up


@pytest.fixture(autouse=True)
def timedelta_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    """RetryAfter.retry_after as a timedelta (the int form warns, and warnings are errors)."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


def with_bot(url: str, scenario: Callable[[Bot], Awaitable[Any]]) -> Any:
    """Run ``scenario`` with a real PTB Bot pointed at the fake's root ``url``."""

    async def run() -> Any:
        async with Bot(TOKEN, base_url=f"{url}/bot") as bot:  # initialize() calls getMe
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

        async def scenario(bot: Bot) -> Message:
            with pytest.raises(Forbidden):
                await bot.send_message(66, "x")
            return await bot.send_message(65, "dari proses lain")

        message = with_bot(url, scenario)
        messages = httpx.get(f"{url}/_fake/messages").json()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    assert message.text == "dari proses lain"
    assert [(m["chat_id"], m["text"], m["method"]) for m in messages] == [
        (65, "dari proses lain", "sendMessage")
    ]
    assert time.monotonic() - 60 < messages[0]["at"] <= time.monotonic()  # one clock for both
