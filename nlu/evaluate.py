"""Score a parser on Rasa-format test files, the same way for our engine and for Rasa."""

from __future__ import annotations

import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .entities import place_key
from .rasa_yaml import Example, read_nlu

SCORED_ENTITIES = ("lokasi", "kecamatan", "kelurahan", "nomor_tiket")
# The headline figures of a scored file, in the order they are printed.
HEADLINE = (
    "intent_accuracy",
    "category_accuracy",
    "label_accuracy",
    "darurat_recall",
    "darurat_precision",
    "entity_f1",
    "latency_ms_p50",
    "latency_ms_p99",
)


class _Ent(Protocol):
    type: str
    value: str


class _Result(Protocol):
    intent: str
    category: str | None
    label: str
    entities: Sequence[_Ent]


@dataclass(frozen=True)
class SimpleResult:
    """A parse result from any engine, reduced to what is scored."""

    intent: str
    category: str | None
    label: str
    entities: Sequence[_Ent]


@dataclass(frozen=True)
class SimpleEntity:
    type: str
    value: str


def entity_key(etype: str, value: str, canon: Callable[[str, str], str] | None = None) -> tuple:
    """Normalise an entity value for comparison."""
    if canon is not None and etype in ("kecamatan", "kelurahan"):
        value = canon(etype, value)
    if etype in ("kecamatan", "kelurahan"):
        return (etype, place_key(value))
    if etype == "nomor_tiket":
        return (etype, value.strip().upper())
    v = re.sub(r"\s+", " ", value.strip().lower()).strip(" .,;:!?-")
    return (etype, v)


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q * (len(s) - 1))))
    return s[k]


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall and F1 of counts (F1 1.0 when nothing was expected nor found)."""
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else (1.0 if not fn + fp else 0.0)
    return prec, rec, f1


def _scores(c: Counter[str]) -> dict[str, float | int]:
    prec, rec, f1 = prf(c["tp"], c["fp"], c["fn"])
    return {
        "support": c["tp"] + c["fn"],
        "predicted": c["tp"] + c["fp"],
        "precision": round(prec, 4),
        "recall": round(rec, 4),
        "f1": round(f1, 4),
    }


def evaluate(
    parse: Callable[[str], _Result],
    examples: Iterable[Example],
    *,
    known_labels: set[str] | None = None,
    canon: Callable[[str, str], str] | None = None,
    top_confusions: int = 10,
) -> dict:
    """Compute the metrics over examples; `canon` maps a gold wilayah value to its canonical."""
    examples = list(examples)
    n = len(examples)
    intent_ok = cat_n = cat_ok = label_ok = 0
    d_tp = d_fn = d_fp = 0
    e_tp = e_fp = e_fn = 0
    per_entity: dict[str, Counter[str]] = {t: Counter() for t in SCORED_ENTITIES}
    latencies: list[float] = []
    per_intent: dict[str, Counter[str]] = {}
    confusions: Counter[tuple[str, str]] = Counter()
    missing: Counter[str] = Counter()
    per_cat: dict[str, Counter[str]] = {}
    for ex in examples:
        if known_labels is not None and ex.label not in known_labels:
            missing[ex.label] += 1
        t0 = time.perf_counter()
        res = parse(ex.text)
        latencies.append((time.perf_counter() - t0) * 1000.0)
        gold_intent = ex.intent
        if res.intent == gold_intent:
            intent_ok += 1
        if ex.category is not None:
            cat_n += 1
            pc = per_cat.setdefault(ex.category, Counter())
            pc["n"] += 1
            if res.category == ex.category:
                cat_ok += 1
                pc["ok"] += 1
        if res.label == ex.label:
            label_ok += 1
        else:
            confusions[(ex.label, res.label)] += 1
        for name in {gold_intent, res.intent}:
            per_intent.setdefault(name, Counter())
        if res.intent == gold_intent:
            per_intent[gold_intent]["tp"] += 1
        else:
            per_intent[gold_intent]["fn"] += 1
            per_intent[res.intent]["fp"] += 1
        if gold_intent == "darurat":
            if res.intent == "darurat":
                d_tp += 1
            else:
                d_fn += 1
        elif res.intent == "darurat":
            d_fp += 1
        gold = {
            entity_key(a.entity, a.value, canon)
            for a in ex.entities
            if a.entity in SCORED_ENTITIES
        }
        pred = {
            entity_key(e.type, e.value, None) for e in res.entities if e.type in SCORED_ENTITIES
        }
        e_tp += len(gold & pred)
        e_fp += len(pred - gold)
        e_fn += len(gold - pred)
        for kind, keys in (("tp", gold & pred), ("fp", pred - gold), ("fn", gold - pred)):
            for key in keys:
                per_entity[key[0]][kind] += 1

    def ratio(a: int, b: int) -> float | None:
        return round(a / b, 4) if b else None

    prec, rec, f1 = prf(e_tp, e_fp, e_fn)
    intents = {}
    for name, c in sorted(per_intent.items()):
        p = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0
        r = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        intents[name] = {
            "support": c["tp"] + c["fn"],
            "precision": round(p, 4),
            "recall": round(r, 4),
            "f1": round(f, 4),
        }
    return {
        "n": n,
        "intent_accuracy": ratio(intent_ok, n),
        "category_accuracy": ratio(cat_ok, cat_n),
        "label_accuracy": ratio(label_ok, n),
        "darurat_recall": ratio(d_tp, d_tp + d_fn),
        "darurat_precision": ratio(d_tp, d_tp + d_fp),
        "entity_precision": round(prec, 4),
        "entity_recall": round(rec, 4),
        "entity_f1": round(f1, 4),
        "latency_ms_p50": round(statistics.median(latencies), 4) if latencies else 0.0,
        "latency_ms_p99": round(_percentile(latencies, 0.99), 4),
        "per_intent": intents,
        "per_entity": {name: _scores(c) for name, c in per_entity.items()},
        "per_category": {
            k: {"support": v["n"], "accuracy": round(v["ok"] / v["n"], 4)}
            for k, v in sorted(per_cat.items())
        },
        "confusions": [
            {"gold": g, "predicted": p, "count": k}
            for (g, p), k in confusions.most_common(top_confusions)
        ],
        "missing_labels": dict(missing),
    }


def evaluate_files(
    parse: Callable[[str], _Result],
    files: Sequence[str | Path],
    *,
    known_labels: set[str] | None = None,
    canon: Callable[[str, str], str] | None = None,
) -> dict:
    """Evaluate each file separately: {"files": {name: metrics}}."""
    out: dict[str, dict] = {}
    for f in files:
        data = read_nlu(f)
        metrics = evaluate(parse, data.examples, known_labels=known_labels, canon=canon)
        if data.problems:
            metrics["problems"] = data.problems[:20]
        out[Path(f).name] = metrics
    return {"files": out}
