"""Answers to residents' common questions, from data/faq.yml, found by word overlap."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

# Below this score the best answer is not good enough: offer to forward the question instead.
MIN_SCORE = 0.35
CATEGORY_BONUS = 0.1


class FaqError(Exception):
    pass


@dataclass(frozen=True)
class FaqEntry:
    id: str
    category: str
    agency: str
    questions: tuple[str, ...]
    answer: dict[str, str]


@dataclass(frozen=True)
class Hit:
    entry: FaqEntry
    score: float


class FaqIndex:
    """Score each entry's questions against a message: IDF-weighted share of shared words."""

    def __init__(self, entries: list[FaqEntry], words: Callable[[str], list[str]]) -> None:
        self.entries = entries
        self.words = words
        self._docs: list[tuple[FaqEntry, frozenset[str]]] = [
            (e, frozenset(words(q))) for e in entries for q in e.questions
        ]
        df = Counter(w for _, doc in self._docs for w in doc)
        n = len(self._docs) or 1
        self._idf = {w: math.log(1 + n / c) for w, c in df.items()}
        self._unknown = math.log(1 + n)

    @classmethod
    def load(
        cls,
        path: Path,
        words: Callable[[str], list[str]],
        *,
        categories: set[str],
        agencies: set[str],
    ) -> FaqIndex:
        """Read and check the FAQ file against the city's categories and agencies."""
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        entries = []
        seen: set[str] = set()
        for i, item in enumerate(raw.get("entries", [])):
            where = f"{path}: entries.{i}"
            try:
                entry = FaqEntry(
                    id=item["id"],
                    category=item["category"],
                    agency=item["agency"],
                    questions=tuple(item["questions"]),
                    answer={k: v.strip() for k, v in item["answer"].items()},
                )
            except (KeyError, TypeError, AttributeError) as exc:
                raise FaqError(f"{where}: missing or malformed {exc}") from None
            if entry.id in seen:
                raise FaqError(f"{where}.id: {entry.id!r} appears twice")
            if entry.category not in categories:
                raise FaqError(f"{where}.category: unknown category {entry.category!r}")
            if entry.agency not in agencies:
                raise FaqError(f"{where}.agency: unknown agency {entry.agency!r}")
            if "id" not in entry.answer or not entry.questions:
                raise FaqError(f"{where}: needs questions and an Indonesian answer")
            seen.add(entry.id)
            entries.append(entry)
        return cls(entries, words)

    def weight(self, word: str) -> float:
        return self._idf.get(word, self._unknown)

    def search(self, text: str, *, category: str | None = None) -> Hit | None:
        """Return the best entry for a message when it is good enough, else None."""
        query = frozenset(self.words(text))
        if not query:
            return None
        best: Hit | None = None
        for entry, doc in self._docs:
            shared = query & doc
            if not shared:
                continue
            # Dice-like overlap, weighted by how telling each word is.
            score = (
                2
                * sum(self.weight(w) for w in shared)
                / (sum(self.weight(w) for w in query) + sum(self.weight(w) for w in doc))
            )
            if category is not None and entry.category == category:
                score += CATEGORY_BONUS
            if best is None or score > best.score:
                best = Hit(entry, score)
        return best if best is not None and best.score >= MIN_SCORE else None
