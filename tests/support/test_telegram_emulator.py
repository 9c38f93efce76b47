"""Tests of the Telegram emulator harness: a real PTB Application against telegram-test-api."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import httpx
import pytest
from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from telegram.error import BadRequest
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from support.telegram_emulator import (
    EmulatedUser,
    EmulatorRequest,
    TelegramEmulator,
    application_builder,
    fresh_token,
    running,
)


@pytest.fixture
def token() -> str:
    return fresh_token()


@pytest.fixture(scope="module")
def emulator() -> Iterator[TelegramEmulator]:
    with TelegramEmulator() as emu:
        yield emu


def build_app(emulator: TelegramEmulator, request: EmulatorRequest, token: str) -> Application:  # type: ignore[type-arg]
    app = application_builder(emulator, token, request=request).build()

    async def post_init(application: Application) -> None:  # type: ignore[type-arg]
        await application.bot.set_my_commands(
            [BotCommand("start", "Mulai"), BotCommand("menu", "Menu")]
        )

    app.post_init = post_init

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await context.bot.send_chat_action(update.effective_message.chat_id, "typing")
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("Lapor", callback_data="lapor"),
                    InlineKeyboardButton("Tanya", callback_data="tanya"),
                ]
            ]
        )
        await update.effective_message.reply_text("Halo! Pilih:", reply_markup=keyboard)

    async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None and query.message is not None
        await query.answer()
        edited = await query.edit_message_text(f"Dipilih: {query.data}")
        assert not isinstance(edited, bool)
        assert edited.text == f"Dipilih: {query.data}"
        assert edited.reply_markup is None

    async def location(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg = update.effective_message
        assert msg is not None and msg.location is not None
        await msg.reply_text(f"Lokasi {msg.location.latitude:.4f},{msg.location.longitude:.4f}")
        await msg.reply_location(latitude=0.5071, longitude=101.4478)

    async def photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg = update.effective_message
        assert msg is not None and msg.photo
        biggest = msg.photo[-1]
        file = await biggest.get_file()
        data = await file.download_as_bytearray()
        await msg.reply_text(
            f"Foto {biggest.file_id} {biggest.width}x{biggest.height} "
            f"{len(data)}B caption={msg.caption}"
        )

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg = update.effective_message
        assert msg is not None and msg.text is not None
        assert msg.date.year >= 2024 and msg.date.tzinfo is not None
        sent = await msg.reply_text(f"Echo: {msg.text}")
        assert sent.date.year < 3000  # seconds, not milliseconds
        assert sent.from_user is not None and sent.from_user.is_bot

    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(button))
    app.add_handler(MessageHandler(filters.LOCATION, location))
    app.add_handler(MessageHandler(filters.PHOTO, photo))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    return app


def test_round_trips(emulator: TelegramEmulator, token: str) -> None:
    request = EmulatorRequest()
    app = build_app(emulator, request, token)
    errors: list[BaseException] = []

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert context.error is not None
        errors.append(context.error)

    app.add_error_handler(on_error)

    async def scenario() -> None:
        async with (
            running(app),
            EmulatedUser(emulator, token, user_id=4242, first_name="Ani") as user,
        ):
            assert app.bot.username == "TestNameBot"

            await user.send("halo")
            [echo] = await user.replies(count=1)
            assert echo.text == "Echo: halo"

            await user.command("/start")
            [menu] = await user.replies(count=1)
            assert menu.text == "Halo! Pilih:"
            assert menu.button_texts == ["Lapor", "Tanya"]
            assert menu.callback_data == ["lapor", "tanya"]

            # a callback query batch reaches the handler (it used to be lost: no chat_instance)
            await user.press("lapor")

            async def edited() -> bool:
                return (await user.message(menu.message_id)).text == "Dipilih: lapor"

            await user.eventually(edited, what="the menu message edited")
            assert (await user.message(menu.message_id)).buttons == []
            assert request.calls_to("answerCallbackQuery")

            await user.send_location(0.5333, 101.45)
            text, loc = await user.replies(count=2)
            assert text.text == "Lokasi 0.5333,101.4500"
            assert loc.method == "sendLocation"
            assert loc.location == {"latitude": 0.5071, "longitude": 101.4478}

            await user.send_photo("AgACPhoto1", caption="jalan rusak")
            reply = await user.wait_for_text("Foto")
            assert reply.text == "Foto AgACPhoto1 1280x960 30B caption=jalan rusak"

            assert await user.replies(timeout=0.3) == []  # nothing else was said

    asyncio.run(scenario())
    assert errors == []
    local = [c.method for c in request.local_calls]
    assert "setMyCommands" in local
    assert "sendChatAction" in local
    assert "sendLocation" in local and "getFile" in local
    [commands] = request.local_calls_to("setMyCommands")
    assert [c["command"] for c in commands["commands"]] == ["start", "menu"]
    [sent] = request.local_calls_to("sendLocation")
    assert sent["latitude"] == 0.5071 and str(sent["chat_id"]) == "4242"


def test_two_users_and_callback_in_same_batch(emulator: TelegramEmulator, token: str) -> None:
    """Updates of several chats arrive in one getUpdates batch; none is lost."""
    request = EmulatorRequest()
    app = build_app(emulator, request, token)

    async def scenario() -> None:
        async with (
            EmulatedUser(emulator, token, user_id=1, first_name="Budi") as budi,
            EmulatedUser(emulator, token, user_id=2, first_name="Citra") as citra,
        ):
            async with running(app):
                await budi.command("/start")
                await budi.replies(count=1)
                await app.updater.stop()  # type: ignore[union-attr]
                # queued while nobody polls: one batch with a message and a callback query
                await citra.send("satu")
                await budi.press("tanya")
                await app.updater.start_polling(poll_interval=0.05)  # type: ignore[union-attr]
                [echo] = await citra.replies(count=1)
                assert echo.text == "Echo: satu"

                async def edited() -> bool:
                    msgs = await budi.history()
                    return msgs[-1].text == "Dipilih: tanya"

                await budi.eventually(edited, what="budi's menu edited")

    asyncio.run(scenario())


def test_departures_are_repaired(emulator: TelegramEmulator, token: str) -> None:
    request = EmulatorRequest()
    app = application_builder(emulator, token, request=request).build()

    async def scenario() -> None:
        async with app:
            bot = app.bot
            assert bot.bot.is_bot
            sent = await bot.send_message(777, "<b>tebal</b>", parse_mode="HTML")
            assert sent.chat.id == 777 and sent.chat.type == "private"
            assert sent.date.year < 3000
            # editing a message that does not exist: Telegram answers 400
            with pytest.raises(BadRequest, match="not found"):
                await bot.edit_message_text("x", chat_id=777, message_id=999_999)
            # deleting twice: the second one is a BadRequest, not a KeyError
            assert await bot.delete_message(777, sent.message_id) is True
            with pytest.raises(BadRequest):
                await bot.delete_message(777, sent.message_id)
            assert await bot.set_my_commands([BotCommand("start", "Mulai")]) is True
            assert [c.command for c in await bot.get_my_commands()] == ["start"]
            photo = await bot.send_photo(777, "AgACfileid", caption="c")
            assert photo.photo[-1].file_id == "AgACfileid" and photo.caption == "c"
            doc = await bot.send_document(777, b"isi", filename="laporan.txt")
            assert doc.document is not None and doc.document.file_name == "laporan.txt"
            assert await bot.send_chat_action(777, "typing") is True
            info = await bot.get_webhook_info()
            assert info.url == ""
            grp = await bot.send_message(-100123, "grup")
            assert grp.chat.type == "supergroup"

    asyncio.run(scenario())
    [upload] = request.local_calls_to("sendDocument")
    assert upload["document"]["filename"] == "laporan.txt"
    assert upload["document"]["size"] == 3


def test_stop_leaves_no_process() -> None:
    emu = TelegramEmulator().start()
    proc = emu._proc
    assert proc is not None
    pid = proc.pid
    url = emu.api_url
    emu.stop()
    emu.stop()  # idempotent
    assert proc.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, signal.SIG_DFL)  # the group is gone too
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{url}/getUpdatesHistory", json={"token": "x"})


def test_missing_node_is_a_loud_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    from support.telegram_emulator import EmulatorError

    with pytest.raises(EmulatorError, match="node"):
        TelegramEmulator().start()
