"""Telegram (python-telegram-bot 22): updates in, replies and notifications out.

The only module that imports `telegram`. Handlers are thin: they turn an update into an
`Incoming`, run the conversation in a worker thread (the store is synchronous) and render the
`Outgoing` replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any

from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    Update,
)
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.request import BaseRequest

from actions.inbox import forget_updates
from actions.sla import run_sla_check
from bot.conversation import Assistant
from bot.dispatcher import DeliveryError, Dispatcher
from bot.messages import Incoming, Outgoing
from bot.responses import Responses

log = logging.getLogger(__name__)

CHANNEL = "telegram"
COMMANDS = ("start", "lapor", "status", "batal", "bantuan")
DISPATCH_INTERVAL = 1.0  # seconds between outbox sweeps
HOUSEKEEPING_EVERY = 3600.0  # seconds between clean-ups of processed update ids
SLA_EVERY = 300.0  # seconds between runs of the SLA clock


def incoming_from(update: Update) -> Incoming | None:
    """Translate a Telegram update into an Incoming; None for what residents do not send."""
    user = update.effective_user
    if user is None or user.is_bot:
        return None
    base: dict[str, Any] = {
        "channel": CHANNEL,
        "user_id": str(user.id),
        "update_id": str(update.update_id),
        "display_name": user.full_name,
        "language_code": user.language_code,
    }
    if update.callback_query is not None:
        return Incoming(**base, payload=update.callback_query.data or "")
    msg = update.message
    if msg is None:
        return None
    location = (msg.location.latitude, msg.location.longitude) if msg.location else None
    photo = msg.photo[-1].file_id if msg.photo else None
    text = msg.text or msg.caption or ""
    if not (text or location or photo):
        return None
    return Incoming(**base, text=text, location=location, photo=photo)


def markup(reply: Outgoing, responses: Responses) -> Any:
    """Inline buttons; or, when a location is asked for, a reply keyboard that can send one."""
    if reply.request_location:
        rows = [
            [
                KeyboardButton(
                    responses.get(reply.language, "button.share_location"), request_location=True
                )
            ]
        ]
        rows += [[KeyboardButton(b.label) for b in row] for row in reply.buttons]
        return ReplyKeyboardMarkup(rows, one_time_keyboard=True, resize_keyboard=True)
    if reply.buttons:
        return InlineKeyboardMarkup(
            [
                [InlineKeyboardButton(b.label, callback_data=b.payload) for b in row]
                for row in reply.buttons
            ]
        )
    return None


async def render(bot: Any, chat_id: int | str, reply: Outgoing, responses: Responses) -> None:
    await bot.send_message(chat_id, reply.text, reply_markup=markup(reply, responses))
    if reply.location is not None:
        await bot.send_location(chat_id, latitude=reply.location[0], longitude=reply.location[1])
    for photo in reply.photos:
        await bot.send_photo(chat_id, photo)


class TelegramSender:
    """Deliver outbox messages through the bot, mapping Telegram's errors to retry or give up."""

    def __init__(self, bot: Any, responses: Responses) -> None:
        self.bot, self.responses = bot, responses

    async def send(self, chat_id: str, message: Outgoing) -> None:
        try:
            await render(self.bot, int(chat_id), message, self.responses)
        except RetryAfter as exc:
            retry = exc.retry_after
            seconds = retry.total_seconds() if hasattr(retry, "total_seconds") else float(retry)
            raise DeliveryError(str(exc), retry_after=seconds) from exc
        except Forbidden as exc:  # the resident blocked the bot
            raise DeliveryError(str(exc), permanent=True) from exc
        except BadRequest as exc:  # chat not found, and the like: retrying cannot help
            raise DeliveryError(str(exc), permanent=True) from exc
        except (NetworkError, TelegramError) as exc:
            raise DeliveryError(str(exc)) from exc


def build_application(
    assistant: Assistant,
    *,
    token: str,
    api_url: str | None = None,
    request: BaseRequest | None = None,
    get_updates_request: BaseRequest | None = None,
    dispatch_interval: float | None = DISPATCH_INTERVAL,
    rate_limiter: bool = True,
    customize: Callable[[ApplicationBuilder], ApplicationBuilder] | None = None,
    background_tasks: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
) -> Application:
    """Build the PTB application; `api_url` points it at another Bot API server.

    `background_tasks` run beside the bot until it stops (the Open311 hand-overs).
    """
    builder = ApplicationBuilder().token(token)
    if api_url:
        base = api_url.rstrip("/")
        builder = builder.base_url(f"{base}/bot").base_file_url(f"{base}/file/bot")
    if request is not None:
        builder = builder.request(request)
    if get_updates_request is not None:
        builder = builder.get_updates_request(get_updates_request)
    if rate_limiter:
        builder = builder.rate_limiter(AIORateLimiter(max_retries=3))
    if customize is not None:
        builder = customize(builder)
    background: list[asyncio.Task[None]] = []

    async def post_init(app: Application) -> None:
        responses = assistant.responses
        for lang in responses.languages():
            commands = [BotCommand(c, responses.get(lang, f"commands.{c}")) for c in COMMANDS]
            await app.bot.set_my_commands(commands, language_code=None if lang == "id" else lang)
        if dispatch_interval is not None:
            dispatcher = Dispatcher(
                assistant.sessions,
                responses,
                {CHANNEL: TelegramSender(app.bot, responses)},
                clock=assistant.clock,
            )
            background.append(
                asyncio.create_task(_dispatch_forever(assistant, dispatcher, dispatch_interval))
            )
        background.extend(asyncio.create_task(task()) for task in background_tasks)

    async def post_shutdown(app: Application) -> None:
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = builder.post_init(post_init).post_shutdown(post_shutdown).build()
    handle = _handler(assistant)
    app.add_handler(MessageHandler(filters.ChatType.PRIVATE & ~filters.UpdateType.EDITED, handle))
    app.add_handler(CallbackQueryHandler(handle))
    app.add_error_handler(_error_handler(assistant))
    return app


def _handler(
    assistant: Assistant,
) -> Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[None]]:
    async def handle(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        incoming = incoming_from(update)
        if incoming is None:
            return
        query = update.callback_query
        if query is not None:
            await query.answer()
            with contextlib.suppress(TelegramError):  # a tapped keyboard is spent
                await query.edit_message_reply_markup(None)
        replies = await asyncio.to_thread(assistant.handle, incoming)
        chat = update.effective_chat
        for reply in replies:
            await render(context.bot, chat.id, reply, assistant.responses)

    return handle


def _error_handler(
    assistant: Assistant,
) -> Callable[[object, ContextTypes.DEFAULT_TYPE], Awaitable[None]]:
    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        update_id = getattr(update, "update_id", None)
        log.error("update %s failed", update_id, exc_info=context.error)
        if not isinstance(update, Update) or update.effective_chat is None:
            return
        incoming = incoming_from(update)
        if incoming is None:
            return
        with contextlib.suppress(TelegramError):
            await context.bot.send_message(
                update.effective_chat.id, assistant.sorry(incoming).text
            )

    return on_error


async def _dispatch_forever(assistant: Assistant, dispatcher: Dispatcher, interval: float) -> None:
    """Deliver the outbox; every few minutes run the SLA clock, every hour forget old updates."""
    last: dict[str, float] = {"sla": 0.0, "updates": 0.0}
    while True:
        sent = 0
        try:
            sent = await dispatcher.run_once()
            now = time.monotonic()
            if now - last["sla"] > SLA_EVERY:
                last["sla"] = now
                await asyncio.to_thread(run_sla, assistant)
            if now - last["updates"] > HOUSEKEEPING_EVERY:
                last["updates"] = now
                await asyncio.to_thread(_forget_old_updates, assistant)
        except Exception:  # noqa: BLE001 - keep delivering; the log has the details
            log.exception("background sweep failed")
        if not sent:
            await asyncio.sleep(interval)


def run_sla(assistant: Assistant) -> None:
    """One run of the SLA clock; safe while other processes run it too."""
    with assistant.sessions.begin() as session:
        result = run_sla_check(session, city=assistant.city.config, now=assistant.clock())
    if any((result.reminded, result.escalated_first_response, result.escalated_resolution)):
        log.info("SLA: %s", result)


def _forget_old_updates(assistant: Assistant) -> None:
    # Telegram redelivers for at most 24 hours; twice that is plenty.
    with assistant.sessions.begin() as session:
        forget_updates(session, older_than=timedelta(hours=48), now=assistant.clock())


def run_polling(
    assistant: Assistant,
    *,
    token: str,
    api_url: str | None,
    background_tasks: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
) -> None:
    """Run the bot with long polling until interrupted."""
    app = build_application(
        assistant, token=token, api_url=api_url, background_tasks=background_tasks
    )
    app.run_polling(allowed_updates=Update.ALL_TYPES)
