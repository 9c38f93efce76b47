"""Test harness: a real Telegram Bot API emulator (npm ``telegram-test-api`` 4.2.1) for PTB 22.

Three pieces:

* :class:`TelegramEmulator` starts/stops ``node server.js`` (tests/support/telegram-emulator) on a
  free port; ``base_url`` / ``base_file_url`` go to ``ApplicationBuilder``.
* :class:`EmulatorRequest` is the ``HTTPXRequest`` the bot under test uses. It repairs every
  place where the emulator departs from the real Bot API (see ``_fix_*`` below), answers the
  methods the emulator lacks the way Telegram answers on success (``local_calls``), and records
  every call the bot made (``calls``).
* :class:`EmulatedUser` plays a Telegram user: sends text, commands, locations, photos and button
  presses through the emulator's client API and reads the bot's replies (``replies``,
  ``wait_for``, ``history``).

Typical use (plain ``asyncio.run`` inside a sync test)::

    with TelegramEmulator() as emu:
        request = EmulatorRequest()
        app = application_builder(emu, TOKEN, request=request).build()
        ...  # add handlers
        async def scenario():
            async with running(app), EmulatedUser(emu, TOKEN, user_id=7, first_name="Ani") as u:
                await u.command("/start")
                [reply] = await u.replies(count=1)
        asyncio.run(scenario())
"""

# The `timeout` arguments of EmulatedUser are polling deadlines (the API the tests use), not
# cancellation timeouts that asyncio.timeout() could replace.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Self

import httpx
from telegram.ext import Application, ApplicationBuilder
from telegram.request import BaseRequest, HTTPXRequest, RequestData

EMULATOR_DIR = Path(__file__).resolve().parent / "telegram-emulator"
PACKAGE = "telegram-test-api"

JSONDict = dict[str, Any]

# What the emulator's getMe answers (routes/bot/getMe.js), completed with the required is_bot.
BOT_USER: JSONDict = {
    "id": 666,
    "is_bot": True,
    "first_name": "Test First name",
    "username": "TestNameBot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}


def fresh_token() -> str:
    """A new made-up bot token: the emulator keeps state per token, so one per test isolates."""
    return f"{next(_TOKEN_IDS)}:TEST-{uuid.uuid4().hex}"


_TOKEN_IDS = itertools.count(100_001)


class EmulatorError(RuntimeError):
    """The emulator cannot be installed, started or reached (never a reason to skip a test)."""


# --------------------------------------------------------------------------------------------
# The node process
# --------------------------------------------------------------------------------------------


class TelegramEmulator:
    """``node server.js`` running telegram-test-api on 127.0.0.1 and a free port.

    Use as a context manager (``with TelegramEmulator() as emu``) or call :meth:`start` /
    :meth:`stop` from a fixture. ``stop`` is idempotent and kills the whole process group.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        start_timeout: float = 20.0,
        install_timeout: float = 600.0,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.start_timeout = start_timeout
        self.install_timeout = install_timeout
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None

    # -- addresses --------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        """Root of the emulator, e.g. ``http://127.0.0.1:43125`` (the user-side API lives here)."""
        if self.port is None:
            raise EmulatorError("the Telegram emulator is not running (call start() first)")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder().base_url(...)``: ``http://127.0.0.1:PORT/bot``."""
        return f"{self.api_url}/bot"

    @property
    def base_file_url(self) -> str:
        """For ``ApplicationBuilder().base_file_url(...)``: ``http://127.0.0.1:PORT/file/bot``."""
        return f"{self.api_url}/file/bot"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> Self:
        if self.running:
            return self
        node = _require_tool("node")
        self.ensure_installed()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        env = {k: v for k, v in os.environ.items() if k != "DEBUG"}  # keep stdout one JSON line
        self._proc = subprocess.Popen(
            [node, "server.js", "--host", self.host, "--port", str(self.requested_port)],
            cwd=EMULATOR_DIR,
            stdin=subprocess.PIPE,  # node exits when this closes, even if we are SIGKILLed
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            start_new_session=True,  # own process group: stop() kills children too
        )
        try:
            self.port = self._read_port()
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        self.port = None
        if proc is not None:
            with contextlib.suppress(OSError):
                if proc.stdin:
                    proc.stdin.close()  # server.js stops on stdin EOF
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                _kill_group(proc, signal.SIGTERM)
                try:
                    proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    _kill_group(proc, signal.SIGKILL)
                    proc.wait(timeout=5)
            # children (if any) of a cleanly exited node
            _kill_group(proc, signal.SIGKILL)
            if proc.stdout:
                proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def ensure_installed(self) -> None:
        """``npm ci`` in tests/support/telegram-emulator when node_modules lacks the package."""
        if (EMULATOR_DIR / "node_modules" / PACKAGE / "package.json").is_file():
            return
        npm = _require_tool("npm")
        try:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=EMULATOR_DIR,
                capture_output=True,
                text=True,
                timeout=self.install_timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise EmulatorError(f"`npm ci` in {EMULATOR_DIR} took over {exc.timeout} s") from exc
        if done.returncode != 0:
            raise EmulatorError(
                f"`npm ci --no-audit --no-fund` failed in {EMULATOR_DIR} "
                f"(exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
            )

    # -- user-side helpers (sync, for assertions outside the event loop) ---------------------
    def history(self, bot_token: str) -> list[JSONDict]:
        """Raw ``/getUpdatesHistory``: every stored user update and bot message of the bot."""
        res = httpx.post(f"{self.api_url}/getUpdatesHistory", json={"token": bot_token})
        res.raise_for_status()
        return list(res.json()["result"])

    # -- internals --------------------------------------------------------------------------
    def _stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def _read_port(self) -> int:
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise EmulatorError(
                        f"the Telegram emulator printed no port within {self.start_timeout} s; "
                        f"stderr:\n{self._stderr_text()}"
                    )
                if not sel.select(timeout=left):
                    continue
                chunk = os.read(self._proc.stdout.fileno(), 4096)
                if not chunk:
                    self._proc.wait(timeout=5)
                    raise EmulatorError(
                        f"the Telegram emulator exited (code {self._proc.returncode}) before "
                        f"printing its port; stderr:\n{self._stderr_text()}"
                    )
                buf += chunk
        line = buf.split(b"\n", 1)[0]
        try:
            return int(json.loads(line)["port"])
        except (ValueError, KeyError, TypeError) as exc:
            raise EmulatorError(f"unexpected first line from server.js: {line!r}") from exc

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if not self.running:
                raise EmulatorError(f"the Telegram emulator died:\n{self._stderr_text()}")
            try:
                res = httpx.post(f"{self.api_url}/getUpdatesHistory", json={"token": "-"})
                if res.status_code == 200:
                    return
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.02)
        raise EmulatorError(f"the Telegram emulator does not answer on {self.api_url}: {last}")


def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise EmulatorError(
            f"`{name}` is not on PATH: the Telegram emulator tests need Node.js 18+ and npm "
            f"(they run the npm package {PACKAGE} from {EMULATOR_DIR})"
        )
    return path


def _kill_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


# --------------------------------------------------------------------------------------------
# The bot side: an HTTPXRequest that makes the emulator look like the Bot API
# --------------------------------------------------------------------------------------------


class ApiCall(NamedTuple):
    """One Bot API call made by the bot: ``method`` (e.g. ``"sendLocation"``) and its params.

    Uploaded files appear in ``params`` as ``{"filename": ..., "mime_type": ..., "size": ...}``.
    """

    method: str
    params: JSONDict


_URL = re.compile(r"^(?P<root>https?://[^/]+)/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)$")
_FILE_URL = re.compile(r"^(?P<root>https?://[^/]+)/file/bot(?P<token>[^/]+)/(?P<path>.+)$")

# Answered locally with ``True`` (what the Bot API answers on success).
_LOCAL_TRUE = frozenset(
    {
        "setMyCommands",
        "deleteMyCommands",
        "setMyName",
        "setMyDescription",
        "setMyShortDescription",
        "setChatMenuButton",
        "setMyDefaultAdministratorRights",
        "sendChatAction",
        "setMessageReaction",
        "pinChatMessage",
        "unpinChatMessage",
        "unpinAllChatMessages",
        "close",
        "logOut",
    }
)
# Sent as a message: stored in the emulator (so the user sees them and ids stay unique) through
# its sendMessage route with the Bot API message fields, and answered with that Message.
_LOCAL_SENDS = frozenset({"sendPhoto", "sendDocument", "sendLocation", "sendVenue", "sendContact"})
_EDITS = frozenset({"editMessageText", "editMessageReplyMarkup", "editMessageCaption"})
_DATE_KEYS = frozenset({"date", "edit_date", "forward_date"})
_MESSAGE_KEYS = (  # fields of a stored emulator message that are Bot API Message fields
    "text",
    "entities",
    "caption",
    "caption_entities",
    "photo",
    "document",
    "location",
    "venue",
    "contact",
    "message_thread_id",
)


class EmulatorRequest(HTTPXRequest):
    """``HTTPXRequest`` for tests only: repairs the emulator's departures from the Bot API.

    * ``calls``: every Bot API call the bot made through this object (method, params),
      except getUpdates.
    * ``local_calls``: the calls answered here because the emulator lacks the method
      (setMyCommands, sendChatAction, sendLocation, sendPhoto, getFile, ...).

    Pass one instance to ``.request(...)`` and another to ``.get_updates_request(...)``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[ApiCall] = []
        self.local_calls: list[ApiCall] = []
        self._ids = itertools.count(1)
        self._commands: list[Any] = []
        self._webhook_url = ""

    # -- helpers for assertions ------------------------------------------------------------
    def calls_to(self, method: str) -> list[JSONDict]:
        """Params of every call to ``method`` (emulated or local), in order."""
        return [c.params for c in self.calls if c.method == method]

    def local_calls_to(self, method: str) -> list[JSONDict]:
        return [c.params for c in self.local_calls if c.method == method]

    # -- the override ----------------------------------------------------------------------
    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        file_match = _FILE_URL.match(url)
        if file_match:  # the emulator serves no files: hand back deterministic bytes
            path = file_match["path"]
            self.local_calls.append(ApiCall("downloadFile", {"file_path": path}))
            return 200, f"emulated file {path}".encode()
        match = _URL.match(url)
        if match is None:
            raise EmulatorError(f"EmulatorRequest got a URL it does not understand: {url}")
        api, root, token = match["method"], match["root"], match["token"]
        params = _params(request_data)
        if api != "getUpdates":  # polled 20 times a second: not worth keeping
            self.calls.append(ApiCall(api, params))

        local = await self._answer_locally(api, params, root, token)
        if local is not None:
            self.local_calls.append(ApiCall(api, params))
            return _ok(local)
        if api in _EDITS:
            return await self._edit(api, params, root, token)

        code, payload = await super().do_request(
            url,
            method,
            request_data,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
        )
        return await self._fix_response(api, params, root, token, code, payload)

    # -- emulated responses ------------------------------------------------------------------
    async def _fix_response(
        self, api: str, params: JSONDict, root: str, token: str, code: int, payload: bytes
    ) -> tuple[int, bytes]:
        try:
            body = json.loads(payload)
        except ValueError:
            return code, payload
        if code >= 500 and isinstance(body, dict) and "description" not in body:
            # express answers {"message": ...} (HTTP 500) for methods it lacks: say so plainly
            return _error(
                code,
                f"telegram-test-api cannot do {api} ({body.get('message')}); "
                "answer it in EmulatorRequest._answer_locally",
            )
        if code != 200 or not isinstance(body, dict):
            return code, payload
        if body.get("ok") is False:  # e.g. a failed deleteMessage: 200 + ok false upstream
            return _error(int(body.get("error_code") or 400), body.get("description") or "")
        result = body.get("result")
        if api == "getMe":
            result = {**BOT_USER, **(result or {}), "is_bot": True}
        elif api == "getUpdates":
            result = [_fix_update(u) for u in result or []]
        elif api == "sendMessage":
            result = _message(params, result)
        elif api == "deleteWebhook":
            self._webhook_url = ""
            if str(params.get("drop_pending_updates")).lower() == "true":
                await self._drain_updates(root, token)  # the emulator ignores the flag
            result = True
        elif api == "setWebhook":
            self._webhook_url = str(params.get("url", ""))
            result = True
        elif result is None:  # answerCallbackQuery, deleteMessage, ...: Telegram says True
            result = True
        return _ok(result)

    async def _answer_locally(
        self, api: str, params: JSONDict, root: str, token: str
    ) -> Any | None:
        if api in _LOCAL_TRUE:
            if api == "setMyCommands":
                self._commands = list(params.get("commands") or [])
            elif api == "deleteMyCommands":
                self._commands = []
            return True
        if api in _LOCAL_SENDS:
            return await self._send_as_message(api, params, root, token)
        if api == "getMyCommands":
            return self._commands
        if api == "getFile":
            file_id = str(params.get("file_id"))
            return {
                "file_id": file_id,
                "file_unique_id": f"u-{file_id}"[:32],
                "file_size": len(f"emulated file files/{file_id}"),
                "file_path": f"files/{file_id}",
            }
        if api == "getWebhookInfo":
            return {
                "url": self._webhook_url,
                "has_custom_certificate": False,
                "pending_update_count": 0,
            }
        if api == "getMyName":
            return {"name": BOT_USER["first_name"]}
        if api == "getMyDescription":
            return {"description": ""}
        if api == "getMyShortDescription":
            return {"short_description": ""}
        if api == "getChatMenuButton":
            return {"type": "default"}
        return None

    async def _send_as_message(
        self, api: str, params: JSONDict, root: str, token: str
    ) -> JSONDict:
        content: JSONDict = {}
        if api == "sendLocation":
            content["location"] = _location(params)
        elif api == "sendVenue":
            loc = _location(params)
            content["location"] = loc
            content["venue"] = {
                "location": loc,
                "title": params.get("title", ""),
                "address": params.get("address", ""),
            }
        elif api == "sendContact":
            content["contact"] = {
                k: params[k]
                for k in ("phone_number", "first_name", "last_name", "vcard")
                if k in params
            }
        elif api == "sendPhoto":
            file_id = self._file_id(params.get("photo"))
            content["photo"] = [
                {
                    "file_id": f"{file_id}",
                    "file_unique_id": f"{file_id}-s"[:32],
                    "width": 90,
                    "height": 67,
                    "file_size": 1200,
                },
                {
                    "file_id": f"{file_id}",
                    "file_unique_id": f"{file_id}-l"[:32],
                    "width": 1280,
                    "height": 960,
                    "file_size": 98000,
                },
            ]
        elif api == "sendDocument":
            doc = params.get("document")
            content["document"] = {
                "file_id": self._file_id(doc),
                "file_unique_id": f"{self._file_id(doc)}-d"[:32],
            }
            if isinstance(doc, dict) and doc.get("filename"):
                content["document"]["file_name"] = doc["filename"]
        if "caption" in params:
            content["caption"] = params["caption"]
        body = {"chat_id": params.get("chat_id"), **content, "_method": api}
        if "reply_markup" in params:
            body["reply_markup"] = params["reply_markup"]
        res = await self._client.post(f"{root}/bot{token}/sendMessage", json=body)
        res.raise_for_status()
        stored = res.json()["result"]
        return _message(params, stored, content=content)

    def _file_id(self, value: Any) -> str:
        if isinstance(value, str) and not value.startswith("attach://"):
            return value  # a file_id or URL the bot passed on
        return f"emulated-file-{next(self._ids)}"

    async def _edit(self, api: str, params: JSONDict, root: str, token: str) -> tuple[int, bytes]:
        if "inline_message_id" in params:
            return _ok(True)  # the Bot API answers True for inline messages
        body: JSONDict = {"chat_id": params.get("chat_id"), "message_id": params.get("message_id")}
        # Bot API: an edit without reply_markup removes the inline keyboard; the emulator
        # merges, and ignores a markup without inline_keyboard: send an empty keyboard.
        body["reply_markup"] = params.get("reply_markup") or {"inline_keyboard": []}
        if api == "editMessageText":
            body["text"] = params.get("text")
            if "entities" in params:
                body["entities"] = params["entities"]
        elif api == "editMessageCaption":
            body["caption"] = params.get("caption")
        # editMessageCaption does not exist upstream; editMessageText merges any field
        route = "editMessageReplyMarkup" if api == "editMessageReplyMarkup" else "editMessageText"
        res = await self._client.post(f"{root}/bot{token}/{route}", json=body)
        res.raise_for_status()
        stored = await self._find_bot_message(root, token, params)
        if stored is None:
            return _error(400, "Bad Request: message to edit not found")
        return _ok(_stored_message(stored, edited=True))

    async def _find_bot_message(self, root: str, token: str, params: JSONDict) -> JSONDict | None:
        res = await self._client.post(f"{root}/getUpdatesHistory", json={"token": token})
        res.raise_for_status()
        for entry in res.json()["result"]:
            msg = entry.get("message") or {}
            if (
                "chat_id" in msg
                and str(entry.get("messageId")) == str(params.get("message_id"))
                and str(msg.get("chat_id")) == str(params.get("chat_id"))
            ):
                return entry
        return None

    async def _drain_updates(self, root: str, token: str) -> None:
        res = await self._client.post(f"{root}/bot{token}/getUpdates", data={})
        res.raise_for_status()


def _params(request_data: RequestData | None) -> JSONDict:
    if request_data is None:
        return {}
    params: JSONDict = dict(request_data.parameters)
    if request_data.contains_files:
        for name, part in request_data.multipart_data.items():
            filename, content = part[0], part[1]
            mime = part[2] if len(part) > 2 else None  # type: ignore[misc]
            params[name] = {"filename": filename, "mime_type": mime, "size": len(content)}
    return params


def _ok(result: Any) -> tuple[int, bytes]:
    return 200, json.dumps({"ok": True, "result": result}).encode()


def _error(code: int, description: str) -> tuple[int, bytes]:
    body = {"ok": False, "error_code": code, "description": description}
    return code, json.dumps(body).encode()


def _seconds(value: Any) -> Any:
    """The emulator stamps bot messages with Date.now() (ms); the Bot API uses seconds."""
    if isinstance(value, int | float) and value > 10**11:
        return int(value // 1000)
    return value


def _fix_dates(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _seconds(v) if k in _DATE_KEYS else _fix_dates(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_fix_dates(v) for v in obj]
    return obj


def _chat(chat_id: Any, given: JSONDict | None = None) -> JSONDict:
    """A Chat: the emulator calls every chat private; the id's sign says what it really is."""
    chat = dict(given or {})
    try:
        cid = int(chat.get("id", chat_id))
    except (TypeError, ValueError):
        cid = 0
    chat["id"] = cid
    if cid < 0:
        chat["type"] = "supergroup" if str(cid).startswith("-100") else "group"
        chat.setdefault("title", f"Chat {cid}")
        chat.pop("first_name", None)
    else:
        chat["type"] = "private"
        chat.setdefault("first_name", "User")
    return chat


def _fix_message(msg: JSONDict) -> JSONDict:
    msg = _fix_dates({k: v for k, v in msg.items() if k not in ("botToken", "chat_id")})
    msg.setdefault("date", int(time.time()))
    msg["chat"] = _chat(msg.get("chat", {}).get("id", 0), msg.get("chat"))
    return msg


def _fix_update(update: JSONDict) -> JSONDict:
    update = {k: v for k, v in update.items() if k != "botToken"}
    for key in ("message", "edited_message", "channel_post"):
        if isinstance(update.get(key), dict):
            update[key] = _fix_message(update[key])
    query = update.get("callback_query")
    if isinstance(query, dict):
        query = {k: v for k, v in query.items() if k != "botToken"}
        msg = query.get("message")
        if isinstance(msg, dict):
            msg = _fix_message(msg)
            msg.setdefault("from", BOT_USER)
            query["message"] = msg
            query.setdefault("chat_instance", f"emulated-{msg['chat']['id']}")
        else:
            query.setdefault("chat_instance", "emulated")
        update["callback_query"] = _fix_dates(query)
    return update


def _location(params: JSONDict) -> JSONDict:
    loc: JSONDict = {"latitude": params.get("latitude"), "longitude": params.get("longitude")}
    for key in ("horizontal_accuracy", "live_period", "heading", "proximity_alert_radius"):
        if key in params:
            loc[key] = params[key]
    return loc


def _inline_markup(markup: Any) -> JSONDict | None:
    if isinstance(markup, str):
        try:
            markup = json.loads(markup)
        except ValueError:
            return None
    if isinstance(markup, dict) and markup.get("inline_keyboard"):
        return {"inline_keyboard": markup["inline_keyboard"]}
    return None


def _message(params: JSONDict, emulated: Any, *, content: JSONDict | None = None) -> JSONDict:
    """The Message the Bot API returns for a send, from the bot's params and the stored copy.

    The emulator echoes the whole request body (parse_mode, link_preview_options as a JSON
    string, ...) into the result; rebuild it from fields that belong to a Message.
    """
    emulated = emulated if isinstance(emulated, dict) else {}
    msg: JSONDict = {
        "message_id": emulated.get("message_id"),
        "from": BOT_USER,
        "date": _seconds(emulated.get("date")) or int(time.time()),
        "chat": _chat(params.get("chat_id")),
    }
    if content:
        msg.update(content)
    for key in ("text", "entities", "caption", "caption_entities", "message_thread_id"):
        if key in params:
            msg[key] = params[key]
    markup = _inline_markup(params.get("reply_markup"))
    if markup:
        msg["reply_markup"] = markup
    return msg


def _stored_message(entry: JSONDict, *, edited: bool = False) -> JSONDict:
    stored = entry["message"]
    msg: JSONDict = {
        "message_id": entry["messageId"],
        "from": BOT_USER,
        "date": _seconds(entry.get("time")) or int(time.time()),
        "chat": _chat(stored.get("chat_id")),
    }
    if edited:
        msg["edit_date"] = int(time.time())
    for key in _MESSAGE_KEYS:
        value = stored.get(key)
        if value is not None:
            msg[key] = (
                json.loads(value) if key.endswith("entities") and isinstance(value, str) else value
            )
    markup = _inline_markup(stored.get("reply_markup"))
    if markup:
        msg["reply_markup"] = markup
    return msg


def application_builder(
    emulator: TelegramEmulator,
    token: str,
    *,
    request: EmulatorRequest | None = None,
    updates_request: EmulatorRequest | None = None,
) -> ApplicationBuilder:  # type: ignore[type-arg]
    """An ``ApplicationBuilder`` aimed at ``emulator`` with :class:`EmulatorRequest` objects.

    Keep a reference to ``request`` to look at ``request.calls`` / ``request.local_calls``.
    """
    return (
        ApplicationBuilder()
        .token(token)
        .base_url(emulator.base_url)
        .base_file_url(emulator.base_file_url)
        .request(request or EmulatorRequest())
        .get_updates_request(updates_request or EmulatorRequest())
    )


@contextlib.asynccontextmanager
async def running(
    app: Application,  # type: ignore[type-arg]
    *,
    poll_interval: float = 0.05,
    **polling_kwargs: Any,
) -> AsyncIterator[Application]:  # type: ignore[type-arg]
    """What ``app.run_polling()`` does, inside the caller's event loop, undone on exit.

    Same order as PTB 22's ``Application.__run``: initialize, post_init, start_polling, start;
    then updater.stop, stop, post_stop, shutdown, post_shutdown.
    """
    await app.initialize()
    try:
        if app.post_init:
            await app.post_init(app)
        assert app.updater is not None, "build the Application with an Updater"
        await app.updater.start_polling(poll_interval=poll_interval, **polling_kwargs)
        try:
            await app.start()
            try:
                yield app
            finally:
                if app.updater.running:
                    await app.updater.stop()
                await app.stop()
                if app.post_stop:
                    await app.post_stop(app)
        finally:
            if app.updater.running:
                await app.updater.stop()
    finally:
        await app.shutdown()
        if app.post_shutdown:
            await app.post_shutdown(app)


# --------------------------------------------------------------------------------------------
# The user side
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BotMessage:
    """A message the bot sent to the user's chat, as the emulator stores it."""

    message_id: int
    chat_id: int
    raw: JSONDict = field(repr=False)

    @classmethod
    def from_entry(cls, entry: JSONDict) -> BotMessage:
        msg = dict(entry["message"])
        for key in ("reply_markup", "entities", "caption_entities"):
            if isinstance(msg.get(key), str):
                with contextlib.suppress(ValueError):
                    msg[key] = json.loads(msg[key])
        return cls(message_id=int(entry["messageId"]), chat_id=int(msg["chat_id"]), raw=msg)

    @property
    def method(self) -> str:
        """The Bot API method that produced it: sendMessage, sendLocation, sendPhoto, ..."""
        return str(self.raw.get("_method", "sendMessage"))

    @property
    def text(self) -> str | None:
        return self.raw.get("text")

    @property
    def caption(self) -> str | None:
        return self.raw.get("caption")

    @property
    def parse_mode(self) -> str | None:
        return self.raw.get("parse_mode")

    @property
    def reply_markup(self) -> JSONDict | None:
        markup = self.raw.get("reply_markup")
        return markup if isinstance(markup, dict) else None

    @property
    def buttons(self) -> list[list[JSONDict]]:
        """Rows of inline keyboard buttons (``[]`` when there is no inline keyboard)."""
        return list((self.reply_markup or {}).get("inline_keyboard") or [])

    @property
    def button_texts(self) -> list[str]:
        return [b.get("text", "") for row in self.buttons for b in row]

    @property
    def callback_data(self) -> list[str]:
        return [b["callback_data"] for row in self.buttons for b in row if "callback_data" in b]

    @property
    def keyboard(self) -> list[list[str]]:
        """Texts of a reply (non-inline) keyboard, if the bot sent one."""
        rows = (self.reply_markup or {}).get("keyboard") or []
        return [[b if isinstance(b, str) else b.get("text", "") for b in row] for row in rows]

    @property
    def location(self) -> JSONDict | None:
        return self.raw.get("location")

    @property
    def photo(self) -> list[JSONDict] | None:
        return self.raw.get("photo")

    def button(self, text: str) -> JSONDict:
        """The inline button whose text is ``text`` (exact), or AssertionError."""
        for row in self.buttons:
            for b in row:
                if b.get("text") == text:
                    return b
        raise AssertionError(
            f"no button {text!r} on message {self.message_id}: {self.button_texts}"
        )


class EmulatedUser:
    """A Telegram user talking to the bot through the emulator's client API.

    Use ``async with EmulatedUser(...) as user`` (or call :meth:`aclose`) inside one event loop.
    """

    poll_interval = 0.05

    def __init__(
        self,
        emulator: TelegramEmulator,
        bot_token: str,
        user_id: int,
        first_name: str,
        chat_id: int | None = None,
        *,
        username: str | None = None,
        last_name: str | None = None,
        language_code: str | None = "id",
    ) -> None:
        self.emulator = emulator
        self.bot_token = bot_token
        self.user_id = user_id
        self.first_name = first_name
        self.chat_id = user_id if chat_id is None else chat_id
        self.username = username
        self.last_name = last_name
        self.language_code = language_code
        self.received: list[BotMessage] = []  # every bot message seen, in order
        self._inbox: list[BotMessage] = []  # seen but not yet returned by replies()/wait_for()
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- what the user sends -------------------------------------------------------------------
    @property
    def user(self) -> JSONDict:
        user: JSONDict = {"id": self.user_id, "is_bot": False, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            if getattr(self, key):
                user[key] = getattr(self, key)
        return user

    @property
    def chat(self) -> JSONDict:
        if self.chat_id < 0:
            return {"id": self.chat_id, "type": "group", "title": f"Chat {self.chat_id}"}
        chat: JSONDict = {"id": self.chat_id, "type": "private", "first_name": self.first_name}
        if self.username:
            chat["username"] = self.username
        return chat

    def _message(self, **fields: Any) -> JSONDict:
        return {
            "botToken": self.bot_token,
            "from": self.user,
            "chat": self.chat,
            "date": int(time.time()),
            **fields,
        }

    async def send(self, text: str, **fields: Any) -> None:
        """A plain text message (extra Bot API Message fields may be given)."""
        await self._post("/sendMessage", self._message(text=text, **fields))

    async def command(self, text: str, **fields: Any) -> None:
        """``/start`` or ``/lapor jalan rusak``: with its bot_command entity."""
        if not text.startswith("/"):
            raise ValueError(f"a command starts with '/': {text!r}")
        length = len(text.split(maxsplit=1)[0])
        entities = [{"type": "bot_command", "offset": 0, "length": length}]
        await self._post("/sendCommand", self._message(text=text, entities=entities, **fields))

    async def send_location(self, latitude: float, longitude: float, **fields: Any) -> None:
        location = {"latitude": latitude, "longitude": longitude}
        await self._post("/sendMessage", self._message(location=location, **fields))

    async def send_photo(
        self, file_id: str, *, caption: str | None = None, width: int = 1280, height: int = 960
    ) -> None:
        """A photo message: ``photo`` is the usual array of PhotoSize, smallest first."""
        sizes = [
            (f"{file_id}-s", max(1, width // 14), max(1, height // 14), 1_500),
            (f"{file_id}-m", max(1, width // 4), max(1, height // 4), 20_000),
            (file_id, width, height, 120_000),
        ]
        photo = [
            {
                "file_id": fid,
                "file_unique_id": f"u{zlib.crc32(fid.encode()):08x}",
                "width": w,
                "height": h,
                "file_size": size,
            }
            for fid, w, h, size in sizes
        ]
        fields: JSONDict = {"photo": photo}
        if caption is not None:
            fields["caption"] = caption
        await self._post("/sendMessage", self._message(**fields))

    async def press(self, callback_data: str, message_id: int | None = None) -> None:
        """Press an inline button: by default on the latest received message offering it."""
        source = None
        if message_id is None:
            for msg in reversed(self.received):
                if callback_data in msg.callback_data:
                    source = msg
                    break
            if source is None:
                raise AssertionError(
                    f"no message from the bot offers a button with callback_data="
                    f"{callback_data!r}; buttons seen: {[m.callback_data for m in self.received]}"
                )
        else:
            source = next((m for m in self.received if m.message_id == message_id), None)
        message: JSONDict = {
            "message_id": source.message_id if source else message_id,
            "from": BOT_USER,
            "chat": self.chat,
            "date": int(time.time()),
        }
        if source is not None:
            for key in ("text", "caption", "reply_markup"):
                if source.raw.get(key) is not None:
                    message[key] = source.raw[key]
        body = {
            "botToken": self.bot_token,
            "from": self.user,
            "message": message,
            "data": callback_data,
            "chat_instance": f"emulated-{self.chat_id}",
        }
        await self._post("/sendCallback", body)

    # -- what the user reads -------------------------------------------------------------------
    async def replies(self, timeout: float = 5.0, count: int | None = None) -> list[BotMessage]:
        """The bot's new messages in this chat.

        With ``count``: wait until that many arrived (AssertionError after ``timeout``
        otherwise) and return exactly those, leaving later ones for the next call. Without:
        wait for the first one (up to ``timeout``), then until 0.3 s pass with nothing new;
        ``[]`` if the bot stayed silent.
        """
        deadline = time.monotonic() + timeout
        quiet_until: float | None = None
        while True:
            got = await self._poll()
            now = time.monotonic()
            if count is not None:
                if len(self._inbox) >= count:
                    out, self._inbox = self._inbox[:count], self._inbox[count:]
                    return out
            elif self._inbox:
                if got or quiet_until is None:
                    quiet_until = now + 0.3
                if now >= quiet_until:
                    break
            if now >= deadline:
                if count is not None:
                    raise AssertionError(
                        f"expected {count} message(s) from the bot within {timeout} s, got "
                        f"{len(self._inbox)}: {[m.text for m in self._inbox]}"
                    )
                break
            await asyncio.sleep(self.poll_interval)
        out, self._inbox = self._inbox, []
        return out

    async def wait_for(
        self, predicate: Callable[[BotMessage], bool], timeout: float = 5.0
    ) -> BotMessage:
        """The first (oldest) unread bot message matching ``predicate``; others stay unread."""
        deadline = time.monotonic() + timeout
        while True:
            await self._poll()
            for i, msg in enumerate(self._inbox):
                if predicate(msg):
                    del self._inbox[i]
                    return msg
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"no bot message matched within {timeout} s; unread: "
                    f"{[(m.method, m.text) for m in self._inbox]}"
                )
            await asyncio.sleep(self.poll_interval)

    async def wait_for_text(self, needle: str, timeout: float = 5.0) -> BotMessage:
        """Shortcut: the first unread message whose text or caption contains ``needle``."""
        return await self.wait_for(
            lambda m: needle in (m.text or "") or needle in (m.caption or ""), timeout
        )

    async def history(self) -> list[BotMessage]:
        """The current state (after edits) of every bot message in this chat, oldest first."""
        res = await self._post("/getUpdatesHistory", {"token": self.bot_token})
        return [
            BotMessage.from_entry(e)
            for e in res["result"]
            if "chat_id" in (e.get("message") or {})
            and str(e["message"]["chat_id"]) == str(self.chat_id)
        ]

    async def message(self, message_id: int) -> BotMessage:
        """The current state of one bot message (sees edits, which replies() does not)."""
        for msg in await self.history():
            if msg.message_id == message_id:
                return msg
        raise AssertionError(f"the bot sent no message {message_id} to chat {self.chat_id}")

    async def eventually(
        self,
        check: Callable[[], Awaitable[bool]],
        timeout: float = 5.0,
        what: str = "condition",
    ) -> None:
        """Poll an async ``check`` until true (e.g. a message got edited)."""
        deadline = time.monotonic() + timeout
        while not await check():
            if time.monotonic() >= deadline:
                raise AssertionError(f"{what} not met within {timeout} s")
            await asyncio.sleep(self.poll_interval)

    # -- internals ---------------------------------------------------------------------------
    async def _poll(self) -> int:
        res = await self._post("/getUpdates", {"token": self.bot_token, "chatId": self.chat_id})
        new = [BotMessage.from_entry(e) for e in res.get("result") or []]
        self.received.extend(new)
        self._inbox.extend(new)
        return len(new)

    async def _post(self, path: str, body: JSONDict) -> JSONDict:
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.emulator.api_url, timeout=10)
        res = await self._client.post(path, json=body)
        if res.status_code != 200:
            raise EmulatorError(f"emulator {path} answered {res.status_code}: {res.text}")
        data: JSONDict = res.json()
        return data
