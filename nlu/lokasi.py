"""Find free-text places: streets, gangs, RT/RW, junctions and landmarks.

A place starts at a keyword (Jl., jalan, gang, simpang, perumahan, RT ...) followed by name words,
or at a name seen as a place in the training data. Name words are capitalised words (when the
message is not written all in one case), words the training data uses inside places much more
than outside them, and words no dictionary knows.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

from .entities import Entity

_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
_UPPER = re.compile(r"[A-Z\u00c0-\u00de]")
_TOK = re.compile(r"[^\W_]+(?:\.(?=\s|$))?|[-/&]", re.UNICODE)

# Keywords that open a place and belong to it.
STREET = {"jl", "jl.", "jln", "jln.", "jalan", "jalan.", "jlan", "jalur"}
OPENERS = STREET | {
    "gang",
    "gg",
    "gg.",
    "gng",
    "lorong",
    "lr",
    "lr.",
    "simpang",
    "simp",
    "simp.",
    "spg",
    "perumahan",
    "perum",
    "perum.",
    "komplek",
    "kompleks",
    "komp",
    "komp.",
    "blok",
    "griya",
    "flyover",
    "fly",
    "jembatan",
    "pasar",
    "psr",
    "bandara",
    "mall",
    "mal",
    "plaza",
    "terminal",
    "halte",
    "taman",
    "masjid",
    "mesjid",
    "musholla",
    "mushola",
    "gereja",
    "stadion",
    "lapangan",
    "bundaran",
    "tugu",
    "kampus",
    "universitas",
    "univ",
    "puskesmas",
    "rsud",
    "rs",
    "kantor",
    "sdn",
    "smpn",
    "sman",
    "smkn",
    "sd",
    "smp",
    "sma",
    "smk",
    "sekolah",
    "pertigaan",
    "perempatan",
    "persimpangan",
    "km",
    "kawasan",
    "ruko",
    "hotel",
    "spbu",
    "danau",
    "pelabuhan",
    "rt",
    "rw",
    "rt.",
    "rw.",
}
# Openers that need a following name word, or they are ordinary words ("jalan rusak").
NEEDS_NAME = OPENERS - {"rt", "rw", "rt.", "rw."}
# Words that may continue a place after a name: "km 12", "RT 04 RW 02", "no 5", "ujung".
CONTINUERS = {
    "rt",
    "rw",
    "rt.",
    "rw.",
    "km",
    "no",
    "no.",
    "nomor",
    "blok",
    "gang",
    "gg",
    "gg.",
    "jl",
    "jl.",
    "jln",
    "jalan",
    "-",
    "/",
    "&",
}
# Keywords that start the next part of one address ("gg. Mawar jl. Delima"): they end a name.
PART_HEADS = STREET | {"gang", "gg", "gg.", "gng"}
# Words that end a street's name and belong to the place: "Jl. Delima ujung".
TAILS = {"ujung", "pangkal"}
# Openers that stay in front of a street: "simpang Jl. Arifin Ahmad", "gang Ikhlas Jl. Durian".
CHAIN_HEADS = {"simpang", "simp", "simp.", "spg", "gang", "gg", "gg.", "gng", "flyover", "fly"}
# Openers that a number may follow: "RT 04", "km 12", "gang 3".
NUMBERED = {
    "rt",
    "rw",
    "rt.",
    "rw.",
    "km",
    "gang",
    "gg",
    "gg.",
    "gng",
    "lorong",
    "lr",
    "lr.",
    "blok",
    "sdn",
    "smpn",
    "sman",
    "smkn",
    "sd",
    "smp",
    "sma",
    "smk",
}
# One address is a few parts ("simpang Jl. A - Jl. B", "gg. X jl. Y RT 1 RW 2"): a run of
# keywords and names longer than this is a new place (a message repeating "jl. paus jl. paus").
MAX_PLACE_TOKENS = 16
# The place text kept for a report: all its places, each once, at most this many characters.
PLACE_TEXT_LIMIT = 200
# Places found this close (characters between) are one place: "Jl. Paus depan SD 12".
PLACE_JOIN_GAP = 12
ROMAN = {"i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x"}
STOP = {
    "di",
    "ke",
    "dari",
    "yang",
    "yg",
    "dan",
    "dgn",
    "dengan",
    "sudah",
    "udah",
    "udh",
    "sdh",
    "belum",
    "blm",
    "ada",
    "tidak",
    "gak",
    "ga",
    "gk",
    "nggak",
    "itu",
    "ini",
    "ni",
    "tu",
    "sini",
    "situ",
    "sana",
    "kok",
    "ya",
    "min",
    "pak",
    "bu",
    "sih",
    "dong",
    "deh",
    "kak",
    "bang",
    "tolong",
    "tlg",
    "mohon",
    "lagi",
    "lg",
    "juga",
    "jg",
    "sangat",
    "sekali",
    "banget",
    "bgt",
    "rusak",
    "banjir",
    "macet",
    "gelap",
    "mati",
    "the",
    "is",
    "are",
    "in",
    "on",
    "at",
    "near",
    "of",
    "and",
    "to",
    "for",
    "please",
    "has",
    "have",
    "been",
    "depan",
    "dpn",
    "dekat",
    "dkt",
    "samping",
    "belakang",
    "seberang",
    "sebelah",
    "arah",
    "menuju",
    "kami",
    "saya",
    "sy",
    "kita",
    "kamu",
    "aku",
    "rumah",
    "kota",
    "pekanbaru",
    "pku",
    "kec",
    "kel",
    "kecamatan",
    "kelurahan",
    "untuk",
    "utk",
    "buat",
    "karena",
    "krn",
    "tapi",
    "tp",
    "atau",
    "pas",
    "pada",
    "pd",
    "sejak",
    "selama",
    "lubang",
    "lobang",
    "berlubang",
    "parah",
    "amblas",
    "lampu",
    "sampah",
    "parit",
}


class PlaceFinder:
    """Rule-based finder of `lokasi` spans, tuned with words learned from training data."""

    def __init__(
        self,
        inside: Counter[str] | None = None,
        outside: Counter[str] | None = None,
        known_names: Iterable[str] = (),
        common_words: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        self.inside = inside or Counter()
        self.outside = outside or Counter()
        self.common = common_words
        # Multi-word names seen as places, matched as whole token sequences (lower case).
        self.names: dict[str, list[tuple[str, ...]]] = {}
        for name in known_names:
            toks = tuple(t.lower() for t in _TOK.findall(name))
            if toks and not all(t in STOP or t in OPENERS for t in toks):
                self.names.setdefault(toks[0], []).append(toks)
        for seqs in self.names.values():
            seqs.sort(key=len, reverse=True)

    @classmethod
    def learn(
        cls,
        examples: Sequence[tuple[str, Sequence[tuple[int, int]]]],
        common_words: set[str] | frozenset[str] = frozenset(),
    ) -> tuple[Counter[str], Counter[str], list[str]]:
        """Count words inside and outside annotated places; collect place names."""
        inside: Counter[str] = Counter()
        outside: Counter[str] = Counter()
        names: set[str] = set()
        for text, spans in examples:
            for m in _TOK.finditer(text):
                w = m.group(0).lower()
                if any(s <= m.start() and m.end() <= e for s, e in spans):
                    inside[w] += 1
                else:
                    outside[w] += 1
            for s, e in spans:
                toks = _TOK.findall(text[s:e])
                # Strip the opener so "Jl. Sudirman" teaches the name "Sudirman".
                stripped = False
                while toks and toks[0].lower() in STREET:
                    toks = toks[1:]
                    stripped = True
                # A one-word street name ("Riau" of "Jl. Riau") is too ambiguous on its own.
                if toks and not (stripped and len(toks) == 1):
                    names.add(" ".join(toks))
        return inside, outside, sorted(names)

    def _is_name(self, tok: str, mixed_case: bool) -> bool:
        low = tok.lower()
        if low in STOP:
            return False
        if tok.isdigit() or low in ROMAN:
            return True
        if mixed_case and tok[:1].isupper():
            return True
        i, o = self.inside.get(low, 0), self.outside.get(low, 0)
        if i and i >= o:
            return True
        if o >= 2 or low in self.common:
            return False
        return not mixed_case and not i and not o and low.isalpha() and len(low) > 2

    def find(self, text: str, taken: Sequence[tuple[int, int]] = ()) -> list[Entity]:
        """Return lokasi entities that do not overlap the `taken` spans."""
        return self.find_with_places(text, taken, [])[0]

    def find_with_places(
        self,
        text: str,
        taken: Sequence[tuple[int, int]],
        places: Sequence[tuple[int, int]],
    ) -> tuple[list[Entity], set[tuple[int, int]]]:
        """Find places; a wilayah name right after a street keyword ("Jl. Air Dingin") becomes
        part of the lokasi and is returned in the absorbed set, elsewhere it ends the lokasi."""
        absorbed: set[tuple[int, int]] = set()

        def place_at(tok: tuple[str, int, int]) -> tuple[int, int] | None:
            for s, e in places:
                if s <= tok[1] and tok[2] <= e:
                    return (s, e)
            return None

        toks = [(m.group(0), m.start(), m.end()) for m in _TOK.finditer(text)]
        letters = len(_LETTER.findall(text))
        upper = len(_UPPER.findall(text))
        mixed_case = 0 < upper < 0.6 * max(1, letters)
        spans: list[tuple[int, int]] = []
        i = 0
        n = len(toks)

        def free(a: int, b: int) -> bool:
            return not any(s < b and a < e for s, e in taken)

        def joined(a: int) -> bool:
            """Token a follows token a-1 across whitespace only (no comma or full stop)."""
            return a < n and not text[toks[a - 1][2] : toks[a][1]].strip()

        while i < n:
            low = toks[i][0].lower()
            j = i
            start_ok = False
            # Known place name sequence (an opener in front takes precedence).
            for seq in () if low in OPENERS else self.names.get(low, ()):
                if tuple(t[0].lower() for t in toks[i : i + len(seq)]) == seq:
                    j = i + len(seq)
                    start_ok = True
                    break
            if start_ok and any(place_at(t) for t in toks[i:j]):
                start_ok = False
                j = i
            if (
                not start_ok
                and low in OPENERS
                and joined(i + 1)
                and (
                    (toks[i + 1][0].lower() in STREET and low not in CHAIN_HEADS)
                    or toks[i + 1][0].lower() == low
                )
            ):
                # "halte Jl. Tuanku Tambusai": the place is the street.
                i += 1
                continue
            if not start_ok and low in OPENERS and not place_at(toks[i]):
                k = i + 1
                while k < n and joined(k) and toks[k][0].lower() in OPENERS - STOP and k - i < 3:
                    k += 1
                if k < n and toks[k][0].isdigit() and low not in NUMBERED:
                    i += 1
                    continue
                if low in ("rt", "rw", "rt.", "rw.", "km") and k < n and toks[k][0].isdigit():
                    j = k + 1
                    start_ok = True
                else:
                    m = k
                    if m < n and toks[m - 1][0].lower() in STREET and place_at(toks[m]):
                        span = place_at(toks[m])
                        absorbed.add(span)
                        while m < n and place_at(toks[m]) == span:
                            m += 1
                    for seq in self.names.get(toks[m][0].lower(), ()) if m < n else ():
                        if tuple(t[0].lower() for t in toks[m : m + len(seq)]) == seq:
                            m += len(seq)
                            break
                    while (
                        m < n
                        and m - k < 5
                        and joined(m)
                        and not place_at(toks[m])
                        and toks[m][0].lower() not in PART_HEADS
                        and self._is_name(toks[m][0], mixed_case)
                    ):
                        m += 1
                    if m > k:
                        j = m
                        start_ok = True
            if not start_ok:
                i += 1
                continue
            # Continue with RT/RW/km/no + number, another opener + name, or more name words.
            while j < n and j - i < MAX_PLACE_TOKENS:
                low_j = toks[j][0].lower()
                if low_j in CONTINUERS and j + 1 < n and joined(j) and joined(j + 1):
                    nxt = toks[j + 1][0]
                    span = place_at(toks[j + 1])
                    if low_j in PART_HEADS and span is not None and not place_at(toks[j]):
                        # "gg. Mawar jl. Delima": a wilayah name after a street keyword is
                        # the street's name.
                        absorbed.add(span)
                        j += 1
                        while j < n and place_at(toks[j]) == span:
                            j += 1
                        continue
                    if span is not None or place_at(toks[j]):
                        break
                    if (
                        nxt.isdigit()
                        or self._is_name(nxt, mixed_case)
                        or (nxt.lower() in STREET and j + 2 < n)
                    ):
                        j += 2
                        while (
                            j < n
                            and joined(j)
                            and not place_at(toks[j])
                            and (toks[j][0].isdigit() or self._is_name(toks[j][0], mixed_case))
                            and toks[j][0].lower() not in CONTINUERS
                        ):
                            j += 1
                        continue
                break
            if j < n and joined(j) and toks[j][0].lower() in TAILS:
                j += 1
            s, e = toks[i][1], toks[j - 1][2]
            while e > s and text[e - 1] in ".,-/&":
                e -= 1
            if free(s, e):
                spans.append((s, e))
            i = j
        ents = [Entity("lokasi", text[s:e], s, e, text[s:e]) for s, e in spans]
        return ents, absorbed


# ---------------------------------------------------------------- place text of a report

_KEY_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Spellings of one keyword: "Jl." = "jalan" = "jln", "gg" = "gang", "no." = "nomor".
_KEYWORD_FORMS = {
    **dict.fromkeys(("jl", "jln", "jlan", "jalan"), "jalan"),
    **dict.fromkeys(("gg", "gng", "gang"), "gang"),
    **dict.fromkeys(("no", "nomor", "nmr"), "no"),
    **dict.fromkeys(("simp", "spg", "simpang"), "simpang"),
    **dict.fromkeys(("perum", "perumahan"), "perumahan"),
    **dict.fromkeys(("komp", "komplek", "kompleks"), "komplek"),
    **dict.fromkeys(("lr", "lorong"), "lorong"),
    **dict.fromkeys(("psr", "pasar"), "pasar"),
}
_PART_START = re.compile(
    r"(?<![^\W_])(?:jl|jln|jlan|jalan|gg|gng|gang)\b\.?", re.IGNORECASE | re.UNICODE
)


def lokasi_key(text: str) -> str:
    """Key of a place as written: case, punctuation and keyword spellings do not count.

    `Jl. Paus`, `jalan paus`, `JLN PAUS!` share one key; `gg mawar` and `Gang Mawar` too.
    """
    words = _KEY_WORD.findall(unicodedata.normalize("NFKC", text).casefold())
    # A number's leading zeros do not count either: "RT 04" is "rt 4".
    return " ".join(_KEYWORD_FORMS.get(w, w.lstrip("0") or "0") for w in words)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    return (head[:space] if space > limit // 2 else head).rstrip(" ,.-/") + "…"


def _unique_parts(part: str) -> str:
    """Drop the repeated streets and gangs inside one place: "jl. paus jl. paus" -> "jl. paus"."""
    cuts = [m.start() for m in _PART_START.finditer(part)]
    if len(cuts) < 2:
        return part
    if cuts[0] != 0:
        cuts.insert(0, 0)
    pieces = [part[a:b].strip() for a, b in zip(cuts, [*cuts[1:], len(part)], strict=True)]
    seen: set[str] = set()
    kept = []
    for piece in pieces:
        key = lokasi_key(piece)
        if key and key not in seen:
            seen.add(key)
            kept.append(piece)
    return " ".join(kept)


def place_text(text: str, entities: Iterable[Entity], limit: int = PLACE_TEXT_LIMIT) -> str:
    """Join the lokasi entities of `text` into the place text of a report.

    Neighbours at most PLACE_JOIN_GAP characters apart are one place ("Jl. Paus depan SD 12");
    places are joined with ", ", each once (case, punctuation and "Jl."/"jalan"/"jln" aside),
    and the result is at most `limit` characters (whole places while they fit; a single
    longer place is cut at a word with "…"). Entities of other types are ignored.
    """
    spans = []
    seen: set[str] = set()
    for start, end in sorted((e.start, e.end) for e in entities if e.type == "lokasi"):
        key = lokasi_key(text[start:end])
        if key and key not in seen:  # "Jl. Paus rusak, JALAN PAUS rusak": one "Jl. Paus"
            seen.add(key)
            spans.append((start, end))
    parts: list[list[int]] = []
    for start, end in spans:
        if parts and start - parts[-1][1] <= PLACE_JOIN_GAP:
            parts[-1][1] = max(parts[-1][1], end)
        else:
            parts.append([start, end])
    out: list[str] = []
    keys: list[str] = []
    for a, b in parts:
        part = _unique_parts(" ".join(text[a:b].split()))
        key = lokasi_key(part)
        if not key or any(key == k or f" {key} " in f" {k} " for k in keys):
            continue
        # A later, fuller mention replaces the short one: "Jl. Paus" then "Jl. Paus ujung".
        shorter = [i for i, k in enumerate(keys) if f" {k} " in f" {key} "]
        for i in reversed(shorter):
            del out[i], keys[i]
        if not out and len(part) > limit:
            return _cut(part, limit)
        if len(", ".join([*out, part])) > limit:
            break
        out.append(part)
        keys.append(key)
    return ", ".join(out)
