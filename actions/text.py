"""Text from outside (chat platforms, Open311 clients, agencies' systems), made safe to keep.

Every string that enters goes through `clean` at the edge, before it is stored or handled:
no NUL (PostgreSQL refuses it in text), no lone surrogates (they cannot be encoded as UTF-8,
so neither stored nor sent), no characters XML 1.0 forbids (they would make our Open311 XML
ill-formed), and no more than the field's limit.
"""

from __future__ import annotations

import re
from typing import Any

# C0 controls but tab, newline and carriage return; DEL; the noncharacters U+FFFE and U+FFFF.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"

# Lengths the store and the platforms take.
NAME_LIMIT = 200
MAX_DEPTH = 32  # nesting of a JSON body from a platform: Telegram's and WhatsApp's reach ~8


def clean(text: str, limit: int | None = None) -> str:
    """Return `text` without what cannot be stored, encoded or put in XML, cut to `limit`."""
    if _SURROGATE.search(text):
        text = _SURROGATE.sub(REPLACEMENT, text)
    if _FORBIDDEN.search(text):
        text = _FORBIDDEN.sub("", text)
    if limit is not None and len(text) > limit:
        text = text[:limit]
    return text


def is_clean(text: str) -> bool:
    """Whether `text` holds nothing `clean` would take out."""
    return not (_SURROGATE.search(text) or _FORBIDDEN.search(text))


class TooDeep(ValueError):
    """A JSON document nested deeper than any platform sends."""


def clean_json(value: Any, *, max_depth: int = MAX_DEPTH) -> Any:
    """Return a copy of parsed JSON with every string (keys too) cleaned.

    Iterative, so a hostile nesting cannot exhaust the stack; deeper than `max_depth` raises
    TooDeep.
    """
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(value, root, 0, 0)]
    while stack:
        item, parent, key, depth = stack.pop()
        if depth > max_depth:
            raise TooDeep(f"nested deeper than {max_depth} levels")
        if isinstance(item, str):
            parent[key] = clean(item)
        elif isinstance(item, dict):
            copy: dict[str, Any] = {}
            parent[key] = copy
            for k, v in item.items():
                name = clean(k) if isinstance(k, str) else k
                copy[name] = None
                stack.append((v, copy, name, depth + 1))
        elif isinstance(item, list):
            items: list[Any] = [None] * len(item)
            parent[key] = items
            stack.extend((v, items, i, depth + 1) for i, v in enumerate(item))
        else:
            parent[key] = item
    return root[0]
