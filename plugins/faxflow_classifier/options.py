"""The ``[plugins.classifier]`` table: checked into `Settings`, problems as "key: message"."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faxflow.config import Config

from .examples import label_problem

# Measured: docs/classifier.md, Choosing min_confidence.
MIN_CONFIDENCE = 0.6
REVIEW_LABEL = "needs-review"
KEYS = ("model", "min_confidence", "review_label")


@dataclass(frozen=True)
class Settings:
    model: Path  # resolved against the config file's folder
    min_confidence: float = MIN_CONFIDENCE
    review_label: str = REVIEW_LABEL


def parse(table: dict[str, Any], config: Config) -> tuple[Settings | None, list[str]]:
    problems = []
    for key in table:
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(KEYS)}"
            problems.append(f"{key}: unknown option ({hint})")
    model = table.get("model")
    if not isinstance(model, str) or not model:
        problems.append("model: required: the model file `faxflow train` writes, e.g. "
                        "\"classifier.json\" (relative to this file)")
    confidence = table.get("min_confidence", MIN_CONFIDENCE)
    if not (isinstance(confidence, int | float) and not isinstance(confidence, bool)
            and 0 < confidence <= 1):
        problems.append("min_confidence: must be a number above 0 and at most 1, e.g. 0.6")
    review = table.get("review_label", REVIEW_LABEL)
    if not isinstance(review, str):
        problems.append("review_label: must be a label name, e.g. \"needs-review\"")
    elif label_problem(review):
        problems.append(f"review_label: {label_problem(review)}")
    if problems:
        return None, problems
    return Settings(config.resolve(str(model)), float(confidence), str(review)), []
