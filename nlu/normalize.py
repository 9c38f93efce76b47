"""Normalise informal Indonesian chat text before matching and classification."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

_TOKEN = re.compile(r"<[a-z_]+>|[^\W_]+|[^\w\s]", re.UNICODE)
_ELONGATED = re.compile(r"([^\W\d_])\1{2,}", re.UNICODE)
# bolong2, kira2nya, anak-anak; the word part must be letters.
_REDUP_DIGIT = re.compile(r"^(?P<w>[^\W\d_]{2,})2(?P<suffix>nya|an|kan|lah)?$", re.UNICODE)
_NO_REDUP = frozenset(
    {"rt", "rw", "no", "gg", "jl", "jln", "blok", "lt", "km", "kec", "kel", "pku"}
)


def read_lexicon(path: Path) -> dict[str, str]:
    """Read a tab-separated `informal<TAB>formal` file (header and # comments skipped)."""
    table: dict[str, str] = {}
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            informal, sep, formal = line.partition("\t")
            if not sep or (n == 0 and informal == "informal"):
                continue
            informal = informal.strip().lower()
            formal = formal.strip().lower()
            if informal and formal:
                table[informal] = formal
    return table


def load_lexicon(directory: Path | None) -> dict[str, str]:
    """Merge IndoCollex with the project's overrides (overrides win)."""
    if directory is None:
        return {}
    table: dict[str, str] = {}
    base = directory / "indocollex_informal_formal.tsv"
    if base.exists():
        table.update(read_lexicon(base))
    overrides = directory / "overrides.tsv"
    if overrides.exists():
        table.update(read_lexicon(overrides))
    return table


def fold(text: str) -> str:
    """Lower-case and fold compatibility characters (fancy letters, full-width digits)."""
    return unicodedata.normalize("NFKC", text).lower()


def tokens(text: str) -> list[str]:
    """Split folded text into word tokens, emoji and punctuation."""
    return _TOKEN.findall(text)


class Normalizer:
    """Turn informal text into a normalised token list (lexicon + rules)."""

    def __init__(self, lexicon: dict[str, str], known: set[str] | None = None) -> None:
        self.lexicon = lexicon
        self.known = set(known or ())
        for formal in lexicon.values():
            self.known.update(formal.split())
        self._cache: dict[str, tuple[str, ...]] = {}

    def word(self, tok: str) -> tuple[str, ...]:
        """Normalise one token (cached)."""
        hit = self._cache.get(tok)
        if hit is not None:
            return hit
        out = self._word(tok)
        if len(self._cache) < 200_000:
            self._cache[tok] = out
        return out

    def _lookup(self, tok: str) -> tuple[str, ...] | None:
        formal = self.lexicon.get(tok)
        if formal is not None:
            return tuple(formal.split())
        if tok in self.known:
            return (tok,)
        return None

    def _word(self, tok: str) -> tuple[str, ...]:
        if tok.startswith("<") or not tok[0].isalnum():
            return (tok,)
        hit = self._lookup(tok)
        if hit is not None:
            return hit
        # Elongation: bangettt -> banget, tolonggg -> tolong, maaaaf -> maaf.
        if _ELONGATED.search(tok):
            two = _ELONGATED.sub(r"\1\1", tok)
            one = _ELONGATED.sub(r"\1", tok)
            for cand in (two, one):
                hit = self._lookup(cand)
                if hit is not None:
                    return hit
            tok = one
        # Reduplication written with a digit: bolong2 -> bolong bolong.
        m = _REDUP_DIGIT.match(tok)
        if m and m.group("w") not in _NO_REDUP:
            base = self._lookup(m.group("w")) or (m.group("w"),)
            suffix = m.group("suffix") or ""
            return base + base[:-1] + (base[-1] + suffix,)
        hit = self._lookup(tok)
        return hit if hit is not None else (tok,)

    def normalize_tokens(self, text: str) -> list[str]:
        """Fold, tokenise and normalise; hyphenated reduplication is split into its words.

        A hashtag or mention written as one word is split into the words it joins when they
        are all known (#jalanrusak -> jalan rusak, @pemkotpekanbaru -> pemkot pekanbaru).
        """
        out: list[str] = []
        prev = ""
        for tok in tokens(fold(text)):
            parts = self.split_joined(tok) if prev in ("#", "@") else None
            if parts is None:
                out.extend(self.word(tok))
            else:
                for part in parts:
                    out.extend(self.word(part))
            prev = tok
        return out

    def split_joined(self, tok: str) -> list[str] | None:
        """The fewest known words of at least three letters that make up `tok`, or None."""
        if len(tok) < 6 or not tok.isalpha() or self._lookup(tok) is not None:
            return None
        n = len(tok)
        best: list[list[str] | None] = [None] * (n + 1)
        best[0] = []
        for end in range(3, n + 1):
            for start in range(0, end - 2):
                head = best[start]
                if head is None or self._lookup(tok[start:end]) is None:
                    continue
                if best[end] is None or len(head) + 1 < len(best[end]):
                    best[end] = [*head, tok[start:end]]
        return best[n] if best[n] and len(best[n]) > 1 else None

    def normalize(self, text: str) -> str:
        """Return the normalised text as one space-separated string."""
        return " ".join(self.normalize_tokens(text))
