"""The libtesseract engine, the default: the CLI's own library, loaded once per pool thread in
a child process (libtess_child.py) that reads page after page.

The tesseract CLI spends ~80 ms of CPU starting (loading the model and its dictionaries)
on every page, 10% of a fax page's read and most of a small page's; the child starts once.
It reads each page through tesseract's ProcessPages with the same TSV (and PDF) renderers as
the CLI, so the text is the CLI's, byte for byte (tested). It stays a separate process for
the reasons the CLI is one: a page that runs out of time is stopped by killing it, and a
page that crashes tesseract takes down only the child, which the next page replaces.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import json
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import IO, Any

from PIL import Image

from faxflow_ocr import engine as cli
from faxflow_ocr.engine import OcrResult
from faxflow_ocr.failures import is_transient
from faxflow_ocr.tools import limit_threads

CHILD = Path(__file__).with_name("libtess_child.py")
LIBRARY_NAMES = ("libtesseract.so.5", "libtesseract.so.4", "libtesseract.5.dylib",
                 "libtesseract.dylib")
# A child reads this many pages, then the next page gets a fresh one: whatever a long run
# leaves behind in tesseract (caches, fragmentation) is given back now and then.
PAGES_PER_CHILD = 500
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


class TesseractFailed(RuntimeError):
    """tesseract could not read a page, or its child process ended (`status`: the child's
    exit status, negative for a signal, as pytesseract's TesseractError has it)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class StartFailed(TesseractFailed):
    """A child could not load tesseract (a model file missing or unreadable, the library
    broken): the machine's fault, not the page's, so the fax comes back later, as when the
    tesseract command is missing (failures.is_transient)."""


class _Child:
    """One child process: tesseract loaded with one set of languages."""

    def __init__(self, library: str, tessdata: str | None, languages: str,
                 timeout: float) -> None:
        """`timeout`: seconds the start may take (at most START_SECONDS)."""
        self.languages = languages
        self.pages = 0
        self.busy = False  # a request is out and its answer not read: unusable if left so
        self._buffer = b""
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(CHILD), library, tessdata or "", languages,
             str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**os.environ, "OMP_THREAD_LIMIT": "1"})
        try:
            ready = self._answer(min(START_SECONDS, timeout), "start")
        except TesseractFailed as exc:
            self.stop()
            raise StartFailed(f"tesseract did not start: {exc}", exc.status) from None
        except BaseException:
            self.stop()
            raise
        if not ready.get("ok"):
            self.stop()
            raise StartFailed(str(ready.get("error", "tesseract did not start")))

    def call(self, request: dict[str, Any], timeout: float,
             limit: float | None = None) -> dict[str, Any]:
        """The child's answer to `request` within `timeout` seconds; `limit`: the time
        the caller had in all, for the message when it runs out."""
        stdin: IO[bytes] = self.proc.stdin  # type: ignore[assignment]
        self.busy = True
        try:
            stdin.write(json.dumps(request).encode() + b"\n")
            stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._ended() from None
        self.pages += 1
        answer = self._answer(timeout, request["op"], limit)
        self.busy = False
        return answer

    def _answer(self, timeout: float, what: str, limit: float | None = None,
                ) -> dict[str, Any]:
        out: IO[bytes] = self.proc.stdout  # type: ignore[assignment]
        deadline = time.monotonic() + timeout
        waiting = select.poll()  # not select(): a busy worker may hold fds above 1024
        waiting.register(out, select.POLLIN)
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not waiting.poll(left * 1000):
                self.stop()
                raise TimeoutError(f"tesseract ({what}) took longer than "
                                   f"{limit or timeout:.3g} s")
            chunk = os.read(out.fileno(), 65536)
            if not chunk:
                raise self._ended()
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _ended(self) -> TesseractFailed:
        status = self.proc.wait()
        how = f"signal {-status}" if status < 0 else f"status {status}"
        return TesseractFailed(f"tesseract stopped ({how})", status)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """Kill the child (its page ran out of time, or the engine closes)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                # closing stdin flushes a request a dead child never read: EPIPE
                with contextlib.suppress(OSError):
                    pipe.close()

    def close(self) -> None:
        """Let the child end by itself (EOF on its stdin), killing it if it does not."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.stop()


class LibtessEngine(cli._Counter):
    """Children kept per set of languages; a pool thread takes one, reads a page, gives it
    back. At most `workers` children are kept idle (the pool has `workers` threads)."""

    def __init__(self, library: str, tessdata: str | None, workers: int) -> None:
        super().__init__()
        limit_threads()
        self.library = library
        self.tessdata = tessdata
        self.workers = max(1, workers)
        self._idle: list[_Child] = []  # oldest first; under _lock
        self._lock = threading.Lock()
        self._closed = False
        # An engine dropped without close() (a tool, a test, a service replaced) must not
        # leave its children waiting for pages for as long as this process lives.
        self._release = weakref.finalize(self, _close_idle, self._idle, self._lock)

    @contextmanager
    def _child(self, languages: str | None, timeout: float) -> Iterator[_Child]:
        """An idle child with `languages` (None: any, for OSD), else a new one started
        within `timeout` seconds."""
        child = self._take(languages, timeout)
        try:
            yield child
        finally:
            if child.busy:  # interrupted between a request and its answer
                child.stop()
            self._give_back(child)

    def _take(self, languages: str | None, timeout: float) -> _Child:
        with self._lock:
            # killed while idle (the OOM killer): dropped, and replaced if need be
            dead = [child for child in self._idle if not child.alive]
            self._idle[:] = [child for child in self._idle if child.alive]
            found = next((child for child in reversed(self._idle)
                          if languages in (None, child.languages)), None)
            if found is not None:
                self._idle.remove(found)
        for child in dead:
            child.stop()
        # OSD has its own model: a child started for it alone loads only that.
        return found or _Child(self.library, self.tessdata, languages or "osd", timeout)

    def _give_back(self, child: _Child) -> None:
        if not child.alive or child.pages >= PAGES_PER_CHILD:
            child.close()
            return
        with self._lock:
            if self._closed:
                surplus = [child]
            else:
                self._idle.append(child)
                surplus = self._idle[:-self.workers]  # the oldest beyond one per thread
                del self._idle[:-self.workers]
        for extra in surplus:
            extra.close()

    def ocr(self, image: Image.Image, languages: str, psm: int, dpi: int, timeout: float,
            want_pdf: bool = False, picture: Image.Image | None = None,
            scratch: Path | None = None) -> OcrResult:
        self.count()
        deadline = time.monotonic() + timeout  # a child's start counts in the page's time
        with cli._files(cli._for_cli(image), scratch) as (base, input_file), \
                self._child(languages, timeout) as child:
            left = _left(deadline, timeout)
            answer = child.call({"op": "ocr", "image": input_file, "base": base, "psm": psm,
                                 "dpi": dpi, "pdf": want_pdf, "timeout": left}, left,
                                timeout)
            if not answer.get("ok"):
                raise TesseractFailed(_message(answer, base))
            return cli.result_of(base, want_pdf, picture)

    def rotation(self, image: Image.Image, dpi: int, timeout: float,
                 scratch: Path | None = None) -> int | None:
        self.count()
        deadline = time.monotonic() + timeout
        gray = image if image.mode == "L" else image.convert("L")
        try:
            with cli._files(gray, scratch) as (base, input_file), \
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
        with self._lock:
            self._closed = True  # children still reading are closed when given back
        self._release()



def _close_idle(idle: list[_Child], lock: threading.Lock) -> None:
    """Close the idle children (the list itself: the finalizer must not hold the engine)."""
    with lock:
        children = idle[:]
        idle.clear()
    for child in children:
        child.close()


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
