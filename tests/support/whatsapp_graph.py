"""WhatsApp for tests: webhook payloads in the Cloud API's documented shapes, signed as Meta
signs them, and a fake Graph API as an httpx transport.

No emulator of the Cloud API exists. The fake follows the documented behaviour of the calls
the bot makes: `POST /{phone-number-id}/messages` (the 24-hour window: free-form messages to
someone who has not written for 24 hours are refused with 131047; the pair rate, about one
message every 6 s to one user with short bursts: 131056; interactive message limits: 131009),
`GET /{media-id}` then the media URL, `POST /{phone-number-id}/media`, bearer tokens (190),
and error bodies `{"error": {"message", "type", "code", "error_data": {"details"},
"fbtrace_id"}}`. A test scripts other failures (5xx, 130429) with `fail_next`.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import httpx

API = "https://graph.facebook.com"
VERSION = "v24.0"
PHONE_NUMBER_ID = "106540352242922"
DISPLAY_PHONE = "15550783881"
WABA_ID = "102290129340398"
MEDIA_HOST = "https://lookaside.fbsbx.com"

_ERRORS = {
    190: (401, "Error validating access token: Session has expired", ""),
    100: (400, "Invalid parameter", ""),
    131009: (400, "Parameter value is not valid", ""),
    131047: (
        400,
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer "
        "last replied to this number.",
    ),
    131056: (
        400,
        "(Business Account, Consumer Account) pair rate limit hit",
        "Message failed to send because there were too many messages sent from this phone "
        "number to the same phone number in a short period of time.",
    ),
    130429: (
        400,
        "Rate limit hit",
        "Message failed to send because there were too many messages sent from this phone "
        "number in a short period of time.",
    ),
    131000: (500, "Something went wrong", "Message failed to send due to an unknown error."),
    131016: (503, "Service unavailable", "A service is temporarily unavailable."),
    132001: (404, "Template name does not exist in the translation", ""),
    132000: (400, "Number of parameters does not match the expected number of params", ""),
    132018: (400, "There was an issue with the parameters in your template.", ""),
}


def error_response(code: int) -> httpx.Response:
    status, message, details = _ERRORS[code]
    error: dict[str, Any] = {
        "message": f"(#{code}) {message}",
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AazQ3mF9nTn0ZbG2f3kT1xP",
    }
    if details:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return httpx.Response(status, json={"error": error})


class FakeGraph:
    """The Graph API endpoints the bot uses, answering as the Cloud API documents."""

    def __init__(
        self,
        *,
        token: str,
        clock: Callable[[], datetime],
        pair_interval: float = 6.0,
        pair_burst: int = 3,
        approved: Mapping[str, int] | None = None,
    ) -> None:
        self.token, self.clock = token, clock
        self.pair_interval, self.pair_burst = pair_interval, pair_burst
        self.approved = dict(approved or {})  # template name -> number of body parameters
        self.sent: list[dict[str, Any]] = []  # accepted messages, with their "id"
        self.refused: list[tuple[int, dict[str, Any]]] = []  # (error code, message)
        self.inbound: dict[str, datetime] = {}  # user (wa_id or user id) -> last message
        self.fail_next: list[int] = []  # error codes to answer the next calls with
        self.media: dict[str, tuple[bytes, str]] = {}  # media id -> (bytes, mime type)
        self.uploads: dict[str, bytes] = {}
        self.calls: list[httpx.Request] = []
        self._pairs: dict[str, tuple[float, float]] = {}  # user -> (bucket level, at)
        self._ids = itertools.count(1)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def to(self, user: str) -> list[dict[str, Any]]:
        """The messages accepted for one user, in order."""
        return [m for m in self.sent if user in (m.get("to"), m.get("recipient"))]

    # -- the API -----------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return error_response(190)
        if self.fail_next:
            return error_response(self.fail_next.pop(0))
        url = str(request.url)
        if url.startswith(MEDIA_HOST):
            media_id = request.url.params["mid"]
            content, mime = self.media[media_id]
            return httpx.Response(200, content=content, headers={"Content-Type": mime})
        parts = request.url.path.strip("/").split("/")
        if parts[0] != VERSION:
            return error_response(100)
        if request.method == "POST" and parts[1:] == [PHONE_NUMBER_ID, "messages"]:
            return self._message(json.loads(request.content))
        if request.method == "POST" and parts[1:] == [PHONE_NUMBER_ID, "media"]:
            media_id = str(900000 + next(self._ids))
            self.uploads[media_id] = request.content
            return httpx.Response(200, json={"id": media_id})
        if request.method == "GET" and len(parts) == 2 and parts[1] in self.media:
            content, mime = self.media[parts[1]]
            return httpx.Response(
                200,
                json={
                    "messaging_product": "whatsapp",
                    "url": f"{MEDIA_HOST}/whatsapp_business/attachments/?mid={parts[1]}&ext=1",
                    "mime_type": mime,
                    "sha256": hashlib.sha256(content).hexdigest(),
                    "file_size": str(len(content)),
                    "id": parts[1],
                },
            )
        return error_response(100)

    def _message(self, message: dict[str, Any]) -> httpx.Response:
        user = message.get("to") or message.get("recipient")
        if message.get("messaging_product") != "whatsapp" or not user:
            return error_response(100)
        code = self._check(message, user)
        if code is not None:
            self.refused.append((code, message))
            return error_response(code)
        wamid = f"wamid.HBgNNjI4MTI3NjU0MzIxMBUCABEYEjk{next(self._ids):012d}QUE4RjAyMDQA"
        self.sent.append({**message, "id": wamid})
        contact = {"input": user, "wa_id": user} if "to" in message else {"input": user}
        if "recipient" in message:
            contact["user_id"] = user
        answer: dict[str, Any] = {"id": wamid}
        if message.get("type") == "template":
            answer["message_status"] = "accepted"
        return httpx.Response(
            200,
            json={"messaging_product": "whatsapp", "contacts": [contact], "messages": [answer]},
        )

    def _check(self, message: dict[str, Any], user: str) -> int | None:
        kind = message.get("type")
        if kind == "template":
            code = self._check_template(message["template"])
        else:
            last = self.inbound.get(user)
            if last is None or (self.clock() - last).total_seconds() > 24 * 3600:
                return 131047
            code = _check_interactive(message["interactive"]) if kind == "interactive" else None
        if code is not None:
            return code
        # The pair rate: a leaky bucket of `pair_burst` draining one every `pair_interval` s.
        now = time.monotonic()
        level, at = self._pairs.get(user, (0.0, now))
        level = max(0.0, level - (now - at) / self.pair_interval)
        if level + 1 > self.pair_burst:
            return 131056
        self._pairs[user] = (level + 1, now)
        return None

    def _check_template(self, template: dict[str, Any]) -> int | None:
        if template["name"] not in self.approved:
            return 132001
        body = [c for c in template.get("components", []) if c["type"] == "body"]
        params = body[0]["parameters"] if body else []
        if len(params) != self.approved[template["name"]]:
            return 132000
        for p in params:
            text = p.get("text", "")
            if not text or "\n" in text or "\t" in text or "    " in text:
                return 132018
        return None


def _check_interactive(interactive: dict[str, Any]) -> int | None:
    if len(interactive.get("body", {}).get("text", "")) > 1024:
        return 131009
    action = interactive.get("action", {})
    if interactive["type"] == "button":
        buttons = action.get("buttons", [])
        if not 1 <= len(buttons) <= 3 or any(len(b["reply"]["title"]) > 20 for b in buttons):
            return 131009
    if interactive["type"] == "list":
        rows = [r for s in action.get("sections", []) for r in s["rows"]]
        if not 1 <= len(rows) <= 10 or len(action.get("button", "")) > 20:
            return 131009
        if any(len(r["title"]) > 24 or len(r.get("description", "")) > 72 for r in rows):
            return 131009
    return None


# -- webhook payloads ------------------------------------------------------------------------


def sign(body: bytes, app_secret: str) -> str:
    """The X-Hub-Signature-256 header Meta sends with a body."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def _envelope(value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA_ID,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": DISPLAY_PHONE,
                                "phone_number_id": PHONE_NUMBER_ID,
                            },
                            **value,
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def message_payload(
    content: dict[str, Any],
    *,
    wamid: str,
    at: datetime,
    name: str,
    user_id: str,
    wa_id: str | None,
) -> dict[str, Any]:
    """An incoming message; without `wa_id`, from someone who hides their number."""
    contact: dict[str, Any] = {"profile": {"name": name}, "user_id": user_id}
    message: dict[str, Any] = {"id": wamid, "timestamp": str(int(at.timestamp())), **content}
    if wa_id is not None:
        contact["wa_id"] = wa_id
        message = {"from": wa_id, **message}
    else:
        message = {"from_user_id": user_id, **message}
    return _envelope({"contacts": [contact], "messages": [message]})


def text(body: str) -> dict[str, Any]:
    return {"type": "text", "text": {"body": body}}


def _context(replying_to: str) -> dict[str, Any]:
    # A tap on a button says which of our messages carried it.
    return {"context": {"from": DISPLAY_PHONE, "id": replying_to}}


def button_reply(payload: str, title: str, *, replying_to: str = "wamid.ours") -> dict:
    return {
        **_context(replying_to),
        "type": "interactive",
        "interactive": {"type": "button_reply", "button_reply": {"id": payload, "title": title}},
    }


def list_reply(payload: str, title: str, *, replying_to: str = "wamid.ours") -> dict:
    return {
        **_context(replying_to),
        "type": "interactive",
        "interactive": {"type": "list_reply", "list_reply": {"id": payload, "title": title}},
    }


def template_button(payload: str, text: str, *, replying_to: str = "wamid.ours") -> dict:
    """A tap on a quick-reply button of a template."""
    return {
        **_context(replying_to),
        "type": "button",
        "button": {"payload": payload, "text": text},
    }


def location(latitude: float, longitude: float, name: str = "", address: str = "") -> dict:
    place: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
    if name:
        place |= {"name": name, "address": address}
    return {"type": "location", "location": place}


def image(media_id: str, caption: str = "") -> dict[str, Any]:
    content: dict[str, Any] = {
        "type": "image",
        "image": {"mime_type": "image/jpeg", "sha256": "placeholder", "id": media_id},
    }
    if caption:
        content["image"]["caption"] = caption
    return content


def status_payload(
    wamid: str,
    status: str,
    *,
    at: datetime,
    wa_id: str,
    user_id: str,
    error_code: int | None = None,
) -> dict[str, Any]:
    """A status of a message we sent (sent, delivered, read, failed)."""
    entry: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(int(at.timestamp())),
        "recipient_id": wa_id,
        "recipient_user_id": user_id,
    }
    if status == "sent":
        entry["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "service"}
    if error_code is not None:
        _, title, details = _ERRORS[error_code]
        entry["errors"] = [
            {
                "code": error_code,
                "title": title,
                "message": title,
                "error_data": {"details": details},
                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
            }
        ]
    contacts = [{"profile": {"name": ""}, "wa_id": wa_id, "user_id": user_id}]
    return _envelope({"contacts": contacts, "statuses": [entry]})
