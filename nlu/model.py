"""Train the label classifier and score messages with it.

Training uses scikit-learn (TF-IDF of word and character n-grams, linear SVM, its
margins turned into probabilities by a softmax whose temperature is fitted on
cross-validated margins). The trained weights are exported to
plain numpy arrays, so parsing needs neither scikit-learn nor scipy and stays well under a
millisecond.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CHAR_MIN, CHAR_MAX = 2, 5
RAW = "~"
MAX_WORD = 40  # longer "words" (keyboard mashing, URLs) get no character n-grams


def features(tokens: Sequence[str]) -> Counter[str]:
    """Word 1-2 grams and word-bounded character 2-5 grams of a normalised token list.

    Tokens marked with RAW are the words as written (before normalisation): unigrams only.
    """
    feats: Counter[str] = Counter()
    words = []
    for tok in tokens:
        if tok.startswith(RAW) and len(tok) > 1:
            feats["r:" + tok[1:]] += 1
            continue
        words.append(tok)
        feats["w:" + tok] += 1
        if tok.startswith("<") or len(tok) == 1 and not tok.isalnum() or len(tok) > MAX_WORD:
            continue
        padded = f" {tok} "
        n = len(padded)
        for size in range(CHAR_MIN, CHAR_MAX + 1):
            if size > n:
                break
            for i in range(n - size + 1):
                feats["c:" + padded[i : i + size]] += 1
    for a, b in zip(words, words[1:], strict=False):
        feats[f"b:{a} {b}"] += 1
    return feats


@dataclass
class LinearModel:
    """Exported TF-IDF + linear classifier."""

    labels: list[str]
    vocab: dict[str, int]
    idf: np.ndarray
    coef: np.ndarray  # (n_features, n_labels), float32
    intercept: np.ndarray
    temperature: float = 1.0
    _cache: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False)
    vectorizer: object = field(default=None, repr=False)  # set while training only

    def _token_features(self, tok: str) -> tuple[int, ...]:
        """Indices of a token's word and character features (cached per token)."""
        hit = self._cache.get(tok)
        if hit is None:
            vocab = self.vocab
            hit = tuple(j for t in features((tok,)) for j in [vocab.get(t)] if j is not None)
            # A token's character n-grams may repeat ("anak" has "an" twice): keep multiplicity.
            counts = features((tok,))
            hit = tuple(
                j
                for t, c in counts.items()
                for j in [vocab.get(t)]
                if j is not None
                for _ in range(c)
            )
            if len(self._cache) < 100_000:
                self._cache[tok] = hit
        return hit

    def vectorize(self, tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        ids: list[int] = []
        for tok in tokens:
            ids.extend(self._token_features(tok))
        vocab = self.vocab
        words = [t for t in tokens if not (t.startswith(RAW) and len(t) > 1)]
        for a, b in zip(words, words[1:], strict=False):
            j = vocab.get(f"b:{a} {b}")
            if j is not None:
                ids.append(j)
        if not ids:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        idx, counts = np.unique(np.asarray(ids, dtype=np.int64), return_counts=True)
        v = (1.0 + np.log(counts.astype(np.float32))) * self.idf[idx]
        v /= np.linalg.norm(v)
        return idx, v.astype(np.float32)

    def proba(
        self, tokens: Sequence[str], vector: tuple[np.ndarray, np.ndarray] | None = None
    ) -> np.ndarray:
        """Calibrated label probabilities (`vector`: a vectorisation to reuse)."""
        idx, v = vector if vector is not None else self.vectorize(tokens)
        scores = self.intercept.astype(np.float64).copy()
        if len(idx):
            scores += v @ self.coef[idx]
        scores /= self.temperature
        scores -= scores.max()
        e = np.exp(scores)
        return e / e.sum()

    def arrays(self, prefix: str, with_vocab: bool = True) -> dict[str, np.ndarray]:
        """The model as named arrays (no pickled objects)."""
        out: dict[str, np.ndarray] = {}
        if with_vocab:
            terms = [""] * len(self.vocab)
            for t, i in self.vocab.items():
                terms[i] = t
            out[prefix + "terms"] = np.asarray(terms, dtype=str)
            out[prefix + "idf"] = self.idf.astype(np.float32)
        return out | {
            prefix + "labels": np.asarray(self.labels, dtype=str),
            prefix + "coef": self.coef.astype(np.float32),
            prefix + "intercept": self.intercept.astype(np.float32),
            prefix + "temperature": np.asarray([self.temperature]),
        }

    @classmethod
    def from_arrays(cls, z, prefix: str, shared: LinearModel | None = None) -> LinearModel:
        if shared is not None:
            vocab, idf = shared.vocab, shared.idf
        else:
            vocab = {t: i for i, t in enumerate(z[prefix + "terms"].tolist())}
            idf = z[prefix + "idf"]
        return cls(
            labels=z[prefix + "labels"].tolist(),
            vocab=vocab,
            idf=idf,
            coef=z[prefix + "coef"],
            intercept=z[prefix + "intercept"],
            temperature=float(z[prefix + "temperature"][0]),
        )


def save_models(path: Path, models: dict[str, LinearModel], meta: dict) -> None:
    """Write several models and their metadata to one .npz file, atomically."""
    arrays: dict[str, np.ndarray] = {}
    first: LinearModel | None = None
    for name, model in models.items():
        # Models trained on one vectoriser share its vocabulary: store it once.
        shares = first is not None and model.vocab is first.vocab
        arrays.update(model.arrays(name + ".", with_vocab=not shares))
        first = first or model
    arrays["meta"] = np.asarray([json.dumps(meta, ensure_ascii=False)], dtype=str)
    arrays["models"] = np.asarray(list(models), dtype=str)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_models(path: Path) -> tuple[dict[str, LinearModel], dict]:
    """Read a file written by `save_models`. Plain arrays only: `allow_pickle=False`."""
    with np.load(path, allow_pickle=False) as z:
        names = z["models"].tolist()
        models: dict[str, LinearModel] = {}
        for name in names:
            shared = None if f"{name}.terms" in z.files else models[names[0]]
            models[name] = LinearModel.from_arrays(z, name + ".", shared)
        meta = json.loads(str(z["meta"][0]))
    return models, meta


def _given(feature_list: list[str]) -> list[str]:
    return feature_list


def _fit_temperature(scores: np.ndarray, y: np.ndarray) -> float:
    best_t, best_nll = 1.0, float("inf")
    for t in np.exp(np.linspace(math.log(0.01), math.log(5.0), 80)):
        s = scores / t
        s = s - s.max(axis=1, keepdims=True)
        logp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
        nll = -logp[np.arange(len(y)), y].mean()
        if nll < best_nll:
            best_t, best_nll = float(t), float(nll)
    return best_t


def train(
    docs: Sequence[Sequence[str]],
    labels: Sequence[str],
    *,
    c: float = 0.7,
    calibrate: bool = True,
    class_weight: dict[str, float] | str | None = None,
    seed: int = 0,
    vectorizer=None,
    min_df: int = 1,
) -> LinearModel:
    """Fit TF-IDF + linear SVM on normalised token lists; calibrate a softmax temperature."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.model_selection import StratifiedKFold
    from sklearn.svm import LinearSVC

    # Features are computed once per document and reused by every fold. Interned, the many
    # documents that share a feature share one string (a long letter has thousands of them).
    docs = [[sys.intern(f) for f in features(d).elements()] for d in docs]
    label_set = sorted(set(labels))
    y = np.asarray([label_set.index(lab) for lab in labels])
    weights: dict[int, float] | str | None = None
    if isinstance(class_weight, str):
        weights = class_weight
    elif class_weight:
        weights = {label_set.index(k): v for k, v in class_weight.items() if k in label_set}

    def fit(d: Sequence[Sequence[str]], yy: np.ndarray, shared=None):
        vec = shared or TfidfVectorizer(
            analyzer=_given, sublinear_tf=True, min_df=min_df, dtype=np.float32, norm="l2"
        )
        x = vec.transform(d) if shared is not None else vec.fit_transform(d)
        clf = LinearSVC(C=c, class_weight=weights, random_state=seed)
        clf.fit(x, yy)
        return vec, clf

    temperature = 1.0
    counts = np.bincount(y)
    if calibrate and len(label_set) > 1 and counts.min() >= 3:
        folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
        cv_scores = np.zeros((len(y), len(label_set)))
        docs_list = list(docs)
        for tr, te in folds.split(np.zeros(len(y)), y):
            vec, clf = fit([docs_list[i] for i in tr], y[tr])
            part = clf.decision_function(vec.transform([docs_list[i] for i in te]))
            if part.ndim == 1:  # two classes: one margin, for the second class
                part = np.stack([np.zeros_like(part), part], axis=1)
            full = np.full((len(te), len(label_set)), -1e3)
            full[:, clf.classes_] = part
            cv_scores[te] = full
        temperature = _fit_temperature(cv_scores, y)
    vec, clf = fit(list(docs), y, shared=vectorizer)
    coef = np.zeros((len(vec.vocabulary_), len(label_set)), dtype=np.float32)
    intercept = np.full(len(label_set), -1e3, dtype=np.float32)
    if len(clf.classes_) == 2 and clf.coef_.shape[0] == 1:
        coef[:, clf.classes_[1]] = clf.coef_[0]
        intercept[clf.classes_[1]] = clf.intercept_[0]
        intercept[clf.classes_[0]] = 0.0
    else:
        coef[:, clf.classes_] = clf.coef_.T
        intercept[clf.classes_] = clf.intercept_
    model = LinearModel(
        labels=label_set,
        vocab={t: int(i) for t, i in vec.vocabulary_.items()},
        idf=vec.idf_.astype(np.float32),
        coef=coef,
        intercept=intercept,
        temperature=temperature,
    )
    model.vectorizer = vec
    return model
