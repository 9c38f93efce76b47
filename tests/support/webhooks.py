"""The web app's two webhooks, driven as the platforms drive them, for hostile-input tests.

`Hooks` runs the real web app (`bot.web.create_app`) with the Telegram and the WhatsApp
channel on its own event loop (an anyio portal, with its lifespan, as uvicorn runs it);
requests reach it through httpx's ASGI transport. Its workers do not run by themselves:
`settle()` handles what the webhooks stored and sends every reply, as the workers would.
Telegram's replies go to the fake Bot API (`fake_bot_api`, which refuses over-long messages
as Telegram does), WhatsApp's to the fake Graph API (`whatsapp_graph`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import anyio.from_thread
import httpx
from pydantic import SecretStr
from sqlalchemy import func, select

from actions.domain import InboxState, OutboxState
from actions.models import InboxUpdate, Outbox
from bot.channels.telegram import SECRET_HEADER, WEBHOOK_PATH, TelegramChannel
from bot.channels.whatsapp import PATH, SIGNATURE_HEADER, WhatsAppChannel, WhatsAppSettings
from bot.conversation import Assistant
from bot.web import create_app
from support import fake_bot_updates as tg
from support.fake_bot_api import FakeServer
from support.whatsapp_graph import (
    API,
    PHONE_NUMBER_ID,
    VERSION,
    FakeGraph,
    message_payload,
    sign,
)

TG_SECRET = "rahasia-webhook-uji"  # noqa: S105 - test secrets
WA_SECRET = "app-secret-uji"  # noqa: S105
WA_TOKEN = "EAAGtoken-uji"  # noqa: S105
PAIR_INTERVAL = 0.01  # WhatsApp's pair rate, scaled down from 6 s
_ids = itertools.count(1)


def next_id() -> int:
    """A fresh update id (Telegram) or message number (WhatsApp) for this process."""
    return next(_ids)


def wamid() -> str:
    return f"wamid.HBgNNjI4MTI3NjU0MzIxMBUCABIYFjNFQjB{next_id():010d}AA=="


class OpenWindow(dict[str, Any]):
    """The fake Graph API's record of who wrote last: everyone, just now (the fuzz has
    residents of every kind write, and each may be answered)."""

    def __init__(self, graph: FakeGraph) -> None:
        super().__init__()
        self.graph = graph

    def get(self, key: str, default: Any = None) -> Any:
        return self.graph.clock()


class Failures(logging.Handler):
    """Errors the bot logs (a worker's failure, a sender's crash): none is expected."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> Failures:
        logging.getLogger("bot").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("bot").removeHandler(self)

    def messages(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()} {r.exc_text or ''}".strip() for r in self.records]


class Hooks:
    """The web app with both webhooks; the fake Bot API and the fake Graph API behind them."""

    def __init__(
        self, assistant: Assistant, fake: FakeServer, graph: FakeGraph, media_dir: Any
    ) -> None:
        self.assistant, self.fake, self.graph = assistant, fake, graph
        self.telegram = TelegramChannel(
            assistant, token=fake.token, api_url=fake.url, secret=TG_SECRET
        )
        settings = WhatsAppSettings(
            verify_token=SecretStr("verifikasi-uji"),
            app_secret=SecretStr(WA_SECRET),
            access_token=SecretStr(WA_TOKEN),
            phone_number_id=PHONE_NUMBER_ID,
            api_url=API,
            api_version=VERSION,
            media_dir=media_dir,
        )
        self.whatsapp = WhatsAppChannel(
            assistant,
            settings,
            transport=graph.transport,
            pair_interval=PAIR_INTERVAL,
            pair_burst=3,
            backoff=0.01,
        )
        self.app = create_app(
            assistant,
            channels=[self.telegram, self.whatsapp],
            open311_interval=None,
            background=False,
            paced=False,
        )
        self.t = assistant.responses.get
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Hooks:
        self.portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
        self._stack.enter_context(
            self.portal.wrap_async_context_manager(self.app.router.lifespan_context(self.app))
        )
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://warga.test"
        )
        self._stack.callback(self.portal.call, self.http.aclose)
        deadline = time.monotonic() + 10  # the channel meets the fake Bot API (getMe, commands)
        while not self.telegram.api.ready and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    # -- requests --------------------------------------------------------------------------------

    def post(
        self, path: str, content: bytes | AsyncIterator[bytes], headers: dict[str, str]
    ) -> httpx.Response:
        return self.portal.call(lambda: self.http.post(path, content=content, headers=headers))

    def telegram_raw(self, body: bytes | AsyncIterator[bytes], **headers: str) -> httpx.Response:
        """POST a body to the Telegram webhook with the secret."""
        return self.post(WEBHOOK_PATH, body, {SECRET_HEADER: TG_SECRET, **headers})

    def telegram_update(self, update: dict[str, Any]) -> httpx.Response:
        """POST an update as Telegram does; an update without an id gets a fresh one."""
        update = {"update_id": next_id(), **update}
        return self.telegram_raw(encode(update), **{"Content-Type": "application/json"})

    def whatsapp_raw(self, body: bytes, *, signed: bool = True) -> httpx.Response:
        """POST a body to the WhatsApp webhook, signed with the app secret."""
        headers = {"Content-Type": "application/json"}
        if signed:
            headers[SIGNATURE_HEADER] = sign(body, WA_SECRET)
        return self.post(PATH, body, headers)

    def whatsapp_payload(self, payload: Any) -> httpx.Response:
        return self.whatsapp_raw(encode(payload))

    def settle(self) -> None:
        """Handle what the webhooks stored and send every reply, as the workers would."""
        self.portal.call(self.app.state.service.settle)

    # -- what the store holds --------------------------------------------------------------------

    def inbox(self) -> dict[str, int]:
        """Inbox rows waiting or given up on, by state (handled ones are kept a few days)."""
        with self.assistant.sessions() as s:
            rows = s.execute(
                select(InboxUpdate.state, func.count())
                .where(InboxUpdate.state != InboxState.DONE)
                .group_by(InboxUpdate.state)
            ).all()
        return {state.value if isinstance(state, InboxState) else state: n for state, n in rows}

    def handled(self) -> int:
        """Updates handled (each once)."""
        with self.assistant.sessions() as s:
            done = InboxUpdate.state == InboxState.DONE
            return s.scalar(select(func.count()).select_from(InboxUpdate).where(done)) or 0

    def failed_outbox(self) -> list[str]:
        """Messages to a chat given up on, with their reasons (an agency without officers
        is no failure of a message)."""
        with self.assistant.sessions() as s:
            failed = select(Outbox.last_error).where(
                Outbox.state == OutboxState.FAILED, Outbox.resident_id.is_not(None)
            )
            return list(s.scalars(failed))


class TelegramUser:
    """A resident on Telegram: their messages are posted to the webhook as Telegram posts
    them (any text: a hostile one too); a tap on a button is made into an update by the fake
    Bot API (the tapped message as it stands, a callback query it will take an answer to),
    fetched from it and posted. What the bot sends them is what the fake accepted."""

    def __init__(self, hooks: Hooks, user_id: int, **names: Any) -> None:
        self.hooks, self.user_id, self.names = hooks, user_id, names
        self.seen = 0

    def send(self, text: str) -> httpx.Response:
        update = tg.text_update(self.user_id, text, message_id=next_id(), **self.names)
        return self._post(update)

    def press(self, data: str, message_id: int) -> httpx.Response:
        fake = self.hooks.fake
        (update_id,) = fake.state.push(
            tg.callback_update(self.user_id, data, message_id, **self.names)
        )
        got = httpx.post(
            f"{fake.url}/bot{fake.token}/getUpdates", json={"offset": update_id, "timeout": 0}
        ).json()["result"]
        (made,) = (u for u in got if u["update_id"] == update_id)
        del made["update_id"]  # numbered here, with the user's messages
        return self._post(made)

    def _post(self, update: dict[str, Any]) -> httpx.Response:
        response = self.hooks.telegram_update(update)
        assert response.status_code == 200, response.text
        self.hooks.settle()
        return response

    def replies(self) -> list[Any]:
        """The messages the bot sent this user since the last look (fake_bot_api.Sent)."""
        got = self.hooks.fake.state.messages_to(self.user_id)
        new, self.seen = got[self.seen :], len(got)
        return new


class WhatsAppUser:
    """A resident on WhatsApp: what they send reaches the webhook signed by Meta; what the
    bot sends them is what the fake Graph API accepted."""

    def __init__(
        self, hooks: Hooks, wa_id: str, user_id: str = "ID.7700112233", name: str = "Siti"
    ) -> None:
        self.hooks, self.wa_id, self.user_id, self.name = hooks, wa_id, user_id, name
        self.seen = 0

    def payload(self, content: dict[str, Any]) -> dict[str, Any]:
        return message_payload(
            content,
            wamid=wamid(),
            at=self.hooks.assistant.clock(),
            name=self.name,
            user_id=self.user_id,
            wa_id=self.wa_id,
        )

    def send(self, content: dict[str, Any]) -> httpx.Response:
        self.hooks.graph.inbound[self.wa_id] = self.hooks.assistant.clock()
        response = self.hooks.whatsapp_payload(self.payload(content))
        assert response.status_code == 200, response.text
        self.hooks.settle()
        return response

    def replies(self) -> list[dict[str, Any]]:
        got = self.hooks.graph.to(self.wa_id)
        new, self.seen = got[self.seen :], len(got)
        return new


def encode(value: Any) -> bytes:
    """JSON as the platforms send it: ASCII, so a lone surrogate travels as its escape."""
    return json.dumps(value).encode()


async def stream(chunks: Iterable[bytes], taken: list[int]) -> AsyncIterator[bytes]:
    """A request body that counts in `taken` how many bytes the server asked for."""
    for chunk in chunks:
        taken[0] += len(chunk)
        yield chunk


def wa_body_text(message: dict[str, Any]) -> str:
    if message["type"] == "text":
        return message["text"]["body"]
    if message["type"] == "interactive":
        return message["interactive"]["body"]["text"]
    return ""


def wa_choices(message: dict[str, Any]) -> dict[str, str]:
    """Payload -> label of an interactive message's buttons or list rows."""
    if message["type"] != "interactive":
        return {}
    action = message["interactive"]["action"]
    kind = message["interactive"]["type"]
    if kind == "button":
        return {b["reply"]["id"]: b["reply"]["title"] for b in action["buttons"]}
    if kind == "list":
        return {r["id"]: r["title"] for s in action["sections"] for r in s["rows"]}
    return {}
