"""A stored document's pages as PNG images, and nothing else: the console never hands a
document to the browser to render (no inline PDF, no HTML).

PDF: poppler's `pdfinfo` counts the pages and `pdftoppm` renders one page at a time, both as
child processes with a time limit (and, where `prlimit` exists, a memory and CPU limit), so a
hostile or broken PDF costs at most one bounded process and never the console. TIFF: Pillow,
one frame at a time, after checking the frame's size. At most two renders run at once; the
images are kept in a small in-memory cache (fax pages do not change).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

SIZES = {"thumb": 220, "page": 1100}  # width in pixels
MAX_PAGES = 500
MAX_PIXELS = 60_000_000  # a fax page at 400 dpi is ~15 MP; anything far larger is hostile
TIMEOUT = 20.0
MEMORY = 1 << 30  # bytes of address space for one pdftoppm
CACHE_BYTES = 48 << 20


class Unreadable(Exception):
    """The document (or page) cannot be shown; the message is for people, holds no data."""


@dataclass(frozen=True, slots=True)
class Kind:
    name: str  # "pdf", "tiff" or "other"
    content_type: str


def kind_of(extension: str, data: bytes) -> Kind:
    """What a document is, by its first bytes (the extension comes from the sender)."""
    if data[:5] == b"%PDF-" or (extension.lower() == "pdf" and b"%PDF-" in data[:1024]):
        return Kind("pdf", "application/pdf")
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return Kind("tiff", "image/tiff")
    return Kind("other", "application/octet-stream")


def _limited(command: list[str]) -> list[str]:
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        return command
    return [prlimit, f"--as={MEMORY}", f"--cpu={int(TIMEOUT)}", "--", *command]


class Renderer:
    def __init__(self, cache_bytes: int = CACHE_BYTES) -> None:
        self._cache: OrderedDict[tuple[str, int, str], bytes] = OrderedDict()
        self._counts: dict[str, int | str] = {}
        self._size = 0
        self._limit = cache_bytes
        self._lock = threading.Lock()
        self._busy = threading.BoundedSemaphore(2)

    # --- page counts -----------------------------------------------------------------

    def pages(self, sha256: str, extension: str, data: bytes) -> int:
        """How many pages the document has; Unreadable if it cannot be shown."""
        with self._lock:
            known = self._counts.get(sha256)
        if known is None:
            try:
                known = self._count(kind_of(extension, data), data)
            except Unreadable as exc:
                known = str(exc)
            with self._lock:
                if len(self._counts) > 10_000:
                    self._counts.clear()
                self._counts[sha256] = known
        if isinstance(known, str):
            raise Unreadable(known)
        return known

    def _count(self, kind: Kind, data: bytes) -> int:
        if kind.name == "tiff":
            try:
                with Image.open(io.BytesIO(data)) as image:
                    count = int(getattr(image, "n_frames", 1))
            except (OSError, ValueError, Image.DecompressionBombError):
                raise Unreadable("not a readable TIFF") from None
        elif kind.name == "pdf":
            out = self._run(["pdfinfo", "{file}"], data, "not a readable PDF")
            count = next((int(line.split()[-1]) for line in out.decode("latin-1").splitlines()
                          if line.startswith("Pages:") and line.split()[-1].isdigit()), 0)
        else:
            raise Unreadable("neither a PDF nor a TIFF")
        if count < 1:
            raise Unreadable("the document has no pages")
        return min(count, MAX_PAGES)

    # --- images ----------------------------------------------------------------------

    def cached(self, sha256: str, page: int, size: str) -> bytes | None:
        """The image if it was drawn already (the document need not be read for it)."""
        with self._lock:
            png = self._cache.get((sha256, page, size))
            if png is not None:
                self._cache.move_to_end((sha256, page, size))
            return png

    def png(self, sha256: str, extension: str, data: bytes, page: int, size: str) -> bytes:
        """One page as PNG, `size` "thumb" or "page"; Unreadable if it cannot be drawn."""
        key = (sha256, page, size)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        if not 1 <= page <= self.pages(sha256, extension, data):
            raise Unreadable("no such page")
        width = SIZES[size]
        with self._busy:
            kind = kind_of(extension, data)
            png = self._tiff(data, page, width) if kind.name == "tiff" else \
                self._pdf(data, page, width)
        with self._lock:
            self._cache[key] = png
            self._size += len(png)
            while self._size > self._limit and self._cache:
                _, old = self._cache.popitem(last=False)
                self._size -= len(old)
        return png

    def _pdf(self, data: bytes, page: int, width: int) -> bytes:
        return self._run(["pdftoppm", "-f", str(page), "-l", str(page), "-singlefile", "-png",
                          "-gray", "-scale-to-x", str(width), "-scale-to-y", "-1",
                          "{file}", "{out}"], data, "this page cannot be drawn",
                         output="out.png")

    @staticmethod
    def _tiff(data: bytes, page: int, width: int) -> bytes:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data)) as image:
                    image.seek(page - 1)
                    if image.size[0] * image.size[1] > MAX_PIXELS:
                        raise Unreadable("this page is too large to draw")
                    frame = image.convert("L")
        except (OSError, ValueError, EOFError, Image.DecompressionBombWarning,
                Image.DecompressionBombError):
            raise Unreadable("this page cannot be drawn") from None
        height = max(1, round(frame.size[1] * width / frame.size[0]))
        # Fax TIFFs are often 204 x 98 dpi: scale both ways to width, keeping the page shape.
        xdpi, ydpi = _dpi(frame)
        if xdpi and ydpi and xdpi != ydpi:
            height = max(1, round(frame.size[1] * (xdpi / ydpi) * width / frame.size[0]))
        frame = frame.resize((width, height), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        frame.save(out, "PNG", optimize=True)
        return out.getvalue()

    @staticmethod
    def _run(command: list[str], data: bytes, failure: str, output: str | None = None
             ) -> bytes:
        with tempfile.TemporaryDirectory(prefix="faxflow-console-") as folder:
            source = Path(folder) / "document"
            source.write_bytes(data)
            source.chmod(0o600)
            args = [a.replace("{file}", str(source)).replace("{out}", str(Path(folder) / "out"))
                    for a in command]
            try:
                result = subprocess.run(_limited(args), capture_output=True, timeout=TIMEOUT,
                                        check=False, stdin=subprocess.DEVNULL)
            except (subprocess.TimeoutExpired, OSError):
                raise Unreadable(failure) from None
            if result.returncode != 0:
                raise Unreadable(failure)
            if output is None:
                return result.stdout
            produced = Path(folder) / output
            if not produced.is_file():
                raise Unreadable(failure)
            return produced.read_bytes()


def _dpi(image: Image.Image) -> tuple[float, float]:
    dpi = image.info.get("dpi")
    if isinstance(dpi, tuple) and len(dpi) == 2:
        try:
            return float(dpi[0]), float(dpi[1])
        except (TypeError, ValueError):
            pass
    return 0.0, 0.0


def placeholder(width: int, text: str) -> bytes:
    """A plain image saying why a page is not shown (the page's place stays visible)."""
    height = round(width * 1.414)
    image = Image.new("L", (width, height), 235)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width - 1, height - 1), outline=150)
    y = height // 3
    for line in _wrap(text, max(8, width // 8)):
        draw.text((10, y), line, fill=60)
        y += 14
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines
