"""Cross-validated intent and category accuracy of the classifiers, per training file.

    python benchmarks/nlu_cv.py [--folds 5] [--data data/nlu.yml] [--extra data/lapor/train.yml]

The dev sets are small (60 LAPOR! letters): one message is 1.7 points. Cross-validation over
the training files themselves measures an engine change on every example, chat and long
letters apart. It scores the two classifiers only (no emergency rules, no ticket rule), each
example predicted by models that never saw it.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from sklearn.model_selection import StratifiedKFold

    from nlu.model import train
    from nlu.normalize import load_lexicon
    from nlu.parser import TRAIN_OPTIONS, _prepare, framed, load_frames, training_normalizer
    from nlu.rasa_yaml import NluData, read_nlu
    from nlu.tickets import TicketFinder

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT / "data" / "nlu.yml"))
    ap.add_argument("--extra", nargs="*", default=[str(ROOT / "data" / "lapor" / "train.yml")])
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()

    files = [args.data, *args.extra]
    examples, source = [], []
    for f in files:
        exs = read_nlu(Path(f)).examples
        examples.extend(exs)
        source.extend([Path(f).name] * len(exs))
    lexicon = ROOT / "data" / "lexicon"
    normalizer = training_normalizer(load_lexicon(lexicon), examples)
    tickets = TicketFinder("PKU")
    docs, labels = _prepare(NluData(examples=examples), normalizer, tickets)
    # The framed copies the engine trains on, each tied to its example (training folds only).
    frames = load_frames(lexicon)
    copies: dict[int, list] = {}
    for i, ex in enumerate(examples):
        more = framed([ex], frames)
        if more:
            copies[i] = _prepare(NluData(examples=more), normalizer, tickets)[0]
    intents = np.asarray([lab.split("/", 1)[0] for lab in labels])
    cats = np.asarray([lab.split("/", 1)[1] if "/" in lab else "" for lab in labels])
    # Stratify by label where a label has enough examples, by intent otherwise.
    counts = Counter(labels)
    strata = [lab if counts[lab] >= args.folds else lab.split("/", 1)[0] for lab in labels]
    pred_i = np.empty(len(docs), dtype=object)
    pred_c = np.empty(len(docs), dtype=object)
    folds = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=0)
    for tr, te in folds.split(np.zeros(len(docs)), strata):
        # The fold's examples and the framed copies of them: (document, example index).
        items = [(docs[i], i) for i in tr] + [(d, i) for i in tr for d in copies.get(i, [])]
        im = train(
            [d for d, _ in items], [intents[i] for _, i in items], **TRAIN_OPTIONS["intent"]
        )
        citems = [(d, i) for d, i in items if cats[i]]
        cm = train(
            [d for d, _ in citems],
            [cats[i] for _, i in citems],
            vectorizer=im.vectorizer,
            **TRAIN_OPTIONS["category"],
        )
        cm.vocab, cm.idf = im.vocab, im.idf
        for i in te:
            vec = im.vectorize(docs[i])
            pred_i[i] = im.labels[int(np.argmax(im.proba(docs[i], vec)))]
            pred_c[i] = cm.labels[int(np.argmax(cm.proba(docs[i], vec)))]
    print(f"{args.folds}-fold cross-validation, classifiers only")
    for name in dict.fromkeys(source):
        idx = [i for i, s in enumerate(source) if s == name]
        ok_i = np.mean([pred_i[i] == intents[i] for i in idx])
        cidx = [i for i in idx if cats[i]]
        ok_c = np.mean([pred_c[i] == cats[i] for i in cidx]) if cidx else float("nan")
        print(f"  {name:16s} n={len(idx):5d}  intent {ok_i:.3f}  category {ok_c:.3f}")


if __name__ == "__main__":
    main()
