"""Answers to residents' common questions, from data/faq.yml, found by word overlap.

An entry answers a question only when it fits: most of what the question is about must be
words of that entry's questions, and a topic word of another entry ("kk" when the entry is
about "ktp") rules it out. Otherwise `search` returns None and the bot offers to forward the
question instead of answering something else.
"""

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
# The share of the question (its words weighted by how few entries use them) that the entry's
# questions must hold. A word no entry uses counts UNKNOWN_WEIGHT times the rarest: "paspor",
# "sim" or "gereja" is most likely the very thing the question is about.
MIN_COVERAGE = 0.5
UNKNOWN_WEIGHT = 2.0
# A topic word of an entry is in at least half of its questions (and two), and in at most this
# share of all entries ("kk", "ktp", "bpjs", "pdam"; not "pekanbaru", "rumah" or "anak").
TOPIC_MAX_SHARE = 1 / 6


class FaqError(Exception):
    pass


@dataclass(frozen=True)
class FaqEntry:
    id: str
    category: str
    agency: str
    questions: tuple[str, ...]
    answer: dict[str, str]
    # Words of which a question must hold one for this entry to answer it: the thing the entry
    # is about when its other words are common ("where is the office" is not this office).
    requires: tuple[str, ...] = ()


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
        # Per entry: all words of its questions, and the words most of its questions share.
        self._vocab: dict[str, frozenset[str]] = {}
        self._requires = {
            e.id: frozenset(w for r in e.requires for w in words(r)) for e in entries
        }
        topical: dict[str, set[str]] = {}
        for e in entries:
            asked = [frozenset(words(q)) for q in e.questions]
            self._vocab[e.id] = frozenset().union(*asked)
            counts = Counter(w for q in asked for w in q)
            topical[e.id] = {w for w, k in counts.items() if k >= max(2, len(asked) / 2)}
        entry_df = Counter(w for v in self._vocab.values() for w in v)
        ne = len(self._vocab) or 1
        self._entry_idf = {w: math.log(1 + ne / c) for w, c in entry_df.items()}
        self._entry_unknown = math.log(1 + ne)
        self._own_topics = {
            k: frozenset(w for w in v if entry_df[w] <= TOPIC_MAX_SHARE * ne)
            for k, v in topical.items()
        }
        self.topics = frozenset().union(*self._own_topics.values())

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
                    requires=tuple(item.get("requires", ())),
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
            required = {w for r in entry.requires for w in words(r)}
            for q in entry.questions if entry.requires else ():
                if not required & set(words(q)):
                    raise FaqError(f"{where}.questions: {q!r} holds none of {entry.requires}")
            seen.add(entry.id)
            entries.append(entry)
        return cls(entries, words)

    def weight(self, word: str) -> float:
        return self._idf.get(word, self._unknown)

    def fits(self, entry: FaqEntry, query: frozenset[str]) -> float | None:
        """How much of the question the entry's questions hold (0–1), or None if it cannot fit.

        It cannot fit when the question names another entry's topic word that none of this
        entry's questions use ("kk hilang" is not "ktp hilang"), or lacks all the words the
        entry requires ("alamat kantor pln" is not the Disdukcapil office).
        """
        required = self._requires[entry.id]
        if required and not query & required:
            return None
        vocab = self._vocab[entry.id]
        if (query - vocab) & self.topics:
            return None
        # A question naming two of the entry's topic words ("ktp", "hilang") is about it; its
        # other unknown words are circumstances ("kemaren di pasar"), not another thing.
        unknown = 1.0 if len(query & self._own_topics[entry.id]) >= 2 else UNKNOWN_WEIGHT
        total = sum(self._entry_weight(w, unknown) for w in query)
        covered = sum(self._entry_weight(w, unknown) for w in query & vocab)
        return covered / total if total else None

    def _entry_weight(self, word: str, unknown: float) -> float:
        return self._entry_idf.get(word, unknown * self._entry_unknown)

    def search(self, text: str, *, category: str | None = None) -> Hit | None:
        """Return the entry that fits a message when one does, else None."""
        query = frozenset(self.words(text))
        if not query:
            return None
        closest: dict[str, float] = {}
        for entry, doc in self._docs:
            shared = query & doc
            if not shared:
                continue
            # Dice-like overlap with one way of asking, weighted by how telling each word is.
            score = (
                2
                * sum(self.weight(w) for w in shared)
                / (sum(self.weight(w) for w in query) + sum(self.weight(w) for w in doc))
            )
            closest[entry.id] = max(closest.get(entry.id, 0.0), score)
        best: tuple[float, float, Hit] | None = None
        for entry in self.entries:
            score = closest.get(entry.id)
            if score is None:
                continue
            coverage = self.fits(entry, query)
            if coverage is None:
                continue
            if category is not None and entry.category == category:
                score += CATEGORY_BONUS
            rank = coverage + score
            if best is None or rank > best[0]:
                best = (rank, coverage, Hit(entry, score))
        if best is None:
            return None
        _, coverage, hit = best
        if hit.score < MIN_SCORE or coverage < MIN_COVERAGE:
            return None
        return hit
