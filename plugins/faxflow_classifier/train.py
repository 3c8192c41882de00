"""Training: a vocabulary and weights from labelled examples, and cross-validated scores.

Needs scikit-learn (the ``classifier`` extra) for the logistic regression and the folds; the
model it makes is plain data (`model.Model`) that the worker uses with numpy alone. Every
score is measured through `Model.probabilities`, the very function the worker classifies
with, on examples the fold's model (vocabulary included) never saw.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from . import features
from .examples import Example
from .model import MAX_FEATURES, Model

# Inverse regularization strength per example: scikit-learn's C is this divided by the number
# of examples, so the penalty weighs against the mean loss, not the sum. With a fixed C, a
# model of 100 examples per label is far surer of itself than one of 5, and one
# min_confidence could not serve both. Chosen on the benchmark (docs/classifier.md, Choices).
C = 300.0
MIN_DF = 2  # a feature must occur in 2 examples: one-off names and numbers are noise
MAX_FOLDS = 5
MIN_EXAMPLES = 3  # per label: fewer cannot be cross-validated in a meaningful way
SEED = 0  # folds are shuffled the same way every time


@dataclass
class Scores:
    """Cross-validated: each example predicted by a model trained without it."""

    folds: int
    per_label: dict[str, dict[str, float]]  # precision, recall, f1, support
    macro_f1: float
    accuracy: float
    confused: list[tuple[str, str, int]]  # (true label, predicted as, how often), most first
    # The best probability of each example and whether its label was right, to tell what
    # a min_confidence would do.
    outcomes: list[tuple[float, bool]] = field(default_factory=list)

    def at(self, min_confidence: float) -> tuple[float, float]:
        """Share of faxes labelled at this min_confidence, and the accuracy among those."""
        kept = [right for p, right in self.outcomes if p >= min_confidence]
        if not self.outcomes:
            return 0.0, 0.0
        return len(kept) / len(self.outcomes), (sum(kept) / len(kept) if kept else 0.0)

    def summary(self) -> dict[str, Any]:
        """What the model file records (outcomes are left out: one pair per example)."""
        return {"folds": self.folds, "macro_f1": round(self.macro_f1, 4),
                "accuracy": round(self.accuracy, 4),
                "per_label": {k: {m: round(v, 4) for m, v in s.items()}
                              for k, s in self.per_label.items()},
                "confused": [list(c) for c in self.confused]}


def vocabulary(docs: Sequence[Counter[str]], min_df: int = MIN_DF,
               limit: int = MAX_FEATURES) -> tuple[tuple[str, ...], int, np.ndarray[Any, Any]]:
    """The features kept (words first, then letter groups, each sorted), how many are words,
    and their smoothed idf: ln((1 + documents) / (1 + documents with it)) + 1."""
    df: Counter[str] = Counter()
    for doc in docs:
        df.update(doc.keys())
    kept = [f for f, n in df.items() if n >= min_df]
    if len(kept) > limit:  # the most widespread ones; names break ties, for determinism
        kept = sorted(kept, key=lambda f: (-df[f], f))[:limit]
    words = sorted(f for f in kept if f.startswith(features.WORD))
    letters = sorted(f for f in kept if not f.startswith(features.WORD))
    vocab = (*words, *letters)
    idf = np.array([math.log((1 + len(docs)) / (1 + df[f])) + 1.0 for f in vocab],
                   dtype=np.float32)
    return vocab, len(words), idf


def fit(docs: Sequence[Counter[str]], labels: Sequence[str], c: float = C) -> Model:
    """A model from examples' feature counts and their labels."""
    from sklearn.linear_model import LogisticRegression

    names = tuple(sorted(set(labels)))
    vocab, words, idf = vocabulary(docs)
    if not vocab:
        raise ValueError("the examples have no words in common: nothing to learn from")
    blank = Model(names, vocab, words, idf, np.zeros((len(names), len(vocab)), np.float32),
                  np.zeros(len(names), np.float32))
    regression = LogisticRegression(C=c / len(docs), class_weight="balanced", max_iter=2000)
    regression.fit(matrix(blank, docs), list(labels))
    coef = np.asarray(regression.coef_, dtype=np.float32)
    intercept = np.asarray(regression.intercept_, dtype=np.float32)
    if len(names) == 2:  # one score for the second label: a softmax of -s/2 and s/2 is the same
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2], dtype=np.float32)
    assert tuple(regression.classes_) == names
    return dataclasses.replace(blank, coef=coef, intercept=intercept)


def matrix(model: Model, docs: Sequence[Counter[str]]) -> Any:
    """The examples' vectors (`Model.vector`, as the worker computes them) as a sparse
    matrix, one row per example."""
    from scipy.sparse import csr_matrix

    rows = [model.vector(doc) for doc in docs]
    return csr_matrix((np.concatenate([v for _, v in rows]),
                       np.concatenate([i for i, _ in rows]),
                       np.cumsum([0, *(len(i) for i, _ in rows)])),
                      shape=(len(docs), len(model.vocabulary)), dtype=np.float32)


def folds_for(labels: Sequence[str]) -> int:
    return min(MAX_FOLDS, min(Counter(labels).values()))


def cross_validate(docs: Sequence[Counter[str]], labels: Sequence[str],
                   c: float = C) -> Scores:
    from sklearn.metrics import precision_recall_fscore_support
    from sklearn.model_selection import StratifiedKFold

    k = folds_for(labels)
    names = sorted(set(labels))
    predicted: list[str] = [""] * len(labels)
    outcomes: list[tuple[float, bool]] = [(0.0, False)] * len(labels)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=SEED)
    for train_idx, test_idx in splitter.split(np.zeros(len(labels)), labels):
        model = fit([docs[i] for i in train_idx], [labels[i] for i in train_idx], c)
        for i in test_idx:
            probs = model.probabilities(*model.vector(docs[i]))
            best = int(np.argmax(probs))
            predicted[i] = model.labels[best]
            outcomes[i] = (float(probs[best]), predicted[i] == labels[i])
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=names, zero_division=0)
    per_label = {name: {"precision": float(p), "recall": float(r), "f1": float(f),
                        "support": int(s)}
                 for name, p, r, f, s in zip(names, precision, recall, f1, support,
                                             strict=True)}
    confused = Counter((t, p) for t, p in zip(labels, predicted, strict=True) if t != p)
    return Scores(k, per_label, float(np.mean(f1)),
                  sum(t == p for t, p in zip(labels, predicted, strict=True)) / len(labels),
                  [(t, p, n) for (t, p), n in confused.most_common()], outcomes)


def train(examples: Sequence[Example], c: float = C) -> tuple[Model, Scores]:
    """Cross-validate, then fit on every example; the model records both."""
    import sklearn

    docs = [features.features(e.text) for e in examples]
    labels = [e.label for e in examples]
    scores = cross_validate(docs, labels, c)
    model = fit(docs, labels, c)
    meta = {"trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "examples": dict(sorted(Counter(labels).items())),
            "cross_validation": scores.summary(),
            "training": {"model": "logistic regression", "C": c / len(examples),
                         "class_weight": "balanced", "min_df": MIN_DF,
                         "scikit_learn": sklearn.__version__}}
    return dataclasses.replace(model, meta=meta), scores
