"""The child process of the libtesseract engine (libtess.py): tesseract's library loaded once,
then page after page read the way the CLI reads a file.

Run as a file with `python -I -S libtess_child.py LIBRARY TESSDATA LANGUAGES PARENT_PID`, so
it needs only the standard library. One JSON request per line on stdin, one JSON answer per line on
the protocol descriptor that was stdout; what the library prints (fd 1 and 2) goes to the
request's own `.err` file, or nowhere. EOF on stdin ends it.

    {"op": "ocr", "image": PATH, "base": BASE, "psm": 4, "dpi": 204, "pdf": false,
     "timeout": 60}
        -> BASE.txt (and BASE.pdf), exactly as `tesseract PATH BASE --psm 4 --dpi 204
           [pdf]` writes them (tesseract's ProcessPages, as the CLI calls it); answer
           {"ok": true, "confidence": MEAN, "words": N}: the words' confidences as
           tesseract's AllWordConfidences gives them (0-100), MEAN null without words
    {"op": "osd", "image": PATH, "base": BASE, "dpi": 204}   PATH an 8-bit PGM (P5)
        -> {"ok": true, "degrees": 90, "confidence": 4.1} or {"ok": false, "error": ...}
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import signal
import sys
from collections.abc import Callable
from typing import Any

P = ctypes.c_void_p
S = ctypes.c_char_p


def bind(path: str) -> Any:
    lib = ctypes.CDLL(path)
    signatures: dict[str, tuple[list[Any], Any]] = {
        "TessBaseAPICreate": ([], P),
        "TessBaseAPIInit3": ([P, S, S], ctypes.c_int),
        "TessBaseAPIEnd": ([P], None),
        "TessBaseAPIDelete": ([P], None),
        "TessBaseAPISetPageSegMode": ([P, ctypes.c_int], None),
        "TessBaseAPISetVariable": ([P, S, S], ctypes.c_int),
        "TessBaseAPIGetDatapath": ([P], S),
        "TessBaseAPIProcessPages": ([P, S, S, ctypes.c_int, P], ctypes.c_int),
        "TessBaseAPISetImage": ([P, S, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                 ctypes.c_int], None),
        "TessBaseAPISetSourceResolution": ([P, ctypes.c_int], None),
        "TessBaseAPIDetectOrientationScript": (
            [P, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_float),
             ctypes.POINTER(S), ctypes.POINTER(ctypes.c_float)], ctypes.c_int),
        "TessBaseAPIClear": ([P], None),
        "TessTextRendererCreate": ([S], P),
        "TessBaseAPIAllWordConfidences": ([P], ctypes.POINTER(ctypes.c_int)),
        "TessDeleteIntArray": ([ctypes.POINTER(ctypes.c_int)], None),
        "TessPDFRendererCreate": ([S, S, ctypes.c_int], P),
        "TessResultRendererInsert": ([P, P], None),
        "TessDeleteResultRenderer": ([P], None),
    }
    for name, (args, result) in signatures.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = args, result
    return lib


class Tesseract:
    def __init__(self, library: str, tessdata: str, languages: str) -> None:
        self.lib = bind(library)
        self.tessdata = tessdata.encode() or None
        self.api = self._start(languages)
        # OSD's own model, loaded when first asked (a child started for OSD alone has it)
        self.osd_api: int | None = self.api if languages == "osd" else None

    def _start(self, languages: str) -> int:
        api = self.lib.TessBaseAPICreate()
        if self.lib.TessBaseAPIInit3(api, self.tessdata, languages.encode()) != 0:
            self.lib.TessBaseAPIDelete(api)
            raise RuntimeError(f"tesseract could not load {languages!r}")
        return int(api)

    def ocr(self, request: dict[str, Any]) -> dict[str, Any]:
        lib, api = self.lib, self.api
        base = request["base"].encode()
        lib.TessBaseAPISetPageSegMode(api, int(request["psm"]))
        lib.TessBaseAPISetVariable(api, b"user_defined_dpi", str(int(request["dpi"])).encode())
        # The text renderer, not the TSV one: tesseract 5.3 builds a TSV by walking its
        # result iterator word by word, and each step restarts the text line from the top
        # of the page (PAGE_RES_IT::restart_row): quadratic in the words, +1.1 s (17%) on a
        # dense 2,150-word page, ~1% on a fax page. The confidences come from the page's
        # words directly (AllWordConfidences), in one pass.
        renderer = lib.TessTextRendererCreate(base)
        if request.get("pdf"):
            lib.TessResultRendererInsert(renderer, lib.TessPDFRendererCreate(
                base, lib.TessBaseAPIGetDatapath(api), 0))
        try:
            # A backstop past the parent's own limit, which kills this process first:
            # tesseract gives up by itself if nobody is left to do so.
            backstop = round((float(request.get("timeout", 60)) + 5) * 1000)
            done = lib.TessBaseAPIProcessPages(api, request["image"].encode(), None,
                                               backstop, renderer)
        finally:
            lib.TessDeleteResultRenderer(renderer)  # also the ones inserted; writes the files
        if not done:
            return {"ok": False, "error": "tesseract failed"}
        confidences = self._confidences()
        lib.TessBaseAPIClear(api)  # the page's results, not kept until the next page
        mean = sum(confidences) / len(confidences) if confidences else None
        return {"ok": True, "confidence": mean, "words": len(confidences)}

    def _confidences(self) -> list[int]:
        found = self.lib.TessBaseAPIAllWordConfidences(self.api)
        if not found:
            return []
        values: list[int] = []
        try:
            while found[len(values)] != -1:  # the array ends with -1
                values.append(int(found[len(values)]))
        finally:
            self.lib.TessDeleteIntArray(found)
        return values

    def osd(self, request: dict[str, Any]) -> dict[str, Any]:
        lib = self.lib
        if self.osd_api is None:
            self.osd_api = self._start("osd")
        api = self.osd_api
        width, height, pixels = read_pgm(request["image"])
        lib.TessBaseAPISetPageSegMode(api, 0)
        lib.TessBaseAPISetImage(api, pixels, width, height, 1, width)
        lib.TessBaseAPISetSourceResolution(api, int(request["dpi"]))
        degrees, confidence = ctypes.c_int(), ctypes.c_float()
        script, script_confidence = S(), ctypes.c_float()
        found = lib.TessBaseAPIDetectOrientationScript(
            api, ctypes.byref(degrees), ctypes.byref(confidence), ctypes.byref(script),
            ctypes.byref(script_confidence))
        lib.TessBaseAPIClear(api)
        if not found:
            return {"ok": False, "error": "too few characters to tell"}
        return {"ok": True, "degrees": degrees.value, "confidence": confidence.value}

    def close(self) -> None:
        for api in dict.fromkeys((self.api, self.osd_api)):
            if api is not None:
                self.lib.TessBaseAPIEnd(api)
                self.lib.TessBaseAPIDelete(api)


_PGM = re.compile(rb"P5\s+(\d+)\s+(\d+)\s+255\s")  # then the pixels, from the next byte


def read_pgm(path: str) -> tuple[int, int, bytes]:
    """An 8-bit binary PGM as Pillow writes it (no comments): width, height, pixels. The
    header ends with exactly one whitespace byte; the pixels after it may be any bytes,
    whitespace values included."""
    with open(path, "rb") as f:
        data = f.read()
    header = _PGM.match(data)
    if header is None:
        raise ValueError("not an 8-bit PGM")
    width, height = int(header[1]), int(header[2])
    pixels = data[header.end():]
    if len(pixels) != width * height:
        raise ValueError("PGM is short")
    return width, height, pixels


def die_with_parent(parent: int) -> None:
    """SIGKILL when the worker ends (Linux): a child left behind would go on reading a
    page, outside the pool's count, into a spool folder being cleaned up."""
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the worker ended before prctl (it may itself be pid 1)
        sys.exit(1)


def memory_giver() -> Callable[[], object]:
    """Hands the page's freed memory back to the system (glibc keeps it otherwise): an idle
    child then holds about its model, not its largest page so far."""
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: not glibc
        trim = ctypes.CDLL(None).malloc_trim
        return lambda: trim(0)
    return lambda: None


def main() -> None:
    library, tessdata, languages, parent = sys.argv[1:5]
    die_with_parent(int(parent))
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)  # the library prints to fd 1 and 2; the protocol has its own fd
    os.dup2(quiet, 2)
    try:
        tesseract = Tesseract(library, tessdata, languages)
    except Exception as exc:
        answers.write(json.dumps({"ok": False, "error": str(exc)}) + "\n")
        return
    answers.write(json.dumps({"ok": True}) + "\n")
    give_back_memory = memory_giver()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            err = os.open(f"{request['base']}.err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                          0o600)
            os.dup2(err, 1)
            os.dup2(err, 2)
            os.close(err)
            answer = tesseract.osd(request) if request["op"] == "osd" else \
                tesseract.ocr(request)
        except Exception as exc:
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            os.dup2(quiet, 1)
            os.dup2(quiet, 2)
        answers.write(json.dumps(answer) + "\n")
        give_back_memory()
    tesseract.close()


if __name__ == "__main__":
    main()
