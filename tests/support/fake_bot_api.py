"""A local fake Telegram Bot API with Telegram's flood limits, errors and updates.

The npm emulator used by the conversation tests (``telegram_emulator.py``) never refuses a
message. This server does what the Bot API documents, and what its open-source server
(tdlib's telegram-bot-api) does where the documentation is silent, for every call a running
python-telegram-bot makes, so the whole bot can run against it as a process.

Methods at ``/bot<token>/<method>`` (GET or POST; JSON, urlencoded or multipart bodies as
python-telegram-bot sends them; method names are case-insensitive as on Telegram; a wrong
token answers 401, any other method 404):

* ``sendMessage``, ``sendPhoto``, ``sendLocation``: the messages, under the flood limits below.
  Text over 4,096 characters and captions over 1,024 answer 400 "message is too long" /
  "message caption is too long", counted after HTML tags are parsed away, as Telegram counts.
  ``parse_mode="HTML"`` is checked for the tags Telegram supports and balanced nesting (400
  "can't parse entities"); the returned Message carries the text without tags (and no entities).
  Markdown is not checked. A Message has ``reply_markup`` only for an inline keyboard (a reply
  keyboard is not part of a Message).
* ``getMe``; ``setMyCommands`` / ``deleteMyCommands`` / ``getMyCommands`` per scope and
  language (commands must be 1-32 of ``a-z0-9_``, descriptions 1-256 characters: 400
  BOT_COMMAND_INVALID / BOT_COMMAND_DESCRIPTION_INVALID otherwise).
* ``answerCallbackQuery``: the id of a callback query the fake delivered, once (400 "query is too
  old and response timeout expired or query ID is invalid" for any other, or a second answer).
* ``editMessageText`` / ``editMessageReplyMarkup``: a message the bot sent, by ``chat_id`` and
  ``message_id`` (the edited Message comes back), or by ``inline_message_id`` (``true``). 400
  "message to edit not found" for an unknown one, "message can't be edited" for a user's, "there
  is no text in the message to edit", "message is not modified: ..." when text and inline
  keyboard stay the same; an edit without ``reply_markup`` removes the inline keyboard.
* ``sendChatAction`` (400 "wrong parameter action in request" for an unknown action).
* ``getFile`` for a file id the fake knows (from a pushed update or a photo the bot sent): a
  ``file_path`` whose bytes ``GET /file/bot<token>/<file_path>`` serves; 400 "invalid file_id"
  otherwise.
* ``getUpdates``, ``setWebhook``, ``deleteWebhook``, ``getWebhookInfo``: see "Updates".

Flood limits (token buckets), on the three sending methods only: ``rate`` messages/s for the
whole bot (capacity ``rate``), ``chat_rate`` (1/s) per private chat with a burst of
``chat_burst`` (3), ``group_per_minute`` (20) per group (negative chat id) with a burst of
``group_burst`` (20). Telegram tolerates "short bursts" in a private chat without saying how
long; 3 lets a bot answer with a text, a location and a photo at once while any sustained pace
above 1/s is refused within a few seconds. A group's 20 per minute may be spent at once, then
refills at one every 3 s. Edits, callback answers, chat actions and the set/get/delete methods
take no token (Telegram documents limits for messages only; it does throttle heavy editing,
undocumented, which this fake does not). ``setWebhook`` with a URL is accepted once a second
(429 "retry after 1" otherwise), as Telegram's server does.

* Over a limit: HTTP 429, ``retry_after`` = seconds until a token is free, rounded up, at least
  1, and the bucket that refused keeps refusing until that time has passed (Telegram penalises
  a client that keeps hammering; a request before then gets 429 with the time remaining).
  Refused messages are not recorded; the 429s are counted by bucket (``bot``, ``chat``,
  ``group``, ``setWebhook``) and by chat.
* ``scale`` runs the same limits ``scale`` times faster: every rate is multiplied by it, burst
  capacities stay as they are, and ``retry_after`` counts scaled seconds (a sender run against
  ``scale=10`` that gets ``retry_after=1`` only has to wait 0.1 s, and the penalty lasts that).
  The server's own waits shrink the same way: the webhook's retry delays, the 1 s between
  setWebhook calls and the 3 s / 0.5 s of the getUpdates rules below. A bot's own ``timeout``
  for a long poll, and how long updates are kept, are real seconds.
* ``blocked`` chats answer 403 (after taking a token: the attempt counts against the limits),
  ``unknown`` chats 400 "chat not found" (before the limits), as do chat ids that are not
  integers (Telegram would resolve ``@channelname``; this fake does not). ``fail_every`` (every
  n-th send) and ``fail_chats`` ({chat: how many of its first sends}) answer ``fail_status``
  (502 "Bad Gateway"), before anything else happens, for retry tests.

Every accepted message is recorded as a :class:`Sent` with the time of ``clock``
(``time.monotonic()``, comparable across processes on Linux; tests may pass a clock they
move by hand, to send a burst "at once" whatever the load of the machine).

Updates. A test pushes what users do (``FakeBotApi.push`` or ``POST /_fake/updates``, one update
or a list, built with ``tests.support.fake_bot_updates``, without ``update_id``): the fake
numbers them 1, 2, 3... (the numbering goes on across ``reset``), gives a message without
``message_id`` the next one of the counter the bot's messages use, replaces a callback query's
``message`` by the bot's message as it stands, and registers file ids for ``getFile``. An update
of a type the bot's ``allowed_updates`` excludes is not created (its id is ``null``; Telegram
filters when an update is made, so a change applies to later updates only; by default
everything but chat_member and the reactions). Callback queries are kept 150 s, other updates
a day, then dropped unseen ("expired"), as on Telegram. The bot receives them either way:

* ``getUpdates`` (``offset``, ``limit`` 1-100 default 100, ``timeout`` 0-50 s,
  ``allowed_updates``): the oldest unconfirmed updates from ``offset``; an update is confirmed
  (forgotten) once a call passes an ``offset`` above its id, and returned again until then; a
  negative offset keeps only the last ``-offset``. With ``timeout`` and nothing to return, the
  request is held until an update arrives (then 1 ms more, to take what comes with it) or the
  timeout passes. As Telegram's server does: a new getUpdates ends a held one with 409
  "Conflict: terminated by other getUpdates request; make sure that only one bot instance is
  running" (so two pollers of one token keep failing), setWebhook ends it with 409 "Conflict:
  terminated by setWebhook request", getUpdates while a webhook is set answers 409 "Conflict:
  can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook
  first"; at most one 409 goes out every 3 s, the others are answered 3 s later; a call with
  the same offset as one started less than 3 s before waits at least 3 s for updates, and less
  than 0.5 s before gets at most one (so PTB's last getUpdates when it stops polling is held
  3 s, as on Telegram).
* ``setWebhook`` (``url``, ``secret_token``, ``max_connections`` 1-100 default 40,
  ``allowed_updates``, ``drop_pending_updates``, ``ip_address``; ``http://`` and any port are
  accepted, Telegram wants HTTPS on 443, 80, 88 or 8443): the fake POSTs every update to the
  URL as JSON, with ``X-Telegram-Bot-Api-Secret-Token`` when a secret was set, one request per
  update. As Telegram's server does, updates of one chat (messages; a user's callback queries
  form a queue of their own) go one at a time in update order: the next only after the one
  before was answered 2xx, while other chats' go in parallel, oldest first, with at most
  ``max_connections`` requests in flight. A 2xx confirms an update. Anything else (another
  status, a connection error, no answer within ``webhook_timeout``) sends it again: at once
  after the first failure, then after 2, 4, 8... s up to 60 s (Telegram: 60-120 s, at random),
  or after the answer's ``Retry-After`` (at most 3600 s); the chat's later updates wait
  behind it; it is dropped (state ``dropped``) only when its next try would come after it
  expires. ``getWebhookInfo`` reports the URL, pending
  count, ``max_connections``, ``allowed_updates`` and the last error. A method in the body of
  the webhook's answer is not executed (Telegram would). ``deleteWebhook`` stops delivery
  (requests in flight are abandoned, their updates stay pending).

Inspection on the same server, outside ``/bot``:

* ``GET /_fake/messages[?since=<index>][&chat_id=<id>][&wait=<seconds>]``: the accepted messages
  (each with its ``index``), ``wait`` holds the request until one matches;
* ``GET /_fake/updates[?since=<update_id>]``: one record per update (:class:`UpdateRecord`:
  queued, first sent, acknowledged, attempts, last error, state);
* ``GET /_fake/calls[?method=<name>][&since=<index>]``: the other calls the bot made (edits,
  callback answers, chat actions, commands, webhook settings) with their parameters and status;
  ``getUpdates`` and the sends are only counted (``stats()["calls"]``);
* ``GET /_fake/webhook``: the webhook as set, with its secret;
* ``GET /_fake/stats``: accepted messages (in all and per chat), refusals by status, 429s by
  bucket and by chat, duplicates, rate, calls per method, updates by state, ``conflicts``
  (409s a client received) and ``abandoned_polls`` (held polls whose client had gone, as PTB's
  when it stops polling: Telegram's 409 to those reaches nobody);
* ``POST /_fake/updates`` (push), ``POST /_fake/blocked`` (JSON list of chat ids to add),
  ``POST /_fake/reset`` (forgets messages, updates and their records, calls, counters, buckets
  and penalties, files and callback queries; keeps the configuration, the blocked chats, the
  webhook, the commands and the update numbering).

The same from Python on ``FakeBotApi``: ``push(*updates)``, ``messages``,
``messages_to(chat_id)``, ``bot_message(chat_id, message_id)`` (as edited), ``updates``,
``calls(method)``, ``webhook``, ``commands(scope, language_code)``, ``refused``, ``stats()``,
``block(chat_ids)``, ``reset()``.

In-process::

    with running(rate=30, scale=10, blocked={42}) as fake:
        bot = telegram.Bot(fake.token, base_url=f"{fake.url}/bot")
        ...
        fake.state.push(text_update(7, "/start"))
        fake.state.stats()

As a process (prints ``READY http://127.0.0.1:PORT`` once it accepts connections, serves until
SIGTERM/SIGINT)::

    python -m tests.support.fake_bot_api --port 0 --rate 30 --scale 1 --token 123:ABC

Throughput, measured on the 2-core Xeon while other test runs kept its load at 3.5-4, limits
out of the way with ``scale=1000``, server as a process: 1,100-1,370 sendMessage/s from 8
keep-alive connections of a minimal asyncio client, 0.45-0.57 ms of server CPU per request.
python-telegram-bot's ``Bot.send_message`` (16 concurrent) reaches 80-190 messages/s against it,
in-process or not: PTB's client is the bottleneck, far above Telegram's 30/s. Webhook delivery
of 2,000 updates from 200 chats to a minimal Starlette receiver: 1.7 s, 0.7 ms of server CPU
per update; 2,000 through getUpdates: 0.2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import email.parser
import email.policy
import itertools
import json
import math
import re
import signal
import socket
import ssl
import threading
import time
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from html import unescape
from html.parser import HTMLParser
from http import HTTPStatus
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.fake_bot_updates import (
    DEFAULT_ALLOWED,
    UPDATE_TYPES,
    chat_instance,
    update_type,
)

JSONDict = dict[str, Any]

DEFAULT_TOKEN = "123456789:FAKE-broadcast-token"  # noqa: S105 - made up, for tests
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
MAX_TEXT = 4096
MAX_CAPTION = 1024
_HTML_TAGS = frozenset(
    {
        "a",
        "b",
        "blockquote",
        "code",
        "del",
        "em",
        "i",
        "ins",
        "pre",
        "s",
        "span",
        "strike",
        "strong",
        "tg-emoji",
        "tg-spoiler",
        "u",
    }
)
_PARSE_MODES = frozenset({"html", "markdown", "markdownv2"})
_CHAT_ACTIONS = frozenset(
    {
        "cancel",
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "record_audio",
        "upload_voice",
        "upload_audio",
        "upload_document",
        "choose_sticker",
        "find_location",
        "pick_up_location",
        "record_video_note",
        "upload_video_note",
    }
)
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")
_SECRET = re.compile(r"[A-Za-z0-9_-]*")
_MESSAGE_KINDS = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_message",
        "edited_business_message",
    }
)
# Telegram's server: the canonical names of the methods this fake answers
_METHODS = {
    name.lower(): name
    for name in (
        "getMe",
        "sendMessage",
        "sendPhoto",
        "sendLocation",
        "sendChatAction",
        "setMyCommands",
        "deleteMyCommands",
        "getMyCommands",
        "answerCallbackQuery",
        "editMessageText",
        "editMessageReplyMarkup",
        "getFile",
        "getUpdates",
        "setWebhook",
        "deleteWebhook",
        "getWebhookInfo",
    )
}
_SENDS = frozenset({"sendMessage", "sendPhoto", "sendLocation"})
_UNLOGGED = _SENDS | {"getUpdates", "getMe"}
# JSON-serialized parameters (PTB sends every non-string value as JSON text)
_JSON_PARAMS = {
    "reply_markup": "Bad Request: can't parse reply keyboard markup JSON object",
    "commands": "Bad Request: can't parse commands JSON object",
    "scope": "Bad Request: can't parse BotCommandScope JSON object",
    "allowed_updates": None,  # unparsable: ignored, as Telegram does
}
# Telegram's server, in its own seconds (divided by ``scale``)
LONG_POLL_MAX_TIMEOUT = 50
CONFLICT_INTERVAL = 3.0
SAME_OFFSET_HOLD = 3.0
SAME_OFFSET_ONE = 0.5
SET_WEBHOOK_INTERVAL = 1.0
WEBHOOK_MAX_RESEND = 60
WEBHOOK_MAX_RETRY_AFTER = 3600
CALLBACK_QUERY_TTL = 150
UPDATE_TTL = 86400


@dataclass(frozen=True)
class Upload:
    """A file sent in the request body (multipart) rather than by file_id or URL."""

    filename: str
    mime_type: str
    size: int


class Sent(NamedTuple):
    """One accepted message. ``text`` is the caption for photos; ``photo`` a file_id/URL or an
    :class:`Upload`; ``reply_markup`` parsed JSON; ``location`` (latitude, longitude)."""

    at: float
    chat_id: int
    method: str
    text: str | None
    parse_mode: str | None
    reply_markup: Any
    photo: str | Upload | None
    message_id: int
    location: tuple[float, float] | None = None

    def as_json(self) -> JSONDict:
        out = self._asdict()
        if isinstance(self.photo, Upload):
            out["photo"] = asdict(self.photo)
        return out


class Call(NamedTuple):
    """A call of a method other than the sends and getUpdates, with the status it got."""

    at: float
    method: str
    params: JSONDict
    status: int
    description: str | None

    def as_json(self) -> JSONDict:
        return {**self._asdict(), "params": _jsonable(self.params)}


@dataclass
class UpdateRecord:
    """What became of one pushed update. Times are ``clock`` times.

    ``state``: ``pending``, ``confirmed`` (by a getUpdates offset or a 2xx from the webhook),
    ``dropped`` (drop_pending_updates, a negative offset, or a webhook retry past its expiry)
    or ``expired`` (kept too long unseen). ``attempts`` counts the webhook requests, or the
    getUpdates answers that carried it; ``via`` is the way of the last attempt.
    """

    update_id: int
    kind: str
    chat_id: int | None
    queued_at: float
    state: str = "pending"
    attempts: int = 0
    first_sent_at: float | None = None
    acked_at: float | None = None
    via: str | None = None
    last_error: str | None = None


@dataclass(eq=False)
class _Pending:
    update: JSONDict
    key: tuple[str, int]
    expires: float  # time.monotonic()
    wakeup: float = 0.0  # webhook: not before (time.monotonic())
    delay: int = 1  # webhook: Telegram's next back-off, in its seconds
    fails: int = 0
    in_flight: bool = False

    @property
    def update_id(self) -> int:
        return int(self.update["update_id"])


@dataclass(frozen=True)
class _Webhook:
    url: str
    secret_token: str
    max_connections: int
    ip_address: str
    has_custom_certificate: bool


class _Answer(NamedTuple):
    """A successful result with Telegram's ``description`` (the webhook methods have one)."""

    result: Any
    description: str


class ApiError(Exception):
    """A Bot API error answer: HTTP ``status`` and Telegram's ``description``."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status, self.description, self.retry_after = status, description, retry_after

    def response(self) -> Response:
        body: JSONDict = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return _json(body, self.status)


class TokenBucket:
    """``capacity`` tokens refilled at ``rate`` per second; refuses until ``blocked_until``."""

    __slots__ = ("rate", "capacity", "tokens", "stamp", "blocked_until")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate, self.capacity = rate, capacity
        self.tokens, self.stamp, self.blocked_until = capacity, now, 0.0

    def wait(self, now: float) -> float:
        """Seconds until a token can be taken (0: now)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        need = 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate
        return max(need, self.blocked_until - now)


class _Signal:
    """Wakes coroutines waiting in any event loop, from any thread.

    Listen first, then look at the state, then wait: a change between the look and the wait
    still wakes the waiter.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def listen(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.add(entry)
        return entry

    def forget(self, entry: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._lock:
            self._waiters.discard(entry)

    def notify(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(event.set)


async def _wait(entry: tuple[asyncio.AbstractEventLoop, asyncio.Event], seconds: float | None):
    """Until the signal or ``seconds`` (None: no limit) have passed."""
    if seconds is not None and seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await entry[1].wait()


class FakeBotApi:
    """State and Starlette app of one fake bot; every update happens under ``self._lock``."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        rate: float = 30.0,
        scale: float = 1.0,
        chat_rate: float = 1.0,
        chat_burst: float = 3,
        group_per_minute: float = 20,
        group_burst: float = 20,
        blocked: Iterable[int] = (),
        unknown: Iterable[int] = (),
        fail_every: int = 0,
        fail_chats: Mapping[int, int] | None = None,
        fail_status: int = HTTPStatus.BAD_GATEWAY,
        webhook_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if min(rate, scale, chat_rate, chat_burst, group_per_minute, group_burst) <= 0:
            raise ValueError("rates, bursts and scale must be positive")
        self.token, self.scale, self.clock = token, scale, clock
        self._overall_rate, self._overall_burst = rate * scale, rate
        self._chat_limit = (chat_rate * scale, chat_burst)
        self._group_limit = (group_per_minute / 60 * scale, group_burst)
        self.blocked = set(blocked)
        self.unknown = set(unknown)
        self.fail_every, self.fail_status = fail_every, int(fail_status)
        self._fail_chats = dict(fail_chats or {})
        self.webhook_timeout = webhook_timeout
        bot_id = token.split(":", 1)[0]
        self.bot_user: JSONDict = {
            "id": int(bot_id) if bot_id.isdigit() else 1,
            "is_bot": True,
            "first_name": "Fake Broadcast Bot",
            "username": "fake_broadcast_bot",
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self._lock = threading.Lock()
        self._updates_changed = _Signal()
        self._messages_changed = _Signal()
        # the bot's settings: kept by reset()
        self._update_ids = itertools.count(1)
        self._allowed: frozenset[str] = DEFAULT_ALLOWED
        self._webhook: _Webhook | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._commands: dict[tuple[str, str], list[JSONDict]] = {}
        self._closing = False
        self._reset()
        self.app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._bot_api, methods=["GET", "POST"]),
                Route("/file/bot{token}/{path:path}", self._get_file_bytes),
                Route("/_fake/messages", self._get_messages),
                Route("/_fake/updates", self._get_updates_records, methods=["GET"]),
                Route("/_fake/updates", self._post_updates, methods=["POST"]),
                Route("/_fake/calls", self._get_calls),
                Route("/_fake/webhook", self._get_webhook),
                Route("/_fake/stats", self._get_stats),
                Route("/_fake/blocked", self._post_blocked, methods=["POST"]),
                Route("/_fake/reset", self._post_reset, methods=["POST"]),
            ]
        )

    # -- Python inspection API -----------------------------------------------------------------
    @property
    def messages(self) -> list[Sent]:
        """Every accepted message, oldest first (a copy)."""
        with self._lock:
            return list(self._sent)

    def messages_to(self, chat_id: int) -> list[Sent]:
        """The accepted messages to one chat, oldest first."""
        with self._lock:
            return [sent for sent in self._sent if sent.chat_id == chat_id]

    @property
    def refused(self) -> Counter[int]:
        """How many requests were answered with each error status (400, 403, 409, 429, 5xx...)."""
        with self._lock:
            return Counter(self._refused)

    @property
    def updates(self) -> list[UpdateRecord]:
        """One record per pushed update, by update_id (copies)."""
        with self._lock:
            return [copy.copy(record) for record in self._records.values()]

    def calls(self, method: str | None = None) -> list[Call]:
        """The logged calls (all but the sends and getUpdates), of one method if given."""
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    @property
    def webhook(self) -> JSONDict | None:
        """The webhook as set (with its secret and the allowed updates), or None."""
        with self._lock:
            if self._webhook is None:
                return None
            return {**asdict(self._webhook), "allowed_updates": sorted(self._allowed)}

    def commands(self, scope: Mapping[str, Any] | None = None, language_code: str = "") -> Any:
        """The commands set for a scope (default: BotCommandScopeDefault) and language."""
        with self._lock:
            return copy.deepcopy(self._commands.get((_scope_key(scope), language_code), []))

    def bot_message(self, chat_id: int, message_id: int) -> JSONDict | None:
        """A message the bot sent, as it stands now (after edits), or None."""
        with self._lock:
            found = self._bot_messages.get((chat_id, message_id))
            return copy.deepcopy(found) if found is not None else None

    def block(self, chat_ids: Iterable[int]) -> None:
        """From now on these chats answer 403 (the user blocked the bot)."""
        with self._lock:
            self.blocked.update(chat_ids)

    def reset(self) -> None:
        """Forget messages, updates, calls, counters, buckets and penalties (the configuration,
        the webhook, the commands and the update numbering stay)."""
        with self._lock:
            self._reset()
        self._updates_changed.notify()

    def push(self, *updates: Mapping[str, Any]) -> list[int | None]:
        """Queue updates from users (without ``update_id``); their ids, None for an update of a
        type the bot's allowed_updates excludes (Telegram does not create it)."""
        prepared = [copy.deepcopy(dict(update)) for update in updates]
        for update in prepared:
            if "update_id" in update:
                raise ValueError("the fake numbers updates: leave out update_id")
            update_type(update)
        ids: list[int | None] = []
        with self._lock:
            for update in prepared:
                ids.append(self._queue(update))
        self._updates_changed.notify()
        return ids

    def stats(self) -> JSONDict:
        """Accepted count per chat and in total, refusals, duplicates, first/last time, rate,
        429s by bucket and by chat, calls per method, updates by state."""
        with self._lock:
            first = self._sent[0].at if self._sent else None
            last = self._sent[-1].at if self._sent else None
            total = len(self._sent)
            states = Counter(record.state for record in self._records.values())
            return {
                "accepted": total,
                "per_chat": {str(chat): n for chat, n in self._per_chat.items()},
                "too_many_requests": self._refused[429],
                "too_many_requests_by_bucket": dict(self._limited_by_bucket),
                "too_many_requests_per_chat": {
                    str(chat): n for chat, n in self._limited_per_chat.items()
                },
                "forbidden": self._refused[403],
                "bad_request": self._refused[400],
                "conflicts": self._refused[409],
                "abandoned_polls": self._abandoned_polls,
                "server_errors": sum(n for code, n in self._refused.items() if code >= 500),
                "refused": {str(code): n for code, n in sorted(self._refused.items())},
                "duplicates": sorted(self._duplicates),
                "first_at": first,
                "last_at": last,
                # messages per second between the first and the last accepted one
                "rate": (total - 1) / (last - first) if total > 1 and last > first else None,
                "calls": dict(self._call_counts),
                "updates": {
                    "pushed": len(self._records),
                    "not_allowed": self._not_allowed,
                    **{s: states[s] for s in ("pending", "confirmed", "dropped", "expired")},
                },
            }

    def close(self) -> None:
        """Answer held long polls and stop webhook delivery (the server is stopping)."""
        with self._lock:
            self._closing = True
        self._updates_changed.notify()
        self._messages_changed.notify()

    # -- state (callers hold the lock) ---------------------------------------------------------
    def _reset(self) -> None:
        self._sent: list[Sent] = []
        self._per_chat: Counter[int] = Counter()
        self._seen: set[tuple[int, str | None, str]] = set()
        self._duplicates: set[int] = set()
        self._refused: Counter[int] = Counter()
        self._limited_by_bucket: Counter[str] = Counter()
        self._limited_per_chat: Counter[int] = Counter()
        self._call_counts: Counter[str] = Counter()
        self._calls: list[Call] = []
        self._overall = TokenBucket(self._overall_rate, self._overall_burst, self.clock())
        self._chats: dict[int, TokenBucket] = {}
        self._sends = 0
        self._fail_left = dict(self._fail_chats)
        self._message_ids = itertools.count(1)
        self._bot_messages: dict[tuple[int, int], JSONDict] = {}
        self._raw_texts: dict[tuple[int, int], str] = {}
        self._user_messages: set[tuple[int, int]] = set()
        self._files: dict[str, JSONDict] = {}
        self._file_paths: dict[str, str] = {}
        self._callback_queries: dict[str, bool] = {}  # id -> answered
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self._queues: dict[tuple[str, int], deque[int]] = {}
        self._records: dict[int, UpdateRecord] = {}
        self._not_allowed = 0
        self._abandoned_polls = 0
        self._webhook_error: tuple[int, str] | None = None
        self._poll_generation = 0
        self._prev_offset: int | None = None
        self._prev_poll_at = -math.inf
        self._next_conflict_at = -math.inf
        self._next_set_webhook_at = -math.inf

    def _take(self, chat_id: int, now: float) -> None:
        """Take a token from the bot's and the chat's bucket, or raise 429 taking none."""
        chat = self._chats.get(chat_id)
        if chat is None:
            rate, burst = self._group_limit if chat_id < 0 else self._chat_limit
            chat = self._chats[chat_id] = TokenBucket(rate, burst, now)
        buckets = (self._overall, chat)
        waits = [bucket.wait(now) for bucket in buckets]
        worst = max(waits)
        if worst <= 0:
            for bucket in buckets:
                bucket.tokens -= 1
            return
        # 1e-9: a wait of exactly 1.0 must not become 2 through float noise
        retry_after = max(1, math.ceil(worst * self.scale - 1e-9))
        until = now + retry_after / self.scale
        names = ("bot", "group" if chat_id < 0 else "chat")
        for bucket, wait, name in zip(buckets, waits, names, strict=True):
            if wait > 0:
                self._limited_by_bucket[name] += 1
                if bucket.blocked_until <= now:  # hammering does not extend a penalty
                    bucket.blocked_until = until
        self._limited_per_chat[chat_id] += 1
        raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after)

    def _check_chat(self, chat_id: int) -> None:
        if chat_id in self.unknown:
            raise ApiError(400, "Bad Request: chat not found")
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")

    def _deliver(
        self,
        method: str,
        chat_id: int,
        text: str | None,
        parse_mode: str | None,
        reply_markup: Any,
        photo: str | Upload | None,
        location: tuple[float, float] | None = None,
    ) -> Sent:
        with self._lock:
            self._sends += 1
            if self.fail_every and self._sends % self.fail_every == 0:
                raise ApiError(self.fail_status, HTTPStatus(self.fail_status).phrase)
            if self._fail_left.get(chat_id, 0) > 0:
                self._fail_left[chat_id] -= 1
                raise ApiError(self.fail_status, HTTPStatus(self.fail_status).phrase)
            if chat_id in self.unknown:
                raise ApiError(400, "Bad Request: chat not found")
            now = self.clock()
            self._take(chat_id, now)
            if chat_id in self.blocked:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            message_id = next(self._message_ids)
            sent = Sent(
                now, chat_id, method, text, parse_mode, reply_markup, photo, message_id, location
            )
            self._sent.append(sent)
            self._per_chat[chat_id] += 1
            content = (chat_id, text, repr(photo if location is None else location))
            if content in self._seen:
                self._duplicates.add(chat_id)
            self._seen.add(content)
            return sent

    def _register_files(self, obj: Any) -> None:
        """Remember every file (a dict with file_id and file_unique_id) inside ``obj``."""
        stack = [obj]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                if isinstance(item.get("file_id"), str) and "file_unique_id" in item:
                    known = self._files.setdefault(item["file_id"], {})
                    known.update(
                        {
                            k: item[k]
                            for k in ("file_id", "file_unique_id", "file_size")
                            if k in item
                        }
                    )
                    known.setdefault("_kind", "photos" if "width" in item else "documents")
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)

    def _queue(self, update: JSONDict) -> int | None:
        kind = update_type(update)
        if kind not in self._allowed:
            self._not_allowed += 1
            return None
        body = update[kind]
        chat_id: int | None = None
        if kind in _MESSAGE_KINDS and isinstance(body, dict):
            body.setdefault("message_id", next(self._message_ids))
            body.setdefault("date", int(time.time()))
            chat_id = (body.get("chat") or {}).get("id")
            if chat_id is not None:
                self._user_messages.add((chat_id, body["message_id"]))
        elif kind == "callback_query" and isinstance(body, dict):
            message = body.get("message")
            if isinstance(message, dict):
                chat_id = (message.get("chat") or {}).get("id")
                known = self._bot_messages.get((chat_id, message.get("message_id")))  # type: ignore[arg-type]
                if known is not None:
                    body["message"] = copy.deepcopy(known)
                body.setdefault("chat_instance", chat_instance(chat_id or 0))
            body.setdefault("id", str(uuid.uuid4().int >> 66))
            self._callback_queries[str(body["id"])] = False
            if chat_id is None:
                chat_id = (body.get("from") or {}).get("id")
        self._register_files(body)
        update_id = next(self._update_ids)
        update = {"update_id": update_id, kind: body}
        if kind in _MESSAGE_KINDS and chat_id is not None:
            key = ("chat", int(chat_id))
        elif kind == "callback_query" and isinstance(body.get("from"), dict):
            key = ("callback_query", int(body["from"]["id"]))
        else:
            key = ("update", update_id)
        ttl = CALLBACK_QUERY_TTL if kind == "callback_query" else UPDATE_TTL
        now = time.monotonic()
        pending = _Pending(update, key, expires=now + ttl, wakeup=now)
        self._pending[update_id] = pending
        self._queues.setdefault(key, deque()).append(update_id)
        self._records[update_id] = UpdateRecord(update_id, kind, chat_id, self.clock())
        return update_id

    def _forget(self, pending: _Pending, state: str, error: str | None = None) -> None:
        """Take an update out of the queues, recording how it ended."""
        update_id = pending.update_id
        self._pending.pop(update_id, None)
        queue = self._queues.get(pending.key)
        if queue is not None:
            if queue and queue[0] == update_id:
                queue.popleft()
            else:
                with contextlib.suppress(ValueError):
                    queue.remove(update_id)
            if not queue:
                del self._queues[pending.key]
        record = self._records.get(update_id)
        if record is not None:
            record.state = state
            if state == "confirmed":
                record.acked_at = self.clock()
            if error is not None:
                record.last_error = error

    def _drop_pending(self) -> None:
        for pending in list(self._pending.values()):
            self._forget(pending, "dropped")

    def _set_allowed(self, params: JSONDict) -> None:
        """Apply ``allowed_updates`` as Telegram does: absent or unparsable changes nothing,
        a list with no known type means the default."""
        value = params.get("allowed_updates")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return
        chosen = frozenset(v.lower() for v in value) & frozenset(UPDATE_TYPES)
        self._allowed = chosen or DEFAULT_ALLOWED

    def _sent_record(self, update_id: int, via: str) -> None:
        record = self._records[update_id]
        record.attempts += 1
        record.via = via
        if record.first_sent_at is None:
            record.first_sent_at = self.clock()

    def _log(self, method: str, params: JSONDict, status: int, description: str | None) -> None:
        self._calls.append(Call(self.clock(), method, params, status, description))

    # -- Bot API -------------------------------------------------------------------------------
    async def _bot_api(self, request: Request) -> Response:
        method = "?"
        params: JSONDict = {}
        try:
            if request.path_params["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            found = _METHODS.get(request.path_params["method"].lower())
            if found is None:
                raise ApiError(404, "Not Found")
            method = found
            with self._lock:
                self._call_counts[method] += 1
            if method == "getMe":
                return _json({"ok": True, "result": self.bot_user})
            params = _decode_json_params(await _params(request))
            if method in _SENDS:
                result: Any = self._send(method, params)
            elif method == "getUpdates":
                result = await self._get_updates(params, request.is_disconnected)
            else:
                result = self._handlers[method](self, method, params)
            if method == "setWebhook" and self._webhook_task_due():
                self._start_webhook()
            body: JSONDict = {"ok": True, "result": result}
            if isinstance(result, _Answer):
                body = {"ok": True, "result": result.result, "description": result.description}
            if method not in _UNLOGGED:
                with self._lock:
                    self._log(method, params, 200, body.get("description"))
            return _json(body)
        except ApiError as exc:
            with self._lock:
                self._refused[exc.status] += 1
                if method not in _UNLOGGED and method != "?":
                    self._log(method, params, exc.status, exc.description)
            return exc.response()

    def _send(self, method: str, params: JSONDict) -> JSONDict:
        chat_id = _chat_id(params)
        parse_mode = params.get("parse_mode") or None
        if parse_mode is not None and str(parse_mode).lower() not in _PARSE_MODES:
            raise ApiError(400, f"Bad Request: unsupported parse_mode {parse_mode!r}")
        markup = params.get("reply_markup") or None
        photo: str | Upload | None = None
        location: tuple[float, float] | None = None
        text_key = "text"
        if method == "sendMessage":
            text: str | None = str(params.get("text") or "")
            if not str(text).strip():
                raise ApiError(400, "Bad Request: message text is empty")
            limit, what = MAX_TEXT, "message"
        elif method == "sendPhoto":
            photo = params.get("photo") or None
            if photo is None:
                raise ApiError(400, "Bad Request: there is no photo in the request")
            text = str(params["caption"]) if params.get("caption") else None
            text_key, limit, what = "caption", MAX_CAPTION, "message caption"
        else:
            location = (_coordinate(params, "latitude"), _coordinate(params, "longitude"))
            text, limit, what = None, 0, ""
        shown = _shown(text, parse_mode)
        # Telegram counts the characters left after entity parsing (tags are not counted)
        if shown is not None and len(shown) > limit:
            raise ApiError(400, f"Bad Request: {what} is too long")
        sent = self._deliver(method, chat_id, text, parse_mode, markup, photo, location)

        message: JSONDict = {
            "message_id": sent.message_id,
            "from": self.bot_user,
            "chat": _chat(chat_id),
            "date": int(time.time()),
        }
        if shown is not None:
            message[text_key] = shown
        if location is not None:
            message["location"] = {"latitude": location[0], "longitude": location[1]}
        if photo is not None:
            file_id = photo if isinstance(photo, str) and "/" not in photo else None
            file_id = file_id or f"AgACFakePhoto{sent.message_id}"
            message["photo"] = [
                {
                    "file_id": file_id,
                    "file_unique_id": f"s{sent.message_id}",
                    "width": 90,
                    "height": 90,
                    "file_size": 1_500,
                },
                {
                    "file_id": file_id,
                    "file_unique_id": f"l{sent.message_id}",
                    "width": 1280,
                    "height": 1280,
                    "file_size": 150_000,
                },
            ]
        if _inline(markup):
            # Message.reply_markup is only ever an inline keyboard: a reply keyboard or its
            # removal is shown by the client, and Telegram does not return it
            message["reply_markup"] = markup
        with self._lock:
            key = (chat_id, sent.message_id)
            self._bot_messages[key] = message
            if text is not None and text_key == "text":
                self._raw_texts[key] = text
            self._register_files(message.get("photo"))
        self._messages_changed.notify()
        return message

    # methods without flood limits: (self, method, params) -> result
    def _set_my_commands(self, method: str, params: JSONDict) -> Any:
        commands = params.get("commands")
        if commands is None:
            commands = []  # Telegram: no parameter sets an empty list
        if not isinstance(commands, list):
            raise ApiError(400, "Bad Request: Expected an Array of BotCommand")
        if len(commands) > 100:
            raise ApiError(400, "Bad Request: BOT_COMMANDS_TOO_MUCH")
        cleaned = []
        for command in commands:
            if not isinstance(command, dict) or not all(
                isinstance(command.get(k), str) for k in ("command", "description")
            ):
                raise ApiError(400, "Bad Request: can't parse BotCommand")
            if not _COMMAND_NAME.fullmatch(command["command"]):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(command["description"].strip()) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
            cleaned.append({"command": command["command"], "description": command["description"]})
        key = (_scope_key(params.get("scope")), str(params.get("language_code") or ""))
        with self._lock:
            if cleaned:
                self._commands[key] = cleaned
            else:
                self._commands.pop(key, None)
        return True

    def _delete_my_commands(self, method: str, params: JSONDict) -> Any:
        key = (_scope_key(params.get("scope")), str(params.get("language_code") or ""))
        with self._lock:
            self._commands.pop(key, None)
        return True

    def _get_my_commands(self, method: str, params: JSONDict) -> Any:
        key = (_scope_key(params.get("scope")), str(params.get("language_code") or ""))
        with self._lock:
            return copy.deepcopy(self._commands.get(key, []))

    def _answer_callback_query(self, method: str, params: JSONDict) -> Any:
        query_id = str(params.get("callback_query_id") or "")
        with self._lock:
            if self._callback_queries.get(query_id) is not False:
                raise ApiError(
                    400,
                    "Bad Request: query is too old and response timeout expired or query ID is "
                    "invalid",
                )
            self._callback_queries[query_id] = True
        return True

    def _send_chat_action(self, method: str, params: JSONDict) -> Any:
        chat_id = _chat_id(params)
        if str(params.get("action") or "").lower() not in _CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        with self._lock:
            self._check_chat(chat_id)
        return True

    def _edit(self, method: str, params: JSONDict) -> Any:
        markup = params.get("reply_markup") or None
        if markup is not None and not (isinstance(markup, dict) and "inline_keyboard" in markup):
            raise ApiError(400, "Bad Request: inline keyboard expected")
        new_markup = markup if _inline(markup) else None
        text = shown = None
        if method == "editMessageText":
            text = str(params.get("text") or "")
            if not text.strip():
                raise ApiError(400, "Bad Request: message text is empty")
            parse_mode = params.get("parse_mode") or None
            shown = _shown(text, parse_mode)
            if shown is not None and len(shown) > MAX_TEXT:
                raise ApiError(400, "Bad Request: message is too long")
        if params.get("inline_message_id"):
            return True  # the fake keeps no inline messages: Telegram answers True
        chat_id = _chat_id(params)
        try:
            key = (chat_id, int(params.get("message_id") or 0))
        except (TypeError, ValueError):
            key = (chat_id, 0)
        with self._lock:
            self._check_chat(chat_id)
            message = self._bot_messages.get(key)
            if message is None:
                if key in self._user_messages:
                    raise ApiError(400, "Bad Request: message can't be edited")
                raise ApiError(400, "Bad Request: message to edit not found")
            same_markup = message.get("reply_markup") == new_markup
            if method == "editMessageText":
                if "text" not in message:
                    raise ApiError(400, "Bad Request: there is no text in the message to edit")
                same_text = message["text"] == shown and self._raw_texts.get(key) == text
            else:
                same_text = True
            if same_text and same_markup:
                raise ApiError(
                    400,
                    "Bad Request: message is not modified: specified new message content and "
                    "reply markup are exactly the same as a current content and reply markup "
                    "of the message",
                )
            edited = {**message, "edit_date": int(time.time())}
            if method == "editMessageText":
                edited["text"] = shown
                self._raw_texts[key] = str(text)
            if new_markup is None:
                edited.pop("reply_markup", None)
            else:
                edited["reply_markup"] = new_markup
            self._bot_messages[key] = edited
            return copy.deepcopy(edited)

    def _get_file(self, method: str, params: JSONDict) -> Any:
        file_id = str(params.get("file_id") or "")
        with self._lock:
            known = self._files.get(file_id)
            if known is None:
                raise ApiError(400, "Bad Request: invalid file_id")
            if "file_path" not in known:
                path = f"{known['_kind']}/file_{len(self._file_paths)}.jpg"
                known["file_path"] = path
                self._file_paths[path] = file_id
            return {k: v for k, v in known.items() if not k.startswith("_")}

    def _set_webhook(self, method: str, params: JSONDict) -> Any:
        url = str(params.get("url") or "")
        drop = _flag(params, "drop_pending_updates")
        if not url:
            return self._delete_webhook(method, params)
        with self._lock:
            now = self.clock()
            if now < self._next_set_webhook_at:
                self._limited_by_bucket["setWebhook"] += 1
                raise ApiError(429, "Too Many Requests: retry after 1", 1)
            self._next_set_webhook_at = now + SET_WEBHOOK_INTERVAL / self.scale
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ApiError(400, "Bad Request: invalid webhook URL specified")
            secret = str(params.get("secret_token") or "")
            if len(secret) > 256:
                raise ApiError(400, "Bad Request: secret token is too long")
            if not _SECRET.fullmatch(secret):
                raise ApiError(400, "Bad Request: secret token contains unallowed characters")
            hook = _Webhook(
                url=url,
                secret_token=secret,
                max_connections=_clamped_int(params, "max_connections", 40, 1, 100),
                ip_address=str(params.get("ip_address") or ""),
                has_custom_certificate=params.get("certificate") is not None,
            )
            self._set_allowed(params)
            if hook == self._webhook and not drop:
                return _Answer(True, "Webhook is already set")
            if drop:
                self._drop_pending()
            self._webhook = hook
            self._webhook_error = None
        self._updates_changed.notify()  # ends a held getUpdates, stops an older delivery
        return _Answer(True, "Webhook was set")

    def _delete_webhook(self, method: str, params: JSONDict) -> Any:
        with self._lock:
            was_set = self._webhook is not None
            self._webhook = None
            self._webhook_error = None
            if _flag(params, "drop_pending_updates"):
                self._drop_pending()
        self._updates_changed.notify()
        return _Answer(True, "Webhook was deleted" if was_set else "Webhook is already deleted")

    def _get_webhook_info(self, method: str, params: JSONDict) -> Any:
        with self._lock:
            hook = self._webhook
            info: JSONDict = {
                "url": hook.url if hook else "",
                "has_custom_certificate": bool(hook and hook.has_custom_certificate),
                "pending_update_count": len(self._pending),
            }
            if self._webhook_error is not None:
                info["last_error_date"], info["last_error_message"] = self._webhook_error
            if hook is not None:
                info["max_connections"] = hook.max_connections
                info["ip_address"] = hook.ip_address or urlsplit(hook.url).hostname
            if self._allowed != DEFAULT_ALLOWED:
                info["allowed_updates"] = [t for t in UPDATE_TYPES if t in self._allowed]
            return info

    _handlers: dict[str, Callable[[FakeBotApi, str, JSONDict], Any]] = {
        "setMyCommands": _set_my_commands,
        "deleteMyCommands": _delete_my_commands,
        "getMyCommands": _get_my_commands,
        "answerCallbackQuery": _answer_callback_query,
        "sendChatAction": _send_chat_action,
        "editMessageText": _edit,
        "editMessageReplyMarkup": _edit,
        "getFile": _get_file,
        "setWebhook": _set_webhook,
        "deleteWebhook": _delete_webhook,
        "getWebhookInfo": _get_webhook_info,
    }

    # -- long polling --------------------------------------------------------------------------
    async def _conflict(self, description: str) -> None:
        """Raise 409 as Telegram's server does: at most one every 3 s, the others later."""
        with self._lock:
            now = self.clock()
            delay = 0.0 if now >= self._next_conflict_at else CONFLICT_INTERVAL / self.scale
            if delay == 0.0:
                self._next_conflict_at = now + CONFLICT_INTERVAL / self.scale
        if delay:
            await asyncio.sleep(delay)
        raise ApiError(409, description)

    async def _get_updates(
        self, params: JSONDict, disconnected: Callable[[], Awaitable[bool]]
    ) -> list[JSONDict]:
        offset = _clamped_int(params, "offset", 0, -(2**31), 2**31 - 1)
        limit = _clamped_int(params, "limit", 100, 1, 100)
        timeout = min(max(_number(params, "timeout"), 0.0), LONG_POLL_MAX_TIMEOUT)
        with self._lock:
            webhook_active = self._webhook is not None
            if not webhook_active:
                self._set_allowed(params)
                now = self.clock()
                if offset == self._prev_offset:
                    hold = SAME_OFFSET_HOLD / self.scale
                    if timeout < hold and now < self._prev_poll_at + hold:
                        timeout = hold
                    if now < self._prev_poll_at + SAME_OFFSET_ONE / self.scale:
                        limit = 1
                self._prev_offset, self._prev_poll_at = offset, now
                self._confirm(offset)
                self._poll_generation += 1
                generation = self._poll_generation
        if webhook_active:
            await self._conflict(
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first"
            )
        self._updates_changed.notify()  # a held getUpdates learns it was overtaken
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            entry = self._updates_changed.listen()
            try:
                with self._lock:
                    if self._closing:
                        return []
                    overtaken = self._poll_generation != generation
                    webhook_active = self._webhook is not None
                    batch = [] if overtaken or webhook_active else self._poll_batch(limit)
                    left = deadline - loop.time()
                    if batch or left <= 0:
                        for pending in batch:
                            self._sent_record(pending.update_id, "getUpdates")
                        return [pending.update for pending in batch]
                if overtaken or webhook_active:
                    break
                await _wait(entry, left)
            finally:
                self._updates_changed.forget(entry)
            await asyncio.sleep(0.001)  # Telegram's server waits 1 ms for what comes along
        if await disconnected():
            # the client gave up on this poll (PTB does when it stops): the 409 Telegram sends
            # reaches nobody, so it is counted apart from the conflicts a client sees
            with self._lock:
                self._abandoned_polls += 1
            return []
        if webhook_active:
            await self._conflict("Conflict: terminated by setWebhook request")
        await self._conflict(
            "Conflict: terminated by other getUpdates request; make sure that only one bot "
            "instance is running"
        )
        return []  # not reached

    def _confirm(self, offset: int) -> None:
        """Forget what ``offset`` confirms (below it) or, negative, all but the last -offset."""
        if offset > 0:
            while self._pending:
                update_id, pending = next(iter(self._pending.items()))
                if update_id >= offset:
                    break
                self._forget(pending, "confirmed")
                self._records[update_id].via = "getUpdates"
        elif offset < 0:
            for pending in list(self._pending.values())[:offset]:
                self._forget(pending, "dropped")

    def _poll_batch(self, limit: int) -> list[_Pending]:
        now = time.monotonic()
        batch: list[_Pending] = []
        for pending in list(self._pending.values()):
            if pending.expires <= now:
                self._forget(pending, "expired")
                continue
            batch.append(pending)
            if len(batch) >= limit:
                break
        return batch

    # -- webhook -------------------------------------------------------------------------------
    def _webhook_task_due(self) -> bool:
        with self._lock:
            return self._webhook is not None and (
                self._webhook_task is None or self._webhook_task.done()
            )

    def _start_webhook(self) -> None:
        """Start delivery in this (the server's) event loop, the first time a webhook is set.
        It follows the webhook as it is set and deleted, until the server stops."""
        self._webhook_task = asyncio.get_running_loop().create_task(self._deliver_webhook())

    async def _deliver_webhook(self) -> None:
        in_flight: dict[asyncio.Task[None], _Webhook] = {}
        clients: dict[_Webhook, _Connections] = {}
        try:
            while True:
                entry = self._updates_changed.listen()
                try:
                    with self._lock:
                        if self._closing:
                            return
                        hook = self._webhook
                        batch: list[_Pending] = []
                        wake = None
                        if hook is not None:
                            busy = sum(h == hook for h in in_flight.values())
                            batch, wake = self._webhook_batch(hook.max_connections - busy)
                    # the webhook changed or was deleted: Telegram closes the old connections,
                    # and what they carried stays pending
                    stale = [task for task, h in in_flight.items() if h != hook]
                    for task in stale:
                        task.cancel()
                    await asyncio.gather(*stale, return_exceptions=True)
                    for old in [h for h in clients if h != hook]:
                        await clients.pop(old).aclose()
                    if hook is not None and hook not in clients:
                        clients[hook] = _Connections(self.webhook_timeout)
                    for pending in batch:
                        assert hook is not None
                        task = asyncio.create_task(self._post_update(clients[hook], hook, pending))
                        in_flight[task] = hook
                        task.add_done_callback(lambda done: in_flight.pop(done, None))
                    if not batch:
                        await _wait(entry, wake)
                finally:
                    self._updates_changed.forget(entry)
        finally:
            for task in list(in_flight):
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
            for client in clients.values():
                await client.aclose()

    def _webhook_batch(self, room: int) -> tuple[list[_Pending], float | None]:
        """The first update of each queue that may go now (oldest first, at most ``room``), and
        the seconds until the next retry is due."""
        now = time.monotonic()
        ready: list[_Pending] = []
        wake: float | None = None
        for queue in list(self._queues.values()):
            while queue:
                pending = self._pending[queue[0]]
                if pending.expires > now:
                    break
                self._forget(pending, "expired")
            if not queue or pending.in_flight:
                continue
            if pending.wakeup > now:
                wait = pending.wakeup - now
                wake = wait if wake is None else min(wake, wait)
                continue
            ready.append(pending)
        ready.sort(key=lambda p: (p.wakeup, p.update_id))
        batch = ready[: max(room, 0)]
        for pending in batch:
            pending.in_flight = True
            self._sent_record(pending.update_id, "webhook")
        return batch, wake

    async def _post_update(self, client: _Connections, hook: _Webhook, pending: _Pending) -> None:
        headers = {"Content-Type": "application/json"}
        if hook.secret_token:
            headers[SECRET_HEADER] = hook.secret_token
        error: str | None = None
        retry_after = 0
        try:
            answer = await client.post(hook.url, content=_dumps(pending.update), headers=headers)
            if not 200 <= answer.status_code <= 299:
                error = (
                    f"Wrong response from the webhook: {answer.status_code} {answer.reason_phrase}"
                )
                with contextlib.suppress(ValueError):
                    retry_after = int(answer.headers.get("retry-after", "0"))
        except httpx.TimeoutException:
            error = "Read timeout expired"
        except httpx.ConnectError:
            error = "Connection refused"
        except httpx.HTTPError:
            error = "Webhook connection closed"
        finally:
            with self._lock:
                pending.in_flight = False
        with self._lock:
            if self._pending.get(pending.update_id) is pending:
                if error is None:
                    self._forget(pending, "confirmed")
                else:
                    self._webhook_failed(pending, error, retry_after)
        self._updates_changed.notify()

    def _webhook_failed(self, pending: _Pending, error: str, retry_after: int) -> None:
        """Telegram's back-off: again at once, then 2, 4, 8... s up to 60, or Retry-After."""
        now = time.monotonic()
        retry_after = min(max(retry_after, 0), WEBHOOK_MAX_RETRY_AFTER)
        delay, wait = pending.delay, retry_after
        if retry_after == 0 and pending.fails > 0:
            delay = min(WEBHOOK_MAX_RESEND, delay * 2)
            wait = delay
        self._webhook_error = (int(time.time()), error)
        self._records[pending.update_id].last_error = error
        if now + wait / self.scale > pending.expires:
            self._forget(pending, "dropped", error)
            return
        pending.delay, pending.fails = delay, pending.fails + 1
        pending.wakeup = now + wait / self.scale

    # -- inspection ----------------------------------------------------------------------------
    async def _get_messages(self, request: Request) -> Response:
        query = request.query_params
        try:
            since = int(query.get("since", 0))
            chat = int(query["chat_id"]) if "chat_id" in query else None
            wait = float(query.get("wait", 0))
        except ValueError:
            return _json({"ok": False, "description": "since, chat_id and wait are numbers"}, 400)
        deadline = asyncio.get_running_loop().time() + min(wait, 300)
        while True:
            entry = self._messages_changed.listen()
            try:
                with self._lock:
                    chosen = [
                        {**sent.as_json(), "index": index}
                        for index, sent in enumerate(self._sent[since:] if since >= 0 else [])
                        if chat is None or sent.chat_id == chat
                    ]
                    closing = self._closing
                left = deadline - asyncio.get_running_loop().time()
                if chosen or left <= 0 or closing:
                    for item in chosen:
                        item["index"] += since
                    return _json(chosen)
                await _wait(entry, left)
            finally:
                self._messages_changed.forget(entry)

    async def _get_updates_records(self, request: Request) -> Response:
        try:
            since = int(request.query_params.get("since", 0))
        except ValueError:
            return _json({"ok": False, "description": "since must be an integer"}, 400)
        with self._lock:
            return _json([asdict(r) for i, r in self._records.items() if i >= since])

    async def _post_updates(self, request: Request) -> Response:
        try:
            given = json.loads(await request.body())
            updates = given if isinstance(given, list) else [given]
            if not all(isinstance(u, dict) for u in updates):
                raise ValueError("expected an update object or a list of them")
            ids = self.push(*updates)
        except ValueError as exc:
            return _json({"ok": False, "description": str(exc)}, 400)
        return _json({"ok": True, "update_ids": ids})

    async def _get_calls(self, request: Request) -> Response:
        method = request.query_params.get("method")
        try:
            since = int(request.query_params.get("since", 0))
        except ValueError:
            return _json({"ok": False, "description": "since must be an integer"}, 400)
        with self._lock:
            chosen = [
                {**call.as_json(), "index": index}
                for index, call in enumerate(self._calls)
                if index >= since and (method is None or call.method == method)
            ]
        return _json(chosen)

    async def _get_webhook(self, request: Request) -> Response:
        return _json(self.webhook)

    async def _get_file_bytes(self, request: Request) -> Response:
        with self._lock:
            file_id = self._file_paths.get(request.path_params["path"])
            known = self._files.get(file_id) if file_id else None
        if request.path_params["token"] != self.token or known is None:
            return _json({"ok": False, "error_code": 404, "description": "Not Found"}, 404)
        size = int(known.get("file_size") or 1_000)
        pattern = f"fake file {file_id}\n".encode()
        content = (pattern * (size // len(pattern) + 1))[:size]
        return Response(content, media_type="application/octet-stream")

    async def _get_stats(self, request: Request) -> Response:
        return _json(self.stats())

    async def _post_blocked(self, request: Request) -> Response:
        try:
            ids = json.loads(await request.body())
        except ValueError:
            ids = None
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            return _json({"ok": False, "description": "expected a JSON list of chat ids"}, 400)
        self.block(ids)
        with self._lock:
            return _json({"ok": True, "blocked": sorted(self.blocked)})

    async def _post_reset(self, request: Request) -> Response:
        self.reset()
        return _json({"ok": True})


def _dumps(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def _json(body: Any, status: int = 200) -> Response:
    return Response(_dumps(body), status, media_type="application/json")


def _jsonable(params: JSONDict) -> JSONDict:
    return {k: asdict(v) if isinstance(v, Upload) else v for k, v in params.items()}


class _Connections:
    """Keep-alive connections to a webhook, each carrying one request at a time, as Telegram's
    are: one small client per connection, because httpx's pool spends O(connections) CPU per
    request (40 connections cost 4 ms of CPU per update)."""

    _tls: ssl.SSLContext | None = None  # one for all: building a context takes milliseconds

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._free: list[httpx.AsyncClient] = []
        self._all: list[httpx.AsyncClient] = []

    async def post(self, url: str, content: str, headers: dict[str, str]) -> httpx.Response:
        client = self._free.pop() if self._free else self._connect()
        try:
            return await client.post(url, content=content, headers=headers)
        finally:
            self._free.append(client)

    def _connect(self) -> httpx.AsyncClient:
        if _Connections._tls is None:
            _Connections._tls = ssl.create_default_context()
        client = httpx.AsyncClient(
            timeout=self._timeout,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            verify=_Connections._tls,
            # a proxy from the environment must never see updates meant for this machine
            trust_env=False,
        )
        self._all.append(client)
        return client

    async def aclose(self) -> None:
        for client in self._all:
            await client.aclose()


async def _params(request: Request) -> JSONDict:
    """The method's parameters from the query string and a JSON, urlencoded or multipart body."""
    params: JSONDict = dict(request.query_params)
    body = await request.body()
    if not body:
        return params
    ctype = request.headers.get("content-type", "")
    kind = ctype.split(";", 1)[0].strip().lower()
    if kind == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            raise ApiError(400, "Bad Request: can't parse JSON") from None
        if not isinstance(data, dict):
            raise ApiError(400, "Bad Request: JSON body must be an object")
        params.update(data)
    elif kind == "application/x-www-form-urlencoded":
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    elif kind == "multipart/form-data":
        head = f"Content-Type: {ctype}\r\nMIME-Version: 1.0\r\n\r\n".encode()
        form = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        for part in form.iter_parts():  # type: ignore[attr-defined]
            name = part.get_param("name", header="content-disposition")
            data = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            if filename is None:
                params[name] = data.decode("utf-8", "replace")
            else:
                params[name] = Upload(filename, part.get_content_type(), len(data))
    else:
        raise ApiError(400, f"Bad Request: unsupported content type {kind!r}")
    return params


def _decode_json_params(params: JSONDict) -> JSONDict:
    """Decode the parameters PTB sends as JSON text (markup, commands, scope, update types)."""
    for name, error in _JSON_PARAMS.items():
        value = params.get(name)
        if not isinstance(value, str):
            continue
        if not value.strip():
            params[name] = None
            continue
        try:
            params[name] = json.loads(value)
        except ValueError:
            if error is not None:
                raise ApiError(400, error) from None
    return params


def _chat_id(params: JSONDict) -> int:
    raw = params.get("chat_id")
    if raw is None or raw == "":
        raise ApiError(400, "Bad Request: chat_id is empty")
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ApiError(400, "Bad Request: chat not found") from None


def _chat(chat_id: int) -> JSONDict:
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": f"User {chat_id}"}
    # supergroups and channels have ids below -10**12; this fake answers "supergroup" for both
    kind = "supergroup" if chat_id < -(10**12) else "group"
    return {"id": chat_id, "type": kind, "title": f"Group {chat_id}"}


def _shown(text: str | None, parse_mode: Any) -> str | None:
    """The text as Telegram shows it (HTML tags parsed away), or the 400 it answers."""
    if text and str(parse_mode).lower() == "html":
        return _html_text(text)
    return text


def _inline(markup: Any) -> bool:
    return isinstance(markup, dict) and bool(markup.get("inline_keyboard"))


def _flag(params: JSONDict, name: str) -> bool:
    value = params.get(name)
    return value is True or str(value).lower() in ("true", "1")


def _number(params: JSONDict, name: str, default: float = 0.0) -> float:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except (TypeError, ValueError):
        return 0.0  # Telegram's server reads a number it cannot parse as 0


def _clamped_int(params: JSONDict, name: str, default: int, low: int, high: int) -> int:
    value = int(_number(params, name, default))
    return min(max(value, low), high)


def _coordinate(params: JSONDict, name: str) -> float:
    if str(params.get(name) if params.get(name) is not None else "").strip() == "":
        raise ApiError(400, f"Bad Request: {name} is empty")
    return _number(params, name)


def _scope_key(scope: Any) -> str:
    if not isinstance(scope, Mapping) or not scope:
        scope = {"type": "default"}
    return json.dumps(scope, sort_keys=True)


class _HtmlText(HTMLParser):
    """Collect the plain text of Telegram HTML, refusing what Telegram refuses."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _HTML_TAGS:
            raise _unsupported(tag)
        self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raise _unsupported(tag)  # <br/> and the like: Telegram has no empty tags

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            expected = f'"</{self.open[-1]}>"' if self.open else "no end tag"
            raise ApiError(
                400,
                f"Bad Request: can't parse entities: Unmatched end tag, expected {expected}, "
                f'found "</{tag}>"',
            )
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _unsupported(tag: str) -> ApiError:
    return ApiError(400, f'Bad Request: can\'t parse entities: Unsupported start tag "{tag}"')


def _html_text(text: str) -> str:
    """The text Telegram shows for ``parse_mode="HTML"``, or the 400 it answers."""
    if "<" not in text:
        return unescape(text)
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    if parser.open:
        raise ApiError(
            400,
            "Bad Request: can't parse entities: Can't find end tag corresponding to start tag "
            f'"{parser.open[-1]}"',
        )
    return "".join(parser.parts)


# --------------------------------------------------------------------------------------------
# Serving
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeServer:
    """A running fake: ``url`` is the root (PTB's ``base_url`` is ``f"{url}/bot"``)."""

    url: str
    token: str
    state: FakeBotApi


def _listen(host: str, port: int) -> socket.socket:
    # proto TCP explicitly: asyncio only sets TCP_NODELAY on sockets that say so, and without it
    # each answer (headers and body written apart) waits ~40 ms for a delayed ACK
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _config(app: Starlette, **kwargs: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app, lifespan="off", ws="none", access_log=False, log_level="warning", **kwargs
    )


class _Server(uvicorn.Server):
    """uvicorn that answers held long polls before it waits for open requests to end."""

    def __init__(self, config: uvicorn.Config, state: FakeBotApi) -> None:
        super().__init__(config)
        self.state = state

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.state.close()
        await super().shutdown(sockets=sockets)


@contextlib.contextmanager
def running(
    token: str = DEFAULT_TOKEN,
    *,
    rate: float = 30.0,
    scale: float = 1.0,
    blocked: Iterable[int] = (),
    host: str = "127.0.0.1",
    port: int = 0,
    start_timeout: float = 10.0,
    **options: Any,
) -> Iterator[FakeServer]:
    """Serve a :class:`FakeBotApi` from a background thread; ``options`` go to FakeBotApi."""
    state = FakeBotApi(token, rate=rate, scale=scale, blocked=blocked, **options)
    sock = _listen(host, port)
    server = _Server(_config(state.app, log_config=None), state)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="fake-bot-api", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the fake Bot API did not start on {host}:{port}")
            time.sleep(0.005)
        bound_host, bound_port = sock.getsockname()[:2]
        yield FakeServer(f"http://{bound_host}:{bound_port}", token, state)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


class _AnnouncingServer(_Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit and sockets:
            host, port = sockets[0].getsockname()[:2]
            print(f"READY http://{host}:{port}", flush=True)


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM/SIGINT, announcing ``READY <url>`` on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--chat-rate", type=float, default=1.0)
    parser.add_argument("--chat-burst", type=float, default=3)
    parser.add_argument("--group-per-minute", type=float, default=20)
    parser.add_argument("--group-burst", type=float, default=20)
    parser.add_argument("--blocked", type=int, nargs="*", default=[], metavar="CHAT_ID")
    parser.add_argument("--unknown", type=int, nargs="*", default=[], metavar="CHAT_ID")
    parser.add_argument("--fail-every", type=int, default=0)
    parser.add_argument("--webhook-timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    state = FakeBotApi(
        args.token,
        rate=args.rate,
        scale=args.scale,
        chat_rate=args.chat_rate,
        chat_burst=args.chat_burst,
        group_per_minute=args.group_per_minute,
        group_burst=args.group_burst,
        blocked=args.blocked,
        unknown=args.unknown,
        fail_every=args.fail_every,
        webhook_timeout=args.webhook_timeout,
    )
    # uvicorn handles SIGTERM/SIGINT while it serves, then re-raises the signal to the handler
    # found before: exit with status 0 and no traceback then (and if one comes before start)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit)
    _AnnouncingServer(_config(state.app), state).run(sockets=[_listen(args.host, args.port)])


if __name__ == "__main__":
    main()
