"""The environment of every tesseract / poppler subprocess.

Tesseract's OpenMP threads make a page about 3x slower when several tesseracts run at once
(measured: 17 instead of 71 pages/min on 2 cores), so each one gets a single thread and the
shared pool decides how many run. pytesseract and pdf2image start their subprocesses with
`os.environ`, so the variable has to be set there; `limit_threads` does that once.
"""

from __future__ import annotations

import os

THREAD_LIMIT = {"OMP_THREAD_LIMIT": "1"}


def limit_threads() -> None:
    os.environ.update(THREAD_LIMIT)


def tool_env() -> dict[str, str]:
    return {**os.environ, **THREAD_LIMIT}
