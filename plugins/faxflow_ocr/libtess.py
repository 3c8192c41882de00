"""The libtesseract engine, the default: the CLI's own library, loaded once per pool thread in
a child process (libtess_child.py) that reads page after page.

The tesseract CLI spends ~80 ms of CPU starting (loading the model and its dictionaries)
on every page, 10% of a fax page's read and most of a small page's; the child starts once.
It reads each page through tesseract's ProcessPages with the same text (and PDF) renderers as
the CLI, so the text is the CLI's, byte for byte (tested). It stays a separate process for
the reasons the CLI is one: a page that runs out of time is stopped by killing it, and a
page that crashes tesseract takes down only the child, which the next page replaces.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import os
import sys
import time
from functools import cache
from pathlib import Path
from typing import Any

from PIL import Image

from faxflow_ocr import engine as cli
from faxflow_ocr.children import Child, ChildFailed, Pool
from faxflow_ocr.engine import OcrResult
from faxflow_ocr.failures import is_transient
from faxflow_ocr.tools import limit_threads

CHILD = Path(__file__).with_name("libtess_child.py")
LIBRARY_NAMES = ("libtesseract.so.5", "libtesseract.so.4", "libtesseract.5.dylib",
                 "libtesseract.dylib")
START_SECONDS = 30.0  # loading a model (the standard one is 23 MB) on a busy machine


@cache
def find_library() -> str | None:
    """The path or name ctypes can load tesseract's library by, None when there is none."""
    for name in (ctypes.util.find_library("tesseract"), *LIBRARY_NAMES):
        if not name:
            continue
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return name
    return None


class TesseractFailed(ChildFailed):
    """tesseract could not read a page, or its child process ended (`status`: the child's
    exit status, negative for a signal, as pytesseract's TesseractError has it)."""


class StartFailed(TesseractFailed):
    """A child could not load tesseract (a model file missing or unreadable, the library
    broken): the machine's fault, not the page's, so the fax comes back later, as when the
    tesseract command is missing (failures.is_transient)."""


class _Child(Child):
    """One child process: tesseract loaded with one set of languages."""

    name = "tesseract"
    failed = TesseractFailed

    def __init__(self, library: str, tessdata: str | None, languages: str,
                 timeout: float) -> None:
        """`timeout`: seconds the start may take (at most START_SECONDS)."""
        self.languages = languages
        try:
            super().__init__(
                [sys.executable, "-I", "-S", str(CHILD), library, tessdata or "", languages,
                 str(os.getpid())],
                {**os.environ, "OMP_THREAD_LIMIT": "1"}, min(START_SECONDS, timeout))
        except TesseractFailed as exc:
            raise StartFailed(f"tesseract did not start: {exc}", exc.status) from None
        if not self.ready.get("ok"):
            self.stop()
            raise StartFailed(str(self.ready.get("error", "tesseract did not start")))


class LibtessEngine(cli._Counter):
    """Children kept per set of languages; a pool thread takes one, reads a page, gives it
    back. At most `workers` children are kept idle (the pool has `workers` threads)."""

    def __init__(self, library: str, tessdata: str | None, workers: int) -> None:
        super().__init__()
        limit_threads()
        self.library = library
        self.tessdata = tessdata
        self.workers = max(1, workers)
        self._pool: Pool[_Child] = Pool(self.workers)

    @property
    def _idle(self) -> list[_Child]:
        return self._pool.idle

    def _child(self, languages: str | None, timeout: float,
               ) -> contextlib.AbstractContextManager[_Child]:
        """An idle child with `languages` (None: any, for OSD), else a new one started
        within `timeout` seconds. OSD has its own model: a child started for it alone
        loads only that."""
        return self._pool.child(
            lambda child: languages in (None, child.languages),
            lambda: _Child(self.library, self.tessdata, languages or "osd", timeout))

    def ocr(self, image: Image.Image, languages: str, psm: int, dpi: int, timeout: float,
            want_pdf: bool = False, picture: Image.Image | None = None,
            scratch: Path | None = None) -> OcrResult:
        self.count()
        deadline = time.monotonic() + timeout  # a child's start counts in the page's time
        with cli._files(image, scratch) as (base, input_file), \
                self._child(languages, timeout) as child:
            left = _left(deadline, timeout)
            answer = child.call({"op": "ocr", "image": input_file, "base": base, "psm": psm,
                                 "dpi": dpi, "pdf": want_pdf, "timeout": left}, left,
                                timeout)
            if not answer.get("ok"):
                raise TesseractFailed(_message(answer, base))
            return cli.text_result_of(base, answer.get("confidence"), int(answer.get("words", 0)),
                                      want_pdf, picture)

    def rotation(self, image: Image.Image, dpi: int, timeout: float,
                 scratch: Path | None = None) -> int | None:
        self.count()
        deadline = time.monotonic() + timeout
        gray = image if image.mode == "L" else image.convert("L")
        try:
            with cli._files(gray, scratch, pgm=True) as (base, input_file), \
                    self._child(None, timeout) as child:
                answer = child.call({"op": "osd", "image": input_file, "base": base,
                                     "dpi": dpi}, _left(deadline, timeout), timeout)
        except TesseractFailed as exc:
            if is_transient(exc):
                raise
            return None  # OSD crashed on this page: keep the page's first read, as the CLI
        if not answer.get("ok") or float(answer.get("confidence", 0.0)) < 2.0:
            return None  # too few characters to tell
        # tesseract's orient_deg turned counter-clockwise makes the page upright, as PIL
        # turns (the CLI's "Rotate" is the same clockwise; checked for 90, 180 and 270).
        return int(answer["degrees"]) % 360

    def close(self) -> None:
        self._pool.close()


def _left(deadline: float, timeout: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(f"tesseract took longer than {timeout:.3g} s (starting)")
    return left


def _message(answer: dict[str, Any], base: str) -> str:
    """The child's error and the first lines tesseract printed for this page."""
    try:
        printed = Path(f"{base}.err").read_text("utf-8", "replace")
    except OSError:
        printed = ""
    lines = [line.strip() for line in printed.splitlines() if line.strip()]
    return "; ".join([str(answer.get("error", "tesseract failed")), *lines[:2]])[:300]


def make_engine(name: str, tessdata: str | None, workers: int) -> cli.Engine:
    if name == "tesserocr":
        return cli.TesserocrEngine(tessdata, workers)
    if name == "libtesseract":
        library = find_library()
        if library is None:  # the config check says so first; this guards direct use
            raise TesseractFailed("tesseract's library (libtesseract) was not found")
        return LibtessEngine(library, tessdata, workers)
    return cli.PytesseractEngine(tessdata)
