"""A printable A4 cover sheet: a QR or DataMatrix code drawn as vector modules (sharp on any
printer), its value in clear text, a title and the module size printed on the sheet."""

from __future__ import annotations

import io
from typing import Any

import pikepdf

FORMATS = {"qr": "QRCode", "datamatrix": "DataMatrix"}
# The smallest module that reads on >= 99% of clean and >= 95% of noisy standard-resolution
# pages, with a margin (docs/barcodes.md, bench/barcodes.py).
DEFAULT_MODULE_MM = 0.7
MIN_MODULE_MM = 0.5
MAX_VALUE = 120  # characters: longer codes grow past what a fax keeps readable
A4 = (595.28, 841.89)  # points
MM = 72 / 25.4


def check(value: str, text: str, module_mm: float) -> None:
    if len(value) > MAX_VALUE:
        raise ValueError(f"the value is {len(value)} characters long; at most {MAX_VALUE} "
                         "fit a code that survives a fax")
    if not value or not (value.isascii() and value.isprintable()):
        raise ValueError("the value must be printable ASCII (letters, digits, punctuation, "
                         "spaces): no control characters, line breaks or other scripts")
    if len(text) > 80 or not text.isprintable():
        raise ValueError("the text must be at most 80 printable characters")
    try:
        text.encode("cp1252")
    except UnicodeEncodeError:
        raise ValueError("the text can only use Western European letters (cp1252)") from None
    if not MIN_MODULE_MM <= module_mm <= 3:
        raise ValueError(f"the module size must be {MIN_MODULE_MM} to 3 mm: smaller modules "
                         "do not survive a standard-resolution fax")


def modules(value: str, fmt: str) -> list[list[bool]]:
    """The code's modules, True = dark, quiet zone included."""
    import zxingcpp

    code = zxingcpp.create_barcode(value, getattr(zxingcpp.BarcodeFormat, FORMATS[fmt]))
    bitmap: Any = code.to_image(scale=1, add_quiet_zones=True)
    view = memoryview(bitmap)
    height, width = (view.shape or (0, 0))[:2]
    data = bytes(view)
    return [[data[y * width + x] < 128 for x in range(width)] for y in range(height)]


def _pdf_text(text: str) -> bytes:
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"(" + escaped.encode("cp1252") + b")"


def make(value: str, text: str = "", fmt: str = "qr", module_mm: float = DEFAULT_MODULE_MM
         ) -> bytes:
    """The sheet as PDF bytes; ValueError for a value or text that cannot go on it."""
    check(value, text, module_mm)
    grid = modules(value, fmt)
    size = module_mm * MM
    width = len(grid[0]) * size
    left = (A4[0] - width) / 2
    top = A4[1] - 60 * MM  # the code's top edge: below the title, clear of the TTI line
    ops = [b"0 g"]
    for y, row in enumerate(grid):
        x = 0
        while x < len(row):  # one rectangle per run of dark modules
            if row[x]:
                start = x
                while x < len(row) and row[x]:
                    x += 1
                ops.append(f"{left + start * size:.3f} {top - (y + 1) * size:.3f} "
                           f"{(x - start) * size:.3f} {size:.3f} re f".encode())
            else:
                x += 1
    bottom = top - len(grid) * size
    name = "QR code" if fmt == "qr" else "DataMatrix"
    lines: list[tuple[float, int, str]] = [
        (A4[1] - 35 * MM, 22, text), (bottom - 12 * MM, 16, value),
        (bottom - 20 * MM, 9, f"{name}, module {module_mm:g} mm: fax this sheet as the first "
                              "page, at fine or standard resolution")]
    for baseline, points, line in lines:
        if line:
            ops.append(b"BT /F1 %d Tf %.3f %.3f Td " % (points, 20 * MM, baseline)
                       + _pdf_text(line) + b" Tj ET")
    pdf = pikepdf.new()
    font = pdf.make_indirect(pikepdf.Dictionary(
        Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica,
        Encoding=pikepdf.Name.WinAnsiEncoding))
    page = pikepdf.Dictionary(
        Type=pikepdf.Name.Page, MediaBox=[0, 0, *A4],
        Resources=pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font)),
        Contents=pdf.make_stream(b"\n".join(ops)))
    pdf.pages.append(pikepdf.Page(page))
    out = io.BytesIO()
    pdf.save(out, deterministic_id=True)
    return out.getvalue()
