"""Telegram updates as a user's client makes them, for the fake Bot API (``fake_bot_api``).

Each function returns one update *without* ``update_id``: the fake numbers what it is given
(``FakeBotApi.push`` or ``POST /_fake/updates``). A message without ``message_id`` gets one
from the fake's counter, shared with the bot's own messages, as in a real private chat; a
callback query whose ``message_id`` is a message the bot sent gets that message as it is now
(text, keyboard). Everything else is filled here, the way Telegram fills it:

* ``from``: ``{id, is_bot: false, first_name, language_code}`` (``last_name``/``username`` when
  given); a private chat has the user's id and ``{id, type: "private", first_name}``.
* ``date`` in whole seconds of the epoch; text ``entities`` with a ``bot_command`` for every
  ``/command`` that starts a word (offsets and lengths in UTF-16 code units, as Telegram counts).
* photos come as three sizes, the largest last, each with its own ``file_id`` and
  ``file_unique_id``; the largest has ``file_id`` when one is given. The fake registers every
  file id of a pushed update, so ``getFile`` knows it.
* callback query ids are numeric strings, as Telegram's; ``chat_instance`` is the same for every
  query from one chat.

No import of the server: a test driving a bot process can build updates with this module alone
and post them to a fake running elsewhere.
"""

from __future__ import annotations

import itertools
import re
import time
import uuid
import zlib
from typing import Any

JSONDict = dict[str, Any]

# Update fields that carry an update, as the Bot API lists them (9.x)
UPDATE_TYPES = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
)
# what a bot gets when it never said allowed_updates, or said []
DEFAULT_ALLOWED = frozenset(UPDATE_TYPES) - {
    "chat_member",
    "message_reaction",
    "message_reaction_count",
}

_COMMAND = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![\w@])")
_PHOTO_SIZES = ((90, 67, 1_300), (320, 240, 14_000), (1280, 960, 120_000))
_run = uuid.uuid4().hex[:10]  # file ids stay unique across test processes
_files = itertools.count(1)


def user(
    user_id: int,
    *,
    first_name: str = "Warga",
    last_name: str | None = None,
    username: str | None = None,
    language_code: str | None = "id",
) -> JSONDict:
    """A Telegram User as the Bot API sends it."""
    out: JSONDict = {"id": user_id, "is_bot": False, "first_name": first_name}
    if last_name:
        out["last_name"] = last_name
    if username:
        out["username"] = username
    if language_code:
        out["language_code"] = language_code
    return out


def private_chat(sender: JSONDict) -> JSONDict:
    chat: JSONDict = {"id": sender["id"], "type": "private", "first_name": sender["first_name"]}
    for key in ("last_name", "username"):
        if key in sender:
            chat[key] = sender[key]
    return chat


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: the unit of Telegram's entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def command_entities(text: str) -> list[JSONDict]:
    """``bot_command`` entities for every ``/command`` that starts a word."""
    return [
        {"type": "bot_command", "offset": utf16_len(text[: m.start()]), "length": utf16_len(m[0])}
        for m in _COMMAND.finditer(text)
    ]


def _message(
    user_id: int,
    *,
    message_id: int | None,
    date: int | None,
    sender: JSONDict | None,
    names: JSONDict,
    content: JSONDict,
) -> JSONDict:
    sender = sender or user(user_id, **names)
    message: JSONDict = {}
    if message_id is not None:
        message["message_id"] = message_id
    message.update(
        {
            "from": sender,
            "chat": private_chat(sender),
            "date": int(time.time()) if date is None else date,
            **content,
        }
    )
    return {"message": message}


def text_update(
    user_id: int,
    text: str,
    *,
    message_id: int | None = None,
    date: int | None = None,
    sender: JSONDict | None = None,
    **names: Any,
) -> JSONDict:
    """A private text message; ``names`` go to :func:`user` (first_name, language_code...)."""
    content: JSONDict = {"text": text}
    entities = command_entities(text)
    if entities:
        content["entities"] = entities
    return _message(
        user_id, message_id=message_id, date=date, sender=sender, names=names, content=content
    )


def location_update(
    user_id: int,
    latitude: float,
    longitude: float,
    *,
    message_id: int | None = None,
    date: int | None = None,
    sender: JSONDict | None = None,
    **names: Any,
) -> JSONDict:
    """A location pin shared in the private chat."""
    content = {"location": {"latitude": latitude, "longitude": longitude}}
    return _message(
        user_id, message_id=message_id, date=date, sender=sender, names=names, content=content
    )


def photo_sizes(file_id: str | None = None) -> list[JSONDict]:
    """Three PhotoSize objects, smallest first; the largest has ``file_id`` when given."""
    base = file_id or f"AgACAgUAAxkBFake{_run}{next(_files)}"
    sizes = []
    for i, (width, height, size) in enumerate(_PHOTO_SIZES):
        largest = i == len(_PHOTO_SIZES) - 1
        sizes.append(
            {
                "file_id": base if largest else f"{base}-{width}",
                "file_unique_id": f"AQAD{zlib.crc32(f'{base}-{width}'.encode()):010d}",
                "file_size": size,
                "width": width,
                "height": height,
            }
        )
    return sizes


def photo_update(
    user_id: int,
    *,
    caption: str | None = None,
    file_id: str | None = None,
    message_id: int | None = None,
    date: int | None = None,
    sender: JSONDict | None = None,
    **names: Any,
) -> JSONDict:
    """A photo (three sizes) with an optional caption."""
    content: JSONDict = {"photo": photo_sizes(file_id)}
    if caption:
        content["caption"] = caption
    return _message(
        user_id, message_id=message_id, date=date, sender=sender, names=names, content=content
    )


def chat_instance(chat_id: int) -> str:
    """A stable stand-in for Telegram's chat_instance of a chat."""
    return str((chat_id * 0x9E3779B97F4A7C15) % 2**63 - 2**62)


def callback_update(
    user_id: int,
    data: str,
    message_id: int,
    *,
    query_id: str | None = None,
    chat_id: int | None = None,
    text: str | None = None,
    sender: JSONDict | None = None,
    **names: Any,
) -> JSONDict:
    """A tap on an inline button of the bot's message ``message_id`` in the user's chat.

    The fake replaces ``message`` by the bot's message as it stands when it knows it; otherwise
    the minimal message built here (with ``text`` when given) stays.
    """
    sender = sender or user(user_id, **names)
    chat = private_chat(sender) if chat_id is None or chat_id == user_id else _group(chat_id)
    message: JSONDict = {"message_id": message_id, "chat": chat, "date": int(time.time())}
    if text is not None:
        message["text"] = text
    return {
        "callback_query": {
            "id": query_id or str(uuid.uuid4().int >> 66),
            "from": sender,
            "message": message,
            "chat_instance": chat_instance(chat["id"]),
            "data": data,
        }
    }


def _group(chat_id: int) -> JSONDict:
    kind = "supergroup" if chat_id < -(10**12) else "group"
    return {"id": chat_id, "type": kind, "title": f"Group {chat_id}"}


def update_type(update: JSONDict) -> str:
    """The one field of ``update`` that carries it; ValueError when there is not exactly one."""
    kinds = [key for key in update if key != "update_id"]
    if len(kinds) != 1 or kinds[0] not in UPDATE_TYPES:
        raise ValueError(f"an update has exactly one of {', '.join(UPDATE_TYPES)}; got {kinds}")
    return kinds[0]
