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
from faxflow_ocr import prep

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

    return tuple(getattr(zxingcpp.BarcodeFormat, z) for n in names for z in FORMATS[n])


# Read again where the first pass decoded nothing: the codes of cover sheets. A retry costs
# one zxing pass over the page (~10 ms for these two, three times that for every format).
RETRY_FORMATS = frozenset({"qr", "datamatrix"})


class Reader:
    """The barcodes of one page, read in the page pass.

    `first` reads every wanted format on the square-pixel page, upright only (zxing's
    rotated scans cost two thirds of a pass; QR, Aztec, PDF417 and 1D codes read upside
    down anyway). `retry`, only when that decoded nothing, reads QR and DataMatrix turned
    any way on a cleaned-up copy the page pass makes for the OCR anyway: the despeckled page
    (noisy pages) or the smoothed one (clean pages). A symbol zxing saw but could not decode
    is retried in every format. docs/barcodes.md has the measurements.
    """

    def __init__(self, formats: Iterable[str], dpi: float, page: int,
                 ydpi: float | None = None) -> None:
        """`dpi`, `ydpi`: pixels per inch across and down the page read (a fine fax page
        is 204 x 196: millimetres down it are 4% longer than across)."""
        self.formats = tuple(sorted(formats))
        self.scale = 25.4 / dpi if dpi > 0 else 25.4 / 200
        self.yscale = 25.4 / ydpi if ydpi else self.scale
        self.page = page
        self.codes: list[Barcode] = []
        self.seen = False  # a symbol was found but not decoded
        self.seconds = 0.0  # CPU time spent in zxing (bench/barcodes.py reports it)
        self._gray: Image.Image | None = None

    def first(self, gray: Image.Image) -> None:
        self._gray = gray
        self._read(gray, self.formats, errors=True, rotate=False)

    def retry(self, cleaned: Image.Image | None = None, turned: float = 0.0) -> None:
        """`cleaned`: the page cleaned up (None: a box blur is made here), levelled by
        `turned` degrees from the page `first` read (prep.deskew)."""
        if self.codes or not self.formats:
            return
        formats = self.formats if self.seen else \
            tuple(f for f in self.formats if f in RETRY_FORMATS)
        if not formats:
            return
        if cleaned is None:
            if self._gray is None:
                return
            cleaned, turned = prep.box3(self._gray), 0.0
        self._read(cleaned, formats, errors=False, rotate=True, downscale=self.seen,
                   turned=turned)

    def _read(self, gray: Image.Image, formats: tuple[str, ...], errors: bool, rotate: bool,
              downscale: bool = True, turned: float = 0.0) -> None:
        import zxingcpp

        started = time.process_time()
        # try_invert: fax pages are black on white; inverted codes are not worth a pass.
        found = zxingcpp.read_barcodes(gray, formats=_formats(formats), try_invert=False,
                                       try_rotate=rotate, try_downscale=downscale,
                                       return_errors=errors)
        self.seen = any(not c.valid for c in found)
        self.codes = [self._barcode(c, gray.size, turned) for c in found if c.valid]
        self.codes = sorted(self.codes[:MAX_CODES], key=lambda b: (b.box[1], b.box[0]))
        self.seconds += time.process_time() - started

    def _barcode(self, code: Any, size: tuple[int, int], turned: float) -> Barcode:
        p = code.position
        corners = [(c.x, c.y) for c in (p.top_left, p.top_right, p.bottom_right,
                                         p.bottom_left)]
        if turned:
            corners = [prep.unlevel(x, y, size, turned) for x, y in corners]
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        box = (round(min(xs) * self.scale, 1), round(min(ys) * self.yscale, 1),
               round(max(xs) * self.scale, 1), round(max(ys) * self.yscale, 1))
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
