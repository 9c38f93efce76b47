"""Find ticket numbers, phone numbers, NIK, wilayah names and free-text places."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import extractOne


@dataclass(frozen=True)
class Entity:
    """An entity found in the text: type, surface text, character span and normalised value."""

    type: str
    text: str
    start: int
    end: int
    value: str

    def to_dict(self) -> dict[str, object]:
        return {
            "type": self.type,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "value": self.value,
        }


# ---------------------------------------------------------------- ticket numbers

_SEP = r"[\s\-/_.]*"
_TIME_UNIT = r"(?:hari|hr|minggu|mgg|bulan|bln|tahun|thn|jam|menit|kali|x|orang|org|rumah)\b"


def _ticket_patterns(prefix: str) -> list[re.Pattern[str]]:
    p = re.escape(prefix)
    num = r"(?:(?P<y>20\d\d)[\-/.\s])?(?P<n>\d{1,6})(?!\d)"
    return [
        # PKU-2026-000123, pku2026000123, PKU 2026 123, PKU/2026/000123
        re.compile(rf"(?<![a-z0-9]){p}{_SEP}(?P<y>20\d\d){_SEP}(?P<n>\d{{1,6}})(?!\d)", re.I),
        # PKU-26-4401 (two-digit year)
        re.compile(
            rf"(?<![a-z0-9]){p}[\s\-/_.]+(?P<yy>[2-9]\d)[\s\-/_.]+(?P<n>\d{{1,6}})(?!\d)", re.I
        ),
        # PKU-000123 (year omitted)
        re.compile(rf"(?<![a-z0-9]){p}{_SEP}(?P<n>\d{{1,6}})(?!\d)", re.I),
        # tiket 123, no tiket: 123, nomor tiket #000123, ticket no. 123
        re.compile(
            rf"\b(?:(?:no(?:mor|mr)?|nmr)\.?\s*)?(?:tiket|ticket|tiketnya|tix)\s*"
            rf"(?:(?:no(?:mor|mr)?|nmr|number|id)\.?\s*)?[:=]?\s*#?\s*{num}",
            re.I,
        ),
        # no laporan 000123, nomor aduan 123, laporan no 123, laporan #123
        re.compile(
            rf"\b(?:no(?:mor|mr)?|nmr)\.?\s*(?:laporan|lap|aduan|pengaduan|pengajuan|lapor)"
            rf"(?:an)?\s*(?:saya|sy|ku|nya)?\s*[:=]?\s*#?\s*{num}",
            re.I,
        ),
        re.compile(
            rf"\b(?:laporan|aduan|pengaduan|lapor)(?:an)?\s*(?:saya|sy|ku|nya)?\s*"
            rf"(?:(?:no(?:mor|mr)?|nmr)\.?\s*[:=]?\s*#?|#)\s*{num}",
            re.I,
        ),
        # laporan 000123 (at least three digits, not "laporan 3 hari lalu")
        re.compile(
            rf"\b(?:laporan|aduan|pengaduan)\s*(?:saya|sy|ku|nya)?\s*[:=]?\s*"
            rf"(?P<n>\d{{3,6}})(?!\d)(?!\s*{_TIME_UNIT})",
            re.I,
        ),
        # laporan saya yang kemarin nomor 0981
        re.compile(
            r"\b(?:laporan|aduan|pengaduan|tiket)\b(?:\s+[^\s\d]+){1,5}?\s+(?:no|nomor|nmr)\.?"
            r"\s*[:#]?\s*(?P<n>\d{3,6})(?!\d)",
            re.I,
        ),
        # #123
        re.compile(r"(?<![\w#])#\s?(?P<n>\d{1,6})(?!\d)"),
    ]


# ---------------------------------------------------------------- phone numbers and NIK

_PHONE = re.compile(
    r"(?<![\w+])(?:\+62|62|0)[\s.\-]?\(?8\d{1,3}\)?(?:[\s.\-]?\d{2,5}){1,3}(?!\d)"
    r"|(?<![\w+])(?:\+62|62|0)[\s.\-]?\(?761\)?[\s.\-]?\d{3,4}[\s.\-]?\d{2,4}(?!\d)"
)
_NIK = re.compile(r"(?<!\d)\d{6}[\s.\-]?\d{6}[\s.\-]?\d{4}(?!\d)")
_PROVINCES = frozenset(
    "11 12 13 14 15 16 17 18 19 21 31 32 33 34 35 36 51 52 53 61 62 63 64 65 "
    "71 72 73 74 75 76 81 82 91 92 93 94 95 96 97".split()
)


def _digits(s: str) -> str:
    return re.sub(r"\D", "", s)


def _phone_value(surface: str) -> str | None:
    d = _digits(surface)
    if d.startswith("62"):
        d = "0" + d[2:]
    if not d.startswith("0") or not 9 <= len(d) <= 13:
        return None
    return "+62" + d[1:]


def plausible_nik(digits: str) -> bool:
    """Check a 16-digit string for a province code, a birth day (+40 for women) and month."""
    if len(digits) != 16 or digits[:2] not in _PROVINCES:
        return False
    day, month = int(digits[6:8]), int(digits[8:10])
    return (1 <= day <= 31 or 41 <= day <= 71) and 1 <= month <= 12


def find_personal(text: str) -> list[Entity]:
    """Find phone numbers and NIK (for redaction)."""
    found: list[Entity] = []
    for m in _NIK.finditer(text):
        d = _digits(m.group(0))
        if plausible_nik(d):
            found.append(Entity("nik", m.group(0), m.start(), m.end(), d))
    for m in _PHONE.finditer(text):
        if any(e.start < m.end() and m.start() < e.end for e in found):
            continue
        value = _phone_value(m.group(0))
        if value:
            found.append(Entity("telepon", m.group(0), m.start(), m.end(), value))
    return sorted(found, key=lambda e: e.start)


def _mask_phone(value: str) -> str:
    local = "0" + value[3:]
    return f"{local[:4]}-****-{local[-4:]}"


def redact(
    text: str,
    *,
    phone: str | Callable[[Entity], str] | None = None,
    nik: str | Callable[[Entity], str] | None = None,
) -> str:
    """Replace phone numbers and NIK; by default `0812-****-3210` and `1471************`."""
    out: list[str] = []
    pos = 0
    for ent in find_personal(text):
        rule = phone if ent.type == "telepon" else nik
        if rule is None:
            rep = _mask_phone(ent.value) if ent.type == "telepon" else ent.value[:4] + "*" * 12
        elif callable(rule):
            rep = rule(ent)
        else:
            rep = rule
        out.append(text[pos : ent.start])
        out.append(rep)
        pos = ent.end
    out.append(text[pos:])
    return "".join(out)


# ---------------------------------------------------------------- wilayah gazetteer

_WORD = re.compile(r"[^\W_]+(?:[\-'][^\W_]+)*", re.UNICODE)
_KEC_CUE = re.compile(r"(?:\bkec(?:amatan)?\.?|\bkecamatan)\s*$", re.I)
_KEL_CUE = re.compile(r"(?:\bkel(?:urahan)?\.?|\bdesa|\bkelurahan)\s*$", re.I)


_KEY_DROP = re.compile(r"[\s\-.'’_]")
_GAP = re.compile(r"[\s\-]{1,2}")
# Words after which a name made of ordinary words ("air dingin", "simpang baru") is a place.
_PLACE_CUE = re.compile(
    r"(?:^|\W)(?:di|ke|dari|daerah|wilayah|sekitar|sekitaran|dekat|dkt|area|kawasan|arah|"
    r"menuju|warga|kel|kelurahan|kec|kecamatan|desa)\.?\s*$|,\s*$",
    re.I,
)


def place_key(name: str) -> str:
    """Key for matching place names: lower case, no spaces, hyphens, dots or apostrophes."""
    return _KEY_DROP.sub("", name.lower())


class Gazetteer:
    """Match kecamatan and kelurahan names with spacing/case variants and small typos."""

    def __init__(
        self,
        places: Mapping[str, Mapping[str, Iterable[str]]],
        *,
        common_words: set[str] | frozenset[str] = frozenset(),
        prefer: Mapping[str, str] | None = None,
        suppress: Iterable[str] = (),
    ) -> None:
        self.prefer = dict(prefer or {})
        # Keys that the training data uses for something else ("Tirta Siak" is the water
        # company, not kelurahan Tirtasiak).
        self.suppress = set(suppress)
        # key -> {type: canonical}
        self.index: dict[str, dict[str, str]] = {}
        for etype in ("kecamatan", "kelurahan"):
            for canonical, aliases in (places.get(etype) or {}).items():
                for name in (canonical, *aliases):
                    key = place_key(name)
                    if key:
                        self.index.setdefault(key, {}).setdefault(etype, canonical)
        self.max_words = 4
        self.fuzzy_keys = [k for k in self.index if len(k) >= 6]
        self.by_initial: dict[str, list[str]] = {}
        for k in self.fuzzy_keys:
            self.by_initial.setdefault(k[0], []).append(k)
        self.common = common_words

    def _resolve(self, key: str, fuzzy: bool) -> str | None:
        if key in self.index:
            return key
        if not fuzzy or not 6 <= len(key) <= 40:
            return None
        candidates = self.by_initial.get(key[0])
        if not candidates:
            return None
        limit = 1 if len(key) < 12 else 2
        hit = extractOne(key, candidates, scorer=Levenshtein.distance, score_cutoff=limit)
        if hit is None:
            return None
        cand = hit[0]
        if cand[0] != key[0] or abs(len(cand) - len(key)) > limit:
            return None
        return cand

    def find(self, text: str, taken: list[tuple[int, int]] | None = None) -> list[Entity]:
        """Return kecamatan/kelurahan entities, longest match first, no overlaps."""
        words = [(m.group(0), m.start(), m.end()) for m in _WORD.finditer(text)]
        keys = [place_key(w) for w, _, _ in words]
        # Typos are looked for only in spans with a word no dictionary knows.
        unknown = [k not in self.common for k in keys]
        taken = list(taken or [])
        found: list[Entity] = []
        i = 0
        while i < len(words):
            matched = False
            for n in range(min(self.max_words, len(words) - i), 0, -1):
                key = "".join(keys[i : i + n])
                if n == 1 and len(key) < 4 and key not in self.index:
                    continue
                span = words[i : i + n]
                start, end = span[0][1], span[-1][2]
                before = text[max(0, start - 14) : start]
                # A name the training data uses for something else counts only after "kel.".
                if key in self.suppress and not _KEL_CUE.search(before):
                    continue
                real = self._resolve(key, any(unknown[i : i + n]))
                if real is None:
                    continue
                # A name written apart in lower case that opens with an ordinary word ("mandi
                # pakai air dingin", "minum air putih") is a place only where a place is
                # expected: after "di", "kel.", "daerah", a comma ...
                if (
                    n > 1
                    and not unknown[i]
                    and text[start:end].islower()
                    and not _PLACE_CUE.search(before)
                ):
                    continue
                if any(s < end and start < e for s, e in taken):
                    continue
                # Only join words separated by spaces or hyphens.
                if not all(
                    _GAP.fullmatch(text[a[2] : b[1]]) for a, b in zip(span, span[1:], strict=False)
                ):
                    continue
                types = self.index[real]
                if _KEL_CUE.search(before) and "kelurahan" in types:
                    etype = "kelurahan"
                elif _KEC_CUE.search(before) and "kecamatan" in types:
                    etype = "kecamatan"
                elif len(types) == 2 and self.prefer.get(real) in types:
                    etype = self.prefer[real]
                elif "kecamatan" in types:
                    etype = "kecamatan"
                else:
                    etype = "kelurahan"
                found.append(Entity(etype, text[start:end], start, end, types[etype]))
                taken.append((start, end))
                i += n
                matched = True
                break
            if not matched:
                i += 1
        return found


def places_from_lookups(
    lookups: Mapping[str, list[str]], synonyms: Mapping[str, str]
) -> dict[str, dict[str, list[str]]]:
    """Build the places mapping from YAML lookup tables (+ synonyms pointing at them)."""
    places: dict[str, dict[str, list[str]]] = {}
    for etype in ("kecamatan", "kelurahan"):
        names = lookups.get(etype) or []
        table: dict[str, list[str]] = {name: [] for name in names}
        keys = {place_key(name) for name in names}
        # Rasa synonyms know no entity type: a variant becomes an alias only where it is not
        # a name of its own ("Tampan" is a kelurahan and the old name of kecamatan Binawidya).
        for variant, canonical in synonyms.items():
            if canonical in table and place_key(variant) not in keys:
                table[canonical].append(variant)
        places[etype] = table
    return places
