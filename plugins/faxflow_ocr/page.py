"""Reading one page: decode, clean up, turn it upright, level it, OCR.

Which way up a page is and how skewed comes first from its text lines (prep.layout, ~15 ms);
tesseract's OSD (0.6-1.4 s) is only asked when the lines leave it in doubt and the page
read badly (`orientation_check`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from faxflow.types import Barcode
from faxflow_ocr import barcodes, prep, raster
from faxflow_ocr.document import PageInfo
from faxflow_ocr.engine import Engine, OcrResult
from faxflow_ocr.extract import Extractor
from faxflow_ocr.options import OcrOptions

# Degrees; below this levelling is not worth it: across a column the lines drift by under a
# fifth of a line, which tesseract's own line finding follows, and the layout measures in
# 0.1 degree steps. A real magazine page measured 0.2 lost its heading when levelled
# (docs/benchmarks.md, real documents; then by a turn, now prep.deskew shears).
MIN_SKEW = 0.3


@dataclass(slots=True)
class PageResult:
    number: int
    result: OcrResult
    noisy: bool
    rotated: int  # degrees turned counter-clockwise before the text was read
    skew: float  # degrees the page was levelled by (0: not turned)
    seconds: float
    barcodes: tuple[Barcode, ...] = ()
    osd: bool = False  # tesseract's orientation check was asked
    lines: bool = True  # text lines were found (prep.layout)


def read_page(path: Path, kind: str, page: PageInfo, options: OcrOptions, engine: Engine,
              languages: str, want_pdf: bool, timeout: float | None = None,
              scratch: Path | None = None, extractor: Extractor | None = None) -> PageResult:
    """One page. `timeout`: seconds for all of it (default `page_timeout`; less when the
    document's budget has less left), shared by poppler and every tesseract run, each of
    which is killed when it runs out. `scratch`: a folder for the engine's files.
    `extractor`: takes a fax PDF page's image out instead of poppler drawing it."""
    started = time.monotonic()
    limit = options.page_timeout if timeout is None else timeout
    deadline = started + limit
    loaded = raster.load(path, kind, page, options, limit, extractor, scratch)
    gray = prep.to_gray(loaded.image)
    xdpi, ydpi = loaded.xdpi, loaded.ydpi
    del loaded
    factor = prep.row_factor(gray.width, gray.height, xdpi, ydpi)
    threshold = options.noise_threshold * (prep.STANDARD_NOISE_SCALE if factor > 1 else 1)
    noisy = options.despeckle == "always" or (
        options.despeckle == "auto" and prep.noise_ratio(gray) > threshold)
    # The page they read has square-ish pixels: a standard page's rows are doubled first.
    codes = barcodes.Reader(options.barcode_formats, xdpi, page.number, ydpi * factor) \
        if options.barcodes else None
    plain = gray  # thicken() would merge 0.4 mm modules on standard pages (10 -> 0 of 10)
    if factor > 1 and not noisy:
        gray = prep.thicken(gray)
    gray = prep.square_pixels(gray, factor)
    if codes is not None:
        codes.first(gray if plain is gray else prep.square_pixels(plain, factor))
    if noisy:  # after squaring: a median over squashed rows eats strokes (17% vs 6% CER)
        gray = prep.despeckle(gray)
        if codes is not None:
            codes.retry(gray)  # the clean-up it needs is this very median
        if factor > 1:
            gray = prep.thin_rows(gray)
    dpi = round(xdpi) if xdpi > 0 else options.dpi
    auto = options.orientation == "auto"
    lines = prep.layout(gray, dpi) if auto or options.deskew else None
    rotated = 0
    if auto and lines is not None and lines.turn:
        # The lines say clearly which way is up: turn before the only read (a rotated page
        # costs one read, not a wasted read, OSD and a second one).
        gray = gray.rotate(lines.turn, expand=True, resample=Image.Resampling.NEAREST)
        rotated = lines.turn
        if rotated in (90, 270):  # the skew was measured across the lines: again
            lines = prep.layout(gray, dpi)
    skew = 0.0
    # psm 4 reads a skewed page's lines out of order (a 1.2 degree page: 8.9% CER, 0.1%
    # level). No lines (a blank page, a photo), or the best angle at the edge of the range
    # searched: nothing to level.
    if options.deskew and lines is not None and lines.skew is not None \
            and abs(lines.skew) >= MIN_SKEW:
        gray, skew = prep.deskew(gray, lines.skew), lines.skew
    # A searchable PDF shows the sharp page; tesseract reads the smoothed copy. Not a blank
    # page: tesseract reads an 8-bit page no better where there is no text, and at more
    # cost (a real 300 dpi blank scan: 1.7x raw tesseract's CPU smoothed).
    blank = lines is not None and lines.blank
    smoothed = prep.smooth(gray, factor > 1, noisy) if options.smooth and not blank else gray
    if codes is not None and not noisy and not blank:
        # Boxes are on the page as stored: a page the lines turned gets the retry on a blur
        # of the page as stored (turns are rare), a levelled one has its boxes mapped back.
        # A blank page has no code the first pass missed: the smallest QR code a cover
        # sheet prints (21 modules of 0.5 mm) is ~0.09% of a page's ink, 9x MIN_TEXT_INK.
        codes.retry(None if rotated or smoothed is gray else smoothed, skew)
    picture = gray if want_pdf and smoothed is not gray else None
    gray = smoothed

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            what = "page_timeout" if limit == options.page_timeout else "its document's budget"
            raise TimeoutError(f"page took longer than {what} ({limit:g} s)")
        return left

    result = engine.ocr(gray, languages, options.psm, dpi, remaining(), want_pdf, picture,
                        scratch)
    osd = orientation_check(options, lines, rotated, result.confidence)
    if osd:
        turn = engine.rotation(gray, dpi, remaining(), scratch)
        if turn:
            upright = gray.rotate(turn, expand=True, resample=Image.Resampling.NEAREST)
            if picture is not None:
                picture = picture.rotate(turn, expand=True, resample=Image.Resampling.NEAREST)
            second = engine.ocr(upright, languages, options.psm, dpi, remaining(), want_pdf,
                                picture, scratch)
            if (second.confidence or 0.0) > (result.confidence or 0.0):
                result, rotated = second, (rotated + turn) % 360
    return PageResult(page.number, result, noisy, rotated, skew, time.monotonic() - started,
                      tuple(codes.codes) if codes is not None else (), osd,
                      lines is None or lines.lines)


def orientation_check(options: OcrOptions, lines: prep.Layout | None, turned: int,
                      confidence: float | None) -> bool:
    """Whether to ask tesseract's OSD (0.6-1.4 s) after the first read.

    "auto": only for a page that read badly (mean confidence under
    `orientation_min_confidence`, upright pages read 65-95) and whose lines leave its
    orientation in doubt. Not for a page without text lines (blank, a photo: OSD has
    nothing to go by), nor for one whose lines say clearly that it is upright (a poor
    scan that reads badly whichever way up). A page turned by its lines that then reads
    badly is checked: the lines may have been wrong."""
    if options.orientation != "auto":
        return options.orientation == "always"
    if (confidence or 0.0) >= options.orientation_min_confidence:
        return False
    if lines is None:
        return True
    if not lines.lines:
        return False
    return turned != 0 or not lines.upright
