"""Benchmark: the classifier plugin against keyword rules, on generated faxes read by real OCR.

    .venv/bin/python bench/classify.py prepare    # generate + OCR once, cached (~65 min)
    .venv/bin/python bench/classify.py run        # the tables (~9 min; --tables to pick)

prepare: for each condition (fine, standard, noisy = noisy standard resolution) and every
sample kind, 100 training faxes (seeds 1-100) and 30 held-out faxes (seeds 1001-1030) are
generated (1 page, PDF) and read by the OCR plugin's default path (`OcrService`, as the
worker runs it, its own cache off). Each text is stored once in
bench/out/classify/<condition>/<kind>/<seed>.json with its OCR time and CER, so `run` needs
no OCR. Faxes already in the cache are skipped; an interrupted prepare goes on where it
stopped.

run prints these tables (--tables picks some):
- main: for 5, 20 and 100 examples per label (5 disjoint draws of 5 and of 20, the whole pool
  for 100), the macro-F1 of stratified cross-validation as `faxflow train` reports it and on
  the held-out faxes (trained on all the examples), next to the keyword-rule baseline
  (bench/classify_rules.toml through the real rules plugin) on the same faxes;
- threshold: each kind left out in turn, what each min_confidence labels of the known kinds'
  faxes and of the left-out kind's (a new kind arriving);
- few: the same with 2 to 4 labels, and with a catch-all label;
- choices: features and models measured against each other;
- errors: more OCR errors added to the held-out texts;
- transfer: trained on one condition, held-out faxes of another;
- timing: the time to classify one fax next to one page's OCR, measured in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from faxflow_classifier import features
from faxflow_classifier.model import Model
from faxflow_classifier.options import MIN_CONFIDENCE
from faxflow_classifier.train import C, cross_validate, fit, matrix

from faxflow.samples import KINDS, cer, make_fax

CACHE = Path(__file__).parent / "out" / "classify"
CONDITIONS = {"fine": ("fine", False), "standard": ("standard", False),
              "noisy": ("standard", True)}
TRAIN_SEEDS = range(1, 101)
HELD_OUT_SEEDS = range(1001, 1031)


# --- prepare: generate and OCR once -----------------------------------------------------


def cached(condition: str, kind: str, seed: int) -> Path:
    return CACHE / condition / kind / f"{seed}.json"


def _ocr_one(job: tuple[str, str, int]) -> tuple[str, float]:
    """Generate one fax and read it with the OCR plugin's service; store text and timings."""
    from faxflow_ocr.options import OcrOptions
    from faxflow_ocr.service import OcrService

    condition, kind, seed = job
    resolution, noisy = CONDITIONS[condition]
    service = _ocr_one.__dict__.get("service")
    if service is None:  # one service (one engine) per process
        service = _ocr_one.__dict__["service"] = OcrService(
            OcrOptions(workers=1, cache=False), None)
    sample = make_fax(kind=kind, resolution=resolution, noisy=noisy, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / sample.filename
        path.write_bytes(sample.content)
        started = time.perf_counter()
        outcome = service.read(path, path.name, hashlib.sha256(sample.content).hexdigest(),
                               "eng")
        seconds = time.perf_counter() - started
    text = "\f".join(p.text for p in outcome.pages)
    out = cached(condition, kind, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"kind": kind, "seed": seed, "condition": condition, "text": text,
              "ocr_seconds": round(seconds, 3),
              "cer": round(cer("\n".join(sample.page_texts), text), 5)}
    tmp_out = out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(record), encoding="utf-8")
    tmp_out.replace(out)
    return str(out), seconds


def _jobs(conditions: list[str]) -> Iterator[tuple[str, str, int]]:
    # The goal's condition first, and small seeds first: a partial cache already serves the
    # 5- and 20-example runs.
    seeds = [*TRAIN_SEEDS[:20], *HELD_OUT_SEEDS, *TRAIN_SEEDS[20:]]
    for condition in conditions:
        for seed in seeds:
            for kind in KINDS:
                if not cached(condition, kind, seed).exists():
                    yield condition, kind, seed


def prepare(conditions: list[str], processes: int) -> None:
    jobs = list(_jobs(conditions))
    print(f"{len(jobs)} faxes to generate and OCR into {CACHE} with {processes} processes",
          flush=True)
    started = time.monotonic()
    with ProcessPoolExecutor(processes) as pool:
        for done, (path, seconds) in enumerate(pool.map(_ocr_one, jobs, chunksize=4), 1):
            if done % 50 == 0 or done == len(jobs):
                elapsed = time.monotonic() - started
                print(f"{done}/{len(jobs)} in {elapsed:.0f} s (last: {path}, OCR "
                      f"{seconds:.2f} s)", flush=True)


def texts(condition: str, kind: str, seeds: range | list[int]) -> list[str]:
    out = []
    for seed in seeds:
        path = cached(condition, kind, seed)
        if not path.exists():
            sys.exit(f"{path} is missing: run `bench/classify.py prepare` first")
        out.append(json.loads(path.read_text(encoding="utf-8"))["text"])
    return out


# --- run: the tables ---------------------------------------------------------------------


Docs = list[Counter[str]]


class Data:
    """The cached texts of one condition as feature counts, computed once."""

    def __init__(self, condition: str) -> None:
        self.condition = condition
        self.train = {k: [features.features(t) for t in texts(condition, k, TRAIN_SEEDS)]
                      for k in KINDS}
        self.held_texts = {k: texts(condition, k, HELD_OUT_SEEDS) for k in KINDS}
        self.held = {k: [features.features(t) for t in v] for k, v in self.held_texts.items()}

    def examples(self, seeds: range, kinds: tuple[str, ...] = KINDS) -> tuple[Docs, list[str]]:
        docs, labels = [], []
        for kind in kinds:
            docs += [self.train[kind][s - 1] for s in seeds]
            labels += [kind] * len(seeds)
        return docs, labels

    def held_out(self, kinds: tuple[str, ...] = KINDS) -> tuple[Docs, list[str]]:
        docs, labels = [], []
        for kind in kinds:
            docs += self.held[kind]
            labels += [kind] * len(self.held[kind])
        return docs, labels


def draws(n: int) -> list[range]:
    """Disjoint sets of training seeds: 5 draws of 5 and of 20, the whole pool for 100."""
    return [range(1 + i * n, 1 + (i + 1) * n) for i in range(min(5, 100 // n))]


def predict(model: Model, docs: Docs) -> tuple[list[str], list[float]]:
    labels, confidences = [], []
    for doc in docs:
        probs = model.probabilities(*model.vector(doc))
        best = int(np.argmax(probs))
        labels.append(model.labels[best])
        confidences.append(float(probs[best]))
    return labels, confidences


def keyword_rules() -> Callable[[str], str]:
    """The baseline: bench/classify_rules.toml through the real rules plugin."""
    import faxflow_rules
    import pluggy
    from faxflow_rules import ruleset

    import faxflow.hookspecs
    from faxflow.app import App
    from faxflow.config import parse
    from faxflow.types import DestinationType, Fax, Job, PageText

    class Folder:
        @faxflow.hookspecs.hookimpl
        def faxflow_destination_types(self) -> list[DestinationType]:
            return [DestinationType("folder")]

    pm = pluggy.PluginManager("faxflow")
    pm.add_hookspecs(faxflow.hookspecs)
    pm.register(faxflow_rules, name="rules")
    pm.register(Folder(), name="folder")
    config, problems = parse((Path(__file__).parent / "classify_rules.toml").read_text())
    app = App(pm=pm, config=config)
    app.load_destination_types()
    problems += app.check_config(config)
    assert not problems, problems
    app.configure(config)
    rules = faxflow_rules.current(app)

    def label(text: str) -> str:
        fax = Fax(job=Job(id="bench"), topic="bench", pages=[PageText(1, text)])
        (found,) = ruleset.evaluate(rules, fax).labels
        return found

    return label


def main_table(data: dict[str, Data]) -> None:
    rules = keyword_rules()
    print("\n## Macro-F1: cross-validation and held-out faxes, next to keyword rules\n")
    print("| condition | examples per label | cross-validated (mean, min of draws) | held-out "
          "(mean, min) | held-out labelled at min_confidence 0.6 (right) | keyword rules, "
          "held-out | keyword rules, training pool |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for condition, d in data.items():
        held_docs, held_labels = d.held_out()
        baseline_held = f1(held_labels, [rules(t) for k in KINDS for t in d.held_texts[k]])
        pool = [(k, rules(t)) for k in KINDS for t in texts(condition, k, TRAIN_SEEDS)]
        baseline_pool = f1([k for k, _ in pool], [p for _, p in pool])
        for n in (5, 20, 100):
            cv, held, labelled, right = [], [], [], []
            for seeds in draws(n):
                docs, labels = d.examples(seeds)
                cv.append(cross_validate(docs, labels).macro_f1)
                model = fit(docs, labels)
                predicted, confidences = predict(model, held_docs)
                held.append(f1(held_labels, predicted))
                sure = [p == t for p, t, c in zip(predicted, held_labels, confidences,
                                                  strict=True) if c >= MIN_CONFIDENCE]
                labelled.append(len(sure) / len(held_labels))
                right.append(sum(sure) / max(1, len(sure)))
            print(f"| {condition} | {n} ({len(cv)} draws) | {mean(cv):.3f}, {min(cv):.3f} | "
                  f"{mean(held):.3f}, {min(held):.3f} | {mean(labelled):.1%} "
                  f"({mean(right):.1%}) | {baseline_held:.3f} | {baseline_pool:.3f} |",
                  flush=True)


def unknown_kinds(d: Data, n: int, model_fit: Callable[[Docs, list[str]], Model] | None = None,
                  ) -> tuple[list[float], list[tuple[float, bool]]]:
    """Leave one kind out: the model learns the other eight; its faxes are what a model
    meets when a new kind of document arrives. Returns their best probabilities, and the
    other kinds' held-out (best probability, right) as the known ones."""
    unknown, known = [], []
    for out in KINDS:
        kinds = tuple(k for k in KINDS if k != out)
        docs, labels = d.examples(draws(n)[0], kinds)
        model = (model_fit or fit)(docs, labels)
        unknown += predict(model, d.held[out])[1]
        held_docs, held_labels = d.held_out(kinds)
        held_docs, held_labels = held_docs[::4], held_labels[::4]  # a quarter is enough
        predicted, confidences = predict(model, held_docs)
        known += [(c, p == t) for p, t, c in zip(predicted, held_labels, confidences,
                                                 strict=True)]
    return unknown, known


def threshold_table(d: Data) -> None:
    print(f"\n## Choosing min_confidence ({d.condition}): share labelled (errors among them) "
          "of known kinds' held-out faxes / share of unknown kinds' faxes labelled anyway\n")
    thresholds = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    print("| examples per label | " + " | ".join(f"{t}" for t in thresholds) + " |")
    print("| --- |" + " --- |" * len(thresholds))
    for n in (5, 20, 100):
        unknown, known = unknown_kinds(d, n)
        cells = []
        for t in thresholds:
            kept = [right for c, right in known if c >= t]
            cells.append(f"{len(kept) / len(known):.0%} ({len(kept) - sum(kept)}) / "
                         f"{sum(c >= t for c in unknown) / len(unknown):.0%}")
        print(f"| {n} | " + " | ".join(cells) + " |", flush=True)


def few_labels_table(d: Data) -> None:
    """The probabilities are relative to the labels a model knows: with few labels, a fax of
    another kind is often close to one of them."""
    sets = {2: ("invoice", "referral"), 3: ("invoice", "referral", "letter"),
            4: ("credit_note", "lab_result", "court_document", "order")}
    thresholds = (0.6, 0.7, 0.8, 0.9)
    print(f"\n## Few labels ({d.condition}, 20 examples per label): known kinds' held-out "
          "faxes labelled / other kinds' faxes labelled\n")
    print("| labels | " + " | ".join(str(t) for t in thresholds) + " |")
    print("| --- |" + " --- |" * len(thresholds))
    seeds = draws(20)[0]
    rows: dict[str, tuple[Docs, list[str], tuple[str, ...]]] = {
        f"{len(kinds)}: {', '.join(kinds)}": (*d.examples(seeds, kinds), kinds)
        for kinds in sets.values()}
    # The remedy: an "other" label with examples of assorted other kinds.
    docs, labels = d.examples(seeds, sets[2])
    assorted = ("letter", "order", "lab_result")
    for i in range(20):
        docs.append(d.train[assorted[i % 3]][seeds[i // 3] - 1])
        labels.append("other")
    rows["2 + other (20 letters, orders, lab results)"] = (docs, labels, (*sets[2], *assorted))
    for name, (docs, labels, covered) in rows.items():
        model = fit(docs, labels)
        known = [c for k in covered if k in labels for c in predict(model, d.held[k])[1]]
        unknown = []
        for k in KINDS:
            if k not in covered:
                predicted, confidences = predict(model, d.held[k])
                unknown += [c if p != "other" else 0.0
                            for p, c in zip(predicted, confidences, strict=True)]
        print(f"| {name} | " + " | ".join(
            f"{sum(c >= t for c in known) / len(known):.0%} / "
            f"{sum(c >= t for c in unknown) / len(unknown):.0%}" for t in thresholds) + " |",
            flush=True)


def choices_table(d: Data) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import ComplementNB
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.svm import LinearSVC

    def only(prefix: str) -> Callable[[Docs, list[str]], Model]:
        def fit_only(docs: Docs, labels: list[str]) -> Model:
            return fit([Counter({f: c for f, c in doc.items() if f.startswith(prefix)})
                        for doc in docs], labels)
        return fit_only

    def fixed_c(c: float) -> Callable[[Docs, list[str]], Model]:
        return lambda docs, labels: fit(docs, labels, c * len(docs))

    def sklearn_model(estimator: Any) -> Callable[[Docs, list[str]], Callable[[Docs], list[str]]]:
        def fit_other(docs: Docs, labels: list[str]) -> Callable[[Docs], list[str]]:
            blank = fit(docs, labels)  # for its vocabulary and vectors only
            estimator.fit(matrix(blank, docs), labels)
            return lambda test: list(estimator.predict(matrix(blank, test)))
        return fit_other

    print(f"\n## Choices ({d.condition}): held-out macro-F1 (mean of the draws); at "
          "min_confidence 0.6, known kinds' faxes labelled / unknown kinds' faxes labelled\n")
    print("| variant | 5 per label | 20 per label | labelled known / unknown (5) | "
          "(20) |")
    print("| --- | --- | --- | --- | --- |")
    variants: dict[str, Any] = {
        f"words + letter groups, logistic regression, C = {C:g} / examples (chosen)": fit,
        "words and word pairs only": only(features.WORD),
        "letter groups only": only(features.CHARS),
        "C = 10 fixed (not scaled by the number of examples)": fixed_c(10.0),
        "C = 1 fixed": fixed_c(1.0),
        f"C = {C * 2:g} / examples": lambda docs, labels: fit(docs, labels, C * 2),
        f"C = {C / 2:g} / examples": lambda docs, labels: fit(docs, labels, C / 2),
    }
    held_docs, held_labels = d.held_out()
    for name, how in variants.items():
        scores = {n: mean(f1(held_labels, predict(how(*d.examples(s)), held_docs)[0])
                          for s in draws(n)) for n in (5, 20)}
        opens = []
        for n in (5, 20):
            unknown, known = unknown_kinds(d, n, how)
            opens.append(f"{sum(c >= MIN_CONFIDENCE for c, _ in known) / len(known):.0%} / "
                         f"{sum(c >= MIN_CONFIDENCE for c in unknown) / len(unknown):.0%}")
        print(f"| {name} | {scores[5]:.3f} | {scores[20]:.3f} | {opens[0]} | {opens[1]} |",
              flush=True)
    others = {"linear SVM (LinearSVC), same features": LinearSVC(C=1.0),
              "naive Bayes (ComplementNB), same features": ComplementNB()}
    for name, estimator in others.items():
        how = sklearn_model(estimator)
        scores = {n: mean(f1(held_labels, how(*d.examples(s))(held_docs)) for s in draws(n))
                  for n in (5, 20)}
        print(f"| {name} | {scores[5]:.3f} | {scores[20]:.3f} | no probabilities | |",
              flush=True)
    # scikit-learn's own vectorizers, as a check on ours.
    held_texts = [t for k in KINDS for t in d.held_texts[k]]
    scores = {}
    for n in (5, 20):
        results = []
        for seeds in draws(n):
            train_texts = [t for k in KINDS for t in texts(d.condition, k, seeds)]
            labels = [k for k in KINDS for _ in seeds]
            pipe = make_pipeline(make_union(
                TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2),
                TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True,
                                min_df=2)),
                LogisticRegression(C=C / len(train_texts), class_weight="balanced",
                                   max_iter=2000))
            pipe.fit(train_texts, labels)
            results.append(f1(held_labels, list(pipe.predict(held_texts))))
        scores[n] = mean(results)
    print(f"| scikit-learn TfidfVectorizer (words 1-2, char_wb 3-5) + the same regression | "
          f"{scores[5]:.3f} | {scores[20]:.3f} | | |", flush=True)


CONFUSIONS = {"e": "c", "c": "e", "o": "0", "l": "1", "i": "l", "h": "b", "n": "h", "a": "o",
              "u": "v", "t": "l", "s": "5", "m": "rn", "d": "cl", "E": "F", "I": "l", "O": "0"}


def worse(text: str, rate: float, seed: int) -> str:
    """OCR text with more errors: each letter, with probability `rate`, becomes one of
    tesseract's usual confusions (c for e, l for t, rn for m, ...) or is dropped."""
    import random

    rng = random.Random(seed)
    out = []
    for ch in text:
        if ch.isalpha() and rng.random() < rate:
            out.append(CONFUSIONS.get(ch, "") if rng.random() < 0.8 else "")
        else:
            out.append(ch)
    return "".join(out)


def errors_table(d: Data) -> None:
    print(f"\n## More OCR errors ({d.condition} faxes with letters changed on top, 20 "
          "examples per label, clean training texts): held-out macro-F1 / share labelled at "
          "0.6\n")
    rates = (0.0, 0.05, 0.10, 0.20)
    print("| features | " + " | ".join(f"+{r:.0%} of letters" for r in rates) + " |")
    print("| --- |" + " --- |" * len(rates))
    held_labels = [k for k in KINDS for _ in HELD_OUT_SEEDS]
    variants = {"words + letter groups (chosen)": "", "words and word pairs only":
                features.WORD, "letter groups only": features.CHARS}
    for name, prefix in variants.items():
        docs, labels = d.examples(draws(20)[0])
        docs = [Counter({f: n for f, n in doc.items() if f.startswith(prefix)}) for doc in docs]
        model = fit(docs, labels)
        cells = []
        for rate in rates:
            held = [features.features(worse(t, rate, i)) for i, t in
                    enumerate(t for k in KINDS for t in d.held_texts[k])]
            predicted, confidences = predict(model, held)
            cells.append(f"{f1(held_labels, predicted):.3f} / "
                         f"{sum(c >= MIN_CONFIDENCE for c in confidences) / len(held):.0%}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def transfer_table(data: dict[str, Data]) -> None:
    print("\n## Trained on one condition, held-out faxes of another (20 per label, first "
          "draw): macro-F1\n")
    names = list(data)
    print("| trained on \\ held-out | " + " | ".join(names) + " |")
    print("| --- |" + " --- |" * len(names))
    for source in names:
        model = fit(*data[source].examples(draws(20)[0]))
        cells = []
        for target in names:
            docs, labels = data[target].held_out()
            cells.append(f"{f1(labels, predict(model, docs)[0]):.3f}")
        print(f"| {source} | " + " | ".join(cells) + " |", flush=True)


def timing_table(data: dict[str, Data]) -> None:
    """Classifying one fax (its OCR text to labels, explanation included, as the plugin does)
    next to OCR of one page, measured in this run."""
    from faxflow_ocr.options import OcrOptions
    from faxflow_ocr.service import OcrService

    print("\n## Time per fax\n")
    ocr: list[float] = []
    service = OcrService(OcrOptions(workers=1, cache=False), None)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for resolution, noisy in CONDITIONS.values():
                for seed in (2001, 2002):
                    sample = make_fax(kind=KINDS[seed % len(KINDS)], resolution=resolution,
                                      noisy=noisy, seed=seed)
                    path = Path(tmp) / sample.filename
                    path.write_bytes(sample.content)
                    started = time.perf_counter()
                    service.read(path, path.name, hashlib.sha256(sample.content).hexdigest(),
                                 "eng")
                    ocr.append(time.perf_counter() - started)
    finally:
        service.close()
    page = statistics.median(ocr)
    print(f"OCR of one page (OCR plugin's default path, 1 worker, 6 pages: fine, standard, "
          f"noisy x 2): median {page * 1000:.0f} ms (min {min(ocr) * 1000:.0f}, max "
          f"{max(ocr) * 1000:.0f})\n")
    print("| model (noisy) | features | file | classify one fax, median (max) | with explain "
          "terms, median (max) | median / one page's OCR |")
    print("| --- | --- | --- | --- | --- | --- |")
    d = data.get("noisy") or next(iter(data.values()))
    all_texts = [t for k in KINDS for t in d.held_texts[k]]
    for n in (5, 20, 100):
        model = fit(*d.examples(draws(n)[0]))
        plain, explained = [], []
        for text in all_texts:
            started = time.perf_counter()
            model.predict(text)
            plain.append(time.perf_counter() - started)
            started = time.perf_counter()
            model.predict(text, explain=6)
            explained.append(time.perf_counter() - started)
        size = len(model.to_json())
        print(f"| {n} per label | {len(model.vocabulary):,} | {size / 1e6:.1f} MB | "
              f"{statistics.median(plain) * 1000:.2f} ms ({max(plain) * 1000:.1f}) | "
              f"{statistics.median(explained) * 1000:.2f} ms ({max(explained) * 1000:.1f}) | "
              f"{statistics.median(explained) / page:.2%} |", flush=True)


def f1(true: list[str], predicted: list[str]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(true, predicted, average="macro", labels=sorted(set(true))))


def mean(values: Iterable[float]) -> float:
    return statistics.fmean(values)


def run(conditions: list[str], tables: list[str]) -> None:
    started = time.monotonic()
    data = {c: Data(c) for c in conditions}
    cers = {c: statistics.fmean(json.loads(cached(c, k, s).read_text())["cer"]
                                for k in KINDS for s in HELD_OUT_SEEDS) for c in conditions}
    print(f"{len(KINDS)} labels; {len(TRAIN_SEEDS)} training and {len(HELD_OUT_SEEDS)} held-out "
          "faxes per label and condition; OCR CER of the held-out faxes: "
          + ", ".join(f"{c} {v:.2%}" for c, v in cers.items()))
    if "main" in tables:
        main_table(data)
    if "threshold" in tables:
        threshold_table(data.get("noisy") or next(iter(data.values())))
    if "few" in tables:
        few_labels_table(data.get("noisy") or next(iter(data.values())))
    if "choices" in tables:
        choices_table(data.get("noisy") or next(iter(data.values())))
    if "errors" in tables:
        errors_table(data.get("noisy") or next(iter(data.values())))
    if "transfer" in tables:
        transfer_table(data)
    if "timing" in tables:
        timing_table(data)
    print(f"\n(run took {time.monotonic() - started:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="generate and OCR the faxes once (cached)")
    prep.add_argument("--conditions", default="noisy,standard,fine")
    prep.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    go = sub.add_parser("run", help="print the tables")
    go.add_argument("--conditions", default="fine,standard,noisy")
    go.add_argument("--tables",
                    default="main,threshold,few,choices,errors,transfer,timing")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.conditions.split(","), args.processes)
    else:
        run(args.conditions.split(","), args.tables.split(","))


if __name__ == "__main__":
    main()
