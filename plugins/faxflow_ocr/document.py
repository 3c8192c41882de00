"""What a document is and what its pages are, read from headers before any page is decoded.

A document that cannot be read at all raises `PermanentError` with a reason meant for a
human (the core puts the document's name and number in front); a single bad page is left to
the page step. A failure of the machine (failures.is_transient) is raised as it is.
"""

from __future__ import annotations

import re
import subprocess
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from faxflow.errors import PermanentError
from faxflow_ocr.failures import is_transient
from faxflow_ocr.tools import tool_env

PDF_MAGIC = b"%PDF-"
TIFF_MAGICS = (b"II*\x00", b"MM\x00*")


@dataclass(frozen=True, slots=True)
class PageInfo:
    """One page as the document's headers describe it, before decoding."""

    number: int  # 1-based
    width_pt: float = 0.0  # PDF page size (after /Rotate)
    height_pt: float = 0.0
    rotate: int = 0
    # The one full-page image of a fax PDF page, or the TIFF frame: pixel size and dpi.
    image_width: int = 0
    image_height: int = 0
    xdpi: float = 0.0
    ydpi: float = 0.0
    # Pixels of the largest image on a PDF page: poppler decodes it whole, whatever the dpi.
    largest_image: int = 0
    # A fax PDF page's one image: its object number and generation, and the document's
    # page count, as poppler sees them (the extract child checks it reads the same).
    image_object: tuple[int, int] | None = None
    document_pages: int = 0


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    kind: str  # "pdf" or "tiff"
    page_count: int
    pages: list[PageInfo]  # only the pages we will read (up to the page cap)


def sniff(path: Path) -> str:
    """'pdf' or 'tiff' from the first bytes; PermanentError for anything else."""
    with path.open("rb") as f:  # an error here is the machine's (our own spool file)
        head = f.read(1024)
    if not head:
        raise PermanentError("the file is empty (0 bytes)")
    if PDF_MAGIC in head:  # the spec allows junk before the header
        return "pdf"
    if head[:4] in TIFF_MAGICS:
        return "tiff"
    expected = path.suffix.lower().lstrip(".")
    what = "a PDF" if expected == "pdf" else "a TIFF" if expected in ("tif", "tiff") else None
    start = _printable(head[:12])
    if what:
        raise PermanentError(f"not {what}: the file starts with {start!r}")
    raise PermanentError(f"unsupported document type: the file starts with {start!r} "
                         "(only PDF and TIFF are read)")


def _printable(data: bytes) -> str:
    text = data.decode("latin-1").lstrip()
    return "".join(c if c.isprintable() else "?" for c in text)[:12]


def inspect(path: Path, kind: str, max_pages: int, timeout: float) -> DocumentInfo:
    if kind == "pdf":
        return _inspect_pdf(path, max_pages, timeout)
    return _inspect_tiff(path, max_pages)


# --- PDF -----------------------------------------------------------------------------------

_PAGE_LINE = re.compile(r"^Page\s+(\d+)\s+(size|rot):\s+(.*)$")
# pdfinfo prints sizes with %g: "612 x 792", "1e+06 x 250"
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_SIZE = re.compile(rf"({_NUMBER}) x ({_NUMBER})")
Image_ = tuple[int, int, float, float, tuple[int, int]]  # pixels, dpi, object


def _inspect_pdf(path: Path, max_pages: int, timeout: float) -> DocumentInfo:
    info = _run(["pdfinfo", "-f", "1", "-l", str(max_pages), str(path)], timeout, path)
    count = 0
    sizes: dict[int, tuple[float, float]] = {}
    rotations: dict[int, int] = {}
    for line in info.splitlines():
        if line.startswith("Pages:"):
            count = int(line.split()[1])
        match = _PAGE_LINE.match(line)
        if match:
            number, what, value = int(match[1]), match[2], match[3]
            if what == "size":
                dims = _SIZE.match(value)
                if dims:
                    sizes[number] = (float(dims[1]), float(dims[2]))
            else:
                rotations[number] = int(float(value.split()[0])) % 360
    if count == 0:
        raise PermanentError("PDF has no pages")
    last = min(count, max_pages)
    for number in range(1, last + 1):
        # A size we cannot read is not a letter page: the pixel limit has to know it.
        width, height = sizes.get(number, (0.0, 0.0))
        if not (0 < width < float("inf") and 0 < height < float("inf")):
            raise PermanentError(f"PDF page {number} has no readable size")
    images = _pdf_images(path, last, timeout)
    pages: list[PageInfo] = []
    for number in range(1, last + 1):
        width, height = sizes[number]
        rotate = rotations.get(number, 0)
        found = images.get(number, [])
        largest = max((w * h for w, h, _, _, _ in found), default=0)
        page = PageInfo(number, width, height, rotate, largest_image=largest)
        if len(found) == 1 and rotate in (0, 180) and _covers_page(found[0], width, height):
            w, h, xdpi, ydpi, image_object = found[0]
            page = replace(page, image_width=w, image_height=h, xdpi=xdpi, ydpi=ydpi,
                           image_object=image_object, document_pages=count)
        pages.append(page)
    return DocumentInfo("pdf", count, pages)


def _pdf_images(path: Path, last: int, timeout: float) -> dict[int, list[Image_]]:
    """The images of each page: pixel size, dpi and object (from `pdfimages -list`)."""
    try:
        out = _run(["pdfimages", "-list", "-f", "1", "-l", str(last), str(path)], timeout, path)
    except PermanentError:
        return {}  # pdfinfo could read it: render instead of guessing
    found: dict[int, list[Image_]] = {}
    for line in out.splitlines()[2:]:
        cols = line.split()
        if len(cols) < 14:
            continue
        try:
            # masks and stencils count too: their pixels are decoded as well
            found.setdefault(int(cols[0]), []).append(
                (int(cols[3]), int(cols[4]), float(cols[12]), float(cols[13]),
                 (int(cols[10]), int(cols[11]))) if cols[2] == "image" else
                (int(cols[3]), int(cols[4]), 0.0, 0.0, (0, 0)))
        except ValueError:
            continue
    return found


def _covers_page(image: Image_, width_pt: float, height_pt: float) -> bool:
    w, h, xdpi, ydpi, _ = image
    if xdpi <= 0 or ydpi <= 0:
        return False
    return (abs(w / xdpi * 72 - width_pt) < 0.03 * width_pt
            and abs(h / ydpi * 72 - height_pt) < 0.03 * height_pt)


def _run(args: list[str], timeout: float, path: Path) -> str:
    try:
        proc = subprocess.run(args, capture_output=True, timeout=timeout, env=tool_env())
    except subprocess.TimeoutExpired:
        raise PermanentError(f"PDF could not be read in {timeout:g} s "
                             f"({args[0]} timed out)") from None
    if proc.returncode != 0:
        message = _first_error(proc.stderr.decode("utf-8", "replace"))
        if "password" in message.lower():
            raise PermanentError("PDF is password-protected")
        raise PermanentError(f"PDF is damaged: {message}")
    return proc.stdout.decode("utf-8", "replace")


def _first_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line] or lines
    return "; ".join(dict.fromkeys(errors[:2]))[:300] or "unreadable"


# --- TIFF ----------------------------------------------------------------------------------


def _inspect_tiff(path: Path, max_pages: int) -> DocumentInfo:
    """Frame sizes from the TIFF directories only (Pillow decodes nothing until load())."""
    pages: list[PageInfo] = []
    try:
        with warnings.catch_warnings():
            # Our own pixel limit applies; Pillow's complaints about bad tags end up in the
            # exception below if they matter.
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                count = getattr(image, "n_frames", 1)
                for index in range(min(count, max_pages)):
                    image.seek(index)
                    xdpi, ydpi = image.info.get("dpi", (0.0, 0.0))
                    pages.append(PageInfo(index + 1, image_width=image.width,
                                          image_height=image.height,
                                          xdpi=float(xdpi), ydpi=float(ydpi)))
    except Image.DecompressionBombError as exc:
        raise PermanentError(f"TIFF is too large to open: {exc}") from None
    except Exception as exc:  # Pillow fails on bad input with any type (TypeError, ...)
        if is_transient(exc):
            raise
        message = str(exc).replace(f"'{path}'", path.name).replace(str(path), path.name)
        raise PermanentError(f"TIFF is damaged: {message or type(exc).__name__}") from None
    return DocumentInfo("tiff", count, pages)
