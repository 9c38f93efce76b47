"""Indonesian NLU for resident messages: intent, category, entities and language.

Importing this package loads nothing: call `load()` to build (or read the cached) model.
"""

from .entities import Entity, redact
from .lokasi import lokasi_key, place_text
from .parser import DEFAULT_THRESHOLD, ENGINE_VERSION, Parse, Parser, load

__all__ = [
    "DEFAULT_THRESHOLD",
    "ENGINE_VERSION",
    "Entity",
    "Parse",
    "Parser",
    "load",
    "lokasi_key",
    "place_text",
    "redact",
]
