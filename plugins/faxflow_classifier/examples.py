"""Where training examples come from: labelled texts, `Example(label, text, source)`.

Training takes any iterable of examples, so each source is one function:

- `from_folders`: one sub-folder per label; ``*.pdf``, ``*.tif`` and ``*.tiff`` are read by
  the text-extraction plugins of the configuration (the OCR plugin, as in the worker),
  ``*.txt`` are taken as text. This is also where operators' corrections go until the
  console records them: a folder of faxes they routed by hand, one sub-folder per label.
- `from_journal`: operators' decisions in the console, once the journal records them. What
  it needs is in its docstring and in docs/classifier.md (Feedback).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator, Sequence
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


def from_journal(app: App) -> Iterator[Example]:
    """Operators' decisions as examples: not available yet.

    What it needs from the journal and the console (issue 16, item 3), one record per
    decision:
    - the fax's text as the worker read it (the record's ``text``, stored when the fax was
      quarantined or given `needs-review`), since the example must be what the model saw;
    - the decision: the rule an operator routed it to (a "route chosen" event or a resolved
      quarantine item in state "routed") and the labels that rule sets, taken at decision
      time (rules change later);
    - who decided and when, so a wrong decision can be found and left out, and a way to
      read the decisions since a time, newest last.
    Each decision whose rule sets exactly one of the model's labels becomes
    ``Example(label, text, "journal:<record id>")``; decisions to dismiss or release teach
    nothing and are skipped.
    """
    raise ExampleError("--from-journal: the journal does not record operators' decisions yet "
                       "(the console will); put the faxes operators routed by hand in a "
                       "folder, one sub-folder per label, and give it with --examples "
                       "(docs/classifier.md, Feedback)")
