"""CCITT Group 4 encoding and the TIFF / PDF containers.

Pages are encoded one at a time (libtiff through Pillow) and only the small
compressed strips are kept, so a 200-page document never holds 200 bitmaps.
The multi-page TIFF is assembled here rather than by Pillow's save_all,
which needs every page image up front; this also lets us write fax-style
min-is-white pages without Pillow's per-pixel Python inversion.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from PIL import Image, ImageChops, TiffImagePlugin

SOFTWARE = "faxflow.samples"

# TIFF field types
SHORT, LONG, RATIONAL, ASCII = 3, 4, 5, 2


@dataclass(frozen=True)
class G4Page:
    data: bytes  # one CCITT G4 strip, black = 1 (min-is-white), MSB first
    width: int
    height: int
    xdpi: int
    ydpi: int


def encode_g4(bitmap: Image.Image, xdpi: int, ydpi: int) -> G4Page:
    """Compress a mode "1" page (0 = black) to one G4 strip."""
    # libtiff's fax coder treats 0 bits as white; inverting and saving as
    # min-is-black yields exactly the strip a fax (min-is-white) file holds.
    inverted = ImageChops.invert(bitmap)
    buffer = io.BytesIO()
    inverted.save(buffer, format="TIFF", compression="group4", strip_size=1 << 30)
    buffer.seek(0)
    with Image.open(buffer) as tif:
        assert isinstance(tif, TiffImagePlugin.TiffImageFile)
        offsets = tif.tag_v2[TiffImagePlugin.STRIPOFFSETS]
        counts = tif.tag_v2[TiffImagePlugin.STRIPBYTECOUNTS]
    if len(offsets) != 1:  # img2pdf can only pass a single strip through
        raise RuntimeError(f"expected one G4 strip, libtiff wrote {len(offsets)}")
    raw = buffer.getvalue()
    return G4Page(raw[offsets[0]:offsets[0] + counts[0]], bitmap.width, bitmap.height,
                  xdpi, ydpi)


def build_tiff(pages: list[G4Page]) -> bytes:
    """A little-endian multi-page TIFF Class F style file from G4 strips."""
    out = bytearray(b"II*\x00\x00\x00\x00\x00")
    next_ifd_slot = 4  # where the offset of the next IFD gets patched in
    software = SOFTWARE.encode("ascii") + b"\x00"
    for number, page in enumerate(pages):
        strip_offset = len(out)
        out += page.data
        if len(out) % 2:
            out += b"\x00"  # IFDs start on a word boundary
        entries: list[tuple[int, int, int, bytes]] = [
            (254, LONG, 1, struct.pack("<I", 2)),  # NewSubfileType: page of a multi-page doc
            (256, LONG, 1, struct.pack("<I", page.width)),
            (257, LONG, 1, struct.pack("<I", page.height)),
            (258, SHORT, 1, struct.pack("<H", 1)),  # BitsPerSample
            (259, SHORT, 1, struct.pack("<H", 4)),  # Compression: CCITT T.6 (G4)
            (262, SHORT, 1, struct.pack("<H", 0)),  # Photometric: min-is-white
            (266, SHORT, 1, struct.pack("<H", 1)),  # FillOrder: MSB first
            (273, LONG, 1, struct.pack("<I", strip_offset)),
            (274, SHORT, 1, struct.pack("<H", 1)),  # Orientation: top-left
            (277, SHORT, 1, struct.pack("<H", 1)),  # SamplesPerPixel
            (278, LONG, 1, struct.pack("<I", page.height)),  # RowsPerStrip: one strip
            (279, LONG, 1, struct.pack("<I", len(page.data))),
            (282, RATIONAL, 1, struct.pack("<II", page.xdpi, 1)),
            (283, RATIONAL, 1, struct.pack("<II", page.ydpi, 1)),
            (293, LONG, 1, struct.pack("<I", 0)),  # T6Options
            (296, SHORT, 1, struct.pack("<H", 2)),  # ResolutionUnit: inch
            (297, SHORT, 2, struct.pack("<HH", number, len(pages))),  # PageNumber (0-based)
            (305, ASCII, len(software), software),
        ]
        ifd_offset = len(out)
        struct.pack_into("<I", out, next_ifd_slot, ifd_offset)
        extra_offset = ifd_offset + 2 + 12 * len(entries) + 4
        extra = bytearray()
        table = bytearray(struct.pack("<H", len(entries)))
        for tag, kind, count, value in entries:
            if len(value) <= 4:
                table += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\x00")
            else:
                table += struct.pack("<HHII", tag, kind, count, extra_offset + len(extra))
                extra += value
                if len(extra) % 2:
                    extra += b"\x00"
        next_ifd_slot = ifd_offset + len(table)
        out += table + b"\x00\x00\x00\x00" + extra
    return bytes(out)


def build_pdf(tiff: bytes) -> bytes:
    """Wrap the TIFF's G4 strips in a PDF, unchanged (one image per page)."""
    import img2pdf

    # Internal engine and no dates: the same TIFF always gives the same PDF bytes.
    data = img2pdf.convert(tiff, nodate=True, engine=img2pdf.Engine.internal)
    assert isinstance(data, bytes)
    return data
