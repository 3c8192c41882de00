"""Realistic sample faxes with known ground-truth text, for tests, demos and OCR tuning.

    from faxflow.samples import make_fax, write_fax
    fax = make_fax(kind="invoice", pages=3, resolution="fine", fmt="pdf", seed=7)
    fax.content        # PDF bytes; fax.page_texts / fax.fields hold the ground truth
    write_fax(fax, "out/")   # out/<name>.pdf and out/<name>.json

Kinds (KINDS): invoice, referral, order, delivery_note, letter, and four that each
share much of one of those's vocabulary, for training and measuring classifiers:
credit_note (invoice), lab_result and prescription (referral), court_document
(letter).  Their layout and wording vary with the seed.

Pages are A4 fax pages, 1 bit, CCITT G4 compressed:

    fine      1728 x 2287 px, 204 x 196 dpi
    standard  1728 x 1143 px, 204 x  98 dpi  (non-square pixels: text is
              squashed 2:1 vertically in pixel space, as in real fax files)

fmt="tiff" gives a multi-page G4 TIFF (one strip per page, min-is-white,
X/YResolution set); fmt="pdf" wraps the very same G4 strips in a PDF with
img2pdf, without re-encoding.  Each page starts with a fax TTI header line
(send date and time, sender fax number, sender name, "P.01/03") and ends with
a "Page 1 of 3" footer.

Ground truth (fax.page_texts, one string per page) is exactly the text drawn,
in reading order, one drawn line per text line, lines separated by "\\n":
the TTI line, the body top to bottom, the footer.  A table row (and the TTI
line, whose parts are spread across the page) is one line with its non-empty
cells joined by single spaces.  Nothing is drawn that is not in the ground
truth, and all text is plain ASCII.

How to compare OCR output with it: normalize whitespace on both sides
(normalize_text: every run of spaces, tabs and newlines becomes one space)
and compare the rest exactly, e.g. cer(page_text, ocr_text), which does
that normalization and returns the character error rate.  Line breaks and
column gaps are thus not scored; case and punctuation are.  Field values
(fax.fields) appear verbatim in the page texts: check them with
normalize_text(value) in normalize_text(ocr_text).

noisy=True adds what real faxes suffer from: a random skew of 0.5-1.5
degrees per page, blur, threshold jitter, specks, a faint vertical streak
and three corrupted scanlines.  skew=<degrees> sets the skew of every page
explicitly (also for clean pages; positive is counter-clockwise).
upside_down_pages=(2,) rotates page 2 (1-based) by 180 degrees, TTI line
included; page_texts still holds its text in upright reading order.

Everything is deterministic: the same arguments always give byte-identical
files.  Text and layout depend only on kind and seed (and on pages, which
decides where the pages break); the noise comes from Python's seeded
Mersenne Twister per page, never from the C library's rand().

Cost (CPU time, measured on the 2-core dev container): about 0.12 s per
clean fine page (drawing 30 ms, resampling 60 ms, G4 encoding 8 ms) and
0.25 s per noisy page; a 200-page document takes about 25 s (clean) or 47 s
(noisy), the PDF wrapping 0.1 s of it.  Only one page bitmap exists at a
time; the compressed pages (20-60 kB each) are collected in memory, so a
200-page run peaks at about 75 MB RSS.

Needs the DejaVu fonts (Debian package fonts-dejavu-core) in
/usr/share/fonts/truetype/dejavu; FontsMissingError says so if they are missing.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .barcodes import BarcodeSpec, Sheet, place, separator
from .content import paginate
from .encode import G4Page, build_pdf, build_tiff, encode_g4
from .kinds import KINDS, PLANNERS
from .metrics import cer, levenshtein, normalize_text
from .render import (
    GEOMETRY,
    FontsMissingError,
    Line,
    check_fonts,
    render_master,
    row,
    text_line,
    to_fax,
    wrap,
)

__all__ = [
    "FORMATS",
    "KINDS",
    "MAX_PAGES",
    "RESOLUTIONS",
    "BarcodeSpec",
    "FontsMissingError",
    "SampleFax",
    "Sheet",
    "cer",
    "levenshtein",
    "make_fax",
    "normalize_text",
    "separator",
    "write_fax",
]

RESOLUTIONS: tuple[str, ...] = ("fine", "standard")
FORMATS: tuple[str, ...] = ("pdf", "tiff")
MAX_PAGES = 200


@dataclass(frozen=True)
class SampleFax:
    """A generated fax document and its ground truth."""

    content: bytes
    extension: str  # "pdf" or "tif"
    content_type: str  # "application/pdf" or "image/tiff"
    page_texts: list[str]
    fields: dict[str, str]
    kind: str
    pages: int
    resolution: str
    name: str  # file name stem that encodes the arguments, used by write_fax
    # Ground truth of the barcodes drawn: {"page", "value", "format", "module_mm", "box_mm"}
    # (box: left, top, right, bottom in mm on the unskewed page).
    barcodes: tuple[dict[str, object], ...] = ()
    # With separator sheets: the pages (1-based) of each part, separator sheets left out.
    parts: tuple[tuple[int, ...], ...] = ()

    @property
    def filename(self) -> str:
        return f"{self.name}.{self.extension}"


def make_fax(
    kind: str = "invoice",
    pages: int = 1,
    resolution: str = "fine",
    fmt: str = "pdf",
    noisy: bool = False,
    skew: float | None = None,
    upside_down_pages: tuple[int, ...] | list[int] = (),
    seed: int = 1,
    text: Sequence[str] | None = None,
    sheets: Sequence[Sheet] = (),
    stickers: Sequence[BarcodeSpec] = (),
) -> SampleFax:
    """Generate a sample fax; see the module docstring for what you get.

    `text` gives the body of each page yourself (one string per page, ``"\n"`` between
    paragraphs, words wrapped to the page width); `pages` is then ``len(text)`` and `kind`
    only chooses the sender on the TTI line. Only printable ASCII is drawn.

    `sheets` inserts cover or separator sheets (`Sheet`, `separator`) with barcodes between
    the content pages; `stickers` puts barcodes on content pages (`BarcodeSpec.page`), on
    white like a label. The result's `pages` then counts the sheets too, and `barcodes`
    and `parts` hold their ground truth."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}, expected one of {', '.join(KINDS)}")
    if text is not None:
        if isinstance(text, str) or not text:
            raise ValueError("text must be a list of page texts, one string per page")
        if any(not (t.isascii() and t.replace("\n", "").isprintable()) for t in text):
            raise ValueError("text must be printable ASCII (\\n between paragraphs)")
        pages = len(text)
    if not 1 <= pages <= MAX_PAGES:
        raise ValueError(f"pages must be 1..{MAX_PAGES}, got {pages}")
    if resolution not in RESOLUTIONS:
        raise ValueError(f"unknown resolution {resolution!r}, expected fine or standard")
    if fmt not in FORMATS:
        raise ValueError(f"unknown fmt {fmt!r}, expected pdf or tiff")
    content_pages = pages
    for sheet in sheets:
        if not 1 <= sheet.before <= pages + 1:
            raise ValueError(f"a sheet goes before page 1..{pages + 1}, not {sheet.before}")
    for spec in stickers:
        if not 1 <= spec.page <= pages:
            raise ValueError(f"a sticker goes on page 1..{pages}, not {spec.page}")
    # Final order: each content page preceded by the sheets that go before it.
    order: list[Sheet | int] = []
    for number in range(1, pages + 2):
        order += [s for s in sheets if s.before == number]
        if number <= pages:
            order.append(number)
    pages = len(order)
    flipped = set(upside_down_pages)
    if not flipped <= set(range(1, pages + 1)):
        raise ValueError(f"upside_down_pages must be page numbers 1..{pages}")
    check_fonts()

    plan = PLANNERS[kind](random.Random(f"faxflow.samples/{seed}/{kind}"))
    bodies = paginate(plan, content_pages) if text is None else [
        [text_line(line) for paragraph in page.split("\n")
         for line in wrap(paragraph, plan.family)] for page in text]
    _, _, xdpi, ydpi = GEOMETRY[resolution]
    digits = max(2, len(str(pages)))
    page_texts: list[str] = []
    encoded: list[G4Page] = []
    drawn: list[dict[str, object]] = []
    for number, item in enumerate(order, 1):
        tti = row([plan.sent, plan.sender_number, plan.sender_name.upper()[:30],
                   f"P.{number:0{digits}d}/{pages:0{digits}d}"], "tti", "tti")
        body = bodies[item - 1] if isinstance(item, int) else sheet_lines(item)
        lines = [tti, *body, text_line(f"Page {number} of {pages}", "footer")]
        page_texts.append("\n".join(line.text for line in lines))
        master = render_master(lines, plan.family)
        codes = list(item.barcodes) if isinstance(item, Sheet) else \
            [s for s in stickers if s.page == item]
        for spec in codes:
            box = place(master, spec, (-1.0, 45.0) if isinstance(item, Sheet) else
                        (150.0, 12.0))
            drawn.append({"page": number, "value": spec.value, "format": spec.format,
                          "module_mm": spec.module_mm, "box_mm": box})
        # One generator per page: a page's noise does not depend on other pages.
        rng = random.Random(f"faxflow.samples/{seed}/{kind}/{pages}/{resolution}/{number}")
        angle = rng.uniform(0.5, 1.5) * rng.choice((-1, 1)) if noisy else 0.0
        bitmap = to_fax(master, resolution, noisy=noisy,
                        skew=angle if skew is None else skew,
                        upside_down=number in flipped, rng=rng)
        encoded.append(encode_g4(bitmap, xdpi, ydpi))
        del bitmap  # keep only the compressed page

    tiff = build_tiff(encoded)
    fields = {**(plan.fields if text is None else {}), "sender_name": plan.sender_name,
              "sender_number": plan.sender_number}
    name = f"{kind}_{resolution}_{pages}p_s{seed}" + ("_noisy" if noisy else "")
    if text is not None:
        name += "_text" + hashlib.sha256("\f".join(text).encode()).hexdigest()[:8]
    if skew is not None:
        name += f"_skew{skew:g}"
    if flipped:
        name += "_ud" + "-".join(str(n) for n in sorted(flipped))
    if sheets or stickers:
        name += "_bc" + hashlib.sha256(repr((list(sheets), list(stickers))).encode()
                                       ).hexdigest()[:8]
    parts = split_truth(order) if any(s.separator for s in sheets) else ()
    if fmt == "pdf":
        return SampleFax(build_pdf(tiff), "pdf", "application/pdf", page_texts, fields, kind,
                         pages, resolution, name, tuple(drawn), parts)
    return SampleFax(tiff, "tif", "image/tiff", page_texts, fields, kind, pages, resolution,
                     name, tuple(drawn), parts)


def sheet_lines(sheet: Sheet) -> list[Line]:
    """What a sheet says: its title and, when printable, each barcode's value (the drawn
    text is the ground truth, so nothing else is drawn)."""
    lines = [text_line(sheet.title, "head")] if sheet.title else []
    if sheet.show_value:
        lines += [text_line(spec.value) for spec in sheet.barcodes
                  if spec.value.isascii() and spec.value.isprintable() and
                  0 < len(spec.value) <= 60]
    return lines


def split_truth(order: list[Sheet | int]) -> tuple[tuple[int, ...], ...]:
    """The parts a splitter should find: runs of pages between separator sheets."""
    parts: list[list[int]] = [[]]
    for number, item in enumerate(order, 1):
        if isinstance(item, Sheet) and item.separator:
            parts.append([])
        else:
            parts[-1].append(number)
    return tuple(tuple(p) for p in parts if p)


def write_fax(fax: SampleFax, folder: str | Path) -> Path:
    """Write the document and a JSON sidecar (same stem) into folder; returns the document path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / fax.filename
    path.write_bytes(fax.content)
    sidecar: dict[str, object] = {
        "file": path.name,
        "content_type": fax.content_type,
        "kind": fax.kind,
        "pages": fax.pages,
        "resolution": fax.resolution,
        "fields": fax.fields,
        "page_texts": fax.page_texts,
    }
    if fax.barcodes:
        sidecar["barcodes"] = list(fax.barcodes)
    if fax.parts:
        sidecar["parts"] = [list(p) for p in fax.parts]
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=1, ensure_ascii=False) + "\n",
                                         encoding="utf-8")
    return path
