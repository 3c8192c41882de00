"""Documents made of some pages of a fax's documents: the parts of a split fax, a fax without
its cover sheet.

Byte for byte the same on every attempt (pikepdf with a deterministic id, no dates), so a
destination that compares content (the folder's "an identical file is already there")
recognises an earlier delivery after a crash. PDF pages are copied as they are; a TIFF page
is wrapped in a PDF page by img2pdf, its G4 data not re-encoded.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path

import pikepdf
from PIL import Image

from faxflow.types import Document, DocumentRef


def write_pages(pages: Sequence[tuple[Path, int]], target: Path) -> Document:
    """One PDF of `pages` ((document path, 1-based page number), in order) at `target`;
    returned as a `Document` named after the target."""
    out = pikepdf.new()
    opened: dict[Path, pikepdf.Pdf] = {}
    try:
        for path, number in pages:
            if path not in opened:
                opened[path] = _open(path)
            out.pages.append(opened[path].pages[number - 1])
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        out.save(tmp, deterministic_id=True, compress_streams=True,
                 object_stream_mode=pikepdf.ObjectStreamMode.preserve)
    finally:
        out.close()
        for pdf in opened.values():
            pdf.close()
    os.chmod(tmp, 0o600)  # fax content: owner-only, like every file of a fax's spool
    os.replace(tmp, target)
    return describe(target, DocumentRef(url="", name=target.name, extension="pdf"))


def describe(path: Path, ref: DocumentRef) -> Document:
    """A PDF file made here as a `Document` under `ref`."""
    data = path.read_bytes()
    return Document(ref, path, len(data), hashlib.sha256(data).hexdigest(), "application/pdf")


def _open(path: Path) -> pikepdf.Pdf:
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head.startswith(b"%PDF"):
        return pikepdf.open(path)
    if head in (b"II*\x00", b"MM\x00*"):
        return pikepdf.open(io.BytesIO(_tiff_as_pdf(path)))
    raise ValueError(f"cannot take pages from {path.name}: neither PDF nor TIFF")


def _tiff_as_pdf(path: Path) -> bytes:
    """Every frame of a TIFF as a page, each saved as a one-page G4 TIFF first (img2pdf
    wraps a G4 strip without decoding it)."""
    import img2pdf

    frames: list[bytes] = []
    with Image.open(path) as tif:
        for index in range(getattr(tif, "n_frames", 1)):
            tif.seek(index)
            frame = tif.convert("1") if tif.mode != "1" else tif.copy()
            buffer = io.BytesIO()
            frame.save(buffer, format="TIFF", compression="group4",
                       dpi=tif.info.get("dpi", (204, 196)))
            frames.append(buffer.getvalue())
    data = img2pdf.convert(frames, nodate=True, engine=img2pdf.Engine.internal)
    assert isinstance(data, bytes)
    return data
