"""Validate NLU training data against the taxonomy."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import yaml

from .rasa_yaml import NluData, read_nlu

CATEGORY_INTENTS = ("lapor", "tanya", "aspirasi")
MIN_INTENT = 40
MIN_LAPOR = 25
MIN_OTHER_CATEGORY = 15


def read_taxonomy(path: str | Path) -> dict:
    """Read the taxonomy file (intents, categories, entities)."""
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{p}: cannot read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"{p}: not valid YAML") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("intents"), dict):
        raise ValueError(f"{p}: no 'intents' mapping")
    return doc


def example_key(text: str) -> str:
    """An example as the duplicate check compares it: case, spacing and end marks aside."""
    return re.sub(r"\s+", " ", text.casefold()).strip(" .!?,")


def check_data(data: NluData, taxonomy: dict, *, minimums: bool = True) -> list[str]:
    """Return the problems found (empty when the data is clean); `minimums`: also the
    least number of examples per intent and category (for the main training file)."""
    problems = list(data.problems)
    intents = set(taxonomy.get("intents") or {})
    categories = set(taxonomy.get("categories") or {})
    entity_types = set(taxonomy.get("entities") or {}) | {"telepon", "nik"}
    counts: Counter[str] = Counter()
    seen: dict[str, str] = {}
    reported: set[tuple[str, str, str]] = set()
    for ex in data.examples:
        counts[ex.label] += 1
        intent, category = ex.intent, ex.category
        if intent not in intents:
            problems.append(f"unknown intent {ex.label!r} in {ex.raw!r}")
        elif intent in CATEGORY_INTENTS:
            if category is None:
                problems.append(f"{intent} without a category: {ex.raw!r}")
            elif category not in categories:
                problems.append(f"unknown category {ex.label!r} in {ex.raw!r}")
        elif category is not None:
            problems.append(f"intent {intent} takes no category: {ex.label!r}")
        for a in ex.entities:
            if a.entity not in entity_types:
                problems.append(f"unknown entity type {a.entity!r} in {ex.raw!r}")
        k = example_key(ex.text)
        other = seen.get(k)
        if other is not None and other != ex.label:
            tag = (k, *sorted((other, ex.label)))
            if tag not in reported:
                reported.add(tag)
                problems.append(f"same text under {other} and {ex.label}: {ex.text!r}")
        else:
            seen.setdefault(k, ex.label)
    if not minimums:
        return problems
    for intent in sorted(intents):
        if intent in CATEGORY_INTENTS:
            continue
        if counts[intent] < MIN_INTENT:
            problems.append(f"{intent}: {counts[intent]} examples, needs at least {MIN_INTENT}")
    for category in sorted(categories):
        label = f"lapor/{category}"
        if "lapor" in intents and counts[label] < MIN_LAPOR:
            problems.append(f"{label}: {counts[label]} examples, needs at least {MIN_LAPOR}")
    for label, n in sorted(counts.items()):
        intent, _, category = label.partition("/")
        if intent in ("tanya", "aspirasi") and category and n < MIN_OTHER_CATEGORY:
            problems.append(f"{label}: {n} examples, needs at least {MIN_OTHER_CATEGORY}")
    return problems


def check_file(
    nlu_path: str | Path, taxonomy_path: str | Path, *, minimums: bool = True
) -> tuple[NluData, list[str]]:
    """Read both files and check the data."""
    data = read_nlu(nlu_path)
    return data, check_data(data, read_taxonomy(taxonomy_path), minimums=minimums)


def taxonomy_labels(taxonomy: dict) -> list[str]:
    """Every label the taxonomy allows, written as the training data writes it: `salam`,
    `lapor/jalan`, ..."""
    categories = list(taxonomy.get("categories") or {})
    labels: list[str] = []
    for intent in taxonomy.get("intents") or {}:
        if intent in CATEGORY_INTENTS:
            labels.extend(f"{intent}/{c}" for c in categories)
        else:
            labels.append(intent)
    return labels
