"""Barcodes on sample pages: cover sheets, separator sheets and stickers on content pages.

A barcode is drawn like everything else on a sample page: onto the 300 dpi master at its
printed size (`module_mm`, the width of one module or narrow bar), then resampled to fax
geometry, thresholded and, for noisy pages, blurred, skewed and specked with the rest of
the page. So a 0.5 mm QR module is 4 fax pixels wide and 1.9 scan lines tall on a
standard-resolution page, as a real fax machine would send it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw

from .render import MASTER_DPI, PAGE_W_MM

# Our format names -> zxing-cpp's (the reader in the OCR plugin uses the same names).
FORMATS: dict[str, str] = {
    "qr": "QRCode",
    "datamatrix": "DataMatrix",
    "pdf417": "PDF417",
    "aztec": "Aztec",
    "code128": "Code128",
    "code39": "Code39",
    "ean13": "EAN13",
}
LINEAR = frozenset({"code128", "code39", "ean13"})
LINEAR_HEIGHT_MM = 12.0


@dataclass(frozen=True)
class BarcodeSpec:
    """One barcode to draw. `module_mm`: printed size of one module (2D) or narrow bar
    (1D). `x_mm`, `y_mm`: its top-left corner (quiet zone included) on the page; None
    puts it in the middle of a sheet, or top right on a content page."""

    value: str
    format: str = "qr"
    module_mm: float = 0.5
    x_mm: float | None = None
    y_mm: float | None = None
    page: int = 1  # for a sticker on a content page (make_fax(stickers=...)): which one


@dataclass(frozen=True)
class Sheet:
    """A page of its own inserted before content page `before` (1-based; pages + 1: at the
    end): a cover sheet or a separator sheet with a title and its barcodes."""

    before: int
    title: str = "Cover sheet"
    barcodes: tuple[BarcodeSpec, ...] = ()
    show_value: bool = True  # the value in clear text under the title (if printable ASCII)
    separator: bool = False  # ground truth: the fax is split here (SampleFax.parts)


def separator(before: int, value: str = "FAXFLOW-SPLIT", module_mm: float = 0.7) -> Sheet:
    """A separator sheet before content page `before`."""
    return Sheet(before, "Separator sheet", (BarcodeSpec(value, "qr", module_mm),),
                 separator=True)


def check(spec: BarcodeSpec) -> None:
    if spec.format not in FORMATS:
        raise ValueError(f"unknown barcode format {spec.format!r}, expected one of "
                         f"{', '.join(FORMATS)}")
    if not 0.1 <= spec.module_mm <= 5:
        raise ValueError("module_mm must be between 0.1 and 5")


def symbol(spec: BarcodeSpec) -> Image.Image:
    """The barcode at one pixel per module, quiet zones included (white = 255)."""
    import zxingcpp

    check(spec)
    fmt = getattr(zxingcpp.BarcodeFormat, FORMATS[spec.format])
    try:
        code = zxingcpp.create_barcode(spec.value, fmt)
    except Exception as exc:  # zxing's own message: "Invalid character", too long, ...
        raise ValueError(f"cannot encode {spec.value[:40]!r} as {spec.format}: {exc}") from None
    bitmap: Any = code.to_image(scale=1, add_quiet_zones=True)
    view = memoryview(bitmap)
    height, width = (view.shape or (0, 0))[:2]
    return Image.frombytes("L", (width, height), bytes(view))


def scaled(spec: BarcodeSpec) -> Image.Image:
    """The barcode at its printed size on the master (nearest neighbour: modules stay
    sharp, some a pixel wider than others, as a printer makes them)."""
    image = symbol(spec)
    px = spec.module_mm * MASTER_DPI / 25.4
    width = round(image.width * px)
    if spec.format in LINEAR:
        height = round(LINEAR_HEIGHT_MM * MASTER_DPI / 25.4)
        image = image.crop((0, 0, image.width, 1))
    else:
        height = round(image.height * px)
    return image.resize((width, height), Image.Resampling.NEAREST)


def place(master: Image.Image, spec: BarcodeSpec, default: tuple[float, float]
          ) -> tuple[float, float, float, float]:
    """Paste the barcode onto the master (on white, like a label); returns its box in mm
    (left, top, right, bottom) as it lies on the unskewed page."""
    image = scaled(spec)
    mm = MASTER_DPI / 25.4
    x_mm = spec.x_mm if spec.x_mm is not None else default[0]
    y_mm = spec.y_mm if spec.y_mm is not None else default[1]
    if x_mm < 0:  # centred
        x_mm = (PAGE_W_MM - image.width / mm) / 2
    x, y = round(x_mm * mm), round(y_mm * mm)
    if x + image.width > master.width or y + image.height > master.height:
        raise ValueError(f"barcode {spec.format} of {image.width / mm:.0f} x "
                         f"{image.height / mm:.0f} mm does not fit at ({x_mm:.0f}, "
                         f"{y_mm:.0f}) mm")
    ImageDraw.Draw(master).rectangle((x, y, x + image.width - 1, y + image.height - 1),
                                     fill=255)
    master.paste(image, (x, y))
    return (round(x / mm, 1), round(y / mm, 1), round((x + image.width) / mm, 1),
            round((y + image.height) / mm, 1))
