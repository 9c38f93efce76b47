"""Telegram (python-telegram-bot 22 as the Bot API client): updates in, messages out.

The only module that imports `telegram`. An update, by webhook or long polling, is checked
against the shape Telegram documents (strict types, bounded numbers; strings cleaned and cut
to Telegram's limits), stored in the inbox, and only then acknowledged. Inbox workers turn
the stored update into an `Incoming` for the conversation (`TelegramInbox`); the dispatcher
sends what it answered (`TelegramSender`), splitting what is longer than Telegram takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import logging
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.request import BaseRequest, HTTPXRequest
from telegram.warnings import PTBDeprecationWarning, PTBUserWarning

from actions import inbox
from actions.inbox import NewUpdate, StoredUpdate
from actions.models import utcnow
from actions.text import NAME_LIMIT, clean
from bot.conversation import Assistant
from bot.dispatcher import IN_FLIGHT, TELEGRAM_PACE, DeliveryError
from bot.edge import Ingest, Refused, checked_json, parse_json, read_body, refusal_logged
from bot.inbox import Handled, answer, apologise
from bot.messages import Incoming, Outgoing, split_text, utf16_len
from bot.responses import Responses

log = logging.getLogger(__name__)

CHANNEL = "telegram"
COMMANDS = ("start", "lapor", "status", "ikuti", "langganan", "berhenti", "batal", "bantuan")
WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
ALLOWED_UPDATES = ["message", "callback_query"]  # all the bot handles
TEXT_LIMIT = 4096  # UTF-16 code units of a message, after entity parsing
CAPTION_LIMIT = 1024
POLL_TIMEOUT = 30  # seconds a getUpdates call may wait for an update
RETRY_MAX = 60.0  # seconds between tries to reach the Bot API, at most


# -- the shape of an update (only what the bot reads; the rest is dropped) -------------------


def _cut(limit: int) -> BeforeValidator:
    """Clean a string and cut it to `limit`; anything that is not a string stays as it is and
    fails the strict check after."""
    return BeforeValidator(lambda v: clean(v, limit) if isinstance(v, str) else v)


Id = Annotated[int, Field(ge=-(2**63), lt=2**63)]
UnixTime = Annotated[int, Field(ge=0, lt=2**33)]
Name = Annotated[str, _cut(NAME_LIMIT)]


class _Shape(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, populate_by_name=True)


class TgUser(_Shape):
    id: Id
    is_bot: bool
    first_name: Name
    last_name: Name | None = None
    language_code: Annotated[str, _cut(35)] | None = None

    @property
    def full_name(self) -> str:
        return clean(" ".join(p for p in (self.first_name, self.last_name) if p), NAME_LIMIT)


class TgChat(_Shape):
    id: Id
    type: Literal["private", "group", "supergroup", "channel", "sender"]


class TgLocation(_Shape):
    latitude: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
    longitude: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]


class TgPhotoSize(_Shape):
    file_id: Annotated[str, _cut(255), Field(min_length=1)]


class TgMessage(_Shape):
    message_id: Id
    date: UnixTime
    chat: TgChat
    from_: TgUser | None = Field(default=None, alias="from")
    text: Annotated[str, _cut(TEXT_LIMIT)] | None = None
    caption: Annotated[str, _cut(CAPTION_LIMIT)] | None = None
    location: TgLocation | None = None
    photo: Annotated[list[TgPhotoSize], Field(max_length=20)] | None = None


class TgCallbackMessage(_Shape):
    """The message a button was under (Telegram may give only its id and chat)."""

    message_id: Id
    chat: TgChat


class TgCallbackQuery(_Shape):
    id: Annotated[str, _cut(64)]
    from_: TgUser = Field(alias="from")
    message: TgCallbackMessage | None = None
    data: Annotated[str, _cut(256)] | None = None


class TgUpdate(_Shape):
    update_id: Annotated[int, Field(ge=0, lt=2**53)]
    message: TgMessage | None = None
    callback_query: TgCallbackQuery | None = None

    @property
    def user(self) -> TgUser | None:
        if self.callback_query is not None:
            return self.callback_query.from_
        return self.message.from_ if self.message is not None else None


def parse_update(data: Any) -> NewUpdate | None:
    """Check a Telegram update; return what to store, or None for an update the bot has no
    business with (an edit, a group, another bot, a sticker …). Refused (400) when it is not
    an update Telegram could have sent."""
    if not isinstance(data, dict):
        raise Refused(400, "not a JSON object")
    try:
        update = TgUpdate.model_validate(data)
    except ValidationError as exc:
        where = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors()[:3])
        raise Refused(400, f"not a Telegram update ({where})") from None
    if incoming_from(update) is None:
        return None
    user = update.user
    assert user is not None  # noqa: S101 - incoming_from refused updates without one
    payload = update.model_dump(mode="json", by_alias=True, exclude_none=True)
    return NewUpdate(str(update.update_id), str(user.id), payload)


def incoming_from(update: TgUpdate) -> Incoming | None:
    """Translate a checked update into an Incoming; None for what residents do not send."""
    user = update.user
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
    if msg is None or msg.chat.type != "private":
        return None
    location = (msg.location.latitude, msg.location.longitude) if msg.location else None
    photo = msg.photo[-1].file_id if msg.photo else None
    text = msg.text or msg.caption or ""
    if not (text or location or photo):
        return None
    return Incoming(**base, text=text, location=location, photo=photo)


# -- sending ---------------------------------------------------------------------------------


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
    """Send one reply; a text longer than a message (or a caption) takes several messages,
    the buttons under the last."""
    keyboard = markup(reply, responses)
    if reply.title:
        visible = utf16_len(reply.title) + 1 + utf16_len(reply.text)
        if reply.photos and visible <= CAPTION_LIMIT:
            await bot.send_photo(
                chat_id,
                reply.photos[0],
                caption=announcement_html(reply),
                parse_mode="HTML",
                reply_markup=keyboard,
            )
            return
        if reply.photos:
            await bot.send_photo(chat_id, reply.photos[0])
        pieces = split_text(reply.text, TEXT_LIMIT - utf16_len(reply.title) - 1)
        bodies = [announcement_html(Outgoing(pieces[0], title=reply.title))]
        bodies += [html.escape(p) for p in pieces[1:]]
        for i, body in enumerate(bodies):
            last = i == len(bodies) - 1
            await bot.send_message(
                chat_id, body, parse_mode="HTML", reply_markup=keyboard if last else None
            )
        return
    pieces = split_text(reply.text, TEXT_LIMIT)
    for piece in pieces[:-1]:
        await bot.send_message(chat_id, piece)
    await bot.send_message(chat_id, pieces[-1], reply_markup=keyboard)
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


def make_bot(
    token: str,
    *,
    api_url: str | None = None,
    request: BaseRequest | None = None,
    get_updates_request: BaseRequest | None = None,
    connections: int = IN_FLIGHT + 4,
) -> Bot:
    """A Bot API client with room for the dispatcher's concurrent sends."""
    return Bot(
        token,
        **_api_urls(api_url or "https://api.telegram.org"),
        request=request or HTTPXRequest(connection_pool_size=connections),
        get_updates_request=get_updates_request or HTTPXRequest(read_timeout=POLL_TIMEOUT + 10.0),
    )


@contextlib.asynccontextmanager
async def bot_sender(
    token: str, responses: Responses, *, api_url: str | None = None
) -> AsyncIterator[TelegramSender]:
    """A sender on its own Bot, for delivery workers outside the bot's process."""
    async with make_bot(token, api_url=api_url) as bot:
        yield TelegramSender(bot, responses)


def _api_urls(api_url: str) -> dict[str, str]:
    """PTB's base URLs for a Bot API server's root (Telegram's, or a local one)."""
    base = api_url.rstrip("/")
    return {"base_url": f"{base}/bot", "base_file_url": f"{base}/file/bot"}


# -- handling stored updates -----------------------------------------------------------------


class TelegramInbox:
    """Handle a stored update: the conversation's turn, its replies into the outbox."""

    def __init__(self, assistant: Assistant, bot: Bot) -> None:
        self.assistant, self.bot = assistant, bot

    def handle(self, session: Session, stored: StoredUpdate) -> Handled:
        update = TgUpdate.model_validate(stored.payload)
        incoming = incoming_from(update)
        if incoming is None:
            return Handled()
        replied = answer(self.assistant, session, incoming)
        query = update.callback_query
        after = self._spend_buttons(query) if query is not None else None
        return Handled(replied=replied, after=after)

    def apologise(self, session: Session, stored: StoredUpdate) -> bool:
        incoming = incoming_from(TgUpdate.model_validate(stored.payload))
        if incoming is None:
            return False
        apologise(self.assistant, session, incoming)
        return True

    def _spend_buttons(self, query: TgCallbackQuery) -> Callable[[], Awaitable[None]]:
        """Stop the button's spinner and take the tapped keyboard away (best effort)."""

        async def after() -> None:
            await self.bot.answer_callback_query(query.id)
            if query.message is not None:
                with contextlib.suppress(TelegramError):  # already gone, or too old
                    await self.bot.edit_message_reply_markup(
                        chat_id=query.message.chat.id,
                        message_id=query.message.message_id,
                        reply_markup=None,
                    )

        return after


# -- the channel: webhook or long polling, and getting the Bot API ready ----------------------


@dataclass
class ApiState:
    """How the Bot API answered us at start (for /readyz)."""

    ready: bool = False
    error: str = ""
    since: float = 0.0


class TelegramChannel:
    """Telegram for `warga serve` (webhook) and `warga run` (long polling).

    `start()` gets the Bot API ready in the background (commands, the webhook), trying again
    until it answers: updates are stored meanwhile, and nothing else waits for it.
    """

    name = CHANNEL
    pace = TELEGRAM_PACE

    def __init__(
        self,
        assistant: Assistant,
        *,
        token: str,
        api_url: str | None = None,
        secret: str | None = None,
        public_url: str | None = None,
        polling: bool = False,
        poll_interval: float = 0.0,
        request: BaseRequest | None = None,
        get_updates_request: BaseRequest | None = None,
    ) -> None:
        if not polling and not secret:
            raise ValueError("TELEGRAM_WEBHOOK_SECRET must be set to serve the Telegram webhook")
        self.assistant, self.secret, self.public_url = assistant, secret, public_url
        self.polling, self.poll_interval = polling, poll_interval
        self.bot = make_bot(
            token, api_url=api_url, request=request, get_updates_request=get_updates_request
        )
        self.sender = TelegramSender(self.bot, assistant.responses)
        self.handler = TelegramInbox(assistant, self.bot)
        self.api = ApiState()
        self.on_stored: Callable[[], None] = lambda: None
        self.ingest = Ingest(self.store)
        self.poll_heartbeat = time.monotonic()
        self._tasks: list[asyncio.Task[None]] = []

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._prepare()))
        if self.polling:
            self._tasks.append(asyncio.create_task(self._poll()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.bot.shutdown()

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"api": "ok" if self.api.ready else f"not ready: {self.api.error}"}
        if self.polling:
            out["polling_seconds_ago"] = round(time.monotonic() - self.poll_heartbeat, 1)
        return out

    def alive(self, within: float) -> bool:
        if any(task.done() and not task.cancelled() and task.exception() for task in self._tasks):
            return False
        return not self.polling or time.monotonic() - self.poll_heartbeat < within

    async def _prepare(self) -> None:
        """getMe, the commands, the webhook (or none, for polling): again until it works."""
        wait = 1.0
        while True:
            try:
                await self.bot.initialize()
                await self._register_commands()
                if self.polling:
                    await self.bot.delete_webhook()
                elif self.public_url:
                    await self.bot.set_webhook(
                        url=self.public_url.rstrip("/") + WEBHOOK_PATH,
                        secret_token=self.secret,
                        allowed_updates=ALLOWED_UPDATES,
                    )
            except (TelegramError, OSError) as exc:
                self.api.error = f"{type(exc).__name__}: {exc}"
                log.warning("Telegram Bot API not ready (%s); trying again in %.0f s", exc, wait)
                await asyncio.sleep(wait)
                wait = min(wait * 2, RETRY_MAX)
                continue
            self.api = ApiState(ready=True, since=time.monotonic())
            log.info("Telegram Bot API ready as @%s", self.bot.username)
            return

    async def _register_commands(self) -> None:
        responses = self.assistant.responses
        for lang in responses.languages():
            commands = [BotCommand(c, responses.get(lang, f"commands.{c}")) for c in COMMANDS]
            await self.bot.set_my_commands(commands, language_code=None if lang == "id" else lang)

    # -- updates in ----------------------------------------------------------------------------

    def store(self, updates: list[NewUpdate]) -> int:
        """Store checked updates in one transaction; return how many were new."""
        with self.assistant.sessions.begin() as session:
            return inbox.put(session, channel=CHANNEL, updates=updates, now=utcnow())

    def routes(self) -> list[Route]:
        return [Route(WEBHOOK_PATH, self.receive, methods=["POST"])] if self.secret else []

    async def receive(self, request: Request) -> Response:
        """Check the secret, then the update; store it; only then answer 200."""
        given = request.headers.get(SECRET_HEADER, "")
        expected = (self.secret or "").encode()
        if not hmac.compare_digest(given.encode("utf-8", "replace"), expected):
            return Response(status_code=403)
        body = b""
        try:
            body = await read_body(request)
            new = parse_update(parse_json(body))
        except Refused as exc:
            refusal_logged(CHANNEL, len(body), exc)
            return JSONResponse({"error": exc.reason}, status_code=exc.status)
        if new is None:
            return Response(status_code=200)
        try:
            await self.ingest.put([new])
        except Exception:  # noqa: BLE001 - Telegram tries again later: nothing is lost
            log.exception("telegram: update %s not stored; Telegram will retry", new.update_id)
            return JSONResponse({"error": "not stored, try again"}, status_code=503)
        self.on_stored()
        return Response(status_code=200)

    async def _poll(self) -> None:
        """Long polling: an offset is confirmed only after the updates before it are stored."""
        offset: int | None = None
        wait = 1.0
        while True:
            self.poll_heartbeat = time.monotonic()
            try:
                raw = await self._get_updates(offset)
                if not isinstance(raw, list):
                    raise TelegramError(f"getUpdates gave {type(raw).__name__}")
                new, last = _checked(raw)
                if new:
                    await asyncio.to_thread(self.store, new)
                    self.on_stored()
            except Conflict:  # a webhook is set: polling takes over
                await self._drop_webhook()
                continue
            except Exception as exc:  # noqa: BLE001 - the Bot API or the store: try again
                log.warning("telegram polling: %s; trying again in %.0f s", exc, wait)
                await asyncio.sleep(wait)
                wait = min(wait * 2, RETRY_MAX)
                continue
            wait = 1.0
            if last is not None:
                offset = last + 1
            if not raw and self.poll_interval:
                await asyncio.sleep(self.poll_interval)

    async def _get_updates(self, offset: int | None) -> Any:
        with warnings.catch_warnings():  # the raw answer, not PTB's objects: we check it
            warnings.simplefilter("ignore", PTBUserWarning)
            return await self.bot.do_api_request(
                "getUpdates",
                api_kwargs={
                    "offset": offset,
                    "timeout": POLL_TIMEOUT,
                    "allowed_updates": ALLOWED_UPDATES,
                },
                read_timeout=POLL_TIMEOUT + 10.0,
            )

    async def _drop_webhook(self) -> None:
        with contextlib.suppress(TelegramError):
            await self.bot.delete_webhook()


def _checked(raw: list[Any]) -> tuple[list[NewUpdate], int | None]:
    """The updates of a getUpdates answer worth storing, and the last update id seen."""
    new: list[NewUpdate] = []
    last: int | None = None
    for item in raw:
        uid = item.get("update_id") if isinstance(item, dict) else None
        if isinstance(uid, int) and not isinstance(uid, bool):
            last = uid if last is None else max(last, uid)
        try:
            checked = parse_update(checked_json(item))
        except Refused as exc:
            log.warning("telegram polling: update %s refused: %s", uid, exc)
            continue
        if checked is not None:
            new.append(checked)
    return new, last
