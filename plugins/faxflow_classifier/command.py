"""``faxflow train``: read examples, cross-validate, write the model file the worker uses."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import click

from faxflow.app import App, load_app
from faxflow.config import ConfigProblem
from faxflow.errors import ConfigError, FaxflowError
from faxflow.hookspecs import hookimpl

from . import INSTALL, STATE, TRAINING, missing
from .examples import Example, ExampleError, from_folders, from_journal
from .options import MIN_CONFIDENCE

FEW_LABELS = 4  # measured: up to 4 labels, a min_confidence of 0.6 lets other kinds through


class TrainingMode:
    """Registered only by `faxflow train`: tells the plugin, before its check runs, that the
    model file may be missing or outdated (making it is the point)."""

    @hookimpl(tryfirst=True)
    def faxflow_check_config(self, app: App) -> list[ConfigProblem]:
        app.stash[TRAINING] = True
        return []


@click.command()
@click.option("-c", "--config", "config_path", required=True, envvar="FAXFLOW_CONFIG",
              type=click.Path(dir_okay=False, path_type=Path),
              help="The TOML configuration file [env FAXFLOW_CONFIG]: its [plugins.classifier] "
                   "model is written, its OCR options read the examples.")
@click.option("--examples", "folders", multiple=True, type=click.Path(path_type=Path),
              metavar="DIR", help="A folder with one sub-folder of examples per label "
                                  "(*.pdf, *.tif, *.tiff, *.txt); repeat for more folders.")
@click.option("--from-journal", "journal", is_flag=True,
              help="Also learn from operators' decisions in the journal: faxes routed by hand "
                   "to a rule, labelled by that rule's labels.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the model here instead of [plugins.classifier] model (a running "
                   "worker takes up a new model file as soon as it is written).")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
@click.option("--plugins-dir", type=click.Path(path_type=Path, file_okay=False, exists=True),
              envvar="FAXFLOW_PLUGINS_DIR", help="Also load every *.py file in DIR as a plugin.")
def train(config_path: Path, folders: tuple[Path, ...], journal: bool, out: Path | None,
          as_json: bool, plugins_dir: Path | None) -> None:
    """Train the classifier on examples, cross-validate it and write the model file.

    Documents are read with the OCR options of the configuration, as the worker reads
    faxes. A document that cannot be read is skipped with a warning.
    """
    if missing("sklearn"):
        raise click.ClickException(f"training needs scikit-learn: {INSTALL}")
    if not folders and not journal:
        raise click.UsageError("give the examples: --examples DIR (one sub-folder per label) "
                               "and/or --from-journal")
    try:
        app = load_app(config_path, plugins_dir=plugins_dir,
                       extra=[("classifier-training", TrainingMode())])
    except ConfigError as exc:
        raise click.ClickException(f"invalid configuration:\n{exc}") from None
    try:
        state = app.stash.get(STATE, None)
        target = out or (state.settings.model if state else None)
        if target is None:
            raise click.ClickException(f"{config_path} has no [plugins.classifier] model "
                                       "to write: add one, or give --out FILE")
        started = time.monotonic()
        examples = read(app, folders, journal,
                        state.settings.review_label if state else None)
        seconds = time.monotonic() - started
        report = fit_and_write(app, examples, target, seconds)
    except FaxflowError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        app.shutdown()  # the OCR pool
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))


def read(app: App, folders: tuple[Path, ...], journal: bool,
         review: str | None) -> list[Example]:
    def warn(message: str) -> None:
        click.echo(f"warning: {message}", err=True)

    examples = from_folders(app, folders, warn) if folders else []
    if journal:
        # With examples folders, decisions count for their labels only: a label operators
        # chose a few times would otherwise stop training with "too few examples".
        examples += from_journal(app, {e.label for e in examples} or None, review, warn)
    counts = Counter(e.label for e in examples)
    if review in counts:
        raise ExampleError(f"examples are labelled {review!r}, which is the review_label (the "
                           "label of faxes the model is not sure about): rename that folder")
    from .train import MIN_EXAMPLES

    few = {label: n for label, n in sorted(counts.items()) if n < MIN_EXAMPLES}
    if few:
        raise ExampleError(f"too few examples (at least {MIN_EXAMPLES} per label are "
                           "needed, 20 or more give good models): "
                           + ", ".join(f"{label} has {n}" for label, n in few.items()))
    if len(counts) < 2:
        raise ExampleError(f"examples of at least 2 labels are needed, found "
                           f"{', '.join(counts) or 'none'} in {', '.join(map(str, folders))}")
    return examples


def fit_and_write(app: App, examples: list[Example], target: Path,
                  read_seconds: float) -> dict[str, Any]:
    from faxflow.delivery import atomic_write
    from faxflow.paths import make_dirs

    from .train import train as fit

    state = app.stash.get(STATE, None)
    min_confidence = state.settings.min_confidence if state else MIN_CONFIDENCE
    started = time.monotonic()
    model, scores = fit(examples)
    data = model.to_json()
    make_dirs(target.parent, app.config.dir_mode)
    # Owner-only like every file faxflow writes: the vocabulary holds words of the faxes.
    atomic_write(target, data, app.config.file_mode)
    labelled, accuracy = scores.at(min_confidence)
    return {"model": str(target), "bytes": len(data), "labels": list(model.labels),
            "features": len(model.vocabulary), "examples": model.meta["examples"],
            "read_seconds": round(read_seconds, 1),
            "train_seconds": round(time.monotonic() - started, 1),
            "cross_validation": scores.summary(),
            "at_min_confidence": {"min_confidence": min_confidence,
                                  "labelled": round(labelled, 4),
                                  "accuracy_of_labelled": round(accuracy, 4)}}


def format_report(report: dict[str, Any]) -> str:
    cv = report["cross_validation"]
    width = max(len(label) for label in report["labels"]) + 2
    lines = [f"Read {sum(report['examples'].values())} examples of {len(report['labels'])} "
             f"labels in {report['read_seconds']} s.",
             f"Cross-validation ({cv['folds']} folds, each example predicted by a model "
             "trained without it):",
             f"  {'label':<{width}}examples  precision  recall  F1"]
    for label, s in cv["per_label"].items():
        lines.append(f"  {label:<{width}}{report['examples'][label]:>8}  {s['precision']:>9.2f}"
                     f"  {s['recall']:>6.2f}  {s['f1']:.2f}")
    lines.append(f"  macro-F1 {cv['macro_f1']:.3f}, accuracy {cv['accuracy']:.3f}")
    if cv["confused"]:
        lines.append("  mistaken: " + ", ".join(f"{t} taken for {p} {n}x"
                                                 for t, p, n in cv["confused"][:5]))
    at = report["at_min_confidence"]
    lines.append(f"  at min_confidence {at['min_confidence']:.2f}: "
                 f"{at['labelled']:.0%} labelled ({at['accuracy_of_labelled']:.1%} of them "
                 f"right), {1 - at['labelled']:.0%} to review")
    if len(report["labels"]) <= FEW_LABELS:
        lines.append(f"  note: with {len(report['labels'])} labels, faxes of other kinds often "
                     "get one of them with a high probability: add a label of assorted other "
                     "faxes, or raise min_confidence (docs/classifier.md, Few labels)")
    lines.append(f"Wrote {report['model']} ({report['features']:,} features, "
                 f"{report['bytes'] / 1e6:.1f} MB) in {report['train_seconds']} s.")
    return "\n".join(lines)

