"""Turning one page into one image: the fax image itself (extract, the default) or pdf2image.

Always one page at a time: `convert_from_path` on a whole document holds about 2.9x the raw
bitmap per page (3.8 GB for 50 pages at 300 dpi RGB); page by page stays flat.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from faxflow_ocr.document import PageInfo
from faxflow_ocr.extract import Extractor
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
         timeout: float | None = None, extractor: Extractor | None = None,
         scratch: Path | None = None) -> PageImage:
    """The page's image; `timeout`: seconds it may take (default `page_timeout`).
    `extractor`: takes a fax PDF page's own image out (rasterizer "extract"), else poppler
    draws the page."""
    check_size(page, options)
    if kind == "tiff":
        return _tiff_frame(path, page, options)
    limit = options.page_timeout if timeout is None else timeout
    if extractor is not None:  # the service makes one for rasterizer = "extract"
        started = time.monotonic()
        image = extractor.image(path, page, limit, scratch)
        if image is not None:
            if page.rotate == 180:
                image = image.transpose(Image.Transpose.ROTATE_180)
            return PageImage(image, page.xdpi, page.ydpi)
        limit -= time.monotonic() - started
    return _pdf2image(path, page, options, limit)


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
