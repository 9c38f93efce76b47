"""End to end on Telegram: the bot, python-telegram-bot and the telegram-test-api emulator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from support.telegram_emulator import (
    EmulatedUser,
    EmulatorRequest,
    TelegramEmulator,
    fresh_token,
)

from actions import migrate
from actions.city import LoadedCity, sync_city
from actions.db import make_engine, make_session_factory
from actions.domain import InboxState, OfficerRole
from actions.inbox import NewUpdate
from actions.models import InboxUpdate, Outbox, Ticket
from actions.tickets import Action, transition
from bot.channels.telegram import SECRET_HEADER, WEBHOOK_PATH, TelegramChannel
from bot.conversation import Assistant
from bot.service import Service


@pytest.fixture(scope="module")
def emulator() -> Iterator[TelegramEmulator]:
    with TelegramEmulator() as emu:
        yield emu


@pytest.fixture
def tg_assistant(tmp_path: Path, city: LoadedCity, parser, responses, faq, clock) -> Assistant:
    engine = make_engine(f"sqlite:///{tmp_path / 'tg.sqlite3'}")
    migrate.upgrade(engine)
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        sync_city(s, city=city)
    return Assistant(
        city=city,
        nlu=parser,
        responses=responses,
        faq=faq,
        sessions=sessions,
        clock=lambda: clock[0],
    )


class Bot:
    """The bot under test, polling the emulator, and one resident talking to it."""

    def __init__(self, emulator: TelegramEmulator, assistant: Assistant) -> None:
        self.token = fresh_token()
        self.request = EmulatorRequest()
        self.channel = TelegramChannel(
            assistant,
            token=self.token,
            api_url=emulator.api_url,
            polling=True,
            poll_interval=0.05,
            request=self.request,
            get_updates_request=EmulatorRequest(),
        )
        self.service = Service(assistant, [self.channel], workers=2)
        self.emulator = emulator
        self.t = assistant.responses.get

    def user(self, user_id: int = 5001, name: str = "Siti") -> EmulatedUser:
        return EmulatedUser(self.emulator, self.token, user_id, name)


@contextlib.asynccontextmanager
async def running(service: Service) -> AsyncIterator[Service]:
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def run(emulator: TelegramEmulator, assistant: Assistant, scenario) -> None:
    async def main() -> None:
        bot = Bot(emulator, assistant)
        async with running(bot.service), bot.user() as siti:
            await scenario(bot, siti)

    asyncio.run(main())


def count(assistant: Assistant, model: type) -> int:
    with assistant.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_start_greets_with_buttons_and_registers_the_commands(emulator, tg_assistant):
    async def scenario(bot: Bot, siti: EmulatedUser) -> None:
        await siti.command("/start")
        (reply,) = await siti.replies(count=1)
        assert "Siti" in reply.text and "Kota Pekanbaru" in reply.text
        assert bot.t("id", "button.report") in reply.button_texts
        registered = bot.request.local_calls_to("setMyCommands")
        names = {c["command"] for call in registered for c in _commands(call)}
        assert names == {
            "start",
            "lapor",
            "status",
            "ikuti",
            "langganan",
            "berhenti",
            "batal",
            "bantuan",
        }

    run(emulator, tg_assistant, scenario)


def _commands(call: dict) -> list[dict]:
    import json

    commands = call["commands"]
    return json.loads(commands) if isinstance(commands, str) else commands


def test_a_report_with_a_shared_location_ends_with_the_ticket_number(emulator, tg_assistant):
    async def scenario(bot: Bot, siti: EmulatedUser) -> None:
        await siti.send("lampu jalan mati total udah seminggu, gelap bgt min")
        (ask,) = await siti.replies(count=1)
        assert ask.text == bot.t("id", "report.ask_location")
        # A reply keyboard whose first button shares the location.
        first = ask.reply_markup["keyboard"][0][0]
        assert first["request_location"] is True
        assert first["text"] == bot.t("id", "button.share_location")
        await siti.send_location(0.50713, 101.44775)
        (photo_q,) = await siti.replies(count=1)
        assert photo_q.text == bot.t("id", "report.ask_photo")
        await siti.send_photo("AgACAgUAAxkBAAIBQ2Zm")
        (privacy_q,) = await siti.replies(count=1)
        await siti.press("privacy:anonim", privacy_q.message_id)
        (summary,) = await siti.replies(count=1)
        assert "Anonim" in summary.text
        await siti.press("confirm:send", summary.message_id)
        (done,) = await siti.replies(count=1)
        assert "PKU-2026-000001" in done.text and "Dinas Perumahan Rakyat" in done.text

    run(emulator, tg_assistant, scenario)
    with tg_assistant.sessions() as s:
        ticket = s.scalar(select(Ticket))
        assert (ticket.latitude, ticket.longitude) == (0.50713, 101.44775)
        assert [p.file_id for p in ticket.photos] == ["AgACAgUAAxkBAAIBQ2Zm"]
        assert ticket.category.code == "lampu_jalan"


def test_status_check_emergency_and_faq_answer(emulator, tg_assistant):
    async def scenario(bot: Bot, siti: EmulatedUser) -> None:
        await siti.send("kebakaran tolong")
        (alarm,) = await siti.replies(count=1)
        assert alarm.text.splitlines()[1].startswith("📞 112")
        await siti.send("syarat bikin ktp el apa aja min?")
        (answer,) = await siti.replies(count=1)
        assert "Dinas Kependudukan dan Pencatatan Sipil Kota Pekanbaru" in answer.text
        await siti.command("/status")
        (status,) = await siti.replies(count=1)
        assert status.text == bot.t("id", "status.none")

    run(emulator, tg_assistant, scenario)
    assert count(tg_assistant, Ticket) == 0


def test_an_update_delivered_twice_creates_nothing_twice(emulator, tg_assistant):
    stored: list[NewUpdate] = []

    async def scenario(bot: Bot, siti: EmulatedUser) -> None:
        keep = bot.channel.store

        def store(updates: list[NewUpdate]) -> int:
            stored.extend(updates)
            return keep(updates)

        bot.channel.store = store  # type: ignore[method-assign]
        await siti.send("usul min bikin taman bermain anak di kelurahan Sidomulyo Barat")
        (ack,) = await siti.replies(count=1)
        assert "PKU-2026-000001" in ack.text
        # Telegram delivers the same update again, after it was handled: known, not stored.
        assert await asyncio.to_thread(keep, [stored[-1]]) == 0
        assert await siti.replies(timeout=1.0) == []

    run(emulator, tg_assistant, scenario)
    assert count(tg_assistant, Ticket) == 1
    with tg_assistant.sessions() as s:
        assert s.scalars(select(InboxUpdate.state)).all() == [InboxState.DONE]


def test_status_updates_reach_the_resident_through_the_outbox(emulator, tg_assistant, clock):
    async def scenario(bot: Bot, siti: EmulatedUser) -> None:
        await siti.send("usul min bikin taman bermain anak di kelurahan Sidomulyo Barat")
        await siti.replies(count=1)
        with tg_assistant.sessions.begin() as s:
            ticket = s.scalar(select(Ticket))
            transition(s, ticket, Action.START, actor=None, note="sedang dikaji", now=clock[0])
        (note,) = await siti.replies(count=1, timeout=5)
        assert "PKU-2026-000001" in note.text and "sedang dikaji" in note.text

    run(emulator, tg_assistant, scenario)
    with tg_assistant.sessions() as s:
        row = s.scalar(select(Outbox).where(Outbox.template == "ticket.status.in_progress"))
        assert row.sent_at is not None


class Exploding:
    """An NLU that fails on one word, as a bug would: the rest it hands to the real one."""

    def __init__(self, parser) -> None:
        self.parser = parser

    def parse(self, text: str):
        if "meledak" in text:
            raise RuntimeError("a bug in understanding")
        return self.parser.parse(text)


def test_a_failure_inside_a_handler_says_try_again_and_the_bot_goes_on(emulator, tg_assistant):
    assistant = replace(tg_assistant, nlu=Exploding(tg_assistant.nlu))

    async def scenario(bot: Bot, siti: EmulatedUser) -> None:
        await siti.send("ini pesan yang meledak")
        (sorry,) = await siti.replies(count=1, timeout=10)  # after a second try, in seconds
        assert sorry.text == bot.t("id", "error.try_again")
        await siti.send("halo lagi")
        (hello,) = await siti.replies(count=1)
        assert "Siti" in hello.text

    run(emulator, assistant, scenario)
    with assistant.sessions() as s:
        (failed,) = s.scalars(
            select(InboxUpdate).where(InboxUpdate.state != InboxState.DONE)
        ).all()
        assert (failed.state, failed.attempts) == (InboxState.FAILED, 2)
        assert "a bug in understanding" in failed.last_error
        assert "meledak" not in failed.last_error


def test_a_database_failure_loses_nothing_the_update_waits_and_is_answered(emulator, tg_assistant):
    async def scenario(bot: Bot, siti: EmulatedUser) -> None:
        with tg_assistant.sessions.begin() as s:
            s.execute(text("ALTER TABLE conversation RENAME TO conversation_gone"))
        await siti.send("halo")
        assert await siti.replies(timeout=2.0) == []  # stored, waiting: no apology, no loss
        with tg_assistant.sessions.begin() as s:
            s.execute(text("ALTER TABLE conversation_gone RENAME TO conversation"))
        (hello,) = await siti.replies(count=1, timeout=5)
        assert "Siti" in hello.text

    run(emulator, tg_assistant, scenario)
    with tg_assistant.sessions() as s:
        assert set(s.scalars(select(InboxUpdate.state))) == {InboxState.DONE}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SECRET = "rahasia-webhook-123"  # noqa: S105 - a test secret
FORGED = {
    "update_id": 99,
    "message": {
        "message_id": 1,
        "date": 1764471600,
        "text": "usul taman di Sail",
        "chat": {"id": 7, "type": "private"},
        "from": {"id": 7, "is_bot": False, "first_name": "Mallory"},
    },
}


@contextlib.asynccontextmanager
async def webhook_server(emulator, assistant, token: str) -> AsyncIterator[str]:
    import uvicorn

    from bot.web import create_app

    port = _free_port()
    channel = TelegramChannel(
        assistant,
        token=token,
        api_url=emulator.api_url,
        secret=SECRET,
        public_url=f"http://127.0.0.1:{port}",
        request=EmulatorRequest(),
    )
    web = create_app(assistant, channels=[channel], open311_interval=None, workers=2)
    server = uvicorn.Server(
        uvicorn.Config(web, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
    finally:
        server.should_exit = True
        await serving


def test_webhook_mode_checks_the_secret_and_answers_through_the_web_app(emulator, tg_assistant):
    import httpx

    async def main() -> None:
        token = fresh_token()
        async with webhook_server(emulator, tg_assistant, token) as url:
            async with httpx.AsyncClient() as client:
                assert (await client.post(url, json=FORGED)).status_code == 403
                wrong = {SECRET_HEADER: "tebakan"}
                assert (await client.post(url, json=FORGED, headers=wrong)).status_code == 403
            async with EmulatedUser(emulator, token, 5001, "Siti") as siti:
                await siti.send("halo")
                (hello,) = await siti.replies(count=1)
                assert "Siti" in hello.text

    asyncio.run(main())
    assert count(tg_assistant, Ticket) == 0  # the forged update never reached the bot


@pytest.mark.parametrize(
    "body",
    [
        # The update that once stopped every later update: a chat id that is a list.
        {**FORGED, "message": {**FORGED["message"], "chat": {"id": [1], "type": "private"}}},
        {**FORGED, "message": {**FORGED["message"], "date": 1e20}},
        {**FORGED, "message": "hi"},
        {**FORGED, "update_id": "99"},
        {**FORGED, "message": {**FORGED["message"], "from": {"id": 7, "first_name": "M"}}},
        None,
        [],
        "x",
    ],
    ids=["chat-id-list", "date-1e20", "message-str", "id-str", "no-is_bot", "null", "[]", "str"],
)
def test_a_malformed_update_is_refused_and_the_next_one_is_answered(emulator, tg_assistant, body):
    import httpx

    async def main() -> None:
        token = fresh_token()
        async with webhook_server(emulator, tg_assistant, token) as url:
            async with httpx.AsyncClient() as client:
                headers = {SECRET_HEADER: SECRET}
                refused = await client.post(url, json=body, headers=headers)
                assert refused.status_code == 400, refused.text
                deep = b"[" * 50_000 + b"]" * 50_000
                assert (await client.post(url, content=deep, headers=headers)).status_code == 400
                huge = b'{"update_id": 1, "x": "' + b"a" * (2 * 1024 * 1024) + b'"}'
                assert (await client.post(url, content=huge, headers=headers)).status_code == 413
            async with EmulatedUser(emulator, token, 5001, "Siti") as siti:
                await siti.send("halo")
                (hello,) = await siti.replies(count=1)
                assert "Siti" in hello.text

    asyncio.run(main())
    with tg_assistant.sessions() as s:  # nothing refused was queued: only Siti's update
        assert s.scalars(select(InboxUpdate.state)).all() == [InboxState.DONE]


def test_officer_and_resident_work_a_ticket_end_to_end(emulator, tg_assistant, clock):
    from actions.people import add_officer

    with tg_assistant.sessions.begin() as s:
        add_officer(
            s,
            channel="telegram",
            platform_user_id="9001",
            role=OfficerRole.OFFICER,
            agency_code="PUPR",
            display_name="Budi",
        )

    async def scenario(bot: Bot, siti: EmulatedUser) -> None:
        async with bot.user(9001, "Budi") as budi:
            # The resident reports.
            await siti.send("jalan berlubang besar di Jl. Paus depan SD 12, Tangkerang Barat")
            (photo_q,) = await siti.replies(count=1)
            await siti.press("photo:skip", photo_q.message_id)
            (privacy_q,) = await siti.replies(count=1)
            await siti.press("privacy:biasa", privacy_q.message_id)
            (summary,) = await siti.replies(count=1)
            await siti.press("confirm:send", summary.message_id)
            done, offer = await siti.replies(count=2)  # and, once, an offer to follow
            assert "Tangkerang Barat" in offer.text
            number = next(w for w in done.text.split() if w.startswith("PKU-"))
            # The agency's officer is told, with buttons, and takes it.
            (new,) = await budi.replies(count=1, timeout=5)
            assert number in new.text
            assert bot.t("id", "button.take") in new.button_texts
            await budi.press(f"officer:take:{number}", new.message_id)
            (taken,) = await budi.replies(count=1)
            assert taken.text == bot.t("id", "officer.taken", number=number)
            # Replies; the resident hears it.
            await budi.command(f"/balas {number} Tim kami survei besok pagi")
            await budi.replies(count=1)
            (heard,) = await siti.replies(count=1, timeout=5)
            assert "Tim kami survei besok pagi" in heard.text
            # Resolves; the resident hears it and is asked to rate.
            await budi.command(f"/selesai {number} sudah ditambal aspal")
            await budi.replies(count=1)
            resolved, ask = await siti.replies(count=2, timeout=5)
            assert "sudah ditambal aspal" in resolved.text
            # "Belum beres" reopens it and the officer is told.
            await siti.press(f"reopen:{number}", ask.message_id)
            (reopened,) = await siti.replies(count=1)
            assert reopened.text == bot.t("id", "reopen.done", number=number)
            (told,) = await budi.replies(count=1, timeout=5)
            assert number in told.text
            # Resolved again, and this time rated.
            await budi.command(f"/selesai {number} ditambal ulang, lebih tebal")
            await budi.replies(count=1)
            _, ask = await siti.replies(count=2, timeout=5)
            await siti.press(f"rate:{number}:5", ask.message_id)
            (thanks,) = await siti.replies(count=1)
            assert thanks.text == bot.t("id", "rating.thanks", number=number, stars=5)

    run(emulator, tg_assistant, scenario)
    with tg_assistant.sessions() as s:
        assert s.scalar(select(Ticket)).status.value == "closed"
