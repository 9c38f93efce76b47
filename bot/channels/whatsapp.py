"""WhatsApp Cloud API: the webhook in, replies and notifications out through the Graph API.

The only module that knows WhatsApp's JSON. The webhook checks `X-Hub-Signature-256` on the
raw body before anything else, then the payload's shape; it stores each message and delivery
status in the inbox and only then answers 200. Inbox workers handle them (one resident's
messages one at a time, in order); each message becomes an `Incoming` for the same
conversation as Telegram's, and the replies go out through the outbox. Everything goes out
through one shared httpx client, paced for WhatsApp's limits (80 messages/s per business
number, about one every 6 s to one person; the dispatcher keeps both across processes), with
retries on server errors and rate limits. More than 24 hours after a resident's last message
WhatsApp takes only approved templates: an outbox message then goes out as the template the
city file names for it, never as free text.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import logging
import mimetypes
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiolimiter import AsyncLimiter
from pydantic import SecretStr
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from actions import inbox
from actions.city import WhatsAppTemplates
from actions.domain import DeliveryStatus
from actions.inbox import NewUpdate, StoredUpdate
from actions.models import utcnow
from actions.people import last_inbound, note_inbound
from actions.receipts import record_sent, record_status, send_again
from actions.settings import Settings
from actions.signing import signature_ok
from actions.text import NAME_LIMIT, clean
from bot.conversation import Assistant
from bot.dispatcher import WHATSAPP_PACE, DeliveryError
from bot.edge import Ingest, Refused, parse_json, read_body, refusal_logged
from bot.inbox import Handled, answer, apologise
from bot.messages import Button, Incoming, Outgoing, split_text

log = logging.getLogger(__name__)

CHANNEL = "whatsapp"
PATH = "/whatsapp/webhook"
SIGNATURE_HEADER = "X-Hub-Signature-256"

# Free-form messages only within 24 hours of the resident's last message; keep clear of the
# edge (queueing, clock skew): a message that may arrive late goes out as a template.
WINDOW = timedelta(hours=24) - timedelta(minutes=10)
TEMPLATE_ONLY = "whatsapp_template_only"  # outbox flag: WhatsApp refused the free-form text

# Graph API error codes (developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes).
OUTSIDE_WINDOW = 131047  # re-engagement message: more than 24 hours since the user wrote
PAIR_RATE_LIMIT = 131056  # too many messages to one user in a short time
TRANSIENT_CODES = frozenset(
    {
        1,  # API unknown
        2,  # API service
        4,  # API too many calls
        80007,  # WhatsApp Business Account rate limit
        130429,  # throughput of the business number reached
        131000,  # something went wrong
        131016,  # service unavailable
    }
)

# Interactive message limits of the Cloud API.
MAX_REPLY_BUTTONS = 3
BUTTON_TITLE = 20
LIST_ROWS = 10
ROW_TITLE = 24
ROW_DESCRIPTION = 72
INTERACTIVE_BODY = 1024
TEXT_BODY = 4096
CAPTION = 1024
# Timestamps WhatsApp could send: from the epoch to well past this century.
LATEST_TIMESTAMP = 2**33
# Ids are kept in columns of 160 characters; a status is stored as "<message id>:<status>",
# so the id of the message it is about gets the room the longest status leaves.
ID_LIMIT = 160
STATUS_ID_LIMIT = ID_LIMIT - len(":delivered")


@dataclass(frozen=True)
class WhatsAppSettings:
    """The business number and the app's secrets (repr never shows them)."""

    verify_token: SecretStr
    app_secret: SecretStr
    access_token: SecretStr
    phone_number_id: str
    media_dir: Path  # where residents' photos are kept
    api_url: str = "https://graph.facebook.com"
    api_version: str = "v24.0"

    @classmethod
    def from_settings(cls, s: Settings) -> WhatsAppSettings:
        verify, secret, token, number = (
            s.whatsapp_verify_token,
            s.whatsapp_app_secret,
            s.whatsapp_access_token,
            s.whatsapp_phone_number_id,
        )
        if not (verify and secret and token and number):
            raise ValueError(
                "WhatsApp needs WHATSAPP_VERIFY_TOKEN, WHATSAPP_APP_SECRET, "
                "WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID"
            )
        return cls(
            verify_token=verify,
            app_secret=secret,
            access_token=token,
            phone_number_id=number,
            api_url=s.whatsapp_api_url,
            api_version=s.whatsapp_api_version,
            media_dir=s.effective_whatsapp_media_dir,
        )


# -- the webhook's payload --------------------------------------------------------------------


@dataclass(frozen=True)
class InboundMessage:
    """A resident's message, as much of it as the conversation uses."""

    message_id: str  # wamid.…
    wa_id: str | None  # the phone number; absent for someone who hides it behind a username
    user_id: str | None  # the business-scoped user id
    name: str
    at: datetime
    text: str = ""
    payload: str | None = None
    location: tuple[float, float] | None = None
    media_id: str | None = None


@dataclass(frozen=True)
class StatusReport:
    """What WhatsApp says became of a message we sent."""

    message_id: str
    status: DeliveryStatus
    at: datetime
    error: str = ""
    error_code: int | None = None


_STATUSES = {
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "failed": DeliveryStatus.FAILED,
}


def parse_webhook(
    payload: Mapping[str, Any], *, phone_number_id: str
) -> tuple[list[InboundMessage], list[StatusReport]]:
    """Return the messages and statuses of a webhook payload meant for our business number.

    What residents send that the bot does not take (voice, video, stickers, reactions, group
    messages) is left out, as on Telegram.
    """
    messages: list[InboundMessage] = []
    statuses: list[StatusReport] = []
    for entry in payload.get("entry") or []:
        for change in entry.get("changes") or []:
            value = change.get("value") or {}
            if change.get("field") != "messages":
                continue
            if (value.get("metadata") or {}).get("phone_number_id") != phone_number_id:
                log.info("whatsapp: an update for another business number, ignored")
                continue
            contacts = value.get("contacts") or []
            for raw in value.get("messages") or []:
                message = _message(raw, contacts)
                if message is not None:
                    messages.append(message)
            for raw in value.get("statuses") or []:
                status = _STATUSES.get(raw.get("status", ""))
                if status is None or raw.get("recipient_type") == "group":
                    continue
                errors = raw.get("errors") or [{}]
                code = errors[0].get("code")
                title = errors[0].get("title") or errors[0].get("message") or ""
                statuses.append(
                    StatusReport(
                        message_id=_str(raw["id"], STATUS_ID_LIMIT),
                        status=status,
                        at=_time(raw.get("timestamp")),
                        error=clean(" ".join(str(p) for p in (code, title) if p), 500),
                        error_code=code if isinstance(code, int) else None,
                    )
                )
    return messages, statuses


def _time(stamp: Any) -> datetime:
    """A webhook's Unix time (a string of digits, as WhatsApp sends it, or a number)."""
    if not stamp:
        return datetime.now(UTC)
    if isinstance(stamp, bool) or not isinstance(stamp, str | int):
        raise ValueError(f"a timestamp of type {type(stamp).__name__}")
    seconds = int(stamp)
    if not 0 <= seconds < LATEST_TIMESTAMP:
        raise ValueError(f"a timestamp out of range: {seconds}")
    return datetime.fromtimestamp(seconds, UTC)


def _message(
    raw: Mapping[str, Any], contacts: Sequence[Mapping[str, Any]]
) -> InboundMessage | None:
    if raw.get("group_id"):
        return None
    sender_phone, sender_id = raw.get("from"), raw.get("from_user_id")
    contact = next(
        (
            c
            for c in contacts
            if (sender_phone and c.get("wa_id") == sender_phone)
            or (sender_id and c.get("user_id") == sender_id)
        ),
        contacts[0] if len(contacts) == 1 else {},
    )
    base: dict[str, Any] = {
        "message_id": _str(raw["id"], ID_LIMIT),
        "wa_id": _id(sender_phone or contact.get("wa_id")),
        "user_id": _id(contact.get("user_id") or sender_id),
        "name": clean(str((contact.get("profile") or {}).get("name") or ""), NAME_LIMIT),
        "at": _time(raw.get("timestamp")),
    }
    if not (base["wa_id"] or base["user_id"]):
        return None
    kind = raw.get("type")
    if kind == "text":
        return InboundMessage(**base, text=_str(raw["text"].get("body", ""), TEXT_BODY))
    if kind == "interactive":
        reply = raw["interactive"].get(raw["interactive"].get("type", ""), {})
        return InboundMessage(**base, payload=_str(reply["id"], 256)) if reply.get("id") else None
    if kind == "button":  # a quick-reply button of a template
        return InboundMessage(**base, payload=_str(raw["button"].get("payload", ""), 256))
    if kind == "location":
        place = raw["location"]
        return InboundMessage(**base, location=_place(place["latitude"], place["longitude"]))
    if kind == "image":
        image = raw["image"]
        return InboundMessage(
            **base,
            media_id=_media_id(image["id"]),
            text=_str(image.get("caption", ""), CAPTION),
        )
    return None


def _id(value: Any) -> str | None:
    return _str(value, ID_LIMIT) or None if value else None


_MEDIA_ID = re.compile(r"[A-Za-z0-9_.-]{1,160}")


def _media_id(value: Any) -> str:
    """A media id, as WhatsApp gives them (digits): it names the file the photo is kept in."""
    if not isinstance(value, str) or not _MEDIA_ID.fullmatch(value) or value.strip(".") == "":
        raise ValueError("a media id that is not one")
    return value


def _str(value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise TypeError(f"a {type(value).__name__} where text belongs")
    return clean(value, limit)


def _place(latitude: Any, longitude: Any) -> tuple[float, float]:
    for value in (latitude, longitude):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise TypeError(f"a {type(value).__name__} where a coordinate belongs")
    lat, lon = float(latitude), float(longitude)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):  # also refuses NaN
        raise ValueError("coordinates out of range")
    return lat, lon


# -- the Graph API ----------------------------------------------------------------------------


class GraphError(Exception):
    """An error answer of the Graph API (or no answer at all: status 0)."""

    def __init__(self, status: int, code: int | None, message: str) -> None:
        super().__init__(f"{code or status}: {message}" if code or status else message)
        self.status, self.code = status, code

    @property
    def transient(self) -> bool:
        """Whether trying again later can help: server errors, rate limits, no answer."""
        return (
            self.status == 0
            or self.status >= 500
            or self.code in TRANSIENT_CODES
            or self.code == PAIR_RATE_LIMIT
        )

    @classmethod
    def of(cls, response: httpx.Response) -> GraphError:
        try:
            error = response.json().get("error") or {}
        except ValueError:
            error = {}
        details = (error.get("error_data") or {}).get("details") or ""
        message = error.get("message") or response.reason_phrase
        return cls(response.status_code, error.get("code"), f"{message} {details}".strip())


def recipient(platform_user_id: str) -> dict[str, str]:
    """Address a message: `to` a phone number (wa_id), or `recipient` a business-scoped id."""
    if platform_user_id.isdigit():
        return {"to": platform_user_id}
    return {"recipient": platform_user_id}


class Graph:
    """The Graph API for one business number, through one shared client, paced and retried.

    Pacing: a leaky bucket for the number's throughput (80 messages/s by default) and one per
    recipient (a burst of `pair_burst`, then one message every `pair_interval` seconds).
    Server errors, rate limits and a dropped connection are tried again with exponential
    backoff; WhatsApp's pair rate limit (131056) after one `pair_interval`.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: WhatsAppSettings,
        *,
        throughput: float = 80.0,
        pair_interval: float = 6.0,
        pair_burst: int = 3,
        attempts: int = 4,
        backoff: float = 0.5,
    ) -> None:
        self.http = http
        self.base = f"{settings.api_url.rstrip('/')}/{settings.api_version}"
        self.phone_number_id = settings.phone_number_id
        self._token = settings.access_token
        self.throughput = AsyncLimiter(throughput, 1.0)
        self.pair_interval, self.pair_burst = pair_interval, pair_burst
        self.attempts, self.backoff = attempts, backoff
        self._pairs: dict[str, AsyncLimiter] = {}

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token.get_secret_value()}"}

    def _pair(self, to: str) -> AsyncLimiter:
        if len(self._pairs) > 10_000:  # forget recipients whose bucket has drained
            self._pairs = {k: v for k, v in self._pairs.items() if not v.has_capacity(v.max_rate)}
        limiter = self._pairs.get(to)
        if limiter is None:
            burst = self.pair_burst
            limiter = self._pairs[to] = AsyncLimiter(burst, burst * self.pair_interval)
        return limiter

    async def send(self, to: str, body: Mapping[str, Any]) -> str:
        """Send one message (text, interactive, template, …); return its id (wamid.…)."""
        message = {"messaging_product": "whatsapp", "recipient_type": "individual"}
        message |= recipient(to) | dict(body)
        await self._pair(to).acquire()
        await self.throughput.acquire()
        url = f"{self.base}/{self.phone_number_id}/messages"
        response = await self._request("POST", url, json=message)
        return str(response.json()["messages"][0]["id"])

    async def download(self, media_id: str) -> tuple[bytes, str]:
        """Fetch a resident's media: its URL first, then the bytes, both with the token."""
        meta = (await self._request("GET", f"{self.base}/{media_id}")).json()
        content = (await self._request("GET", meta["url"])).content
        if meta.get("sha256") and hashlib.sha256(content).hexdigest() != meta["sha256"]:
            raise GraphError(0, None, f"media {media_id}: checksum mismatch")
        return content, str(meta.get("mime_type") or "")

    async def upload(self, content: bytes, mime_type: str) -> str:
        """Upload media for sending; return its new media id."""
        url = f"{self.base}/{self.phone_number_id}/media"
        response = await self._request(
            "POST",
            url,
            data={"messaging_product": "whatsapp", "type": mime_type},
            files={"file": ("photo" + (mimetypes.guess_extension(mime_type) or ""), content)},
        )
        return str(response.json()["id"])

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self.http.request(method, url, headers=self._auth, **kwargs)
            except httpx.TransportError as exc:
                error = GraphError(0, None, f"no answer ({type(exc).__name__})")
            else:
                if response.is_success:
                    return response
                error = GraphError.of(response)
            attempt += 1
            if attempt >= self.attempts or not error.transient:
                raise error
            if error.code == PAIR_RATE_LIMIT:
                wait = self.pair_interval
            else:
                wait = self.backoff * 2 ** (attempt - 1)
            log.warning("whatsapp: %s; trying again in %.1f s", error, wait)
            await asyncio.sleep(wait)


# -- rendering --------------------------------------------------------------------------------


def _text(body: str) -> list[dict[str, Any]]:
    return [
        {"type": "text", "text": {"body": c, "preview_url": False}}
        for c in split_text(body, TEXT_BODY)
    ]


def _choices(body: str, buttons: Sequence[Button], t: Callable[[str], str]) -> list[dict]:
    """Reply buttons when they fit (at most 3, short labels), else list messages of 10 rows."""
    out: list[dict[str, Any]] = []
    if len(body) > INTERACTIVE_BODY:
        out += _text(body)
        body = t("whatsapp.choose")
    if len(buttons) <= MAX_REPLY_BUTTONS and all(len(b.label) <= BUTTON_TITLE for b in buttons):
        action = {
            "buttons": [
                {"type": "reply", "reply": {"id": b.payload, "title": b.label}} for b in buttons
            ]
        }
        return [*out, _interactive("button", body, action)]
    for start in range(0, len(buttons), LIST_ROWS):
        rows = []
        for b in buttons[start : start + LIST_ROWS]:
            row = {"id": b.payload, "title": b.label[:ROW_TITLE]}
            if len(b.label) > ROW_TITLE:
                row["description"] = b.label[:ROW_DESCRIPTION]
            rows.append(row)
        action = {
            "button": t("whatsapp.list_button")[:BUTTON_TITLE],
            "sections": [{"title": t("whatsapp.list_title")[:ROW_TITLE], "rows": rows}],
        }
        out.append(
            _interactive("list", body if start == 0 else t("whatsapp.more_choices"), action)
        )
    return out


def _interactive(kind: str, body: str, action: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "interactive",
        "interactive": {"type": kind, "body": {"text": body[:INTERACTIVE_BODY]}, "action": action},
    }


def render(reply: Outgoing, t: Callable[[str], str]) -> list[dict[str, Any]]:
    """Turn a reply into Cloud API message bodies (photos apart: they need an upload first).

    `t` gives a response text in the reply's language.
    """
    buttons = reply.flat_buttons
    if reply.request_location:
        body, out = reply.text, []
        if len(body) > INTERACTIVE_BODY:  # the text first, then the request on its own
            out, body = _text(body), t("whatsapp.share_location")
        out.append(_interactive("location_request_message", body, {"name": "send_location"}))
        if buttons:  # a location request has no room for buttons ("Lewati lokasi")
            out += _choices(t("whatsapp.or_choose"), buttons, t)
    elif buttons:
        out = _choices(reply.text, buttons, t)
    else:
        out = _text(reply.text)
    if reply.location is not None:
        lat, lon = reply.location
        out.append({"type": "location", "location": {"latitude": lat, "longitude": lon}})
    return out


def _template_text(value: object) -> str:
    # Template parameters take no new lines, tabs or runs of 4+ spaces, and cannot be empty.
    text = re.sub(r"\s*[\n\t]\s*", " ", str(value if value is not None else ""))
    return re.sub(r" {4,}", "   ", text).strip()[:1024] or "-"


class NoTemplate(Exception):
    """The city file names no approved template for an outbox message."""


def render_template(reply: Outgoing, templates: WhatsAppTemplates) -> dict[str, Any]:
    """Turn an outbox message into the approved template the city file names for it."""
    if reply.notice is None:
        raise NoTemplate("only outbox messages have a template")
    try:
        template, code = templates.template_for(reply.notice.template, reply.language)
    except KeyError:
        raise NoTemplate(f"no WhatsApp template for {reply.notice.template!r}") from None
    params = reply.notice.params
    components: list[dict[str, Any]] = []
    if template.params:
        values = [_template_text(params.get(name)) for name in template.params]
        components.append(
            {"type": "body", "parameters": [{"type": "text", "text": v} for v in values]}
        )
    for index, button in enumerate(reply.flat_buttons[: template.quick_replies]):
        components.append(
            {
                "type": "button",
                "sub_type": "quick_reply",
                "index": str(index),
                "parameters": [{"type": "payload", "payload": button.payload}],
            }
        )
    return {
        "type": "template",
        "template": {"name": template.name, "language": {"code": code}, "components": components},
    }


# -- sending ----------------------------------------------------------------------------------


class WhatsAppSender:
    """Send replies and outbox messages; the dispatcher's Sender for the WhatsApp channel."""

    def __init__(self, graph: Graph, assistant: Assistant, media_dir: Path) -> None:
        self.graph, self.assistant, self.media_dir = graph, assistant, media_dir

    async def send(self, chat_id: str, message: Outgoing) -> None:
        """Deliver an outbox message, mapping WhatsApp's errors to retry or give up."""
        try:
            await self.deliver(chat_id, message)
        except GraphError as exc:
            raise DeliveryError(str(exc), permanent=not exc.transient) from exc
        except NoTemplate as exc:
            raise DeliveryError(f"{exc} in the city file", permanent=True) from exc

    async def deliver(self, chat_id: str, message: Outgoing) -> None:
        """Send free-form within the 24-hour window, else (outbox messages) the template."""
        notice = message.notice
        if notice is not None and (
            notice.params.get(TEMPLATE_ONLY) or not await self._window_open(chat_id)
        ):
            await self._send_template(chat_id, message)
            return
        try:
            bodies = render(message, lambda key: self._t(message.language, key))
            for body in bodies:
                await self._send(chat_id, body, message)
        except GraphError as exc:
            if exc.code != OUTSIDE_WINDOW or notice is None:
                raise
            log.info("outbox %s: outside the 24-hour window, sent as a template", notice.outbox_id)
            await self._send_template(chat_id, message)
            return
        for photo in message.photos:
            await self._send_photo(chat_id, photo, message)

    def _t(self, language: str, key: str) -> str:
        return self.assistant.responses.get(language, key)

    async def _window_open(self, chat_id: str) -> bool:
        def since() -> datetime | None:
            with self.assistant.sessions() as session:
                return last_inbound(session, channel=CHANNEL, platform_user_id=chat_id)

        last = await asyncio.to_thread(since)
        return last is not None and self.assistant.clock() - last < WINDOW

    async def _send_template(self, chat_id: str, message: Outgoing) -> None:
        body = render_template(message, self.assistant.city.config.whatsapp)
        await self._send(chat_id, body, message)

    async def _send_photo(self, chat_id: str, photo: str, message: Outgoing) -> None:
        stored = await asyncio.to_thread(self._stored, photo)
        if stored is None:
            log.info("whatsapp: photo %s is not kept here, not sent", photo)
            return
        content = await asyncio.to_thread(stored.read_bytes)
        mime = mimetypes.guess_type(stored.name)[0] or "image/jpeg"
        media_id = await self.graph.upload(content, mime)
        await self._send(chat_id, {"type": "image", "image": {"id": media_id}}, message)

    def _stored(self, media_id: str) -> Path | None:
        return next(iter(sorted(self.media_dir.glob(f"{media_id}.*"))), None)

    async def _send(self, chat_id: str, body: Mapping[str, Any], message: Outgoing) -> None:
        message_id = await self.graph.send(chat_id, body)
        outbox_id = message.notice.outbox_id if message.notice is not None else None

        def remember() -> None:
            with self.assistant.sessions.begin() as session:
                record_sent(
                    session,
                    channel=CHANNEL,
                    platform_message_id=message_id,
                    platform_user_id=chat_id,
                    kind=str(body["type"]),
                    outbox_id=outbox_id,
                    at=self.assistant.clock(),
                )

        await asyncio.to_thread(remember)


# -- the channel: webhook, conversation, outbox -----------------------------------------------


class WhatsAppChannel:
    """The webhook routes, the sender and the inbox handler, for `warga serve`.

    `start()` (in the web app's lifespan) builds the one shared httpx client; `transport`
    replaces its network, for tests.
    """

    name = CHANNEL
    pace = WHATSAPP_PACE

    def __init__(
        self,
        assistant: Assistant,
        settings: WhatsAppSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        **pacing: Any,
    ) -> None:
        self.assistant, self.settings = assistant, settings
        self.transport, self.pacing = transport, pacing
        self.handler = WhatsAppInbox(self)
        self.on_stored: Callable[[], None] = lambda: None
        self.ingest = Ingest(self.store)
        self.http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self.http = httpx.AsyncClient(transport=self.transport, timeout=httpx.Timeout(30.0))
        self.graph = Graph(self.http, self.settings, **self.pacing)
        self.sender = WhatsAppSender(self.graph, self.assistant, self.settings.media_dir)

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.aclose()

    def status(self) -> dict[str, Any]:
        return {"api": "ok" if self.http is not None else "not started"}

    def alive(self, within: float) -> bool:
        return self.http is not None

    def routes(self) -> list[Route]:
        return [
            Route(PATH, self.verify, methods=["GET"]),
            Route(PATH, self.receive, methods=["POST"]),
        ]

    async def verify(self, request: Request) -> Response:
        """Answer Meta's verification handshake with the challenge, if the token matches."""
        query = request.query_params
        token = query.get("hub.verify_token", "")
        expected = self.settings.verify_token.get_secret_value()
        if query.get("hub.mode") == "subscribe" and hmac.compare_digest(
            token.encode("utf-8", "replace"), expected.encode()
        ):
            return PlainTextResponse(clean(query.get("hub.challenge", ""), 200))
        return Response(status_code=403)

    async def receive(self, request: Request) -> Response:
        """Check the signature on the raw body, then the payload; store its messages and
        statuses; only then answer 200 (WhatsApp does not send again what got a 200)."""
        body = b""
        try:
            body = await read_body(request)
            if not signature_ok(
                self.settings.app_secret, body, request.headers.get(SIGNATURE_HEADER)
            ):
                log.warning("whatsapp: a webhook call without a valid signature, refused")
                return Response(status_code=403)
            payload = parse_json(body)
            new = self.checked(payload)
        except Refused as exc:
            refusal_logged(CHANNEL, len(body), exc)
            return PlainTextResponse(exc.reason, status_code=exc.status)
        if new:
            try:
                await self.ingest.put(new)
            except Exception:  # noqa: BLE001 - a non-200 makes WhatsApp send it again
                log.exception("whatsapp: webhook call not stored; WhatsApp will retry")
                return PlainTextResponse("not stored, try again", status_code=503)
            self.on_stored()
        return Response(status_code=200)

    def checked(self, payload: Any) -> list[NewUpdate]:
        """What a webhook payload carries for us, as inbox updates; Refused when it is not a
        payload WhatsApp could have sent."""
        if not isinstance(payload, dict):
            raise Refused(400, "not a JSON object")
        try:
            messages, statuses = parse_webhook(
                payload, phone_number_id=self.settings.phone_number_id
            )
        except Exception as exc:  # noqa: BLE001 - a pure parse: any failure is the payload's
            raise Refused(400, f"not a WhatsApp webhook payload ({type(exc).__name__})") from None
        new = [
            NewUpdate(m.message_id, m.wa_id or m.user_id or "", _as_json(m, kind="message"))
            for m in messages
        ]
        new += [
            NewUpdate(f"{r.message_id}:{r.status.value}", f"status:{r.message_id}", _as_json(r))
            for r in statuses
        ]
        return new

    def store(self, new: list[NewUpdate]) -> int:
        with self.assistant.sessions.begin() as session:
            return inbox.put(session, channel=CHANNEL, updates=new, now=utcnow())

    async def keep_media(self, media_id: str) -> None:
        """Fetch a resident's photo while WhatsApp still has it (30 days) and keep it here."""
        content, mime = await self.graph.download(media_id)
        extension = mimetypes.guess_extension(mime.split(";")[0].strip()) or ".bin"
        path = self.settings.media_dir / f"{media_id}{extension}"

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)

        await asyncio.to_thread(write)


def _as_json(item: InboundMessage | StatusReport, **extra: Any) -> dict[str, Any]:
    data = dataclasses.asdict(item)
    data["at"] = item.at.isoformat()
    if isinstance(item, StatusReport):
        data["status"] = item.status.value
    return {**data, **extra}


class WhatsAppInbox:
    """Handle a stored message (the conversation's turn) or delivery status."""

    def __init__(self, channel: WhatsAppChannel) -> None:
        self.channel = channel
        self.assistant = channel.assistant

    def handle(self, session: Session, stored: StoredUpdate) -> Handled:
        now = self.assistant.clock()
        data = dict(stored.payload)
        if data.pop("kind", None) != "message":
            self._record_status(session, data, now)
            return Handled()
        message = _inbound(data)
        replied = answer(self.assistant, session, self._incoming(session, message))
        after = self._fetch(message.media_id) if message.media_id is not None else None
        return Handled(replied=replied, after=after)

    def apologise(self, session: Session, stored: StoredUpdate) -> bool:
        data = dict(stored.payload)
        if data.pop("kind", None) != "message":
            return False
        apologise(self.assistant, session, self._incoming(session, _inbound(data)))
        return True

    @staticmethod
    def _incoming(session: Session, message: InboundMessage) -> Incoming:
        user_id = note_inbound(
            session,
            channel=CHANNEL,
            user_id=message.wa_id,
            alt_id=message.user_id,
            at=message.at,
            display_name=message.name,
        )
        return Incoming(
            channel=CHANNEL,
            user_id=user_id,
            update_id=message.message_id,
            text=message.text,
            display_name=message.name,
            location=message.location,
            photo=message.media_id,
            payload=message.payload,
        )

    def _fetch(self, media_id: str) -> Callable[[], Awaitable[None]]:
        async def after() -> None:
            try:
                await self.channel.keep_media(media_id)
            except (GraphError, OSError, KeyError, ValueError) as exc:
                log.warning("whatsapp: media %s not fetched: %s", media_id, exc)

        return after

    def _record_status(self, session: Session, data: dict[str, Any], now: datetime) -> None:
        report = StatusReport(
            message_id=data["message_id"],
            status=DeliveryStatus(data["status"]),
            at=datetime.fromisoformat(data["at"]),
            error=data.get("error", ""),
            error_code=data.get("error_code"),
        )
        row = record_status(
            session,
            channel=CHANNEL,
            platform_message_id=report.message_id,
            status=report.status,
            at=report.at,
            error=report.error,
        )
        # Accepted, then refused as outside the window: send it again as the template.
        if (
            row is not None
            and report.error_code == OUTSIDE_WINDOW
            and row.outbox_id is not None
            and row.kind != "template"
        ):
            send_again(
                session,
                outbox_id=row.outbox_id,
                reason=report.error,
                now=now,
                **{TEMPLATE_ONLY: True},
            )


def _inbound(data: dict[str, Any]) -> InboundMessage:
    location = data.get("location")
    return InboundMessage(
        **{
            **data,
            "at": datetime.fromisoformat(data["at"]),
            "location": (location[0], location[1]) if location else None,
        }
    )
