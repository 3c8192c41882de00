"""Turning one page into one image: the fax image itself (extract, the default) or pdf2image.

Always one page at a time: `convert_from_path` on a whole document holds about 2.9x the raw
bitmap per page (3.8 GB for 50 pages at 300 dpi RGB); page by page stays flat.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from faxflow_ocr.document import PageInfo
from faxflow_ocr.options import OcrOptions


class PageTooLarge(Exception):
    """The page would decode to more pixels than `max_pixels` allows."""


@dataclass(slots=True)
class PageImage:
    image: Image.Image
    xdpi: float
    ydpi: float


def planned_pixels(page: PageInfo, options: OcrOptions) -> tuple[int, int]:
    """Width and height the page will have once decoded (before square pixels)."""
    if page.image_width:
        return page.image_width, page.image_height
    scale = options.dpi / 72
    return round(page.width_pt * scale), round(page.height_pt * scale)


def check_size(page: PageInfo, options: OcrOptions) -> None:
    width, height = planned_pixels(page, options)
    if width * height > options.max_pixels:
        raise PageTooLarge(f"page is too large: {width} x {height} pixels "
                           f"(max_pixels is {options.max_pixels})")
    if page.largest_image > options.max_pixels:
        raise PageTooLarge(f"page holds an image of {page.largest_image} pixels "
                           f"(max_pixels is {options.max_pixels})")


def load(path: Path, kind: str, page: PageInfo, options: OcrOptions,
         timeout: float | None = None) -> PageImage:
    """The page's image; `timeout`: seconds poppler may take (default `page_timeout`)."""
    check_size(page, options)
    if kind == "tiff":
        return _tiff_frame(path, page, options)
    if options.rasterizer == "extract":
        extracted = _extract_fax_image(path, page, options)
        if extracted is not None:
            return extracted
    return _pdf2image(path, page, options,
                      options.page_timeout if timeout is None else timeout)


def _tiff_frame(path: Path, page: PageInfo, options: OcrOptions) -> PageImage:
    with warnings.catch_warnings():
        # Our own limit was checked from the header; Pillow's global one is not ours to move.
        # Its complaints about bad tags end up in the exception if they matter (printed,
        # they would be lines of their own in the worker's log).
        warnings.simplefilter("ignore")
        with Image.open(path) as tiff:
            tiff.seek(page.number - 1)
            tiff.load()
            image = tiff.copy()
    return PageImage(image, page.xdpi, page.ydpi)


def _pdf2image(path: Path, page: PageInfo, options: OcrOptions, timeout: float) -> PageImage:
    from pdf2image import convert_from_path

    seconds = max(1, math.ceil(timeout))  # pdftoppm is killed when it runs out
    if page.image_width:
        # Render onto the fax image's own pixel grid: no resampling, the exact bitmap
        # (200 dpi square rendering measured 0.94% CER against 0.56% for the same page).
        images = convert_from_path(path, size=(page.image_width, page.image_height),
                                   first_page=page.number, last_page=page.number,
                                   grayscale=True, timeout=seconds)
        # poppler leaves gray edges even at 1:1; thresholding them measured worse (2.1% vs
        # 1.1% CER on a standard page), the gray keeps poppler's sub-pixel placement.
        return PageImage(images[0], page.xdpi, page.ydpi)
    images = convert_from_path(path, dpi=options.dpi, first_page=page.number,
                               last_page=page.number, grayscale=True, timeout=seconds)
    return PageImage(images[0], options.dpi, options.dpi)


# Images decoded in this process (pikepdf and Pillow) instead of by poppler: a fax's G4,
# and the JPEG or Flate pictures of scanned pages. JBIG2 needs jbig2dec, which pikepdf
# does not bundle: those pages go to pdf2image.
EXTRACTABLE = {"/CCITTFaxDecode", "/DCTDecode", "/FlateDecode"}
_PLAIN_COLOURS = {"/DeviceGray", "/DeviceRGB", "/CalGray", "/CalRGB"}


def _extract_fax_image(path: Path, page: PageInfo, options: OcrOptions) -> PageImage | None:
    """The page's one image, decoded as it is; None when the page is anything else (more
    than one image, an image that does not cover the page, a mask, a palette, CMYK, a
    /Decode array, JBIG2 ...)."""
    if not page.image_width:
        return None
    import pikepdf

    try:
        with pikepdf.open(path) as pdf:
            pdf_page = pdf.pages[page.number - 1]
            streams = list(pdf_page.get_images().values())
            if len(streams) != 1:
                return None
            picture = pikepdf.PdfImage(streams[0])  # type: ignore[arg-type]
            if len(picture.filters) != 1 or picture.filters[0] not in EXTRACTABLE:
                return None
            if (picture.width, picture.height) != (page.image_width, page.image_height):
                return None
            if picture.filters != ["/CCITTFaxDecode"] and not _plain(streams[0], picture):
                return None
            image = picture.as_pil_image()
    except (pikepdf.PdfError, NotImplementedError, ValueError, OSError):
        return None
    if page.rotate == 180:
        image = image.transpose(Image.Transpose.ROTATE_180)
    return PageImage(image, page.xdpi, page.ydpi)


def _plain(stream: object, picture: object) -> bool:
    """An 8-bit gray or RGB picture (or 1-bit gray) that Pillow shows as poppler would."""
    get = getattr(stream, "get", None)
    if get is None:
        return False
    if any(get(key) is not None for key in ("/Decode", "/SMask", "/Mask", "/ImageMask")):
        return False
    colour = str(get("/ColorSpace"))
    bits = getattr(picture, "bits_per_component", 0)
    return colour in _PLAIN_COLOURS and bits in (1, 8)
