"""Where training examples come from: labelled texts, `Example(label, text, source)`.

Training takes any iterable of examples, so each source is one function:

- `from_folders`: one sub-folder per label; ``*.pdf``, ``*.tif`` and ``*.tiff`` are read by
  the text-extraction plugins of the configuration (the OCR plugin, as in the worker),
  ``*.txt`` are taken as text. Corrections can go here too: a folder of faxes people
  routed by hand, one sub-folder per label.
- `from_journal`: operators' decisions recorded in the journal (the console's "route to a
  rule"): the fax's text as the worker read it, labelled by the rule the operator chose.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from faxflow.errors import FaxflowError
from faxflow.types import Document, DocumentRef, Fax, Job

if TYPE_CHECKING:
    from faxflow.app import App

DOCUMENTS = ("pdf", "tif", "tiff")
TEXTS = ("txt",)
MAX_TEXT_BYTES = 1_000_000  # a text example is read up to here (features read less still)
LABEL = re.compile(r"[^\W_][\w.-]*")  # letters, digits, "_", "-", "."; not starting with . - _


class ExampleError(FaxflowError):
    """Examples that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class Example:
    label: str
    text: str
    source: str  # where it came from, for messages: a file, "journal:<record id>", ...


def label_problem(name: str) -> str | None:
    if not LABEL.fullmatch(name) or len(name) > 100:
        return (f"{name!r} is not a label name (letters, digits, '_', '-' and '.', not "
                "starting with '-', '_' or '.')")
    return None


def scan(folder: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """Files by label (the sub-folders of `folder`), and the files that are no example."""
    if not folder.is_dir():
        raise ExampleError(f"examples folder {folder} does not exist or is not a folder")
    by_label: dict[str, list[Path]] = {}
    ignored: list[Path] = []
    for sub in sorted(folder.iterdir()):
        if sub.name.startswith("."):
            continue
        if not sub.is_dir():
            ignored.append(sub)
            continue
        problem = label_problem(sub.name)
        if problem:
            raise ExampleError(f"{sub}: {problem}")
        files = []
        for path in sorted(sub.iterdir()):
            ext = path.suffix.lower().lstrip(".")
            if path.is_file() and ext in DOCUMENTS + TEXTS:
                files.append(path)
            elif not path.name.startswith("."):
                ignored.append(path)
        by_label[sub.name] = files
    return by_label, ignored


def from_folders(app: App, folders: Sequence[Path],
                 warn: Callable[[str], None]) -> list[Example]:
    """Every example in the folders (the same label in several folders adds up). A document
    that cannot be read, or has no text, is skipped with a warning: one bad scan should not
    stop training, and the per-label counts show what is left."""
    jobs: list[tuple[str, Path]] = []
    for folder in folders:
        by_label, ignored = scan(folder)
        if ignored:
            shown = ", ".join(p.name for p in ignored[:3])
            warn(f"{folder}: ignored {len(ignored)} file(s) that are not .pdf, .tif, .tiff or "
                 f".txt in a label folder (e.g. {shown})")
        jobs += [(label, path) for label, files in by_label.items() for path in files]
    with ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="examples") as pool:
        texts = list(pool.map(lambda job: _read(app, job[1]), jobs))
    examples = []
    for (label, path), (text, problem) in zip(jobs, texts, strict=True):
        if problem:
            warn(f"{path}: skipped: {problem}")
        else:
            examples.append(Example(label, text, str(path)))
    return examples


def _read(app: App, path: Path) -> tuple[str, str | None]:
    """The text of one example file, or why there is none."""
    ext = path.suffix.lower().lstrip(".")
    try:
        if ext in TEXTS:
            with path.open("rb") as f:
                text = f.read(MAX_TEXT_BYTES).decode("utf-8", errors="replace")
        else:
            text = _extract(app, path, ext)
    except (OSError, FaxflowError) as exc:
        return "", str(exc) if isinstance(exc, FaxflowError) else f"cannot read: {exc}"
    if not text.strip():
        return "", "no text in it"
    return text, None


def _extract(app: App, path: Path, ext: str) -> str:
    data = path.read_bytes()
    ref = DocumentRef(url=path.resolve().as_uri(), name=path.name, extension=ext)
    document = Document(ref, path, len(data), hashlib.sha256(data).hexdigest(), None)
    fax = Fax(job=Job(id=f"example:{path.name}", documents=(ref,)), topic="train",
              documents=[document])
    pages = app.extract_text(fax, document)
    if pages is None:
        raise FaxflowError("no text-extraction plugin reads it (is the ocr plugin loaded?)")
    fax.pages = pages
    return fax.text


def from_journal(app: App, labels: set[str] | None, review: str | None,
                 warn: Callable[[str], None]) -> list[Example]:
    """Operators' decisions in the journal as examples: every fax an operator routed to a
    target (a rule) in the console or with `faxflow quarantine route`, with the labels that
    target gave then and the fax's text as the worker read it (kept for quarantined and queued
    faxes). The latest decision on a fax counts. A decision becomes an example when its
    target gave exactly one label among `labels` (the examples folders' labels; None: any
    label but the review label); released and dismissed faxes teach nothing. What is left out
    is said in one warning."""
    from faxflow.journal import open_journal

    settings = app.config.journal
    path = app.config.resolve(settings.path)
    if settings.backend == "sqlite" and not path.exists():
        raise ExampleError(f"--from-journal: there is no journal at {path} yet (the worker "
                           "and the console write it)")
    try:
        journal = open_journal(settings.backend, path, settings.url, app.config.file_mode)
    except Exception as exc:
        raise ExampleError(f"--from-journal: cannot open the journal: {exc}") from None
    try:
        decisions = journal.records.decisions()
    finally:
        journal.close()
    latest = {d.record_id: d for d in decisions}  # oldest first: the last one wins
    examples: list[Example] = []
    skipped: Counter[str] = Counter()
    for d in latest.values():
        given = [label for label in d.labels
                 if label != review and (labels is None or label in labels)]
        if d.action != "routed":
            skipped[f"{d.action}, not routed"] += 1
        elif len(given) != 1:
            skipped["routed to a target that gives " + ("none of the labels" if not given
                                                        else "several of the labels")] += 1
        elif not (d.text or "").strip():
            skipped["without the fax's text"] += 1
        else:
            text = d.text[:MAX_TEXT_BYTES] if d.text else ""
            examples.append(Example(given[0], text, f"journal:#{d.record_id} ({d.who})"))
    if skipped:
        warn(f"journal: {len(latest)} decision(s), {len(examples)} used; left out: "
             + ", ".join(f"{n} {why}" for why, n in sorted(skipped.items())))
    return examples
