"""A trained tagger of `lokasi` spans: a linear-chain CRF (CRFsuite) over B/I/O labels.

Each word is described by its form (lower case, shape, prefix, suffix), its class in the word
lists below (street and junction keywords, landmarks, words that introduce a place such as
depan / dekat / seberang, administrative words), whether a dictionary knows it, whether the
wilayah gazetteer matched it, what the rule finder (`lokasi.PlaceFinder`) made of it, the same
for its neighbours, and the punctuation around it. The rule finder's own output is a feature,
so the tagger keeps what the rules get right on chat messages and learns from the long letters
where they fail.

The model is CRFsuite's own file format, trained and read with python-crfsuite: no pickle.
"""

from __future__ import annotations

import os
import random
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

import pycrfsuite

from .entities import Entity
from .lokasi import _TOK, OPENERS, STOP

Span = tuple[int, int]
Token = tuple[str, int, int]

# ---------------------------------------------------------------- word classes

_CLASSES: dict[str, str] = {
    # Streets and their parts.
    "street": "jl jl. jln jln. jalan jlan jalur jalinsum lintas",
    "gang": "gang gg gg. gng lorong lr lr. setapak",
    # Junctions and crossings: "simpang lima", "lampu merah RRI", "pertigaan X".
    "junction": "simpang simp simp. spg persimpangan pertigaan perempatan prapatan bundaran "
    "perlintasan flyover fly underpass tikungan putaran bundaran tugu",
    # Housing, neighbourhoods and administrative areas.
    "area": "perumahan perum perum. komplek kompleks komp komp. griya blok ruko villa residence "
    "residences apartemen apartment rusun rusunawa asrama dusun dsn kampung kp",
    "admin": "desa ds kelurahan kel kel. kecamatan kec kec. kabupaten kab kab. kota provinsi "
    "prov kabupaten",
    "rtrw": "rt rw rt. rw. rk",
    # Buildings and other landmarks.
    "landmark": "pasar psr bandara mall mal plaza terminal halte shelter taman masjid mesjid "
    "musholla mushola musala surau langgar gereja pura vihara klenteng stadion lapangan "
    "kampus universitas univ institut politeknik akademi puskesmas pustu posyandu rsud rs "
    "rsu rsia klinik apotek apotik kantor balai balaikota balkot gedung aula sdn smpn sman "
    "smkn sd smp sma smk mi mts mtsn man sekolah madrasah pesantren ponpes paud tk hotel "
    "penginapan spbu pom alfamart indomaret alfamidi superindo hypermart supermarket "
    "minimarket swalayan toko warung kantin kafe cafe cafe resto restoran rm bengkel bank atm "
    "stasiun pelabuhan dermaga jembatan sungai sei kali kanal danau waduk bendungan embung "
    "pantai pintu gor tpa tps tpu makam pemakaman perpustakaan museum polsek polres polresta "
    "polda koramil kodim samsat dukcapil disdukcapil kua uptd upt pabrik gudang pos kios "
    "lahan parkiran parkir pangkalan ruko km",
    # Words that introduce a place: "depan X", "dekat X", "di sekitar X".
    "near": "depan dpn didepan belakang blkg dibelakang samping disamping sebelah disebelah "
    "seberang diseberang berseberangan dekat dkt didekat sekitar sekitaran disekitar "
    "sepanjang spnjg disepanjang dimuka muka arah menuju antara ujung pangkal tepatnya "
    "samping seputar pinggir",
    "at": "di d dr dari ke kedalam didalam dalam pada",
    "where": "daerah didaerah kawasan wilayah lokasi alamat beralamat beralamatkan berlamat "
    "terletak letak tinggal warga area lingkungan",
    # Words that continue a name: "no 5", "raya", "utara".
    "tail": "no no. nomor raya utara selatan barat timur tengah ujung baru lama indah permai "
    "jaya asri indah utama",
    "title": "jend jendral jenderal dr dr. ir h haji kh prof letjen mayjen brigjen kol",
    "lampu": "lampu",
}
WORD_CLASS: dict[str, str] = {}
for _cls, _words in _CLASSES.items():
    for _w in _words.split():
        WORD_CLASS.setdefault(_w.rstrip("."), _cls)
# Words written with "di" joined ("didepan", "dipasar"): the class of what follows "di".
_DI = re.compile(r"^di(.{3,})$")
_DIGIT = re.compile(r"\d")
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
_UPPER = re.compile(r"[A-Z\u00c0-\u00de]")
_OPENER = frozenset(o.rstrip(".") for o in OPENERS)
_STOP = frozenset(STOP)


def word_class(low: str) -> str:
    """The class of a lower-case word in the lists above, or ''."""
    cls = WORD_CLASS.get(low)
    if cls is not None:
        return cls
    m = _DI.match(low)
    if m and m.group(1) in WORD_CLASS:
        return "di+" + WORD_CLASS[m.group(1)]
    return ""


def shape(tok: str) -> str:
    """Capitalised, ALLCAPS, lower, digits, mixed letters and digits, or a symbol."""
    if tok.isdigit():
        return "d"
    if _DIGIT.search(tok):
        return "ad"
    if not tok[:1].isalpha():
        return "p"
    if tok.isupper():
        return "AA" if len(tok) > 1 else "A"
    if tok[:1].isupper():
        return "Aa"
    return "a"


def _gap(text: str) -> str:
    """What separates two words: '' (nothing), '_' (spaces), or its punctuation, marked '_'
    when spaces follow it ('. ' ends a sentence, '.' joins "Jl.Riau" or "No.42")."""
    if not text:
        return ""
    punct = "".join(sorted({c for c in text if not c.isspace()}))[:3]
    if not punct:
        return "n" if "\n" in text else "_"
    return punct + ("_" if text[-1].isspace() else "")


def tokenize(text: str) -> list[Token]:
    """The words of `text` as the rule finder sees them, with their character spans."""
    return [(m.group(0), m.start(), m.end()) for m in _TOK.finditer(text)]


def tags_of(toks: Sequence[Token], spans: Iterable[Span]) -> list[str]:
    """B/I/O of each token for the character spans (a token overlapping a span is in it)."""
    tags = ["O"] * len(toks)
    for s, e in sorted(spans):
        first = True
        for k, (_, a, b) in enumerate(toks):
            if a < e and s < b:
                tags[k] = "B" if first else "I"
                first = False
    return tags


def spans_of(toks: Sequence[Token], tags: Sequence[str], label: str = "") -> list[Span]:
    """Character spans of the B/I runs (an I after O opens a span)."""
    out: list[Span] = []
    cur: list[int] | None = None
    b, i = "B" + label, "I" + label
    for (_, s, e), tag in zip(toks, tags, strict=True):
        if tag == b or (tag == i and cur is None):
            if cur is not None:
                out.append((cur[0], cur[1]))
            cur = [s, e]
        elif tag == i and cur is not None:
            cur[1] = e
        elif cur is not None:
            out.append((cur[0], cur[1]))
            cur = None
    if cur is not None:
        out.append((cur[0], cur[1]))
    return out


class _Word(NamedTuple):
    low: str
    shape: str
    cls: str
    known: str
    own: tuple[str, ...]
    # The features the neighbours two before, one before, one after, two after see of it.
    seen: tuple[tuple[str, ...], ...]


# Classes that open a place ("jalan X", "RS X", "simpang X", "perumahan X", "RT 4").
_OPENING = frozenset({"street", "gang", "junction", "area", "landmark", "rtrw", "di+landmark"})
# Classes that end a candidate place: "di", "depan", "kel.", "daerah" start something else.
_CLOSING = frozenset({"near", "at", "where", "admin", "di+near", "di+where", "di+at"})
# Gaps a place runs across: spaces, nothing ("No.42", "Jl.Riau"), or a hyphen or slash.
_INNER_GAPS = frozenset({"", "_", ".", "-", "-_", "/", "/_"})
CANDIDATE_WORDS = 5
_OFFSETS = (-2, -1, 1, 2)


class Features:
    """Turn a tokenised message into CRFsuite features, one list of strings per token."""

    # Word features are cached per written form: a word's own features do not depend on
    # where it stands.
    CACHE_LIMIT = 50_000

    def __init__(
        self,
        common_words: Iterable[str] = (),
        gazetteer_words: Iterable[str] = (),
    ) -> None:
        self.common = frozenset(common_words)
        self.gazetteer_words = frozenset(gazetteer_words)
        self._cache: dict[str, _Word] = {}

    def word(self, tok: str) -> _Word:
        """The features of one written word."""
        hit = self._cache.get(tok)
        if hit is not None:
            return hit
        low = tok.lower().rstrip(".")
        cls = word_class(low)
        sh = shape(tok)
        known = "k" if low in self.common or low in _STOP else "u"
        own = [
            "w=" + low,
            "sh=" + sh,
            "p3=" + low[:3],
            "s3=" + low[-3:],
            "c=" + cls,
            "kn=" + known,
            "len=" + str(min(len(low), 8)),
        ]
        if low in _OPENER:
            own.append("op")
        if low in _STOP:
            own.append("stop")
        if low in self.gazetteer_words:
            own.append("gz")
        seen = tuple(
            (f"{off}w={low}", f"{off}c={cls}", f"{off}sh={sh}", f"{off}kn={known}")
            for off in _OFFSETS
        )
        out = _Word(low, sh, cls, known, tuple(own), seen)
        if len(self._cache) < self.CACHE_LIMIT:
            self._cache[tok] = out
        return out

    @staticmethod
    def _candidates(words: Sequence[_Word], gaps: Sequence[str]) -> list[int]:
        """Position (1, 2, ...) of each word in a candidate place, 0 outside one.

        A candidate is a place keyword and the words after it up to a stop word, a word that
        introduces something else, a punctuation mark, or CANDIDATE_WORDS words: a generous
        guess whose good length the model learns.
        """
        n = len(words)
        pos = [0] * n
        k = 0
        while k < n:
            w = words[k]
            opens = w.cls in _OPENING or (
                w.low == "lampu" and k + 1 < n and words[k + 1].low == "merah"
            )
            if not opens:
                k += 1
                continue
            j = k + 1
            while (
                j < n
                and j - k <= CANDIDATE_WORDS
                and gaps[j] in _INNER_GAPS
                and words[j].low not in _STOP
                and words[j].cls not in _CLOSING
            ):
                j += 1
            for m in range(k, j):
                pos[m] = m - k + 1
            k = j
        return pos

    def sequence(
        self,
        text: str,
        toks: Sequence[Token],
        rule_tags: Sequence[str],
        wilayah_tags: Sequence[str],
        counts: tuple[Mapping[str, int], Mapping[str, int]] | None = None,
    ) -> list[list[str]]:
        """Features of every token of one message; `counts`: how often each word was seen
        inside and outside places in the training data."""
        n = len(toks)
        letters = len(_LETTER.findall(text))
        upper = len(_UPPER.findall(text))
        case = "caps" if upper >= 0.6 * max(1, letters) else ("low" if not upper else "mix")
        words = [self.word(t[0]) for t in toks]
        gaps = [_gap(text[toks[k - 1][2] : toks[k][1]]) if k else "^" for k in range(n)]
        gaps.append("$")
        # A word's own full stop ("paus." of "jl paus. JALAN PAUS") ends a sentence unless the
        # word is a short form ("jl.", "gg.", "no.", "dr."): then the gap after it says so.
        for k in range(n - 1):
            if toks[k][0].endswith(".") and gaps[k + 1] == "_":
                w = words[k]
                if not (w.cls or len(w.low) <= 3):
                    gaps[k + 1] = "._"
        cand = self._candidates(words, gaps)
        # The opening "Yth. <office>," of a letter names the office, not a place.
        yth_end = -1
        if n and toks[0][0].lower() == "yth":
            yth_end = next((k for k in range(1, n) if "," in gaps[k]), -1)
        seqs: list[list[str]] = []
        for k in range(n):
            w = words[k]
            f = ["b", *w.own, "dc=" + case, f"shdc={w.shape}|{case}", "g=" + gaps[k]]
            f.append("ga=" + gaps[k + 1])
            f.append("r=" + rule_tags[k])
            f.append("wl=" + wilayah_tags[k])
            o_b = ""
            if counts is not None:
                i, o = counts[0].get(w.low, 0), counts[1].get(w.low, 0)
                o_b = "0" if not o else "1" if o == 1 else "2" if o < 5 else "5"
                f.append("o=" + o_b)
                f.append("i=" + ("0" if not i else "1" if i < o else "2"))
            if cand[k]:
                c = str(min(cand[k], 4))
                f.append("cd=" + c)
                f.append(f"cdk={c}|{w.known}|{w.shape}")
                f.append(f"cdo={c}|{o_b}")
                f.append(f"cdr={c}|{rule_tags[k]}")
                if k + 1 == n or cand[k + 1] <= 1:
                    f.append("cde")
            if k < yth_end:
                f.append("yth")
            for o, off in enumerate(_OFFSETS):
                j = k + off
                if 0 <= j < n:
                    f.extend(words[j].seen[o])
                    if off in (-1, 1):
                        f.append(f"{off}r=" + rule_tags[j])
                        f.append(f"{off}wl=" + wilayah_tags[j])
                else:
                    f.append(f"{off}pad")
            if k:
                v = words[k - 1]
                f.append(f"ww={v.low}|{w.low}")
                f.append(f"cc={v.cls}|{w.cls}")
                f.append(f"ck={v.cls}|{w.known}|{w.shape}")
            if k + 1 < n:
                f.append(f"wn={w.low}|{words[k + 1].low}")
            seqs.append(f)
        return seqs


# ---------------------------------------------------------------- training

# A message of this many words or more is read by the model of long reports; shorter ones by
# the model of all messages. Chat messages have at most 24 words, 9 in 10 LAPOR! letters 20
# or more, and the two write places differently (chat leaves "sungai siak" or "parkir liar" out,
# letters name "stasiun poncol" or "klinik medika"): one model for both learned neither as well.
LONG_WORDS = 20
# Copies of each long training report with its places swapped for other places of the training
# data (and some copies written all in lower or upper case): the long model learns where places
# stand, not only which names it saw.
AUGMENT_COPIES = 2
AUGMENT_SEED = "lokasi"
# The rule finder's output is a feature: on training texts it comes from a finder learned on the
# other folds, so the model learns how far to trust it on texts the rules have not seen.
CROSS_FOLDS = 5
TRAIN_PARAMS = {
    "c1": 0.05,
    "c2": 0.05,
    "max_iterations": 100,
    "feature.possible_transitions": True,
}
MAX_PLACE_TOKENS = 16
_TRIM = ".,-/&"


@dataclass(frozen=True)
class Sample:
    """A training text, its gold lokasi spans and its other place spans (kept as written)."""

    text: str
    lokasi: tuple[Span, ...]
    other: tuple[Span, ...] = ()


class RuleFinder(Protocol):
    inside: Mapping[str, int]
    outside: Mapping[str, int]

    def find_with_places(
        self, text: str, taken: Sequence[Span], places: Sequence[Span]
    ) -> tuple[list[Entity], set[Span]]: ...


# text -> (spans taken by tickets and personal data, wilayah spans of the gazetteer)
Context = Callable[[str], tuple[list[Span], list[Span]]]


def augment(sample: Sample, pool: Sequence[str], copies: int, seed: str) -> list[Sample]:
    """Copies of a sample with each lokasi replaced by a random place of `pool`."""
    if not sample.lokasi or not pool:
        return []
    rnd = random.Random(seed)  # noqa: S311 - reproducible training copies, not secrets
    spans = sorted(
        [(s, e, True) for s, e in sample.lokasi] + [(s, e, False) for s, e in sample.other]
    )
    out: list[Sample] = []
    for _ in range(copies):
        parts: list[str] = []
        lokasi: list[Span] = []
        other: list[Span] = []
        pos = 0
        size = 0
        for s, e, is_lokasi in spans:
            if s < pos:
                continue
            parts.append(sample.text[pos:s])
            size += s - pos
            new = rnd.choice(pool) if is_lokasi else sample.text[s:e]
            (lokasi if is_lokasi else other).append((size, size + len(new)))
            parts.append(new)
            size += len(new)
            pos = e
        parts.append(sample.text[pos:])
        text = "".join(parts)
        case = rnd.random()
        if case < 0.25:
            text = text.lower()
        elif case < 0.4:
            text = text.upper()
        out.append(Sample(text, tuple(lokasi), tuple(other)))
    return out


def _rule_view(
    finder: RuleFinder, text: str, taken: Sequence[Span], wilayah: Sequence[Span]
) -> tuple[list[Span], list[Span], set[Span]]:
    """The rule finder's places, the wilayah spans it left alone, and those it took in."""
    ents, absorbed = finder.find_with_places(text, taken, wilayah)
    return [(e.start, e.end) for e in ents], [w for w in wilayah if w not in absorbed], absorbed


def _row(
    sample: Sample, finder: RuleFinder, features: Features, context: Context
) -> tuple[list[list[str]], list[str]]:
    toks = tokenize(sample.text)
    taken, wilayah = context(sample.text)
    rules, wl, _ = _rule_view(finder, sample.text, taken, wilayah)
    xseq = features.sequence(
        sample.text,
        toks,
        tags_of(toks, rules),
        tags_of(toks, wl),
        (finder.inside, finder.outside),
    )
    return xseq, tags_of(toks, sample.lokasi)


def _fit(rows: Sequence[tuple[list[list[str]], list[str]]], path: Path) -> None:
    """Train a CRF on (features, labels) rows and write CRFsuite's model file, atomically."""
    trainer = pycrfsuite.Trainer(verbose=False)
    for xseq, yseq in rows:
        if xseq:
            trainer.append(xseq, yseq)
    trainer.set_params(TRAIN_PARAMS)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        trainer.train(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def train_models(
    samples: Sequence[Sample],
    *,
    features: Features,
    learn_finder: Callable[[Sequence[Sample]], RuleFinder],
    context: Context,
    short_path: Path,
    long_path: Path,
) -> dict[str, int]:
    """Train the model of all messages and the model of long ones; write both files.

    The model of long messages is trained on the samples of LONG_WORDS words or more and
    AUGMENT_COPIES copies of each; without any such sample it is not written.
    """
    folds = min(CROSS_FOLDS, max(1, len(samples)))
    finders = [
        learn_finder(
            [s for i, s in enumerate(samples) if i % folds != f] if folds > 1 else samples
        )
        for f in range(folds)
    ]
    pool = sorted({s.text[a:b] for s in samples for a, b in s.lokasi})
    rows: list[tuple[list[list[str]], list[str]]] = []
    long_rows: list[tuple[list[list[str]], list[str]]] = []
    for i, sample in enumerate(samples):
        finder = finders[i % folds]
        row = _row(sample, finder, features, context)
        rows.append(row)
        if len(row[0]) >= LONG_WORDS:
            long_rows.append(row)
            for copy in augment(sample, pool, AUGMENT_COPIES, f"{AUGMENT_SEED}:{i}"):
                long_rows.append(_row(copy, finder, features, context))
    if any(r[0] for r in rows):
        _fit(rows, short_path)
    if long_rows:
        _fit(long_rows, long_path)
    return {"rows": len(rows), "long_rows": len(long_rows)}


# ---------------------------------------------------------------- finding places


def _cut(spans: Iterable[Span], holes: Iterable[Span]) -> list[Span]:
    """The parts of `spans` outside the `holes`."""
    out = list(spans)
    for hs, he in holes:
        nxt: list[Span] = []
        for s, e in out:
            if hs < e and s < he:
                if s < hs:
                    nxt.append((s, hs))
                if he < e:
                    nxt.append((he, e))
            else:
                nxt.append((s, e))
        out = nxt
    return out


# Words that place one thing by another: a place the model tagged across one is two places
# ("Jl. Sudirman dpn Ramayana" is "Jl. Sudirman" and "Ramayana", as the data annotates).
BY_WORDS = frozenset(
    "depan dpn didepan belakang blkg dibelakang samping disamping sebelah disebelah seberang "
    "diseberang berseberangan dekat dkt didekat sekitar sekitaran disekitar dimuka".split()
)


class PlaceTagger:
    """Find lokasi with the trained CRFs, the rule finder's output among their features."""

    def __init__(self, short_path: Path, long_path: Path | None, features: Features) -> None:
        self.features = features
        self._short = pycrfsuite.Tagger()
        self._short.open(str(short_path))
        self._long: pycrfsuite.Tagger | None = None
        if long_path is not None:
            self._long = pycrfsuite.Tagger()
            self._long.open(str(long_path))

    def _tidy(self, toks: Sequence[Token], spans: Iterable[Span]) -> list[Span]:
        """Split the model's places at BY_WORDS and drop the pieces that are one keyword alone
        ("puskesmas" of "puskesmas Rejosari", whose name is the kelurahan)."""
        out: list[Span] = []
        for s, e in spans:
            piece: list[Token] = []
            for tok in [*(t for t in toks if s <= t[1] and t[2] <= e), None]:
                low = tok[0].lower().rstrip(".") if tok is not None else ""
                if tok is not None and low not in BY_WORDS:
                    piece.append(tok)
                    continue
                if len(piece) > 1 or (
                    piece and word_class(piece[0][0].lower().rstrip(".")) not in _OPENING
                ):
                    out.append((piece[0][1], piece[-1][2]))
                piece = []
        return out

    def find_with_places(
        self,
        finder: RuleFinder,
        text: str,
        taken: Sequence[Span],
        places: Sequence[Span],
    ) -> tuple[list[Entity], set[Span]]:
        """Like `PlaceFinder.find_with_places`: the lokasi entities, and the wilayah spans that
        are part of one ("Jl. Air Dingin") and so no wilayah of their own."""
        toks = tokenize(text)
        rules, wl, absorbed = _rule_view(finder, text, taken, places)
        if not toks:
            return [], set()
        xseq = self.features.sequence(
            text, toks, tags_of(toks, rules), tags_of(toks, wl), (finder.inside, finder.outside)
        )
        if self._long is not None and len(toks) >= LONG_WORDS:
            # A long report: the model's places, and the rules' places that took in a wilayah
            # name ("Jl. Air Dingin"), which the rules know better.
            found: list[Span] = []
            for s, e in spans_of(toks, self._long.tag(xseq)):
                if sum(1 for t in toks if s <= t[1] and t[2] <= e) > MAX_PLACE_TOKENS:
                    # A run this long is no one place: the rules' places inside it stand.
                    found.extend((a, b) for a, b in rules if s <= a and b <= e)
                else:
                    found.append((s, e))
            first = [r for r in rules if any(r[0] <= w[0] and w[1] <= r[1] for w in absorbed)]
        else:
            # A chat message: the rules' places, and the model's where the rules found none.
            found = spans_of(toks, self._short.tag(xseq))
            first = rules
        found = self._tidy(toks, _cut(found, wl))
        spans = first + [c for c in found if not any(a < c[1] and c[0] < b for a, b in first)]
        ents: list[Entity] = []
        for s, e in _cut(spans, wl):
            while s < e and (text[s].isspace() or text[s] in _TRIM):
                s += 1
            while e > s and (text[e - 1].isspace() or text[e - 1] in _TRIM):
                e -= 1
            if e > s and not any(a < e and s < b for a, b in taken):
                ents.append(Entity("lokasi", text[s:e], s, e, text[s:e]))
        kept = {w for w in absorbed if any(x.start <= w[0] and w[1] <= x.end for x in ents)}
        return ents, kept
