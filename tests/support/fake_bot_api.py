"""A local fake Telegram Bot API with Telegram's flood limits and errors, for broadcast senders.

The npm emulator used by the conversation tests (``telegram_emulator.py``) never refuses a
message. This server does what the Bot API documents for a bot that sends a lot:

* ``getMe``, ``sendMessage`` and ``sendPhoto`` at ``/bot<token>/<method>`` (GET or POST; JSON,
  urlencoded or multipart bodies as python-telegram-bot sends them; method names are
  case-insensitive as on Telegram). Any other method answers 404, a wrong token 401.
* Flood limits as token buckets: ``rate`` messages/s for the whole bot (capacity ``rate``),
  ``chat_rate`` (1/s) per private chat with a burst of ``chat_burst`` (3), and
  ``group_per_minute`` (20) per group (negative chat id) with a burst of ``group_burst`` (20).
  Telegram tolerates "short bursts" in a private chat without saying how long; 3 lets a bot
  answer with a text, a location and a photo at once while any sustained pace above 1/s is
  refused within a few seconds. A group's 20 per minute may be spent at once, then refills at
  one every 3 s.
* Over a limit: HTTP 429, ``retry_after`` = seconds until a token is free, rounded up, at least
  1, and the bucket that refused keeps refusing until that time has passed (Telegram penalises
  a client that keeps hammering; a request before then gets 429 with the time remaining).
  Refused messages are not recorded.
* ``scale`` runs the same limits ``scale`` times faster: every rate is multiplied by it, burst
  capacities stay as they are, and ``retry_after`` counts scaled seconds (a sender run against
  ``scale=10`` that gets ``retry_after=1`` only has to wait 0.1 s, and the penalty lasts that).
* ``blocked`` chats answer 403 (after taking a token: the attempt counts against the limits),
  ``unknown`` chats 400 "chat not found" (before the limits), as do chat ids that are not
  integers (Telegram would resolve ``@channelname``; this fake does not). ``fail_every`` (every
  n-th send) and ``fail_chats`` ({chat: how many of its first sends}) answer ``fail_status``
  (502 "Bad Gateway"), before anything else happens, for retry tests.
* ``parse_mode="HTML"`` text is checked for the tags Telegram supports and balanced nesting
  (400 "can't parse entities" otherwise); the returned Message carries the text without tags
  (and no entities). Markdown is not checked. Text over 4,096 characters and captions over
  1,024 answer 400 "message is too long" / "message caption is too long", counted as Telegram
  counts them: after the tags are parsed away. The returned Message has ``reply_markup`` only
  for an inline keyboard (a reply keyboard is not part of a Message).

Every accepted message is recorded as a :class:`Sent` with the time of ``clock``
(``time.monotonic()``, comparable across processes on Linux; tests may pass a clock they
move by hand, to send a burst "at once" whatever the load of the machine).

Inspection on the same server, outside ``/bot``: ``GET /_fake/messages[?since=<index>]``,
``GET /_fake/stats``, ``POST /_fake/blocked`` (JSON list of chat ids to add), ``POST
/_fake/reset`` (forgets messages, counters, buckets and penalties; keeps the configuration and
the blocked chats).

In-process::

    with running(rate=30, scale=10, blocked={42}) as fake:
        bot = telegram.Bot(fake.token, base_url=f"{fake.url}/bot")
        ...
        fake.state.stats()

As a process (prints ``READY http://127.0.0.1:PORT`` once it accepts connections, serves until
SIGTERM/SIGINT)::

    python -m tests.support.fake_bot_api --port 0 --rate 30 --scale 1 --token 123:ABC

Throughput, measured on the 2-core Xeon while other test runs kept its load at 3.5-4, limits
out of the way with ``scale=1000``, server as a process: 1,100-1,370 sendMessage/s from 8
keep-alive connections of a minimal asyncio client, 0.45-0.57 ms of server CPU per request.
python-telegram-bot's ``Bot.send_message`` (16 concurrent) reaches 80-190 messages/s against it,
in-process or not: PTB's client is the bottleneck, far above Telegram's 30/s.
"""

from __future__ import annotations

import argparse
import contextlib
import email.parser
import email.policy
import itertools
import json
import math
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from html import unescape
from html.parser import HTMLParser
from http import HTTPStatus
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

JSONDict = dict[str, Any]

DEFAULT_TOKEN = "123456789:FAKE-broadcast-token"  # noqa: S105 - made up, for tests
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


@dataclass(frozen=True)
class Upload:
    """A file sent in the request body (multipart) rather than by file_id or URL."""

    filename: str
    mime_type: str
    size: int


class Sent(NamedTuple):
    """One accepted message. ``text`` is the caption for photos; ``photo`` a file_id/URL or an
    :class:`Upload`; ``reply_markup`` parsed JSON."""

    at: float
    chat_id: int
    method: str
    text: str | None
    parse_mode: str | None
    reply_markup: Any
    photo: str | Upload | None
    message_id: int

    def as_json(self) -> JSONDict:
        out = self._asdict()
        if isinstance(self.photo, Upload):
            out["photo"] = asdict(self.photo)
        return out


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
        self._reset()
        self.app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._bot_api, methods=["GET", "POST"]),
                Route("/_fake/messages", self._get_messages),
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

    @property
    def refused(self) -> Counter[int]:
        """How many requests were answered with each error status (400, 403, 429, 5xx...)."""
        with self._lock:
            return Counter(self._refused)

    def block(self, chat_ids: Iterable[int]) -> None:
        """From now on these chats answer 403 (the user blocked the bot)."""
        with self._lock:
            self.blocked.update(chat_ids)

    def reset(self) -> None:
        """Forget messages, counters, buckets and penalties (configuration stays)."""
        with self._lock:
            self._reset()

    def stats(self) -> JSONDict:
        """Accepted count per chat and in total, refusals, duplicates, first/last time, rate."""
        with self._lock:
            first = self._sent[0].at if self._sent else None
            last = self._sent[-1].at if self._sent else None
            total = len(self._sent)
            return {
                "accepted": total,
                "per_chat": {str(chat): n for chat, n in self._per_chat.items()},
                "too_many_requests": self._refused[429],
                "forbidden": self._refused[403],
                "bad_request": self._refused[400],
                "server_errors": sum(n for code, n in self._refused.items() if code >= 500),
                "refused": {str(code): n for code, n in sorted(self._refused.items())},
                "duplicates": sorted(self._duplicates),
                "first_at": first,
                "last_at": last,
                # messages per second between the first and the last accepted one
                "rate": (total - 1) / (last - first) if total > 1 and last > first else None,
            }

    # -- state (callers hold the lock) ---------------------------------------------------------
    def _reset(self) -> None:
        self._sent: list[Sent] = []
        self._per_chat: Counter[int] = Counter()
        self._seen: set[tuple[int, str | None, str]] = set()
        self._duplicates: set[int] = set()
        self._refused: Counter[int] = Counter()
        self._overall = TokenBucket(self._overall_rate, self._overall_burst, self.clock())
        self._chats: dict[int, TokenBucket] = {}
        self._sends = 0
        self._fail_left = dict(self._fail_chats)
        self._message_ids = itertools.count(1)

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
        for bucket, wait in zip(buckets, waits, strict=True):
            if wait > 0 and bucket.blocked_until <= now:  # hammering does not extend a penalty
                bucket.blocked_until = until
        raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after)

    def _deliver(
        self,
        method: str,
        chat_id: int,
        text: str | None,
        parse_mode: str | None,
        reply_markup: Any,
        photo: str | Upload | None,
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
            sent = Sent(now, chat_id, method, text, parse_mode, reply_markup, photo, message_id)
            self._sent.append(sent)
            self._per_chat[chat_id] += 1
            content = (chat_id, text, repr(photo))
            if content in self._seen:
                self._duplicates.add(chat_id)
            self._seen.add(content)
            return sent

    # -- Bot API -------------------------------------------------------------------------------
    async def _bot_api(self, request: Request) -> Response:
        try:
            if request.path_params["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            method = request.path_params["method"].lower()
            if method == "getme":
                return _json({"ok": True, "result": self.bot_user})
            if method not in ("sendmessage", "sendphoto"):
                raise ApiError(404, "Not Found")
            params = await _params(request)
            return _json({"ok": True, "result": self._send(method, params)})
        except ApiError as exc:
            with self._lock:
                self._refused[exc.status] += 1
            return exc.response()

    def _send(self, method: str, params: JSONDict) -> JSONDict:
        chat_id = _chat_id(params)
        parse_mode = params.get("parse_mode") or None
        if parse_mode is not None and str(parse_mode).lower() not in _PARSE_MODES:
            raise ApiError(400, f"Bad Request: unsupported parse_mode {parse_mode!r}")
        markup = params.get("reply_markup") or None
        if isinstance(markup, str):
            try:
                markup = json.loads(markup)
            except ValueError:
                raise ApiError(
                    400, "Bad Request: can't parse reply keyboard markup JSON object"
                ) from None
        photo: str | Upload | None = None
        if method == "sendmessage":
            text = str(params.get("text") or "")
            if not text.strip():
                raise ApiError(400, "Bad Request: message text is empty")
            api, text_key, limit, what = "sendMessage", "text", MAX_TEXT, "message"
        else:
            photo = params.get("photo") or None
            if photo is None:
                raise ApiError(400, "Bad Request: there is no photo in the request")
            text = str(params["caption"]) if params.get("caption") else None
            api, text_key, limit, what = "sendPhoto", "caption", MAX_CAPTION, "message caption"
        shown = _html_text(text) if text and str(parse_mode).lower() == "html" else text
        # Telegram counts the characters left after entity parsing (tags are not counted)
        if shown is not None and len(shown) > limit:
            raise ApiError(400, f"Bad Request: {what} is too long")
        sent = self._deliver(api, chat_id, text, parse_mode, markup, photo)

        message: JSONDict = {
            "message_id": sent.message_id,
            "date": int(time.time()),
            "chat": _chat(chat_id),
            "from": self.bot_user,
        }
        if shown is not None:
            message[text_key] = shown
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
        if isinstance(markup, dict) and markup.get("inline_keyboard"):
            # Message.reply_markup is only ever an inline keyboard: a reply keyboard or its
            # removal is shown by the client, and Telegram does not return it
            message["reply_markup"] = markup
        return message

    # -- inspection ----------------------------------------------------------------------------
    async def _get_messages(self, request: Request) -> Response:
        try:
            since = int(request.query_params.get("since", 0))
        except ValueError:
            return _json({"ok": False, "description": "since must be an integer"}, 400)
        with self._lock:
            chosen = self._sent[since:] if since >= 0 else []
        return _json([sent.as_json() for sent in chosen])

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


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status,
        media_type="application/json",
    )


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
    server = uvicorn.Server(_config(state.app, log_config=None))
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


class _AnnouncingServer(uvicorn.Server):
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
    parser.add_argument("--chat-burst", type=float, default=3)
    parser.add_argument("--group-burst", type=float, default=20)
    parser.add_argument("--blocked", type=int, nargs="*", default=[], metavar="CHAT_ID")
    parser.add_argument("--unknown", type=int, nargs="*", default=[], metavar="CHAT_ID")
    parser.add_argument("--fail-every", type=int, default=0)
    args = parser.parse_args(argv)
    state = FakeBotApi(
        args.token,
        rate=args.rate,
        scale=args.scale,
        chat_burst=args.chat_burst,
        group_burst=args.group_burst,
        blocked=args.blocked,
        unknown=args.unknown,
        fail_every=args.fail_every,
    )
    # uvicorn handles SIGTERM/SIGINT while it serves, then re-raises the signal to the handler
    # found before: exit with status 0 and no traceback then (and if one comes before start)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit)
    _AnnouncingServer(_config(state.app)).run(sockets=[_listen(args.host, args.port)])


if __name__ == "__main__":
    main()
