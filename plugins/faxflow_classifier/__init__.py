"""The classifier plugin: labels a fax with what a model trained on examples predicts.

Hooks only. `features` turns text into features, `model` is the model and its file,
`train` fits and cross-validates (scikit-learn), `examples` reads examples, `command` is
``faxflow train``. Reference: docs/classifier.md.

Without a ``[plugins.classifier]`` table the plugin does nothing. The worker needs numpy
only; scikit-learn is needed to train. Neither is imported unless the table is there, so the
plugin loads (and stays out of the way) without the ``classifier`` extra.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from faxflow.config import Config, ConfigProblem
from faxflow.errors import ConfigError
from faxflow.hookspecs import hookimpl
from faxflow.stash import StashKey
from faxflow.types import Classification

from . import options
from .options import Settings

if TYPE_CHECKING:
    import click

    from faxflow.app import App
    from faxflow.types import Fax

    from .model import Model, Prediction

log = logging.getLogger("faxflow.classifier")
NAME = "classifier"
INSTALL = "pip install 'faxflow[classifier]'"
EXPLAIN_TERMS = 6  # terms shown for and against the label


Signature = tuple[int, int, int] | None  # mtime_ns, size, inode of the model file


def signature(path: os.PathLike[str] | str) -> Signature:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


@dataclass
class State:
    """The settings and the model in use; the model is read again when its file changes."""

    settings: Settings
    model: Model | None  # None only while training (`faxflow train` builds the app)
    seen: Signature = None  # the file as it was when last looked at (loaded or refused)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def current(self) -> Model | None:
        """The model, read again first if its file changed (a stat per fax: microseconds).
        A file that cannot be used is said once, and the model before it stays in use."""
        now = signature(self.settings.model)
        if now != self.seen:
            with self.lock:  # one thread reads the new file; the others keep the old model
                if now != self.seen:
                    self.seen = now
                    self._reload(now)
        return self.model

    def _reload(self, now: Signature) -> None:
        from .model import ModelError, load

        if now is None:
            log.warning("classifier: model %s is gone; keeping the model loaded before",
                        self.settings.model)
            return
        try:
            model = load(self.settings.model)
        except ModelError as exc:
            log.error("classifier: %s; keeping the model loaded before", exc)
            return
        problem = _label_clash(model, self.settings)
        if problem:
            log.error("classifier: %s; keeping the model loaded before", problem)
            return
        self.model = model
        log.info("classifier: loaded %s (%d labels)", self.settings.model, len(model.labels))


STATE = StashKey[State]()
# The model a check loaded, for the configure that follows with the same config.
CHECKED = StashKey[tuple[Config, "Model", Signature]]()
# Set while `faxflow train` builds its app: the model file may be missing or outdated then.
TRAINING = StashKey[bool]()


def plugin_name(app: App) -> str:
    return app.plugin_name(sys.modules[__name__]) or NAME


def table(config: Config, app: App) -> dict[str, Any] | None:
    """Our table, or None when the config has none (the plugin then does nothing)."""
    plugins = config.data.get("plugins", {})
    found = plugins.get(plugin_name(app)) if isinstance(plugins, dict) else None
    return found if isinstance(found, dict) else None


def missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def _label_clash(model: Model, settings: Settings) -> str | None:
    if settings.review_label in model.labels:
        return (f"the model has a label {settings.review_label!r}, which is also the "
                "review_label: rename that examples folder or set another review_label")
    return None


@hookimpl
def faxflow_check_config(config: Config, app: App) -> list[ConfigProblem | str]:
    found = table(config, app)
    if found is None:
        return []
    settings, problems = options.parse(found, config)
    if settings is None:
        return list(problems)
    if missing("numpy"):
        return [f"the classifier needs numpy (and scikit-learn to train): {INSTALL}"]
    out: list[ConfigProblem | str] = []
    if missing("sklearn"):
        out.append(ConfigProblem(("plugins", plugin_name(app)), "scikit-learn is not "
                                 "installed: this worker can use a model trained elsewhere, "
                                 f"but `faxflow train` needs it: {INSTALL}", warning=True))
    if app.stash.get(TRAINING, False):
        return out
    from .model import ModelError, load

    before = signature(settings.model)
    try:
        model = load(settings.model)
    except ModelError as exc:
        hint = " (`faxflow train` writes it)" if before is None else ""
        return [*out, f"model: {exc}{hint}"]
    problem = _label_clash(model, settings)
    if problem:
        return [*out, f"review_label: {problem}"]
    app.stash[CHECKED] = (config, model, before)
    return out


@hookimpl
def faxflow_configure(config: Config, app: App) -> None:
    found = table(config, app)
    if found is None:  # no table (any more, after a reload): do nothing
        if STATE in app.stash:
            del app.stash[STATE]
        return
    settings, problems = options.parse(found, config)
    if settings is None:
        raise ConfigError("; ".join(problems))
    if app.stash.get(TRAINING, False):
        app.stash[STATE] = State(settings, None)
        return
    checked = app.stash.get(CHECKED, None)
    if checked is not None and checked[0] is config:
        del app.stash[CHECKED]
        model, loaded = checked[1], checked[2]
    else:
        from .model import ModelError, load

        loaded = signature(settings.model)
        try:
            model = load(settings.model)
        except ModelError as exc:
            raise ConfigError(str(exc)) from None
        problem = _label_clash(model, settings)
        if problem:
            raise ConfigError(problem)
    app.stash[STATE] = State(settings, model, loaded)


@hookimpl
def faxflow_classify(fax: Fax, app: App) -> Classification | None:
    state = app.stash.get(STATE, None)
    if state is None or state.model is None:
        return None
    model = state.current()
    assert model is not None
    settings, name = state.settings, plugin_name(app)
    text = fax.text
    if not text.strip():
        _count(app, settings.review_label)
        return Classification(frozenset({settings.review_label}), explain={name: (
            f"{settings.review_label}: the fax has no text to classify",)})
    prediction = model.predict(text, explain=EXPLAIN_TERMS)
    sure = prediction.confidence >= settings.min_confidence
    label = prediction.label if sure else settings.review_label
    _count(app, label)
    fax.scratch[name] = {"label": label, "probabilities": dict(prediction.probabilities),
                         "for": list(prediction.weighed_for),
                         "against": list(prediction.weighed_against)}
    return Classification(frozenset({label}),
                          explain={name: describe(prediction, settings, model)})


def _count(app: App, label: str) -> None:
    app.metrics.counter("faxflow_classifier_labels", "Faxes the classifier labelled, by "
                        "label (the review label: not sure enough, or no text).",
                        ("label",)).labels(label).inc()


def describe(prediction: Prediction, settings: Settings, model: Model) -> tuple[str, ...]:
    """What `faxflow explain` shows: the decision, the probabilities, and the terms."""
    best, p = prediction.label, prediction.confidence
    if p >= settings.min_confidence:
        decision = (f"label {best}: probability {p:.2f} (min_confidence "
                    f"{settings.min_confidence:.2f})")
    else:
        decision = (f"label {settings.review_label}: the most likely label, {best}, has "
                    f"probability {p:.2f}, below min_confidence {settings.min_confidence:.2f}")
    shown = [(label, q) for label, q in prediction.probabilities if q >= 0.005][:5]
    rest = prediction.probabilities[len(shown):]
    lines = [decision, "probabilities: " + ", ".join(f"{label} {q:.2f}" for label, q in shown)
             + (f" ({len(rest)} more, each {rest[0][1]:.2f} or less)" if rest else "")]

    def terms(pairs: tuple[tuple[str, float], ...]) -> str:
        return ", ".join(f'"{t}" {w:+.2f}' for t, w in pairs) or "none"

    lines.append(f"for {best}: {terms(prediction.weighed_for)}")
    lines.append(f"against {best}: {terms(prediction.weighed_against)}")
    scores = model.meta.get("cross_validation", {})
    f1 = scores.get("macro_f1") if isinstance(scores, dict) else None
    lines.append(f"model: {settings.model.name}, {len(model.labels)} labels, trained "
                 f"{model.meta.get('trained_at', '?')}"
                 + (f", cross-validated macro-F1 {f1:.2f}" if isinstance(f1, float) else ""))
    return tuple(lines)


@hookimpl
def faxflow_register_commands(cli: click.Group) -> None:
    from .command import train

    cli.add_command(train)
