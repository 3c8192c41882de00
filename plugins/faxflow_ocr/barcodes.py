"""Barcodes on a page, read with zxing-cpp from the square-pixel page the OCR prepares.

Read before despeckling and levelling: zxing binarizes locally and finds codes at any
angle itself, and a median over small modules eats them. Only where zxing saw a symbol
(a finder pattern, a start/stop pattern) but decoded nothing is the page read again,
with a light clean-up (docs/barcodes.md has the measurements behind each step).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from functools import cache
from typing import Any

from PIL import Image, ImageFilter

from faxflow.types import MAX_BARCODE_VALUE, Barcode

log = logging.getLogger("faxflow.ocr")

# Our names -> zxing-cpp's BarcodeFormat names; "ean" is every EAN/UPC variant.
FORMATS: dict[str, tuple[str, ...]] = {
    "qr": ("QRCode",),
    "datamatrix": ("DataMatrix",),
    "pdf417": ("PDF417",),
    "aztec": ("Aztec",),
    "code128": ("Code128",),
    "code39": ("Code39",),
    "ean": ("EAN13", "EAN8", "UPCA", "UPCE"),
}
# What zxing reports -> the name on the Barcode.
NAMES = {"QRCode": "qr", "DataMatrix": "datamatrix", "PDF417": "pdf417", "Aztec": "aztec",
         "Code128": "code128", "Code39": "code39", "EAN13": "ean13", "EAN8": "ean8",
         "UPCA": "upca", "UPCE": "upce"}
MAX_CODES = 50  # per page: a page covered in codes is an attack, not a cover sheet


@cache
def _formats(names: tuple[str, ...]) -> Any:
    import zxingcpp

    wanted = [getattr(zxingcpp.BarcodeFormat, z) for n in names for z in FORMATS[n]]
    joined = wanted[0]
    for fmt in wanted[1:]:
        joined = joined | fmt
    return joined


RETRY_FORMATS = frozenset({"qr", "datamatrix", "aztec", "pdf417"})


class Reader:
    """The barcodes of one page, read in the page pass: `first` on the square-pixel page,
    `retry` on the despeckled one when the first found nothing."""

    def __init__(self, formats: Iterable[str], dpi: float, page: int) -> None:
        self.formats = tuple(sorted(formats))
        self.scale = 25.4 / dpi if dpi > 0 else 25.4 / 200
        self.page = page
        self.codes: list[Barcode] = []
        self.seen = False  # a symbol was found but not decoded
        self.seconds = 0.0

    def first(self, gray: Image.Image) -> None:
        self._read(gray, self.formats, errors=True)

    def retry(self, cleaned: Image.Image | None = None) -> None:
        """Read again with a light clean-up (a 3x3 median; `cleaned` when the OCR made one
        already), where nothing was decoded and a symbol was seen or the page is noisy
        (zxing's detector misses a finder pattern broken by specks, 1 page in 30 at 0.5 mm
        on noisy standard pages). Only the 2D formats: they are what noise breaks."""
        if self.codes or not self.formats or (cleaned is None and not self.seen):
            return
        if cleaned is None:
            cleaned = self._gray.filter(ImageFilter.MedianFilter(3))
        formats = tuple(f for f in self.formats if f in RETRY_FORMATS) if not self.seen \
            else self.formats
        if formats:
            self._read(cleaned, formats, errors=False)

    def _read(self, gray: Image.Image, formats: tuple[str, ...], errors: bool) -> None:
        import zxingcpp

        if not formats:
            return
        started = time.process_time()
        self._gray = gray
        # try_invert: fax pages are black on white; inverted codes are not worth a pass.
        found = zxingcpp.read_barcodes(gray, formats=_formats(formats), try_invert=False,
                                       return_errors=errors)
        self.seen = any(not c.valid for c in found)
        self.codes = [self._barcode(c) for c in found if c.valid][:MAX_CODES]
        self.codes.sort(key=lambda b: (b.box[1], b.box[0]))  # reading order
        self.seconds += time.process_time() - started

    def _barcode(self, code: Any) -> Barcode:
        p = code.position
        xs = (p.top_left.x, p.top_right.x, p.bottom_right.x, p.bottom_left.x)
        ys = (p.top_left.y, p.top_right.y, p.bottom_right.y, p.bottom_left.y)
        box = (round(min(xs) * self.scale, 1), round(min(ys) * self.scale, 1),
               round(max(xs) * self.scale, 1), round(max(ys) * self.scale, 1))
        name = code.format.name
        return Barcode(code.text[:MAX_BARCODE_VALUE], NAMES.get(name, name.lower()),
                       self.page, "", box, int(code.orientation))


def read(gray: Image.Image, dpi: float, formats: Iterable[str], page: int = 0,
         noisy: bool = False) -> list[Barcode]:
    """Every barcode of the wanted `formats` on a square-pixel grayscale page of `dpi`
    pixels per inch (for the box in mm), as the page pass reads them."""
    reader = Reader(formats, dpi, page)
    reader.first(gray)
    reader.retry(gray.filter(ImageFilter.MedianFilter(3)) if noisy else None)
    return reader.codes
