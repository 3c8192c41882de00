"""A fax PDF page's own image, taken out by a child process (pdf_child.py) instead of drawn
by poppler: ~4 ms of CPU instead of ~60-80 ms of pdftoppm's on a fax page.

The child reads the hostile file under an address-space limit and answers only for pages
that poppler would draw as exactly that image; anything else, and any failure of the child
(a limit hit, a crash, no answer in time), is None: poppler draws the page, as it would
without this.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from faxflow_ocr.children import Child, ChildFailed, Pool
from faxflow_ocr.document import PageInfo
from faxflow_ocr.failures import is_transient

CHILD = Path(__file__).with_name("pdf_child.py")
START_SECONDS = 10.0
# Address space of a child: Python and qpdf (40 MB measured on a fax page) and the
# inflated data of an image of max_pixels at 3 bytes a pixel, next to its compressed data.
BASE_MEMORY = 256 * 2**20
EXTRACT_SECONDS = 10.0  # a fax page takes ~1 ms; a 40-megapixel JPEG ~0.5 s


class _Child(Child):
    name = "PDF reader"

    def __init__(self, memory: int, timeout: float) -> None:
        super().__init__([sys.executable, "-I", str(CHILD), str(os.getpid()), str(memory)],
                         {"PATH": os.environ.get("PATH", "")}, timeout)


class Extractor:
    """Children kept between pages, at most `workers` idle (one per pool thread)."""

    def __init__(self, workers: int, max_pixels: int) -> None:
        self.memory = BASE_MEMORY + 4 * max_pixels
        self._pool: Pool[_Child] = Pool(workers)

    def image(self, path: Path, page: PageInfo, timeout: float,
              scratch: Path | None = None) -> Image.Image | None:
        """The image of a fax page as stored, or None (poppler should draw it). Takes at
        most `timeout` seconds (and EXTRACT_SECONDS)."""
        if not page.image_object or not page.document_pages:
            return None
        deadline = time.monotonic() + min(timeout, EXTRACT_SECONDS)
        with tempfile.TemporaryDirectory(dir=scratch) as folder:
            out = Path(folder) / "page"
            request = {"op": "extract", "path": str(path), "page": page.number,
                       "pages": page.document_pages, "object": list(page.image_object),
                       "width": page.image_width, "height": page.image_height,
                       "size": [page.width_pt, page.height_pt], "out": str(out)}
            try:
                with self._pool.child(lambda child: True, lambda: _Child(
                        self.memory, min(START_SECONDS, _left(deadline)))) as child:
                    answer = child.call(request, _left(deadline))
            except (ChildFailed, TimeoutError):
                return None  # killed at its limit, or slow: poppler reads lazily
            if not answer.get("ok"):
                return None
            return _read(out, page, str(answer.get("format")), str(answer.get("mode")))

    def close(self) -> None:
        self._pool.close()


def _left(deadline: float) -> float:
    return max(0.001, deadline - time.monotonic())


def _read(out: Path, page: PageInfo, form: str, mode: str) -> Image.Image | None:
    """The child's image; None unless it is exactly the page's image."""
    size = (page.image_width, page.image_height)
    if (form, mode) == ("raw", "L"):
        if out.stat().st_size != size[0] * size[1]:
            return None
        return Image.frombytes("L", size, out.read_bytes())
    if (form, mode) != ("TIFF", "1"):
        return None
    try:  # G3/G4 data in a TIFF the child wrote: its header is the PDF's /Width, /Height
        with Image.open(out, formats=["TIFF"]) as image:
            if image.size != size or image.mode != "1":
                return None
            image.load()
            return image.copy()
    except Exception as exc:  # damaged data: poppler draws what it can of it
        if is_transient(exc):
            raise
        return None
