"""Platform-neutral messages: what a channel hands the conversation, and what comes back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Button:
    """A choice the resident can tap (or type: its label or its number in the terminal)."""

    label: str
    payload: str = ""
    url: str = ""  # a link button opens this instead of sending a payload


@dataclass(frozen=True)
class Incoming:
    """One update from a resident, whatever the platform."""

    channel: str
    user_id: str
    update_id: str
    text: str = ""
    display_name: str = ""
    language_code: str | None = None  # the platform's hint (Telegram's user.language_code)
    location: tuple[float, float] | None = None
    photo: str | None = None  # the platform's file id of the largest size
    payload: str | None = None  # the payload of a pressed button


@dataclass(frozen=True)
class Notice:
    """The outbox row behind a message: a channel may send it as an approved template."""

    outbox_id: int
    template: str
    params: Mapping[str, Any]


@dataclass(frozen=True)
class Outgoing:
    """One reply: text with optional buttons, a request for the resident's location, a map pin."""

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    title: str = ""  # an announcement's header, shown bold where the channel can
    request_location: bool = False
    location: tuple[float, float] | None = None
    photos: tuple[str, ...] = field(default=())
    language: str = "id"
    notice: Notice | None = None  # set for outbox messages only

    @property
    def flat_buttons(self) -> list[Button]:
        return [b for row in self.buttons for b in row]

    def to_json(self) -> dict[str, Any]:
        """What the outbox keeps of a reply (its notice apart: that is the row itself)."""
        return {
            "text": self.text,
            "buttons": [[[b.label, b.payload, b.url] for b in row] for row in self.buttons],
            "title": self.title,
            "request_location": self.request_location,
            "location": list(self.location) if self.location is not None else None,
            "photos": list(self.photos),
            "language": self.language,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Outgoing:
        location = data.get("location")
        return cls(
            text=data.get("text", ""),
            buttons=tuple(
                tuple(Button(label, payload, url) for label, payload, url in row)
                for row in data.get("buttons", ())
            ),
            title=data.get("title", ""),
            request_location=bool(data.get("request_location")),
            location=(float(location[0]), float(location[1])) if location else None,
            photos=tuple(data.get("photos", ())),
            language=data.get("language", "id"),
        )


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji outside the BMP is two)."""
    return len(text.encode("utf-16-le")) // 2


def _fitting(text: str, limit: int) -> int:
    """How many characters of `text` fit in `limit` UTF-16 code units."""
    units = 0
    for i, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return i
    return len(text)


def split_text(text: str, limit: int) -> list[str]:
    """Cut a text into pieces of at most `limit` UTF-16 code units (never more characters
    either), at a paragraph, line or word end where there is one in the second half of the
    piece; never an empty list."""
    pieces: list[str] = []
    while utf16_len(text) > limit:
        room = _fitting(text, limit)
        cut = -1
        for sep in ("\n\n", "\n", " "):
            cut = text.rfind(sep, room // 2, room)
            if cut > 0:
                break
        if cut <= 0:
            cut = room
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    return [*pieces, text] if text or not pieces else pieces
