"""Lokasi precision, recall and F1: on test files, and by k-fold cross-validation over the
labelled LAPOR! letters (60 dev letters alone give a noisy figure).

    python benchmarks/lokasi_cv.py [--folds 5] [--seed 7] [--rules] [FILES ...]

Each fold trains the whole engine on data/nlu.yml and the other folds of
data/lapor/train.yml (into a temporary cache) and scores the lokasi of its own letters with
`nlu.evaluate`, so the figures are the ones `warga nlu eval` would give. `--rules` scores the
rule finder alone (the engine as it was before the trained tagger), for comparison. Files
default to tests/data/nlu_heldout.yml and tests/data/lapor_dev.yml.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the engine and the city file's reader, without an install

from actions.city import load_city_file  # noqa: E402
from nlu import load  # noqa: E402
from nlu.evaluate import evaluate, prf  # noqa: E402
from nlu.rasa_yaml import read_nlu  # noqa: E402

DATA = ROOT / "data"
TYPES = ("lokasi", "kecamatan", "kelurahan")


def _parser(extra: list[Path], cache: str, places: dict, rules: bool):
    parser = load(
        DATA / "nlu.yml",
        extra=extra,
        places=places,
        cache_dir=cache,
        lexicon_dir=DATA / "lexicon",
        year=lambda: 2026,
    )
    if rules:
        parser.engine.tagger = None
    return parser


def _yaml(examples: dict[str, list[str]]) -> str:
    """Rasa NLU YAML of annotated example lines, annotations kept as written."""
    out = ['version: "3.1"', "nlu:"]
    for label, lines in examples.items():
        out += [f"- intent: {label}", "  examples: |", *(f"    - {line}" for line in lines)]
    return "\n".join(out) + "\n"


def _counts(metrics: dict, etype: str) -> tuple[int, int, int]:
    s = metrics["per_entity"][etype]
    tp = round(s["recall"] * s["support"])
    return tp, s["predicted"] - tp, s["support"] - tp


def _line(name: str, c: tuple[int, int, int]) -> str:
    p, r, f = prf(*c)
    return f"{name:22s} P {p:.3f}  R {r:.3f}  F1 {f:.3f}   (tp {c[0]}, fp {c[1]}, fn {c[2]})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--rules", action="store_true", help="the rule finder alone")
    args = ap.parse_args()
    files = [Path(f) for f in args.files] or [
        ROOT / "tests" / "data" / "nlu_heldout.yml",
        ROOT / "tests" / "data" / "lapor_dev.yml",
    ]
    places = load_city_file(DATA / "cities" / "pekanbaru.yml").places()
    letters = DATA / "lapor" / "train.yml"
    t0 = time.perf_counter()
    print("lokasi only" + (" (rule finder alone)" if args.rules else ""))
    with tempfile.TemporaryDirectory() as tmp:
        parser = _parser([letters], tmp, places, args.rules)
        for f in files:
            m = evaluate(parser.parse, read_nlu(f).examples, canon=parser.canonical)
            print(_line(f.name, _counts(m, "lokasi")), f"| entity F1 {m['entity_f1']:.3f}")
        examples = read_nlu(letters).examples
        order = list(range(len(examples)))
        random.Random(args.seed).shuffle(order)
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for fold in range(args.folds):
            held = {i for k, i in enumerate(order) if k % args.folds == fold}
            train: dict[str, list[str]] = defaultdict(list)
            for i, ex in enumerate(examples):
                if i not in held:
                    train[ex.label].append(ex.raw)
            part = Path(tmp) / f"fold{fold}.yml"
            part.write_text(_yaml(train), encoding="utf-8")
            cache = Path(tmp) / f"cache{fold}"
            parser = _parser([part], str(cache), places, args.rules)
            m = evaluate(parser.parse, [examples[i] for i in sorted(held)], canon=parser.canonical)
            for etype in TYPES:
                counts = _counts(m, etype)
                totals[etype] = [a + b for a, b in zip(totals[etype], counts, strict=True)]
        print(_line(f"{args.folds}-fold CV lapor train", tuple(totals["lokasi"])))
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
