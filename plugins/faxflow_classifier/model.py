"""The model: a vocabulary of features with their idf weights, and per label one weight per
feature (multinomial logistic regression: a softmax over the labels' scores).

Stored as JSON and rebuilt from it, never pickled: loading a pickle (or joblib) file runs
whatever code it names, so a model file would be a way into the worker. A JSON file is data;
`parse` checks every part of it (types, sizes, finite numbers) before it is used, and
refuses a file made by another faxflow version, whose features may differ.
"""

from __future__ import annotations

import base64
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
import numpy.typing as npt

from faxflow import __version__

from . import features

FORMAT = "faxflow-classifier"
FORMAT_VERSION = 1
MAX_FILE_BYTES = 100 * 2**20  # a model of 100 labels and 200,000 features is ~110 MB
MAX_LABELS = 100
MAX_FEATURES = 200_000
RETRAIN = "retrain it with `faxflow train -c CONFIG --examples DIR`"

Floats = npt.NDArray[np.float32]
Indices = npt.NDArray[np.intp]


class ModelError(Exception):
    """A model file that cannot be used; the message says why, for people."""


@dataclass(frozen=True)
class Prediction:
    """Every label's probability, best first, and the terms that weighed for and against the
    best label (term, contribution to its score) when asked to explain."""

    probabilities: tuple[tuple[str, float], ...]
    weighed_for: tuple[tuple[str, float], ...] = ()
    weighed_against: tuple[tuple[str, float], ...] = ()

    @property
    def label(self) -> str:
        return self.probabilities[0][0]

    @property
    def confidence(self) -> float:
        return self.probabilities[0][1]


@dataclass(frozen=True, eq=False)
class Model:
    labels: tuple[str, ...]
    vocabulary: tuple[str, ...]  # word features first, then letter groups
    word_features: int
    idf: Floats  # (features,)
    coef: Floats  # (labels, features)
    intercept: Floats  # (labels,)
    meta: dict[str, Any] = field(default_factory=dict)  # trained_at, examples, scores, ...
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {f: i for i, f in enumerate(self.vocabulary)})

    # --- features to a vector -----------------------------------------------------------

    def vector(self, counts: Mapping[str, int]) -> tuple[Indices, Floats]:
        """The tf-idf vector of a fax's feature counts, as (indices, values): tf is
        1 + log(count), each block (words, letter groups) scaled to unit length, so both
        count the same however many letter groups a text has."""
        pairs = sorted((self.index[f], n) for f, n in counts.items() if f in self.index)
        idx = np.fromiter((i for i, _ in pairs), dtype=np.intp, count=len(pairs))
        tf = np.fromiter((1.0 + math.log(n) for _, n in pairs), dtype=np.float32,
                         count=len(pairs))
        values = tf * self.idf[idx]
        split = int(np.searchsorted(idx, self.word_features))
        for block in (values[:split], values[split:]):
            norm = float(np.linalg.norm(block))
            if norm > 0:
                block /= norm
        return idx, values

    def probabilities(self, idx: Indices, values: Floats) -> Floats:
        scores = self.coef[:, idx] @ values + self.intercept
        scores = np.exp(scores - scores.max())
        result: Floats = scores / scores.sum()
        return result

    # --- prediction -----------------------------------------------------------------------

    def predict(self, text: str, explain: int = 0) -> Prediction:
        """The labels' probabilities for a text; with `explain`, that many terms for and
        against the best label."""
        words = features.tokens(text)
        counts = features.counts(words)
        idx, values = self.vector(counts)
        probs = self.probabilities(idx, values)
        ranked = tuple(sorted(((label, float(p)) for label, p in zip(self.labels, probs,
                                                                      strict=True)),
                              key=lambda lp: -lp[1]))
        if not explain:
            return Prediction(ranked)
        terms = self.terms(words, idx, values, self.labels.index(ranked[0][0]))
        order = sorted(terms.items(), key=lambda tw: tw[1])
        # Terms that round to 0.00 weigh nothing worth showing.
        against = tuple((t, round(w, 3)) for t, w in order[:explain] if w <= -0.005)
        weighed = tuple((t, round(w, 3)) for t, w in reversed(order[-explain:]) if w >= 0.005)
        return Prediction(ranked, weighed, against)

    def terms(self, words: Sequence[str], idx: Indices, values: Floats,
              label: int) -> dict[str, float]:
        """How much each term of the text adds to one label's score. A letter group's share
        goes to the words it occurs in (by how often), so what is shown are the fax's own
        words and word pairs, not fragments."""
        contribution = dict(zip(idx.tolist(), (self.coef[label, idx] * values).tolist(),
                                strict=True))
        terms: Counter[str] = Counter()
        owners: dict[int, list[tuple[str, int]]] = {}
        for word, n in Counter(words).items():
            for gram in features.char_ngrams(word):
                i = self.index.get(gram)
                if i is not None:
                    owners.setdefault(i, []).append((word, n))
        for i, weight in contribution.items():
            if i < self.word_features:
                terms[self.vocabulary[i][len(features.WORD):]] += weight
            elif i in owners:
                total = sum(n for _, n in owners[i])
                for word, n in owners[i]:
                    terms[word] += weight * n / total
        return dict(terms)

    # --- the file ---------------------------------------------------------------------------

    def to_json(self) -> bytes:
        head = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "faxflow_version": __version__, **self.meta,
                "features": features.settings(), "labels": list(self.labels),
                "intercept": [float(x) for x in self.intercept],
                "word_features": self.word_features}
        body = {"vocabulary": list(self.vocabulary), "idf": _b64(self.idf),
                "coef": _b64(self.coef)}
        # Metadata first and one item a line, so `head model.json` shows what it is.
        return json.dumps({**head, **body}, indent=1, ensure_ascii=False).encode("utf-8")


META_KEYS = {"trained_at": str, "examples": dict, "cross_validation": dict, "training": dict}


def load(path: Path) -> Model:
    """Read and check a model file; ModelError says what is wrong with it."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ModelError(f"{path} is {size:,} bytes, more than a model can be "
                             f"({MAX_FILE_BYTES:,})")
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse(data, str(path))


def parse(data: bytes, where: str) -> Model:
    try:
        doc = json.loads(data, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ModelError(f"{where} is not a faxflow classifier model (not JSON: "
                         f"{str(exc)[:100]})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelError(f"{where} is not a faxflow classifier model (no \"format\": "
                         f"\"{FORMAT}\")")
    version, fmt = doc.get("faxflow_version"), doc.get("format_version")
    if version != __version__ or fmt != FORMAT_VERSION:
        raise ModelError(f"{where} was trained by faxflow {_shown(version)} (model format "
                         f"{_shown(fmt)}); this is faxflow {__version__} (model format "
                         f"{FORMAT_VERSION}). A model is only used by the version that "
                         f"trained it, whose text features it matches: {RETRAIN}")
    try:
        return _build(doc)
    except _Damaged as exc:
        raise ModelError(f"{where} is damaged or was edited: {exc}; {RETRAIN}") from None


class _Damaged(Exception):
    pass


def _build(doc: dict[str, Any]) -> Model:
    if doc.get("features") != features.settings():
        raise _Damaged("its feature settings are not this version's")
    labels = doc.get("labels")
    if not (isinstance(labels, list) and 2 <= len(labels) <= MAX_LABELS
            and all(isinstance(x, str) and x for x in labels) and len(set(labels)) == len(labels)):
        raise _Damaged(f"labels must be 2 to {MAX_LABELS} different names")
    vocabulary = doc.get("vocabulary")
    words = doc.get("word_features")
    if not (isinstance(vocabulary, list) and 0 < len(vocabulary) <= MAX_FEATURES
            and all(isinstance(f, str) for f in vocabulary)
            and len(set(vocabulary)) == len(vocabulary)):
        raise _Damaged(f"vocabulary must be 1 to {MAX_FEATURES:,} different features")
    if not (isinstance(words, int) and not isinstance(words, bool)
            and 0 <= words <= len(vocabulary)
            and all(f.startswith(features.WORD) for f in vocabulary[:words])
            and all(f.startswith(features.CHARS) for f in vocabulary[words:])):
        raise _Damaged("word_features does not split the vocabulary into words and letters")
    idf = _floats(doc.get("idf"), len(vocabulary), "idf")
    coef = _floats(doc.get("coef"), len(labels) * len(vocabulary), "coef")
    intercept = doc.get("intercept")
    if not (isinstance(intercept, list) and len(intercept) == len(labels)
            and all(_finite(x) for x in intercept)):
        raise _Damaged("intercept must be one finite number per label")
    meta = {k: doc[k] for k in META_KEYS if k in doc}
    for key, kind in META_KEYS.items():
        if key in meta and not isinstance(meta[key], kind):
            raise _Damaged(f"{key} must be a {kind.__name__}")
    return Model(tuple(labels), tuple(vocabulary), words, idf,
                 coef.reshape(len(labels), len(vocabulary)),
                 np.asarray(intercept, dtype=np.float32), meta)


def _floats(value: Any, count: int, name: str) -> Floats:
    """Little-endian float32 numbers, base64: under half the size of decimal JSON."""
    if not isinstance(value, str) or len(value) != 4 * math.ceil(count * 4 / 3):
        raise _Damaged(f"{name} must hold {count:,} numbers")
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raise _Damaged(f"{name} is not base64") from None
    array = np.frombuffer(raw, dtype="<f4")
    if array.size != count or not np.isfinite(array).all():
        raise _Damaged(f"{name} must hold {count:,} finite numbers")
    return array.astype(np.float32)  # a writable copy in native order


def _b64(array: Floats) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a model may hold")


def _shown(value: Any) -> str:
    return repr(value)[:40] if not isinstance(value, str) else value[:40]
