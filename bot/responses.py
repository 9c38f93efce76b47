"""Every sentence the bot says, from data/responses/<lang>.yml, keyed by id."""

from __future__ import annotations

import string
from pathlib import Path

import yaml

DEFAULT_LANGUAGE = "id"


class ResponsesError(Exception):
    pass


class Responses:
    """Look up a sentence by key in a language, falling back to Indonesian."""

    def __init__(self, tables: dict[str, dict[str, str]]) -> None:
        self.tables = tables

    @classmethod
    def load(cls, directory: Path) -> Responses:
        tables: dict[str, dict[str, str]] = {}
        for path in sorted(directory.glob("*.yml")):
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict):
                raise ResponsesError(f"{path}: expected a mapping of keys to sentences")
            tables[path.stem] = _flatten(raw)
        if DEFAULT_LANGUAGE not in tables:
            raise ResponsesError(f"{directory}: no {DEFAULT_LANGUAGE}.yml")
        base = tables[DEFAULT_LANGUAGE]
        for lang, table in tables.items():
            for key, text in table.items():
                if key not in base:
                    raise ResponsesError(f"{directory / lang}.yml: {key}: not in id.yml")
                wanted = _fields(base[key])
                if _fields(text) - wanted:
                    raise ResponsesError(
                        f"{directory / lang}.yml: {key}: placeholders "
                        f"{sorted(_fields(text) - wanted)} are not in id.yml"
                    )
        return cls(tables)

    def languages(self) -> list[str]:
        return sorted(self.tables)

    def has(self, key: str) -> bool:
        """Whether `key` has a sentence (every language falls back to Indonesian)."""
        return key in self.tables[DEFAULT_LANGUAGE]

    def category(self, lang: str, code: str, default: str) -> str:
        """A category's name as people read it (`category.<code>`), else `default`."""
        key = f"category.{code}"
        return self.get(lang, key) if self.has(key) else default

    def get(self, lang: str, key: str, **params: object) -> str:
        table = self.tables.get(lang, {})
        text = table.get(key)
        if text is None:
            text = self.tables[DEFAULT_LANGUAGE].get(key)
        if text is None:
            raise KeyError(f"no response {key!r}")
        return text.format(**params) if params else text


def _flatten(raw: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in raw.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, full + "."))
        else:
            # Only the end: a block scalar's last newline goes, while a piece meant to be joined
            # to another keeps what it starts with ("\nCatatan: …" its line, " ⏰ …" its space).
            out[full] = str(value).rstrip()
    return out


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}
