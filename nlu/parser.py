"""Load (training when needed) and run the NLU engine."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from . import darurat
from .entities import Entity, Gazetteer, find_personal, place_key, places_from_lookups
from .language import LanguageDetector
from .lokasi import PlaceFinder
from .lokasi_tagger import Features, PlaceTagger, Sample, train_models
from .model import RAW, LinearModel, load_models, save_models, train
from .normalize import Normalizer, fold, load_lexicon, tokens
from .rasa_yaml import Example, NluData, read_nlu
from .tickets import STATUS_WORDS, TicketFinder, _this_year

ENGINE_VERSION = "1.1"
DEFAULT_THRESHOLD = 0.5
# How sure a message that is only a ticket number (and words asking about it) is a status check.
TICKET_ONLY_CONFIDENCE = 0.97
# Without an emergency rule behind it, the model alone must be this sure of darurat: the rules
# catch the emergencies (measured: all but one held-out darurat), the model adds false alarms.
DARURAT_MODEL_MIN = 0.85
# Beyond this many tokens an emergency cue needs the model to see some darurat too.
DARURAT_LONG_TOKENS = 60
DARURAT_LONG_MODEL_MIN = 0.2
# ... and this sure when a cue says the danger may not be now (a risk, a question, paperwork).
DARURAT_DOUBTED_MIN = 0.99
# How sure a darurat backed by an emergency rule is.
DARURAT_RULE_CONFIDENCE = 0.9
MAX_CLASSIFIER_TOKENS = 300
# A message's length in words, as a feature: a long message is rarely a greeting or a thank-you.
LENGTH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, MAX_CLASSIFIER_TOKENS)
LANGUAGE_CHARS = 500  # the language of a long message shows in its beginning
CATEGORY_INTENTS = ("lapor", "tanya", "aspirasi")
# Openings and closings to wrap short training examples in (beside the lexicon), and the
# longest example that gets wrapped.
FRAMES_FILE = "frames.yml"
FRAME_MAX_WORDS = 40
PLACEHOLDERS = {"nomor_tiket": "<tiket>", "telepon": "<telepon>", "nik": "<nik>"}
TRAIN_OPTIONS = {
    "intent": {"c": 1.5, "class_weight": "balanced", "min_df": 2},
    "category": {"c": 1.5, "class_weight": "balanced"},
}


@dataclass(frozen=True)
class Parse:
    """What the engine understood of one message."""

    text: str
    intent: str
    category: str | None
    label: str
    confidence: float
    ranking: list[tuple[str, float]]
    fallback: bool
    entities: list[Entity]
    language: str
    category_confidence: float | None = None
    # The rule that decided instead of the model, if any: "darurat+"/"darurat-" (emergency cues)
    # or "tiket" (a message that is only a ticket number).
    rule: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "text": self.text,
            "intent": self.intent,
            "category": self.category,
            "label": self.label,
            "confidence": round(self.confidence, 4),
            "category_confidence": None
            if self.category_confidence is None
            else round(self.category_confidence, 4),
            "ranking": [[lab, round(p, 4)] for lab, p in self.ranking],
            "fallback": self.fallback,
            "entities": [e.to_dict() for e in self.entities],
            "language": self.language,
            "rule": self.rule,
        }


@dataclass
class Engine:
    """The pieces a Parser needs (built once per data file)."""

    intent_model: LinearModel
    category_model: LinearModel | None
    labels: list[str]
    meta: dict
    normalizer: Normalizer
    tickets: TicketFinder
    gazetteer: Gazetteer
    places: PlaceFinder
    language: LanguageDetector
    synonyms: dict[str, str] = field(default_factory=dict)
    # The trained lokasi tagger; None only for an engine built without one.
    tagger: PlaceTagger | None = None


def _hash_inputs(nlu_bytes: bytes, lexicon_dir: Path | None, places: object, prefix: str) -> str:
    h = hashlib.sha256()
    h.update(ENGINE_VERSION.encode())
    # The engine's own code is part of the version: a changed rule or feature retrains.
    for src in sorted(Path(__file__).parent.glob("*.py")):
        h.update(src.read_bytes())
    h.update(json.dumps(TRAIN_OPTIONS, sort_keys=True).encode())
    h.update(nlu_bytes)
    if lexicon_dir is not None:
        for name in ("indocollex_informal_formal.tsv", "overrides.tsv", FRAMES_FILE):
            p = lexicon_dir / name
            if p.exists():
                h.update(name.encode())
                h.update(p.read_bytes())
    h.update(json.dumps(places, sort_keys=True, ensure_ascii=False).encode())
    h.update(prefix.encode())
    return h.hexdigest()


def _find_lexicon_dir(nlu_path: Path) -> Path | None:
    for base in (nlu_path.parent, *nlu_path.resolve().parents, Path.cwd() / "data"):
        cand = base / "lexicon"
        if (cand / "overrides.tsv").exists() or (cand / "indocollex_informal_formal.tsv").exists():
            return cand
    return None


class Parser:
    """Turn a message into a Parse.

    `threshold`: a Parse whose confidence (of its intent) is below it has `fallback=True`, so the
    conversation asks instead of guessing.
    """

    def __init__(self, engine: Engine, *, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.engine = engine
        self.threshold = threshold
        self.labels = list(engine.labels)
        self.intents = list(engine.intent_model.labels)
        cm = engine.category_model
        self.categories = list(cm.labels) if cm is not None else []
        # Each label's (intent index, category index or -1), for the label ranking.
        self._label_parts = [
            (
                self.intents.index(lab.split("/", 1)[0]),
                self.categories.index(lab.split("/", 1)[1]) if "/" in lab else -1,
            )
            for lab in self.labels
            if lab.split("/", 1)[0] in self.intents
            and ("/" not in lab or lab.split("/", 1)[1] in self.categories)
        ]
        self._label_names = [
            lab
            for lab in self.labels
            if lab.split("/", 1)[0] in self.intents
            and ("/" not in lab or lab.split("/", 1)[1] in self.categories)
        ]
        self._li = np.asarray([a for a, _ in self._label_parts], dtype=np.int64)
        self._lc = np.asarray([b for _, b in self._label_parts], dtype=np.int64)
        self.info: dict = dict(engine.meta.get("train", {}))

    def canonical(self, etype: str, value: str) -> str:
        """Map a kecamatan/kelurahan name (any variant) to its canonical name."""
        hit = self.engine.gazetteer.index.get(place_key(value))
        if hit and etype in hit:
            return hit[etype]
        return value

    # -------------------------------------------------------------- entities

    def entities(self, text: str) -> list[Entity]:
        """Find all entities (ticket numbers, phone, NIK, wilayah, lokasi) in raw text."""
        eng = self.engine
        found = eng.tickets.find(text)
        for ent in find_personal(text):
            if not any(f.start < ent.end and ent.start < f.end for f in found):
                found.append(ent)
        taken = [(e.start, e.end) for e in found]
        wilayah = eng.gazetteer.find(text, taken)
        spans = [(w.start, w.end) for w in wilayah]
        if eng.tagger is not None:
            lokasi, absorbed = eng.tagger.find_with_places(eng.places, text, taken, spans)
        else:
            lokasi, absorbed = eng.places.find_with_places(text, taken, spans)
        wilayah = [w for w in wilayah if (w.start, w.end) not in absorbed]
        found.extend(wilayah)
        found.extend(lokasi)
        return sorted(found, key=lambda e: (e.start, e.end))

    # -------------------------------------------------------------- classification

    def classifier_tokens(self, text: str, ents: list[Entity]) -> list[str]:
        """Normalised tokens, with ticket numbers and personal data as placeholders."""
        parts: list[str] = []
        pos = 0
        for e in ents:
            ph = PLACEHOLDERS.get(e.type)
            if ph is None:
                continue
            parts.append(text[pos : e.start])
            parts.append(f" {ph} ")
            pos = e.end
        parts.append(text[pos:])
        return self.engine.normalizer.normalize_tokens("".join(parts))[:MAX_CLASSIFIER_TOKENS]

    def ticket_only(self, text: str, ents: list[Entity]) -> list[Entity] | None:
        """The ticket numbers of a message that holds nothing but them and status words.

        "PKU-2026-000004", "#4 ?", "cek tiket 4 min", "no 4": the resident asks about those
        tickets. Returns None when the message says anything else.
        """
        found = [e for e in ents if e.type == "nomor_tiket"]
        if not found:
            found = [
                e
                for e in self.engine.tickets.find_number_only(text)
                if not any(o.start < e.end and e.start < o.end for o in ents)
            ]
        if not found:
            return None
        parts: list[str] = []
        pos = 0
        for e in found:
            parts.append(text[pos : e.start])
            pos = e.end
        parts.append(text[pos:])
        words = self.engine.normalizer.normalize_tokens(" ".join(parts))
        if all(w in STATUS_WORDS for w in words if w.isalnum()):
            return found
        return None

    def parse(self, text: str) -> Parse:
        """Understand one message."""
        if not isinstance(text, str):
            text = "" if text is None else str(text)
        ents = self.entities(text)
        if "cek_status" in self.intents:
            tickets = self.ticket_only(text, ents)
            if tickets is not None:
                ents = sorted({*ents, *tickets}, key=lambda e: (e.start, e.end))
                return self._status(text, ents)
        toks = self.classifier_tokens(text, ents)
        im = self.engine.intent_model
        vector = im.vectorize(with_raw(toks, text, ents))
        intent_p = im.proba(toks, vector)
        cm = self.engine.category_model
        if cm is None:
            cat_p = np.zeros(0)
        elif cm.vocab is im.vocab:
            cat_p = cm.proba(toks, vector)
        else:
            cat_p = cm.proba(toks)
        probs = intent_p[self._li] * np.where(self._lc >= 0, cat_p[np.maximum(self._lc, 0)], 1.0)
        order = np.argsort(-probs)
        ranking = [(self._label_names[i], float(probs[i])) for i in order[:10]]
        norm = " ".join(toks)
        if not any(t[:1].isalpha() or ord(t[0]) > 0x2000 for t in toks):
            return self._empty(text, ents, ranking)
        rule = None
        raise_it, lower_it, veto = darurat.judge(norm)
        if raise_it and len(toks) > DARURAT_LONG_TOKENS and "darurat" in self.intents:
            # A cry for help is short; in a long letter one word of danger is not enough.
            raise_it = intent_p[self.intents.index("darurat")] >= DARURAT_LONG_MODEL_MIN
        best_intent = self.intents[int(np.argmax(intent_p))]
        confidence = float(intent_p.max())
        if "darurat" in self.intents:
            d = self.intents.index("darurat")
            if raise_it and best_intent != "darurat":
                rule = "darurat+"
                best_intent = "darurat"
                confidence = max(float(intent_p[d]), DARURAT_RULE_CONFIDENCE)
            elif raise_it:
                # The model and an emergency cue agree: never ask "what do you mean?" then.
                confidence = max(confidence, DARURAT_RULE_CONFIDENCE)
            elif (
                best_intent == "darurat"
                and not raise_it
                and (
                    intent_p[d] < DARURAT_MODEL_MIN
                    or veto
                    or (lower_it and intent_p[d] < DARURAT_DOUBTED_MIN)
                    or not darurat.danger_word(norm)
                )
            ):
                rule = "darurat-"
                masked = intent_p.copy()
                masked[d] = -1
                best_intent = self.intents[int(np.argmax(masked))]
                confidence = float(intent_p[int(np.argmax(masked))] / max(1e-9, 1 - intent_p[d]))
        category = None
        category_confidence = None
        if best_intent in CATEGORY_INTENTS and len(cat_p):
            k = int(np.argmax(cat_p))
            category = self.categories[k]
            category_confidence = float(cat_p[k])
        label = f"{best_intent}/{category}" if category else best_intent
        if rule is not None:
            ranking = [(label, confidence)] + [r for r in ranking if r[0] != label][:9]
        return Parse(
            text=text,
            intent=best_intent,
            category=category,
            label=label,
            confidence=confidence,
            ranking=ranking,
            fallback=confidence < self.threshold,
            entities=ents,
            language=self.engine.language.detect(text[:LANGUAGE_CHARS]),
            category_confidence=category_confidence,
            rule=rule,
        )

    def _status(self, text: str, ents: list[Entity]) -> Parse:
        """A message that only names tickets: check their status."""
        return Parse(
            text=text,
            intent="cek_status",
            category=None,
            label="cek_status",
            confidence=TICKET_ONLY_CONFIDENCE,
            ranking=[("cek_status", TICKET_ONLY_CONFIDENCE)],
            fallback=TICKET_ONLY_CONFIDENCE < self.threshold,
            entities=ents,
            language=self.engine.language.detect(text[:LANGUAGE_CHARS]),
            rule="tiket",
        )

    def _empty(self, text: str, ents: list[Entity], ranking: list) -> Parse:
        """No words to understand (empty, emoji or digits only): ask, do not guess."""
        tickets = [e for e in ents if e.type == "nomor_tiket"]
        intent = "cek_status" if tickets and "cek_status" in self.intents else "luar_topik"
        if intent not in self.intents:
            intent = self.intents[0]
        return Parse(
            text=text,
            intent=intent,
            category=None,
            label=intent,
            confidence=0.0,
            ranking=ranking,
            fallback=True,
            entities=ents,
            language="id",
        )


# ------------------------------------------------------------------ building


def with_raw(toks: list[str], text: str, ents: list[Entity]) -> list[str]:
    """Add the words as written (marked RAW) to the normalised tokens, as classifier input."""
    parts: list[str] = []
    pos = 0
    for e in ents:
        if e.type in PLACEHOLDERS:
            parts.append(text[pos : e.start])
            pos = e.end
    parts.append(text[pos:])
    raw = [RAW + t for t in tokens(fold("".join(parts)))[:MAX_CLASSIFIER_TOKENS] if t[0].isalnum()]
    words = sum(1 for t in toks if t[:1].isalnum())
    bucket = next(i for i, most in enumerate(LENGTH_BUCKETS) if words <= most)
    return toks + raw + [f"{RAW}<len{bucket}>"]


def _prepare(
    data: NluData,
    normalizer: Normalizer,
    tickets: TicketFinder,
) -> tuple[list[list[str]], list[str]]:
    docs: list[list[str]] = []
    labels: list[str] = []
    for ex in data.examples:
        ents = sorted(tickets.find(ex.text) + find_personal(ex.text), key=lambda e: e.start)
        clean: list[Entity] = []
        for e in ents:
            if not any(c.start < e.end and e.start < c.end for c in clean):
                clean.append(e)
        parts: list[str] = []
        pos = 0
        for e in clean:
            parts.append(ex.text[pos : e.start])
            parts.append(f" {PLACEHOLDERS[e.type]} ")
            pos = e.end
        parts.append(ex.text[pos:])
        toks = normalizer.normalize_tokens("".join(parts))[:MAX_CLASSIFIER_TOKENS]
        docs.append(with_raw(toks, ex.text, clean))
        labels.append(ex.label)
    return docs, labels


def training_normalizer(lexicon: dict[str, str], examples: Sequence[Example]) -> Normalizer:
    """A normaliser that also knows the words the training texts use twice or more.

    Known words let it split a hashtag (#jalanrusak) and shorten elongations (rusakkk).
    """
    seen = Counter(t for ex in examples for t in tokens(fold(ex.text)) if t.isalpha())
    return Normalizer(lexicon, known={t for t, c in seen.items() if c >= 2 and len(t) >= 3})


def load_frames(lexicon_dir: Path | None) -> tuple[list[str], list[str]]:
    """The openings and closings of `frames.yml` beside the lexicon (none without one)."""
    path = lexicon_dir / FRAMES_FILE if lexicon_dir is not None else None
    if path is None or not path.exists():
        return [], []
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return [str(x) for x in raw.get("openings") or []], [str(x) for x in raw.get("closings") or []]


def framed(examples: Sequence[Example], frames: tuple[list[str], list[str]]) -> list[Example]:
    """Copies of the short lapor / tanya / aspirasi examples wrapped in an opening and a closing.

    A resident's long message opens with greetings and who they are and closes with thanks;
    trained on these copies, the classifiers learn that such words say nothing of the label.
    Which frame an example gets depends on its text only, so training stays reproducible.
    """
    openings, closings = frames
    if not openings or not closings:
        return []
    out = []
    for ex in examples:
        if ex.intent not in CATEGORY_INTENTS or len(ex.text.split()) > FRAME_MAX_WORDS:
            continue
        h = int.from_bytes(hashlib.sha256(ex.text.encode()).digest()[:8], "big")
        opening = openings[h % len(openings)]
        closing = closings[(h // len(openings)) % len(closings)]
        out.append(Example(text=f"{opening} {ex.text} {closing}", label=ex.label))
    return out


def _wilayah_preferences(data: NluData, places: Mapping) -> dict[str, str]:
    """For names that are both a kecamatan and a kelurahan, which one the data means when bare."""
    votes: dict[str, Counter[str]] = {}
    for ex in data.examples:
        for a in ex.entities:
            if a.entity in ("kecamatan", "kelurahan"):
                votes.setdefault(place_key(a.value), Counter())[a.entity] += 1
    return {k: c.most_common(1)[0][0] for k, c in votes.items()}


_AFTER_STREET = re.compile(r"(?:^|\W)(?:jl|jln|jlan|jalan|gg|gng|gang)\.?\s*$", re.IGNORECASE)


def _wilayah_suppressed(data: NluData, places: Mapping) -> list[str]:
    """Names the training data keeps using for something other than a wilayah.

    A name matched at least twice in training texts and annotated as kecamatan/kelurahan in
    under a third of those is not matched at all ("Tirta Siak", the water company).
    """
    gazetteer = Gazetteer(places)
    hits: dict[str, Counter[str]] = {}
    for ex in data.examples:
        spans = [(a.start, a.end) for a in ex.entities if a.entity in ("kecamatan", "kelurahan")]
        places = [(a.start, a.end) for a in ex.entities if a.entity == "lokasi"]
        for ent in gazetteer.find(ex.text):
            # Right after a street keyword inside a place ("Jl. Air Dingin") the name is the
            # street's, and the place finder takes it so at parse time: no vote against the
            # kelurahan. Elsewhere in a place ("Kantor Walikota Tenayan") it still counts.
            if any(
                s <= ent.start and ent.end <= e and _AFTER_STREET.search(ex.text[s : ent.start])
                for s, e in places
            ):
                continue
            key = place_key(ent.text)
            c = hits.setdefault(key, Counter())
            c["n"] += 1
            if any(s < ent.end and ent.start < e for s, e in spans):
                c["gold"] += 1
    return sorted(k for k, c in hits.items() if c["n"] >= 2 and c["gold"] < c["n"] / 3)


def _train_lokasi(
    data: NluData,
    *,
    features: Features,
    gazetteer: Gazetteer,
    tickets: TicketFinder,
    gaz_keys: set[str],
    common: frozenset[str],
    short_path: Path,
    long_path: Path,
) -> dict[str, int]:
    """Train the lokasi taggers on every example's lokasi (and wilayah) annotations."""
    samples = [
        Sample(
            ex.text,
            tuple((a.start, a.end) for a in ex.entities if a.entity == "lokasi"),
            tuple((a.start, a.end) for a in ex.entities if a.entity in ("kecamatan", "kelurahan")),
        )
        for ex in data.examples
    ]

    def learn_finder(part: Sequence[Sample]) -> PlaceFinder:
        inside, outside, names = PlaceFinder.learn([(s.text, s.lokasi) for s in part])
        names = [n for n in names if place_key(n) not in gaz_keys]
        return PlaceFinder(inside, outside, names, common_words=common)

    def context(text: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        found = tickets.find(text)
        for ent in find_personal(text):
            if not any(f.start < ent.end and ent.start < f.end for f in found):
                found.append(ent)
        taken = [(e.start, e.end) for e in found]
        return taken, [(w.start, w.end) for w in gazetteer.find(text, taken)]

    long_path.unlink(missing_ok=True)
    return train_models(
        samples,
        features=features,
        learn_finder=learn_finder,
        context=context,
        short_path=short_path,
        long_path=long_path,
    )


def build_engine(
    path: Path,
    *,
    extra: Sequence[Path] = (),
    places: Mapping | None,
    ticket_prefix: str,
    cache_dir: Path,
    lexicon_dir: Path | None,
    year: Callable[[], int] = _this_year,
    log: Callable[[str], None] | None = None,
    force: bool = False,
) -> Engine:
    """Read the data, load the cached model or train a new one, and assemble the engine.

    `extra` are further training files (their examples only: lookups and synonyms come from
    `path`; the city's own names are judged on `path` alone, as other files may speak of other
    cities)."""
    nlu_bytes = path.read_bytes() + b"".join(p.read_bytes() for p in extra)
    data = read_nlu(path)
    own = NluData(examples=list(data.examples))
    for more in extra:
        data.examples.extend(read_nlu(more).examples)
    lexicon = load_lexicon(lexicon_dir)
    if places is None:
        places_map = places_from_lookups(data.lookups, data.synonyms)
    else:
        places_map = {k: {c: list(a) for c, a in v.items()} for k, v in places.items()}
    key = _hash_inputs(nlu_bytes, lexicon_dir, places_map, ticket_prefix)
    model_path = cache_dir / f"nlu-{key[:24]}.npz"
    # The lokasi taggers, in CRFsuite's own format, beside the classifiers and named alike.
    short_path = cache_dir / f"nlu-{key[:24]}.lokasi.crfsuite"
    long_path = cache_dir / f"nlu-{key[:24]}.lokasi-long.crfsuite"
    normalizer = training_normalizer(lexicon, data.examples)
    tickets = TicketFinder(ticket_prefix, year=year)
    # Words a dictionary knows (not the training texts' own words: those include wilayah names).
    common = set(Normalizer(lexicon).known) | set(lexicon)
    gaz_keys: set[str] = set()
    gaz_words: set[str] = set()
    for table in places_map.values():
        for canonical, aliases in table.items():
            for n in (canonical, *aliases):
                gaz_keys.add(place_key(n))
                gaz_words.update(w.lower() for w in tokens(n))
    features = Features(common, gaz_words)
    models: dict[str, LinearModel] | None = None
    meta: dict = {}
    if model_path.exists() and not force and short_path.exists():
        try:
            # Only files this engine wrote into its own cache are read, and without pickle.
            models, meta = load_models(model_path)
        except (OSError, ValueError, KeyError):
            models = None
        if meta.get("lokasi_long_model") and not long_path.exists():
            models = None
    if models is None:
        t0 = time.perf_counter()
        docs, labels = _prepare(data, normalizer, tickets)
        more, more_labels = _prepare(
            NluData(examples=framed(data.examples, load_frames(lexicon_dir))), normalizer, tickets
        )
        if not docs:
            raise ValueError(f"{path}: no training examples")
        intents = [lab.split("/", 1)[0] for lab in labels]
        if len(set(intents)) < 2:
            raise ValueError(f"{path}: needs at least two intents to train")
        all_docs, all_labels = docs + more, labels + more_labels
        intents = [lab.split("/", 1)[0] for lab in all_labels]
        models = {"intent": train(all_docs, intents, **TRAIN_OPTIONS["intent"])}
        cat_docs = [d for d, lab in zip(all_docs, all_labels, strict=True) if "/" in lab]
        cats = [lab.split("/", 1)[1] for lab in all_labels if "/" in lab]
        if len(set(cats)) >= 2:
            models["category"] = train(
                cat_docs, cats, vectorizer=models["intent"].vectorizer, **TRAIN_OPTIONS["category"]
            )
            # One vectorisation serves both models at parse time.
            models["category"].vocab = models["intent"].vocab
            models["category"].idf = models["intent"].idf
        lokasi_examples = [
            (ex.text, [(a.start, a.end) for a in ex.entities if a.entity == "lokasi"])
            for ex in data.examples
        ]
        inside, outside, names = PlaceFinder.learn(lokasi_examples)
        names = [n for n in names if place_key(n) not in gaz_keys]
        vocab = Counter(t for d in docs for t in d)
        suppress = _wilayah_suppressed(own, places_map)
        prefer = _wilayah_preferences(own, places_map)
        lokasi_stats = _train_lokasi(
            data,
            features=features,
            gazetteer=Gazetteer(places_map, common_words=common, prefer=prefer, suppress=suppress),
            tickets=tickets,
            gaz_keys=gaz_keys,
            common=frozenset(common),
            short_path=short_path,
            long_path=long_path,
        )
        meta = {
            "wilayah_suppress": suppress,
            "labels": sorted(set(labels)),
            "lokasi_inside": dict(inside),
            "lokasi_outside": dict(outside),
            "lokasi_names": names,
            "wilayah_prefer": prefer,
            "lokasi_long_model": long_path.exists(),
            "vocab": sorted(t for t, c in vocab.items() if c >= 2 and t.isalpha()),
            "train": {
                "examples": len(docs),
                "labels": len(set(labels)),
                "seconds": round(time.perf_counter() - t0, 2),
                "lokasi_rows": lokasi_stats,
                "data_hash": key,
                "model_file": str(model_path),
                "engine_version": ENGINE_VERSION,
            },
        }
        save_models(model_path, models, meta)
        if log:
            log(
                f"trained {len(set(labels))} labels on {len(docs)} examples "
                f"in {time.perf_counter() - t0:.1f} s -> {model_path}"
            )
    gazetteer = Gazetteer(
        places_map,
        common_words=common,
        prefer=meta.get("wilayah_prefer", {}),
        suppress=meta.get("wilayah_suppress", []),
    )
    finder = PlaceFinder(
        Counter(meta.get("lokasi_inside", {})),
        Counter(meta.get("lokasi_outside", {})),
        meta.get("lokasi_names", []),
        common_words=frozenset(common),
    )
    tagger = None
    if short_path.exists():
        tagger = PlaceTagger(
            short_path, long_path if meta.get("lokasi_long_model") else None, features
        )
    id_words = set(lexicon) | set(normalizer.known)
    language = LanguageDetector(id_words)
    return Engine(
        intent_model=models["intent"],
        category_model=models.get("category"),
        labels=list(meta.get("labels", [])),
        meta=meta,
        normalizer=normalizer,
        tickets=tickets,
        gazetteer=gazetteer,
        places=finder,
        language=language,
        synonyms=data.synonyms,
        tagger=tagger,
    )


def load(
    path: str | Path,
    *,
    extra: Sequence[str | Path] = (),
    places: Mapping | None = None,
    ticket_prefix: str = "PKU",
    cache_dir: str | Path | None = None,
    lexicon_dir: str | Path | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    year: Callable[[], int] | None = None,
    log: Callable[[str], None] | None = None,
    force: bool = False,
) -> Parser:
    """Load the engine for a Rasa NLU YAML file, training it when its data changed.

    The model file lives in `cache_dir` (default `var/nlu`), named by a hash of the data,
    the lexicon, the places, the ticket prefix and the engine version.
    """
    p = Path(path)
    cache = Path(cache_dir) if cache_dir is not None else Path("var") / "nlu"
    lex = Path(lexicon_dir) if lexicon_dir is not None else _find_lexicon_dir(p)
    engine = build_engine(
        p,
        extra=[Path(e) for e in extra],
        places=places,
        ticket_prefix=ticket_prefix,
        cache_dir=cache,
        lexicon_dir=lex,
        year=year or _this_year,
        log=log,
        force=force,
    )
    return Parser(engine, threshold=threshold)


__all__ = ["Parse", "Parser", "Entity", "load", "fold", "tokens"]
