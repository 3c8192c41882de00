"""The classifier plugin: `faxflow train` on generated faxes, the worker routing by the learned
label, needs-review below min_confidence, explain, and model files that must be refused.

One test reads its examples with the real OCR plugin and runs `faxflow run` against the
simulator; the others train on the samples' ground-truth text (``*.txt`` examples), which is
what `faxflow train` does with a text file, so they need no OCR.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from faxflow_classifier import features, model
from test_rules_explain import GROUND_TRUTH_PLUGIN

from faxflow import __version__
from faxflow.app import load_app
from faxflow.cli import build_cli
from faxflow.errors import ConfigError
from faxflow.journal import open_journal
from faxflow.samples import make_fax, write_fax
from faxflow.simulator import Simulator, SimulatorServer
from faxflow.types import Fax, Job, PageText

PLUGINS = "ocr,rules,folder,classifier"
CONFIG = """\
[retarus]
base_url = "{api_url}"
username = "99999"
password = "secret"
topics = ["t"]
lock_timeout = 60

[worker]
poll_interval_max = 0.3
reload = false

[journal]
path = "journal.sqlite"

[plugins.ocr]
languages = "eng"
orientation = "off"

[plugins.classifier]
model = "classifier.json"
{classifier}

[plugins.folder]
base = "out"

[plugins.rules.default]
[[plugins.rules.default.route]]
type = "folder"
path = "unsorted"

[[rule]]
name = "labs"
when.labels = ["lab_result"]
[[rule.route]]
type = "folder"
path = "lab"

[[rule]]
name = "review"
when.labels = ["needs-review"]
[[rule.route]]
type = "folder"
path = "review"
"""
LABELS = ("lab_result", "invoice", "letter")
# Nothing like any example: a canteen menu.
UNLIKE = ["Staff canteen menu this week. Monday: lentil soup with sausages. Tuesday: fish "
          "and chips, peas. Wednesday: vegetable lasagne. Thursday: chicken curry with rice. "
          "Friday: pancakes with apple sauce. Salad bar every day from noon."]


@pytest.fixture(autouse=True)
def only_our_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAXFLOW_LOAD_PLUGINS", PLUGINS)


def write_config(folder: Path, api_url: str = "http://127.0.0.1:9/x",
                 classifier: str = "") -> Path:
    path = folder / "faxflow.toml"
    path.write_text(CONFIG.format(api_url=api_url, classifier=classifier), encoding="utf-8")
    (folder / "out").mkdir(exist_ok=True)
    return path


@functools.cache
def truth(kind: str, seed: int) -> str:
    """A sample's ground-truth text (drawing the fax is the slow part: once per test run)."""
    return "\n".join(make_fax(kind=kind, seed=seed, fmt="tiff").page_texts)


def text_examples(folder: Path, labels: tuple[str, ...] = LABELS, seeds: range = range(1, 6),
                  ) -> Path:
    """Examples as *.txt (the samples' ground truth), one sub-folder per label."""
    for label in labels:
        (folder / label).mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            (folder / label / f"{seed}.txt").write_text(truth(label, seed), encoding="utf-8")
    return folder


def cli(*args: str) -> Result:
    return CliRunner().invoke(build_cli(), list(args))


def train(config: Path, *args: str) -> Result:
    result = cli("train", "-c", str(config), *args)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    return result


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with text examples of three labels and classifier.json trained on them by
    `faxflow train` (once: the model file is data, each test gets its own copy)."""
    folder = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAXFLOW_LOAD_PLUGINS", PLUGINS)
        result = train(write_config(folder), "--examples",
                       str(text_examples(folder / "examples")))
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture
def trained(tmp_path: Path, trained_once: Path) -> Path:
    """A config with a copy of the trained model and of its examples."""
    shutil.copy(trained_once / "classifier.json", tmp_path)
    shutil.copytree(trained_once / "examples", tmp_path / "examples")
    return write_config(tmp_path)


# --- End to end: real OCR, `faxflow run` -------------------------------------------------


def test_train_on_scanned_examples_then_route_by_the_learned_label(tmp_path: Path) -> None:
    examples = tmp_path / "examples"
    for label in LABELS:
        for seed in range(1, 5):
            write_fax(make_fax(kind=label, seed=seed, resolution="standard"), examples / label)
    config = write_config(tmp_path)
    result = train(config, "--examples", str(examples))
    assert result.exit_code == 0, result.output
    # The samples' JSON sidecars are no examples: said once, not an error.
    assert "ignored 12 file(s) that are not .pdf" in result.output
    assert "Read 12 examples of 3 labels" in result.output
    assert "macro-F1" in result.output and "Wrote " in result.output
    assert "note: with 3 labels, faxes of other kinds often get one of them" in result.output
    assert (tmp_path / "classifier.json").stat().st_mode & 0o777 == 0o600

    sim = Simulator(users={"99999": "secret"}, topics={"t": "99999"}, seed=3)
    with SimulatorServer(sim, host="127.0.0.1", port=0) as server:
        unseen = make_fax(kind="lab_result", seed=77, resolution="standard")
        unlike = make_fax(kind="letter", text=UNLIKE, resolution="standard")
        ids = {name: sim.add_fax("t", documents=[{"extension": "pdf", "content": s.content}])
               ["id"] for name, s in (("unseen", unseen), ("unlike", unlike))}
        write_config(tmp_path, server.api_url)
        log = tmp_path / "worker.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "faxflow", "run", "-c",
                                     str(config)], cwd=tmp_path, stderr=out,
                                    env={**os.environ, "FAXFLOW_LOAD_PLUGINS": PLUGINS})
        try:
            deadline = time.monotonic() + 120
            while sim.topic_state("t")["acknowledged"] < 2:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    assert "Traceback" not in log.read_text()
    [lab] = (tmp_path / "out" / "lab").glob("*.json")
    assert json.loads(lab.read_text())["id"] == ids["unseen"]
    assert "lab_result" in json.loads(lab.read_text())["labels"]
    [review] = (tmp_path / "out" / "review").glob("*.json")
    assert json.loads(review.read_text())["id"] == ids["unlike"]
    assert json.loads(review.read_text())["labels"] == ["needs-review"]


# --- explain ---------------------------------------------------------------------------------


def test_explain_shows_the_label_probabilities_and_terms(trained: Path) -> None:
    plugins = trained.parent / "local-plugins"
    plugins.mkdir()
    (plugins / "ground_truth.py").write_text(GROUND_TRUTH_PLUGIN, encoding="utf-8")
    document = write_fax(make_fax(kind="invoice", seed=40), trained.parent / "in")
    args = ["explain", "-c", str(trained), "--plugins-dir", str(plugins), str(document)]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    section = result.output.split("Classifiers:\n  classifier:\n")[1].split("\n\n")[0]
    lines = [line.strip() for line in section.splitlines()]
    assert lines[0].startswith("label invoice: probability 0.")
    assert lines[0].endswith("(min_confidence 0.60)")
    assert lines[1].startswith("probabilities: invoice 0.")
    assert "lab_result 0." in lines[1] and "letter 0." in lines[1]
    assert lines[2].startswith('for invoice: "invoice" +')  # the word itself weighs most
    assert lines[3].startswith("against invoice: ")
    assert lines[4].startswith("model: classifier.json, 3 labels, trained 20")
    assert "Labels: invoice" in result.output

    data = json.loads(cli(*args, "--json").stdout)
    assert data["classifiers"]["classifier"] == section.replace("    ", "").splitlines()
    assert data["labels"] == ["invoice"]


# --- needs-review, reloading ------------------------------------------------------------------


def fax_with(text: str) -> Fax:
    return Fax(job=Job(id="f"), topic="t", pages=[PageText(1, text)])


def test_below_min_confidence_the_fax_needs_review(trained: Path) -> None:
    write_config(trained.parent, classifier="min_confidence = 0.99\nreview_label = \"people\"")
    app = load_app(trained)
    [sure] = app.classify(fax_with(truth("letter", 30)))
    assert sure.labels in ({"letter"}, {"people"})
    [unsure] = app.classify(fax_with(UNLIKE[0]))
    assert unsure.labels == {"people"}
    lines = unsure.explain["classifier"]
    assert lines[0].startswith("label people: the most likely label, ")
    assert "below min_confidence 0.99" in lines[0]
    [empty] = app.classify(fax_with("  \n "))
    assert empty.labels == {"people"}
    assert empty.explain == {"classifier": ("people: the fax has no text to classify",)}
    counted = app.metrics.registry.get_sample_value("faxflow_classifier_labels_total",
                                                    {"label": "people"})
    assert counted is not None and counted >= 1


def test_the_worker_takes_up_a_new_model_file_and_keeps_the_old_one_if_it_is_bad(
        trained: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = load_app(trained)
    court = fax_with(truth("court_document", 9))
    assert app.classify(court)[0].labels <= {"letter", "needs-review"}
    path = trained.parent / "classifier.json"
    good = path.read_bytes()

    path.write_bytes(good[: len(good) // 2])  # a half-copied file
    with caplog.at_level(logging.INFO, logger="faxflow.classifier"):
        assert app.classify(court)[0].labels <= {"letter", "needs-review"}
        app.classify(court)
    refused = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(refused) == 1  # said once, not for every fax
    assert "is not a faxflow classifier model (not JSON" in refused[0].getMessage()
    assert "keeping the model loaded before" in refused[0].getMessage()

    examples = text_examples(trained.parent / "more", labels=("court_document", "invoice"))
    assert train(trained, "--examples", str(examples)).exit_code == 0
    assert app.classify(court)[0].labels == {"court_document"}
    assert "loaded" in caplog.text


# --- model files that must be refused ---------------------------------------------------------


def test_a_model_of_another_version_is_refused_with_both_versions(trained: Path) -> None:
    path = trained.parent / "classifier.json"
    doc = json.loads(path.read_text())
    doc["faxflow_version"] = "0.0.9"
    path.write_text(json.dumps(doc))
    result = cli("check", "-c", str(trained))
    assert result.exit_code == 2
    assert (f"plugins.classifier.model: {path} was trained by faxflow 0.0.9 (model format 1); "
            f"this is faxflow {__version__} (model format 1)") in result.output
    assert "retrain it with `faxflow train -c CONFIG --examples DIR`" in result.output
    with pytest.raises(ConfigError, match=r"was trained by faxflow 0\.0\.9"):
        load_app(trained)
    # ... and retraining over it is what the message says to do.
    examples = trained.parent / "examples"
    assert train(trained, "--examples", str(examples)).exit_code == 0
    assert cli("check", "-c", str(trained)).exit_code == 0


class Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, ("touch pickle-ran",)


def edited(good: dict[str, object], **changes: object) -> bytes:
    return json.dumps({**good, **changes}).encode()


@pytest.mark.parametrize("damage", [
    "truncated", "pickle", "nested", "nan", "list", "format", "coef", "idf-inf", "labels",
    "vocabulary", "split", "base64", "meta"])
def test_damaged_or_tampered_model_files_are_refused(trained: Path, damage: str) -> None:
    path = trained.parent / "classifier.json"
    good = json.loads(path.read_text())
    floats = base64.b64encode(bytes(4 * len(good["vocabulary"]))).decode()
    inf = base64.b64encode(b"\x00\x00\x80\x7f" * len(good["vocabulary"])).decode()
    data = {
        "truncated": path.read_bytes()[:5000],
        "pickle": pickle.dumps(Boom()),
        "nested": b"[" * 200_000 + b"]" * 200_000,
        "nan": path.read_bytes().replace(b'"intercept": [\n  ', b'"intercept": [\n  NaN, ', 1),
        "list": b"[1, 2]",
        "format": edited(good, format="sklearn-pickle"),
        "coef": edited(good, coef=floats),
        "idf-inf": edited(good, idf=inf),
        "labels": edited(good, labels=["a", "a", "b"]),
        "vocabulary": edited(good, vocabulary=[*good["vocabulary"][:-1], 7]),
        "split": edited(good, word_features=0),
        "base64": edited(good, idf="!" * len(good["idf"])),
        "meta": edited(good, examples=["not", "a", "table"]),
    }[damage]
    path.write_bytes(data)
    if damage == "pickle":  # as a user runs it, in a process of its own
        result = subprocess.run([sys.executable, "-m", "faxflow", "check", "-c", str(trained)],
                                capture_output=True, text=True, cwd=trained.parent,
                                env={**os.environ, "FAXFLOW_LOAD_PLUGINS": PLUGINS})
        assert "Traceback" not in result.stderr
        code, out = result.returncode, result.stderr
    else:
        checked = cli("check", "-c", str(trained))
        assert isinstance(checked.exception, SystemExit)  # no exception escaped
        code, out = checked.exit_code, checked.output
    assert code == 2, out
    [line] = [x for x in out.splitlines() if "plugins.classifier.model:" in x]
    assert str(path) in line
    assert ("is not a faxflow classifier model" in line
            or "is damaged or was edited" in line), line
    assert not (trained.parent / "pickle-ran").exists()


# --- checks and training errors ----------------------------------------------------------------


def test_options_are_checked(tmp_path: Path) -> None:
    config = write_config(tmp_path, classifier='min_confidence = 1.5\nreview_label = "to check"'
                                               '\nmin_confidance = 0.5')
    result = cli("check", "-c", str(config))
    assert result.exit_code == 2
    out = result.output
    assert (f"{config}:23: plugins.classifier.min_confidance: unknown option (did you mean "
            "min_confidence?)") in out
    assert "plugins.classifier.min_confidence: must be a number above 0 and at most 1" in out
    assert "plugins.classifier.review_label: 'to check' is not a label name" in out
    (tmp_path / "faxflow.toml").write_text(config.read_text().replace(
        'model = "classifier.json"\n', ""))
    assert "plugins.classifier.model: required" in cli("check", "-c", str(config)).output


def test_check_says_how_to_install_what_is_missing(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "f.toml"
    config.write_text('[plugins.classifier]\nmodel = "m.json"\n')
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(ConfigError) as error:
        load_app(config, load=["classifier"])
    assert ("f.toml:1: warning: plugins.classifier: scikit-learn is not installed: this worker "
            "can use a model trained elsewhere, but `faxflow train` needs it: pip install "
            "'faxflow[classifier]'") in str(error.value)
    result = cli("train", "-c", str(config), "--examples", str(tmp_path))
    assert result.exit_code == 1
    assert "training needs scikit-learn: pip install 'faxflow[classifier]'" in result.output
    monkeypatch.setitem(sys.modules, "numpy", None)
    with pytest.raises(ConfigError, match=r"f.toml:1: plugins.classifier: the classifier needs "
                                          r"numpy \(and scikit-learn to train\): pip install"):
        load_app(config, load=["classifier"])
    config.write_text("")  # without the table the plugin does nothing, and needs nothing
    app = load_app(config, load=["classifier"])
    assert app.classify(fax_with("anything")) == []


def test_training_errors_are_said_plainly(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    examples = text_examples(tmp_path / "examples", labels=("invoice", "letter"),
                             seeds=range(1, 4))

    def fails(*args: str) -> str:
        result = train(config, *args)
        assert result.exit_code in (1, 2), result.output
        assert "Traceback" not in result.output
        return result.output

    assert "examples folder " in fails("--examples", str(tmp_path / "nope"))
    assert "give the examples: --examples DIR" in fails()
    (examples / "letter" / "3.txt").unlink()
    (examples / "letter" / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    out = fails("--examples", str(examples))
    assert "broken.pdf: skipped: PDF is damaged" in out  # skipped with a warning, then:
    assert "too few examples (at least 3 per label are needed" in out
    assert "letter has 2" in out
    (examples / "to sort").mkdir()
    assert "'to sort' is not a label name" in fails("--examples", str(examples))
    (examples / "to sort").rmdir()
    text_examples(examples, labels=("invoice",), seeds=range(1, 4))
    (examples / "invoice").rename(examples / "needs-review")
    assert "examples are labelled 'needs-review', which is the review_label" in fails(
        "--examples", str(examples))
    (examples / "needs-review").rename(examples / "invoice")
    text_examples(examples, labels=("letter",), seeds=range(3, 5))
    result = train(config, "--examples", str(examples), "--out", str(tmp_path / "m" / "x.json"))
    assert result.exit_code == 0, result.output
    assert "broken.pdf: skipped" in result.output
    assert re.search(r"\n  letter +4 ", result.output), result.output
    assert (tmp_path / "m" / "x.json").exists() and not (tmp_path / "classifier.json").exists()
    config.write_text(config.read_text().replace('model = "classifier.json"\n', "")
                      .replace("[plugins.classifier]\n", ""))
    assert "has no [plugins.classifier] model to write" in fails("--examples", str(examples))


def test_train_from_operators_decisions_in_the_journal(tmp_path: Path) -> None:
    """Faxes operators routed by hand (the console's "route to a rule") are examples,
    labelled by the rule they chose, with the text the worker read."""
    config = write_config(tmp_path)
    result = train(config, "--from-journal")
    assert result.exit_code == 1 and "--from-journal: there is no journal at" in result.output
    journal = open_journal("sqlite", tmp_path / "journal.sqlite")
    n = 0

    def decided(text: str | None, labels: list[str], action: str = "routed") -> None:
        nonlocal n
        n += 1
        ident = journal.records.quarantine("t", f"fax{n}", [("1.pdf", "pdf", b"%PDF-1.4")],
                                           ["needs review"], {}, {}, [], text, "w1")
        journal.records.decided(ident, "anna", action, "some-rule", labels)

    for seed in range(1, 4):
        decided(truth("lab_result", seed), ["lab_result"])
        decided(truth("invoice", seed), ["invoice", "needs-review"])  # review label: ignored
    decided(truth("letter", 1), [], "dismissed")
    decided(truth("letter", 2), ["letter", "post"])
    decided(None, ["letter"])
    decided(truth("court_document", 1), [])
    journal.close()

    result = train(config, "--from-journal")
    assert result.exit_code == 0, result.output
    assert ("warning: journal: 10 decision(s), 6 used; left out: 1 dismissed, not routed, 1 "
            "routed to a target that gives none of the labels, 1 routed to a target that "
            "gives several of the labels, 1 without the fax's text") in result.output
    assert "Read 6 examples of 2 labels" in result.output
    assert model.load(tmp_path / "classifier.json").labels == ("invoice", "lab_result")

    # With examples folders, decisions count for the folders' labels only.
    examples = text_examples(tmp_path / "examples", labels=("invoice", "letter"))
    result = train(config, "--examples", str(examples), "--from-journal")
    assert result.exit_code == 0, result.output
    assert ("journal: 10 decision(s), 4 used; left out: 1 dismissed, not routed, 4 routed to "
            "a target that gives none of the labels, 1 without the fax's text") in result.output
    assert re.search(r"\n  invoice +8 ", result.output), result.output  # 5 + 3 decisions
    assert re.search(r"\n  letter +6 ", result.output)  # "post" is no label of the folders
    assert model.load(tmp_path / "classifier.json").labels == ("invoice", "letter")


# --- features ----------------------------------------------------------------------------------


def test_features_read_a_bounded_part_of_the_text() -> None:
    assert features.tokens("Invoice No. INV-2026-0042, 3 x") == ["invoice", "no", "inv", "0000",
                                                                   "0000"]
    huge = "word " * 1_000_000 + "unseen"
    assert "w:unseen" not in features.features(huge)
    one_token = features.features("x" * 5_000_000)
    assert sum(one_token.values()) < 4 * features.MAX_CHARS
    assert set(features.features("Gutschrift")) >= {"w:gutschrift", "c: gu", "c:schri",
                                                   "c:ift "}


def test_a_model_round_trips_through_its_file(trained: Path) -> None:
    path = trained.parent / "classifier.json"
    loaded = model.load(path)
    again = model.parse(loaded.to_json(), "again")
    text = truth("lab_result", 12)
    assert again.predict(text).probabilities == loaded.predict(text).probabilities
    assert loaded.predict(text).label == "lab_result"
    assert loaded.meta["examples"] == {"invoice": 5, "lab_result": 5, "letter": 5}
    assert json.loads(path.read_text())["cross_validation"]["folds"] == 5
