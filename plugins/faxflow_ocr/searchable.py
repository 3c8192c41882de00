"""The searchable PDF of one document: every page of the original, in order.

A page tesseract read is its one-page PDF (the fax's pixels under an invisible text layer);
a page that was not read (beyond `max_pages`, or failed) is the original page without a
text layer: copied as is from a PDF (poppler's pdfseparate, nothing decoded), or a TIFF
frame wrapped by img2pdf. A TIFF frame over `max_pixels` is not decoded even for this;
its place holds a page saying so. So the searchable PDF never has fewer pages than the fax.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from faxflow_ocr.tools import tool_env


def assemble(original: Path, kind: str, page_count: int, read: dict[int, Path],
             target: Path, scratch: Path, max_pixels: int) -> None:
    """Write `target` from the OCR'd pages in `read` (page number -> one-page PDF) and the
    original's other pages."""
    pieces: list[Path] = []
    for first, last, have in _runs(page_count, read):
        if have:
            pieces += [read[n] for n in range(first, last + 1)]
            continue
        if kind == "pdf":
            pieces += _pdf_pages(original, first, last, scratch)
        else:
            pieces += _tiff_frames(original, first, last, scratch, max_pixels)
    merged = scratch / "searchable.pdf"
    merge_pdfs(pieces, merged)
    shutil.move(merged, target)


def _runs(page_count: int, read: dict[int, Path]) -> Iterator[tuple[int, int, bool]]:
    """(first, last, read) for each stretch of pages that were all read or all not."""
    first = 1
    for number in range(2, page_count + 2):
        if number > page_count or (number in read) != (first in read):
            yield first, number - 1, first in read
            first = number


def _pdf_pages(original: Path, first: int, last: int, scratch: Path) -> list[Path]:
    """The original's pages, copied as they are by poppler (`pdfseparate`), which reads as
    lazily as it draws: qpdf in the worker would inflate an xref-stream bomb (2.1 GB from
    400 KB) before copying anything."""
    subprocess.run(["pdfseparate", "-f", str(first), "-l", str(last), str(original),
                    str(scratch / "original-%06d.pdf")],
                   check=True, capture_output=True, env=tool_env(), timeout=300)
    return [scratch / f"original-{number:06d}.pdf" for number in range(first, last + 1)]


def _tiff_frames(original: Path, first: int, last: int, scratch: Path,
                 max_pixels: int) -> list[Path]:
    """One one-page PDF per frame (img2pdf takes one resolution per call)."""
    import img2pdf

    pieces = []
    with warnings.catch_warnings(), Image.open(original) as tiff:
        warnings.simplefilter("ignore")  # as in raster: bad tags show in the exception
        for number in range(first, last + 1):
            tiff.seek(number - 1)
            if tiff.width * tiff.height > max_pixels:
                data = _placeholder(number, tiff.width, tiff.height, max_pixels)
            else:
                data = img2pdf.convert(_frame_bytes(tiff))
            piece = scratch / f"original-{number:06d}.pdf"
            piece.write_bytes(data)
            pieces.append(piece)
    return pieces


def _frame_bytes(tiff: Image.Image) -> bytes:
    """One frame as a file img2pdf takes: 1-bit frames as G4 TIFF (embedded as they are),
    others as PNG; with the frame's resolution, so the page has its real size."""
    tiff.load()
    frame = tiff.copy()
    dpi = tiff.info.get("dpi")
    buffer = io.BytesIO()
    options = {"dpi": tuple(round(float(d)) for d in dpi)} if dpi and all(dpi) else {}
    if frame.mode == "1":
        frame.save(buffer, format="TIFF", compression="group4", **options)
    else:
        frame.convert("L" if frame.mode not in ("L", "RGB") else frame.mode).save(
            buffer, format="PNG", **options)
    return buffer.getvalue()


def _placeholder(number: int, width: int, height: int, max_pixels: int) -> bytes:
    """An A4 page that says why the frame is not shown (it would decode to too many pixels)."""
    import pikepdf

    text = (f"Page {number}: {width} x {height} pixels, over max_pixels ({max_pixels}); "
            "not decoded. See the original document.")
    with pikepdf.new() as pdf:
        page = pdf.add_blank_page(page_size=(595, 842))
        font = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font,
                                                    Subtype=pikepdf.Name.Type1,
                                                    BaseFont=pikepdf.Name.Helvetica))
        page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        page.Contents = pdf.make_stream(f"BT /F1 10 Tf 40 780 Td ({escaped}) Tj ET".encode())
        out = io.BytesIO()
        pdf.save(out)
        return out.getvalue()


def merge_pdfs(pages: list[Path], target: Path, batch: int = 200) -> None:
    """One PDF from several (poppler's pdfunite; no extra dependency). pdfunite keeps every
    input open, so long lists are merged `batch` at a time (file handles are limited)."""
    if len(pages) == 1:
        target.write_bytes(pages[0].read_bytes())
        return
    if len(pages) > batch:
        parts = []
        for start in range(0, len(pages), batch):
            part = target.with_name(f"{target.name}.part{start // batch:04d}")
            merge_pdfs(pages[start:start + batch], part, batch)
            parts.append(part)
        try:
            merge_pdfs(parts, target, batch)
        finally:
            for part in parts:
                part.unlink(missing_ok=True)
        return
    subprocess.run(["pdfunite", *map(str, pages), str(target)], check=True,
                   capture_output=True, env=tool_env(), timeout=300)
