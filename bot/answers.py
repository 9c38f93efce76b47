"""Short answers read as answers to the question just asked (data/answers.yml).

"gak" at "Ada foto?" is no photo, not a cancelled report; "ya" at "Sudah benar?" is send, not
a question to forward. The conversation asks `Answers.kinds(text)` before it asks the NLU.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from nlu.normalize import Normalizer, load_lexicon

MAX_WORDS = 8  # longer messages are never taken for a short answer
_REPEATS = re.compile(r"(\w)\1{2,}")  # "iyaaa" → "iya"
_DOUBLE_END = re.compile(r"(\w)\1\b")  # "okee", "yaa" → "oke", "ya"
_TOKEN = re.compile(r"[^\W_]+|[^\w\s]", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-cased words, repeated letters shortened, emoji kept as words of their own."""
    text = _DOUBLE_END.sub(r"\1", _REPEATS.sub(r"\1", text.casefold()))
    return [t for t in _TOKEN.findall(text) if t.isalnum() or not t.isascii()]


@dataclass(frozen=True, repr=False)
class Answers:
    kinds_by_phrase: dict[tuple[str, ...], str]
    fillers: frozenset[tuple[str, ...]]
    topics: frozenset[tuple[str, ...]]
    wants_by_phrase: dict[tuple[str, ...], str]
    want_words: frozenset[tuple[str, ...]]
    parts_by_phrase: dict[tuple[str, ...], str]
    # The NLU's informal-Indonesian normaliser ("kagak" → "tidak", "jgn" → "jangan"): a second
    # reading for words the lists do not hold.
    normalize: Callable[[str], list[str]] | None = None

    @classmethod
    def load(cls, path: Path, lexicon_dir: Path | None = None) -> Answers:
        """The answers of `path`, with the lexicon of `lexicon_dir` (by default the
        `lexicon` folder beside it) for the second reading."""
        # BaseLoader: every value is a string ("no" and "yes" are words here, not booleans).
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)  # noqa: S506

        def phrases(items: list[str]) -> list[tuple[str, ...]]:
            return [tuple(words(p)) for p in items if words(p)]

        kinds = {p: kind for kind, items in raw["kinds"].items() for p in phrases(items)}
        wants = {p: kind for kind, items in raw["wants"].items() for p in phrases(items)}
        parts = {p: part for part, items in raw["parts"].items() for p in phrases(items)}
        lexicon = lexicon_dir or path.parent / "lexicon"
        normalize = None
        if lexicon.is_dir():
            normalizer = Normalizer(load_lexicon(lexicon))
            normalize = normalizer.normalize_tokens
        return cls(
            kinds,
            frozenset(phrases(raw["fillers"])),
            frozenset(phrases(raw["topics"])) | frozenset(parts),
            wants,
            frozenset(phrases(raw["want_words"])),
            parts,
            normalize,
        )

    @classmethod
    def default(cls) -> Answers:
        """The answers shipped in the project's data folder (read once)."""
        return _default()

    def kinds(self, text: str) -> set[str]:
        """The kinds of short answer `text` is ("yes", "no", "cancel", "anonim", …): empty
        when any word of it is something else."""
        for tokens in self.readings(text):
            found = _cover(tokens, self.kinds_by_phrase, self.fillers | self.topics)
            if found is not None:
                return found
        return set()

    def readings(self, text: str) -> list[list[str]]:
        """The words through the NLU's normaliser with "-in" read as "-kan" ("jgn tampilin"
        → "jangan tampilkan": whole phrases appear), then as typed."""
        tokens = words(text)
        kan = [t[:-2] + "kan" if len(t) > 5 and t.endswith("in") else t for t in tokens]
        out = [tokens, kan]
        if self.normalize is not None:
            out.insert(0, words(" ".join(self.normalize(" ".join(kan)))))
        return out

    def mentions(self, text: str, kind: str) -> bool:
        """Whether any phrase of that kind appears in the text ("batalin laporan tadi")."""
        tokens = words(text)
        return any(
            tuple(tokens[i : i + len(p)]) == p
            for p, k in self.kinds_by_phrase.items()
            if k == kind
            for i in range(len(tokens) - len(p) + 1)
        )

    def part(self, text: str) -> str | None:
        """The one part of a report the text names ("lokasinya"), if exactly one."""
        tokens = words(text)
        named = {
            part
            for p, part in self.parts_by_phrase.items()
            for i in range(len(tokens) - len(p) + 1)
            if tuple(tokens[i : i + len(p)]) == p
        }
        return named.pop() if len(named) == 1 else None

    def want(self, text: str) -> str | None:
        """ "lapor", "tanya" or "aspirasi" when the text only says the resident wants to report,
        ask or propose ("mau lapor pak"), with nothing of the matter itself yet."""
        for tokens in self.readings(text):
            found = _cover(tokens, self.wants_by_phrase, self.want_words | self.fillers)
            if found is not None:
                return found.pop() if len(found) == 1 else None
        return None


def _cover(
    tokens: list[str], meaning: dict[tuple[str, ...], str], neutral: frozenset[tuple[str, ...]]
) -> set[str] | None:
    """Cover `tokens` left to right with the longest known phrases; the meanings found, or
    None when a word is not covered (or nothing meaningful is)."""
    if not tokens or len(tokens) > MAX_WORDS:
        return None
    longest = max(len(p) for p in (*meaning, *neutral))
    found: set[str] = set()
    i = 0
    while i < len(tokens):
        for n in range(min(longest, len(tokens) - i), 0, -1):
            piece = tuple(tokens[i : i + n])
            if piece in meaning:
                found.add(meaning[piece])
                break
            if piece in neutral:
                break
        else:
            return None
        i += n
    return found or None


_DEFAULT = Path(__file__).resolve().parent.parent / "data" / "answers.yml"


@cache
def _default() -> Answers:
    return Answers.load(_DEFAULT)
