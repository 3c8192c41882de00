"""The environment of every tesseract / poppler subprocess, and what libraries print.

Tesseract's OpenMP threads make a page about 3x slower when several tesseracts run at once
(measured: 17 instead of 71 pages/min on 2 cores), so each one gets a single thread and the
shared pool decides how many run. pytesseract and pdf2image start their subprocesses with
`os.environ`, so the variable has to be set there; `limit_threads` does that once.
"""

from __future__ import annotations

import ctypes
import os
from functools import cache

THREAD_LIMIT = {"OMP_THREAD_LIMIT": "1"}


def limit_threads() -> None:
    os.environ.update(THREAD_LIMIT)


def tool_env() -> dict[str, str]:
    return {**os.environ, **THREAD_LIMIT}


@cache
def quiet_libtiff() -> None:
    """Switch off libtiff's printing. It writes each complaint about a damaged image to the
    process's stderr, the worker's log: one line per damaged row of a fax page (thousands
    for one page). Pillow reports the failure itself (an exception: the page's error)."""
    from PIL import Image  # noqa: F401 - loads Pillow's _imaging, and with it libtiff

    try:
        with open("/proc/self/maps") as maps:  # Linux; elsewhere libtiff keeps printing
            found = sorted({line.split()[-1] for line in maps if "/libtiff" in line})
        for path in found:
            library = ctypes.CDLL(path)
            for name in ("TIFFSetWarningHandler", "TIFFSetErrorHandler"):
                setter = getattr(library, name)
                setter.restype, setter.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
                setter(None)
    except (OSError, AttributeError):
        pass
