"""Telegram (python-telegram-bot 22): updates in, replies and notifications out.

The only module that imports `telegram`. Handlers are thin: they turn an update into an
`Incoming`, run the conversation in a worker thread (the store is synchronous) and render the
`Outgoing` replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any

from telegram import (
    Bot,
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
from telegram.warnings import PTBDeprecationWarning

from bot.broadcaster import Broadcaster, broadcast_forever
from bot.conversation import Assistant
from bot.dispatcher import DeliveryError, Dispatcher, deliver_forever
from bot.messages import Incoming, Outgoing
from bot.responses import Responses

log = logging.getLogger(__name__)

CHANNEL = "telegram"
COMMANDS = ("start", "lapor", "status", "ikuti", "langganan", "berhenti", "batal", "bantuan")
DISPATCH_INTERVAL = 1.0  # seconds between outbox sweeps


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
                [
                    InlineKeyboardButton(b.label, url=b.url)
                    if b.url
                    else InlineKeyboardButton(b.label, callback_data=b.payload)
                    for b in row
                ]
                for row in reply.buttons
            ]
        )
    return None


def announcement_html(reply: Outgoing) -> str:
    """An announcement as Telegram HTML: our bold header, then the author's text escaped, so
    nothing they typed can become markup (tags, links, entities)."""
    return f"<b>{html.escape(reply.title)}</b>\n{html.escape(reply.text)}"


async def render(bot: Any, chat_id: int | str, reply: Outgoing, responses: Responses) -> None:
    keyboard = markup(reply, responses)
    if reply.title:
        body = announcement_html(reply)
        if reply.photos:
            await bot.send_photo(
                chat_id, reply.photos[0], caption=body, parse_mode="HTML", reply_markup=keyboard
            )
        else:
            await bot.send_message(chat_id, body, parse_mode="HTML", reply_markup=keyboard)
        return
    await bot.send_message(chat_id, reply.text, reply_markup=keyboard)
    if reply.location is not None:
        await bot.send_location(chat_id, latitude=reply.location[0], longitude=reply.location[1])
    for photo in reply.photos:
        await bot.send_photo(chat_id, photo)


def _seconds(exc: RetryAfter) -> float:
    """`retry_after` in seconds: a timedelta with PTB_TIMEDELTA=1 (as `warga` runs), or an int."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        retry = exc.retry_after
    return retry.total_seconds() if isinstance(retry, timedelta) else float(retry)


class TelegramSender:
    """Deliver outbox messages through the bot, mapping Telegram's errors to retry or give up."""

    def __init__(self, bot: Any, responses: Responses) -> None:
        self.bot, self.responses = bot, responses

    async def send(self, chat_id: str, message: Outgoing) -> None:
        try:
            await render(self.bot, int(chat_id), message, self.responses)
        except RetryAfter as exc:
            raise DeliveryError(str(exc), retry_after=_seconds(exc)) from exc
        except Forbidden as exc:  # the resident blocked the bot
            raise DeliveryError(str(exc), blocked=True) from exc
        except BadRequest as exc:  # chat not found, and the like: retrying cannot help
            raise DeliveryError(str(exc), permanent=True) from exc
        except (NetworkError, TelegramError) as exc:
            raise DeliveryError(str(exc)) from exc


@contextlib.asynccontextmanager
async def bot_sender(
    token: str, responses: Responses, *, api_url: str | None = None
) -> AsyncIterator[TelegramSender]:
    """A sender on its own Bot, for delivery workers outside the bot's process."""
    async with Bot(token, **_api_urls(api_url or "https://api.telegram.org")) as bot:
        yield TelegramSender(bot, responses)


def _api_urls(api_url: str) -> dict[str, str]:
    """PTB's base URLs for a Bot API server's root (Telegram's, or a local one)."""
    base = api_url.rstrip("/")
    return {"base_url": f"{base}/bot", "base_file_url": f"{base}/file/bot"}


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
        urls = _api_urls(api_url)
        builder = builder.base_url(urls["base_url"]).base_file_url(urls["base_file_url"])
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
            senders = {CHANNEL: TelegramSender(app.bot, responses)}
            dispatcher = Dispatcher(assistant.sessions, responses, senders, clock=assistant.clock)
            background.append(
                asyncio.create_task(deliver_forever(assistant, dispatcher, dispatch_interval))
            )
            broadcaster = Broadcaster(
                assistant.sessions, responses, senders, clock=assistant.clock
            )
            background.append(asyncio.create_task(broadcast_forever(broadcaster)))
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
