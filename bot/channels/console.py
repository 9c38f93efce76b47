"""Terminal chat: one resident (or officer) talks to the bot from the terminal.

Interactive on a terminal; otherwise it reads one message per line, prints the replies and
exits at the end of input, so conversations can be scripted. Buttons print as numbered
choices and accept their number or their text. `/lokasi LAT,LON` shares a location pin and
`/foto NAME` a photo, as a phone would.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from typing import TextIO

from actions.text import NAME_LIMIT, clean
from bot.broadcaster import Broadcaster
from bot.conversation import Assistant
from bot.dispatcher import Dispatcher
from bot.messages import Button, Incoming, Outgoing
from bot.responses import Responses

log = logging.getLogger(__name__)
CHANNEL = "console"
TEXT_LIMIT = 4096  # as Telegram's: what a terminal user types is cut like a chat message
_LOCATION = re.compile(r"^/lokasi\s+(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$", re.I)
_PHOTO = re.compile(r"^/foto(?:\s+(\S+))?\s*(.*)$", re.I)


class ConsoleSender:
    """Print notifications as they are delivered (to the terminal's own user, or marked)."""

    def __init__(self, chat: ConsoleChat) -> None:
        self.chat = chat

    async def send(self, chat_id: str, message: Outgoing) -> None:
        to = "" if chat_id == self.chat.user_id else f" → {chat_id}"
        print(f"🔔{to}", end=" ", file=self.chat.out)
        self.chat.show(message)


class ConsolePrinter:
    """Deliver to terminal residents where no terminal chat runs (a delivery worker): each
    message printed to `out`, marked with whom it is for, as a terminal chat prints it."""

    def __init__(self, out: TextIO, responses: Responses) -> None:
        self.out, self.responses = out, responses

    async def send(self, chat_id: str, message: Outgoing) -> None:
        print(f"🔔 → {chat_id}", end=" ", file=self.out)
        show(message, self.out, self.responses)
        print(file=self.out, flush=True)


def show(reply: Outgoing, out: TextIO, responses: Responses, *, first: int = 1) -> list[Button]:
    """Print a message as the terminal chat does; return its buttons to tap, numbered from
    `first`."""
    if reply.title:
        print(f"== {reply.title} ==", file=out)
    print(reply.text, file=out)
    for photo in reply.photos:
        print(f"[foto: {photo}]", file=out)
    for link in (b for b in reply.flat_buttons if b.url):
        print(f"🔗 {link.label}: {link.url}", file=out)
    tappable = [b for b in reply.flat_buttons if not b.url]
    if tappable:
        choices = "  ".join(f"[{i}] {b.label}" for i, b in enumerate(tappable, first))
        print(choices, file=out)
    if reply.request_location:
        print(responses.get(reply.language, "console.location_hint"), file=out)
    if reply.location:
        print(f"📍 {reply.location[0]:.5f}, {reply.location[1]:.5f}", file=out)
    out.flush()
    return tappable


class ConsoleChat:
    def __init__(
        self,
        assistant: Assistant,
        *,
        user_id: str,
        display_name: str,
        out: TextIO,
        channel: str = CHANNEL,
    ) -> None:
        self.assistant = assistant
        self.dispatcher = Dispatcher(
            assistant.sessions,
            assistant.responses,
            {channel: ConsoleSender(self)},
            clock=assistant.clock,
            only_chats=frozenset({user_id}),  # each terminal user gets their own messages
        )
        # Announcements to terminal users print here as they go (no platform limits to keep).
        self.broadcaster = Broadcaster(
            assistant.sessions,
            assistant.responses,
            {CHANNEL: ConsoleSender(self)},
            rate=1000,
            chat_gap=0,
            group_gap=0,
            clock=assistant.clock,
            pace_key=CHANNEL,
        )
        self.user_id, self.display_name, self.out, self.channel = (
            user_id,
            display_name,
            out,
            channel,
        )
        self.session_id = uuid.uuid4().hex[:8]
        self.count = 0
        self.buttons: list[Button] = []

    def incoming(self, line: str) -> Incoming:
        """Turn a typed line into an update: a button by number or text, a pin, a photo."""
        self.count += 1
        base = {
            "channel": self.channel,
            "user_id": self.user_id,
            "update_id": f"{self.session_id}-{self.count}",
            "display_name": clean(self.display_name, NAME_LIMIT),
        }
        text = clean(line.strip(), TEXT_LIMIT)
        if text.isdigit() and 1 <= int(text) <= len(self.buttons):
            return Incoming(**base, payload=self.buttons[int(text) - 1].payload)
        for button in self.buttons:
            if text.casefold() == button.label.casefold():
                return Incoming(**base, payload=button.payload)
        if m := _LOCATION.match(text):
            return Incoming(**base, location=(float(m[1]), float(m[2])))
        if m := _PHOTO.match(text):
            name = m[1] or f"photo-{self.session_id}-{self.count}"
            return Incoming(**base, photo=f"console:{name}", text=m[2])
        return Incoming(**base, text=text)

    def show(self, reply: Outgoing) -> None:
        """Print a message; its buttons join the choices numbered since the last line typed."""
        responses = self.assistant.responses
        self.buttons.extend(show(reply, self.out, responses, first=len(self.buttons) + 1))

    def say(self, line: str) -> list[Outgoing]:
        incoming = self.incoming(line)
        try:
            replies = self.assistant.handle(incoming)
        except Exception:  # noqa: BLE001 - the chat goes on; the log has the details
            log.exception("update %s failed", incoming.update_id)
            replies = [self.assistant.sorry(incoming)]
        self.buttons = []
        for reply in replies:
            self.show(reply)
        asyncio.run(self._deliver())
        return replies

    async def _deliver(self) -> None:
        while await self.dispatcher.run_once():  # one message per chat at a time, in order
            pass
        await self.broadcaster.run_once()

    def run(self, lines: TextIO, *, interactive: bool) -> None:
        while True:
            if interactive:
                print("> ", end="", file=self.out, flush=True)
            line = lines.readline()
            if not line:
                break
            if not line.strip():
                continue
            if not interactive:
                print(f"> {line.strip()}", file=self.out)
            self.say(line)
            print(file=self.out, flush=True)
