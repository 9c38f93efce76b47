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
