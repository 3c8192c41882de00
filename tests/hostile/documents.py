"""Hostile fax documents, generated in memory (no binary file is committed).

Each function returns the bytes of one document. Real fax pages come from
`faxflow.samples`; the broken ones are cut, encrypted, inflated or hand-written from them.
"""

from __future__ import annotations

import io
import random
import struct
from functools import cache

import pikepdf
from PIL import Image, TiffImagePlugin

from faxflow.samples import make_fax
from faxflow.simulator.minipdf import one_page_pdf


@cache
def fax_pdf() -> bytes:
    """A real one-page fax PDF (CCITT G4 image wrapped by img2pdf)."""
    return make_fax(kind="letter", pages=1, seed=7).content


@cache
def fax_page() -> Image.Image:
    """One real 1-bit fax page, from a generated TIFF, cropped to its top part so OCR is
    quick."""
    tiff = make_fax(kind="invoice", pages=1, fmt="tiff", seed=8).content
    with Image.open(io.BytesIO(tiff)) as image:
        image.load()
        width, height = image.size
        return image.crop((0, 0, width, height // 3)).copy()


def _pdf(objects: list[bytes], root: int = 1) -> bytes:
    """A PDF from numbered object bodies, with a correct xref table."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root {root} 0 R >>\n"
            f"startxref\n{xref}\n%%EOF\n").encode()
    return bytes(out)


# --- broken or disguised PDFs ----------------------------------------------------------------


def corrupt_pdf() -> bytes:
    """A PDF header followed by noise: no objects, no xref, no trailer."""
    noise = random.Random(1).randbytes(4096)
    return b"%PDF-1.7\n" + noise


def truncated_pdf() -> bytes:
    """A valid fax PDF cut in half (a transfer that stopped midway)."""
    data = fax_pdf()
    return data[: len(data) // 2]


def encrypted_pdf() -> bytes:
    """A PDF that needs a password to open (AES-256, user password set)."""
    with pikepdf.open(io.BytesIO(one_page_pdf("secret fax"))) as pdf:
        out = io.BytesIO()
        pdf.save(out, encryption=pikepdf.Encryption(user="user-pw", owner="owner-pw", R=6))
        return out.getvalue()


def html_page() -> bytes:
    return (b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
            b"<body><h1>Bad Gateway</h1></body></html>\n")


def json_error() -> bytes:
    return b'{"error": "file not found", "status": 404}\n'


def oversized_pdf(size: int) -> bytes:
    """A valid small PDF padded with a comment to `size` bytes (over the download cap)."""
    pdf = one_page_pdf("oversized")
    return pdf + b"%" + b"x" * (size - len(pdf) - 2) + b"\n"


def many_pages_pdf(pages: int = 500) -> bytes:
    """A `pages`-page fax: one real page repeated (the image stream is shared, so small)."""
    with pikepdf.open(io.BytesIO(fax_pdf())) as pdf:
        first = pdf.pages[0]
        for _ in range(pages - 1):
            pdf.pages.append(first)
        out = io.BytesIO()
        pdf.save(out)
        return out.getvalue()


def _empty_page_pdf(mediabox: bytes, count: int = 1) -> bytes:
    """One empty page of `mediabox`, in a page tree that says it has `count` pages."""
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count %d >>" % count,
        b"<< /Type /Page /Parent 2 0 R /MediaBox " + mediabox + b" /Contents 4 0 R >>",
        b"<< /Length 0 >>\nstream\n\nendstream",
    ])


def lying_page_count_pdf() -> bytes:
    """One real page, but the page tree claims two billion."""
    return _empty_page_pdf(b"[0 0 595 842]", 2147483647)


def huge_page_pdf() -> bytes:
    """An empty page 200 x 200 inches: rendered at any dpi it is a bomb."""
    return _empty_page_pdf(b"[0 0 14400 14400]")


# --- decompression bombs -------------------------------------------------------------------

BOMB_SIDE = 100_000  # 10^10 pixels declared


def _all_white_g4(width: int, rows: int) -> bytes:
    """CCITT G4 data for an all-white image: every row is one V0 code (bit 1), then EOFB."""
    del width  # an all-white row codes the same whatever its width
    bits = "1" * rows + "000000000001" * 2
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def bomb_pdf() -> bytes:
    """A one-page PDF whose single 1-bit image declares 100000 x 100000 pixels (12 KB)."""
    data = _all_white_g4(BOMB_SIDE, BOMB_SIDE)
    image = (f"<< /Type /XObject /Subtype /Image /Width {BOMB_SIDE} /Height {BOMB_SIDE} "
             "/ColorSpace /DeviceGray /BitsPerComponent 1 /Filter /CCITTFaxDecode "
             f"/DecodeParms << /K -1 /Columns {BOMB_SIDE} /Rows {BOMB_SIDE} /BlackIs1 false >> "
             f"/Length {len(data)} >>\nstream\n").encode() + data + b"\nendstream"
    content = b"q 612 0 0 792 0 0 cm /Im0 Do Q"
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /XObject << /Im0 5 0 R >> >> /Contents 4 0 R >>",
        f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream",
        image,
    ])


def bomb_tiff() -> bytes:
    """A 1-bit G4 TIFF whose header declares 100000 x 100000 pixels (12 KB on disk)."""
    data = _all_white_g4(BOMB_SIDE, BOMB_SIDE)
    entries = [  # tag, type (3 SHORT, 4 LONG), value
        (256, 4, BOMB_SIDE), (257, 4, BOMB_SIDE), (258, 3, 1), (259, 3, 4), (262, 3, 0),
        (273, 4, 0), (277, 3, 1), (278, 4, BOMB_SIDE), (279, 4, len(data)),
    ]
    ifd_at = 8
    data_at = ifd_at + 2 + 12 * len(entries) + 4
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_at))
    out += struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        value = data_at if tag == 273 else value
        packed = struct.pack("<HxxI", value, 0)[:4] if kind == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, 1) + packed
    out += struct.pack("<I", 0) + data
    return bytes(out)


# --- TIFF variants -------------------------------------------------------------------------


def _tiff(image: Image.Image, compression: str | None) -> bytes:
    out = io.BytesIO()
    image.save(out, format="TIFF", compression=compression, dpi=(204, 196))
    return out.getvalue()


def tiff_lzw() -> bytes:
    return _tiff(fax_page(), "tiff_lzw")


def tiff_packbits() -> bytes:
    return _tiff(fax_page(), "packbits")


def tiff_jpeg() -> bytes:
    return _tiff(fax_page().convert("L"), "jpeg")


def tiff_raw_8bit() -> bytes:
    return _tiff(fax_page().convert("L"), None)


def tiff_mixed_pages() -> bytes:
    """Three pages, each compressed differently: G4 1-bit, LZW 8-bit, JPEG 8-bit."""
    page = fax_page()
    frames = [(page, "group4"), (page.convert("L"), "tiff_lzw"), (page.convert("L"), "jpeg")]
    out = io.BytesIO()
    # Pillow's save_all uses one compression for every frame; its own appending writer,
    # driven frame by frame, lets each frame choose.
    with TiffImagePlugin.AppendingTiffWriter(out, new=True) as writer:
        for image, compression in frames:
            image.encoderinfo = {"compression": compression, "dpi": (204, 196)}
            image.encoderconfig = ()
            TiffImagePlugin._save(image, writer, "mixed.tif")
            writer.newFrame()
    return out.getvalue()


def tiff_ifd_loop() -> bytes:
    """A G4 TIFF whose next-page pointer points back at its own page (endless page chain)."""
    data = bytearray(_tiff(fax_page(), "group4"))
    ifd = struct.unpack("<I", data[4:8])[0]
    count = struct.unpack("<H", data[ifd:ifd + 2])[0]
    end = ifd + 2 + 12 * count
    data[end:end + 4] = struct.pack("<I", ifd)
    return bytes(data)


def png_named_tif() -> bytes:
    out = io.BytesIO()
    fax_page().save(out, format="PNG")
    return out.getvalue()


# --- damaged, oversized or slow pages among good ones -------------------------------------------


@cache
def fax_tiff(pages: int = 3) -> bytes:
    """A real multi-page G4 fax TIFF."""
    return make_fax(kind="letter", pages=pages, fmt="tiff", seed=1).content


def truncated_tiff() -> bytes:
    """A 3-page fax TIFF cut 40% in: the second page's directory is incomplete, and Pillow
    counting the pages raises `TypeError: Missing dimensions` (not an OSError)."""
    data = fax_tiff()
    return data[: len(data) * 2 // 5]


def tiff_cut_in_a_page() -> bytes:
    """A 3-page fax TIFF cut inside the first page's image data: the header is whole, the
    page fails to decode (Pillow: `OSError: decoder error -2`)."""
    data = fax_tiff()
    return data[: len(data) * 3 // 8]


def pdf_with_a_huge_page() -> bytes:
    """A real fax page, then a 200 x 200 inch page (over any sane max_pixels): the document
    is fine, its second page cannot be read."""
    with pikepdf.open(io.BytesIO(fax_pdf())) as pdf:
        pdf.add_blank_page(page_size=(14400, 14400))
        out = io.BytesIO()
        pdf.save(out)
        return out.getvalue()


def dashed_strokes_pdf(pages: int = 8, lines: int = 400, dash: float = 0.02) -> bytes:
    """Pages of long lines in a tiny dash pattern, all pages sharing one compressed content
    stream (about 3.5 kB): poppler draws every dash, so each page takes seconds to render
    (400 lines of 0.02 pt dashes: ~3 s a page at 200 dpi), as the 1.9 kB, 8-page PDF that
    held the OCR pool for 241 s did."""
    import zlib

    ops = [f"[{dash} {dash}] 0 d 0.1 w".encode()]
    ops += [f"20 {20 + i * 1.9:.1f} m 590 {23 + i * 1.9:.1f} l S".encode() for i in range(lines)]
    content = zlib.compress(b"\n".join(ops), 9)
    kids = " ".join(f"{3 + i} 0 R" for i in range(pages))
    stream = 3 + pages
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
        *[f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {stream} 0 R >>"
          .encode() for _ in range(pages)],
        f"<< /Length {len(content)} /Filter /FlateDecode >>\nstream\n".encode() + content
        + b"\nendstream",
    ])


# --- fax-like PDFs whose image is not what a viewer shows, and bombs for the reader that
# takes a fax page's image out of its PDF (plugins/faxflow_ocr/pdf_child.py) --------------

PAGE = b"[0 0 612 212.5]"  # a 1728 x 600 image at 203.3 dpi covers it
DRAW = b"q 612 0 0 212.5 0 0 cm /Im0 Do Q"


def text_image(text: str, width: int = 1728, height: int = 600) -> Image.Image:
    """A 1-bit page strip with `text` in large letters."""
    from PIL import ImageDraw, ImageFont

    image = Image.new("1", (width, height), 1)
    font = ImageFont.truetype("DejaVuSans.ttf", 72)
    ImageDraw.Draw(image).text((60, 220), text, font=font, fill=0)
    return image


def _stream(head: bytes, data: bytes) -> bytes:
    return b"<< " + head + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def _g4_image(image: Image.Image, extra: bytes = b"") -> bytes:
    """An image object holding `image` as CCITT G4, as a fax PDF has it."""
    out = io.BytesIO()
    # Pillow stores a "1" image's white as 1 bits, which CCITT codes as black runs: the
    # TIFF's photometric says so, a PDF's /BlackIs1 false says the opposite.
    negative = image.convert("L").point(lambda v: 255 - v).convert("1")
    negative.save(out, "TIFF", compression="group4", strip_size=2**30)  # one strip
    with Image.open(io.BytesIO(out.getvalue())) as tiff:
        (at,), (size,) = tiff.tag_v2[273], tiff.tag_v2[279]
        data = out.getvalue()[at:at + size]
    width, height = image.size
    return _stream(b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace "
                   b"/DeviceGray /BitsPerComponent 1 /Filter /CCITTFaxDecode /DecodeParms "
                   b"<< /K -1 /Columns %d /Rows %d >> " % (width, height, width, height)
                   + extra, data)


def image_page_pdf(content: bytes = DRAW, image: bytes | None = None, page_extra: bytes = b"",
                   resources: bytes = b"<< /XObject << /Im0 5 0 R >> >>",
                   more: tuple[bytes, ...] = (), catalog_extra: bytes = b"",
                   mediabox: bytes = PAGE) -> bytes:
    """One page drawing object 5 (by default a G4 image of "PAY ALICE 100") with `content`;
    objects 6 and on are `more`."""
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R " + catalog_extra + b">>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox " + mediabox + b" /Resources " + resources
        + b" /Contents 4 0 R " + page_extra + b">>",
        _stream(b"", content),
        image if image is not None else _g4_image(text_image("PAY ALICE 100")),
        *more,
    ])


def mallory() -> bytes:
    return _g4_image(text_image("PAY MALLORY 9999"))


def plain_fax_like_pdf() -> bytes:
    """The shape fax software writes: one G4 image over the whole page."""
    return image_page_pdf()


def shows_other_than_its_image() -> dict[str, bytes]:
    """PDFs whose one image is not what poppler draws for the page, by name."""
    stamp = _stream(b"/Type /XObject /Subtype /Form /BBox [0 0 1 1] "
                    b"/Resources << /XObject << /ImB 8 0 R >> >>", b"/ImB Do")
    annotation = (b"<< /Type /Annot /Subtype /Stamp /Rect [0 0 612 212.5] /AP << /N 7 0 R >> "
                  b"/F 4 >>")
    hidden = b"<< /OCProperties << /OCGs [6 0 R] /D << /OFF [6 0 R] >> >> "
    return {
        # the image drawn beside the page, not on it
        "off the page": image_page_pdf(b"q 612 0 0 212.5 700 0 cm /Im0 Do Q",
                                       image=mallory()),
        # drawn, then painted over in white
        "painted over": image_page_pdf(DRAW + b" 1 g 0 0 612 212.5 re f", image=mallory()),
        # drawn upside down by its matrix
        "mirrored": image_page_pdf(b"q 612 0 0 -212.5 0 212.5 cm /Im0 Do Q"),
        # inverted by /Decode
        "inverted": image_page_pdf(image=_g4_image(text_image("PAY ALICE 100"),
                                                   b"/Decode [1 0] ")),
        # an annotation's appearance stamps another image over it
        "annotation": image_page_pdf(page_extra=b"/Annots [6 0 R]",
                                     more=(annotation, stamp, mallory())),
        # `Do` with two names: qpdf's parser keeps the first, poppler draws the last
        "two names": image_page_pdf(b"q 612 0 0 212.5 0 0 cm /Im0 /Im1 Do Q",
                                    resources=b"<< /XObject << /Im0 5 0 R /Im1 6 0 R >> >>",
                                    more=(mallory(),)),
        # a name given twice in /XObject: the two readers may pick different images
        "name twice": image_page_pdf(image=mallory(),
                                     resources=b"<< /XObject << /Im0 6 0 R /Im0 5 0 R >> >>",
                                     more=(_g4_image(text_image("PAY ALICE 100")),)),
        # in an optional-content group that is off
        "hidden layer": image_page_pdf(image=_g4_image(text_image("PAY MALLORY 9999"),
                                                       b"/OC 6 0 R "),
                                       more=(b"<< /Type /OCG /Name (x) >>",),
                                       catalog_extra=hidden.removeprefix(b"<< ")),
        # a crop box showing the image's left quarter only
        "cropped": image_page_pdf(page_extra=b"/CropBox [0 0 153 212.5]"),
        # the page's /DefaultGray draws each grey value as another one
        "default gray": _default_gray_swap(),
        # CCITT parameters of a type poppler ignores and pikepdf does not
        "BlackIs1 as a number": image_page_pdf(image=_g4_image(
            text_image("PAY ALICE 100")).replace(b"/Rows 600 >>", b"/Rows 600 /BlackIs1 1 >>")),
        "K as a real": image_page_pdf(image=_g4_image(
            text_image("PAY ALICE 100")).replace(b"/K -1", b"/K -1.0")),
        # decode parameters in another form than the filter's: poppler ignores them
        "parameters in an array, filter by name": image_page_pdf(image=_g4_image(
            text_image("PAY ALICE 100")).replace(b"/DecodeParms << /K -1 /Columns 1728 "
                                                 b"/Rows 600 >>",
                                                 b"/DecodeParms [<< /K -1 /Columns 1728 "
                                                 b"/Rows 600 >>]")),
        "filter in an array, parameters by name": image_page_pdf(image=_g4_image(
            text_image("PAY ALICE 100")).replace(b"/Filter /CCITTFaxDecode",
                                                 b"/Filter [/CCITTFaxDecode]")),
        # a second, unlisted copy of the image object, and a startxref poppler cannot read:
        # poppler rebuilds its xref table from the copies (the last one wins), qpdf does not
        "a second copy of the image": _shadowed_image_pdf(),
        # the same, under a header with leading zeros, and a missing /Info to make poppler
        # rebuild its table
        "a copy under a zero-padded header": _shadowed_image_pdf(
            b"5 000000 obj", trailer=b"/Info 99 0 R "),
        # the page's content goes on past an `endstream` poppler does not count as one
        "content past a hidden stream end": _content_past_its_end_pdf(),
        # a /Decode 499 arrays deep: poppler's parser gives up at that depth and reads the
        # /Decode as the image's own, qpdf reads it as an element of the array
        "a /Decode hidden 499 levels deep": image_page_pdf(image=_g4_image(
            text_image("PAY ALICE 100"),
            b"/ID " + b"[" * 499 + b"/X" + b"]" * 498 + b" /Decode [1 0] ] ")),
        # G3 rows after an end-of-page mark: poppler stops there, libtiff reads on
        "G3 rows after the end of the page": _g3_after_rtc_pdf(),
        # a JPEG whose stored channels poppler draws as they are, Pillow as YCbCr
        "JPEG colour transform off": _jpeg_two_texts(),
        # encrypted, the image stream typed /XRef: qpdf reads it as stored, poppler decrypts
        "encrypted, image typed XRef": _xref_typed_image(),
    }


def _shadowed_image_pdf(header: bytes = b"5 0 obj", trailer: bytes = b"") -> bytes:
    """The xref table lists "PAY ALICE 100" as object 5; "PAY MALLORY 9999", also object
    5 (`header`), sits unlisted after it. A comment after `startxref` (or what `trailer`
    adds) makes poppler rebuild its table without a word (attacker reviews' reproducers)."""
    base = image_page_pdf().replace(b"/Root 1 0 R ", b"/Root 1 0 R " + trailer)
    extra = header + b"\n" + mallory() + b"\nendobj\n"
    at = base.rindex(b"\nxref\n") + 1
    head, _, tail = (base[:at] + extra + base[at:]).rpartition(b"startxref\n")
    comment = b"" if trailer else b"% a comment\n"
    return head + b"startxref\n" + comment + b"%d\n%%%%EOF\n" % (int(tail.split()[0]) + len(extra))


def _content_past_its_end_pdf() -> bytes:
    """The content stream's `endstream` is followed by `%`; a white fill and a second
    `endstream` sit between the last object and the xref table; a missing /Info makes
    poppler rebuild its table, and then end the stream at that second `endstream`: the
    page is painted over (an attacker review's reproducer)."""
    content = DRAW + b"\n"
    data = _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox " + PAGE
        + b" /Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>",
        _g4_image(text_image("PAY ALICE 100")),
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"endstream%",
    ]).replace(b"/Root 1 0 R >>", b"/Root 1 0 R /Info 99 0 R >>")
    extra = b"1 g 0 0 612 212.5 re f\nendstream\n"
    at = data.rindex(b"\nxref\n") + 1
    head, _, tail = (data[:at] + extra + data[at:]).rpartition(b"startxref\n")
    return head + b"startxref\n%d\n%%%%EOF\n" % (int(tail.split()[0]) + len(extra))


def _g3_after_rtc_pdf() -> bytes:
    """G3 data: 300 rows saying "PAY ALICE 100", an end-of-page mark (six end-of-line
    codes), then 300 rows saying "PAY MALLORY 9999"."""
    def g3_bits(image: Image.Image) -> str:
        out = io.BytesIO()
        negative = image.convert("L").point(lambda v: 255 - v).convert("1")
        negative.save(out, "TIFF", compression="group3", strip_size=2**30)
        with Image.open(io.BytesIO(out.getvalue())) as tiff:
            (at,), (size,) = tiff.tag_v2[273], tiff.tag_v2[279]
        return "".join(f"{byte:08b}" for byte in out.getvalue()[at:at + size])

    page = Image.new("1", (1728, 600), 1)
    page.paste(text_image("PAY ALICE 100", 1728, 300), (0, -160))
    lower = Image.new("1", (1728, 600), 1)
    lower.paste(text_image("PAY MALLORY 9999", 1728, 300), (0, 300))
    bits = g3_bits(page.crop((0, 0, 1728, 300))) + "000000000001" * 6 \
        + g3_bits(lower.crop((0, 300, 1728, 600)))
    bits += "0" * (-len(bits) % 8)
    data = int(bits, 2).to_bytes(len(bits) // 8, "big")
    return image_page_pdf(image=_stream(
        b"/Type /XObject /Subtype /Image /Width 1728 /Height 600 /ColorSpace /DeviceGray "
        b"/BitsPerComponent 1 /Filter /CCITTFaxDecode /DecodeParms << /K 0 /Columns 1728 "
        b"/Rows 600 >>", data))


def _default_gray_swap() -> bytes:
    """An 8-bit image whose values carry two texts, and a /DefaultGray that shows only
    the faint one (an attacker review's reproducer)."""
    import zlib

    alice = text_image("PAY ALICE 100").convert("L").tobytes()
    mallory = text_image("PAY MALLORY 9999").convert("L").tobytes()
    data = bytes((200 if a else 0) + (55 if m else 0) for a, m in zip(alice, mallory,
                                                                    strict=True))
    image = _stream(b"/Type /XObject /Subtype /Image /Width 1728 /Height 600 /ColorSpace "
                    b"/DeviceGray /BitsPerComponent 8 /Filter /FlateDecode",
                    zlib.compress(data, 9))
    lookup = bytes(255 if v in (55, 255) else 0 for v in range(256))
    return image_page_pdf(image=image, resources=(
        b"<< /XObject << /Im0 5 0 R >> /ColorSpace << /DefaultGray [/Indexed /DeviceGray "
        b"255 <" + lookup.hex().encode() + b">] >> >>"))


def _jpeg_two_texts() -> bytes:
    """A JPEG whose Y channel says "PAY ALICE 100" and whose Cb, Cr say "PAY MALLORY 9999",
    with /ColorTransform 0."""
    luma = text_image("PAY ALICE 100").convert("L")
    chroma = text_image("PAY MALLORY 9999").convert("L").point(lambda v: 228 if v else 28)
    out = io.BytesIO()
    Image.merge("YCbCr", (luma, chroma, chroma)).save(out, "JPEG", quality=95, subsampling=0)
    return image_page_pdf(image=_stream(
        b"/Type /XObject /Subtype /Image /Width 1728 /Height 600 /ColorSpace /DeviceRGB "
        b"/BitsPerComponent 8 /Filter /DCTDecode /DecodeParms << /ColorTransform 0 >>",
        out.getvalue()))


def _xref_typed_image() -> bytes:
    """RC4 with an empty user password; the image's G4 data stored in clear."""
    g4 = _g4_image(text_image("PAY ALICE 100"), b"/Type /XRef ")
    clear = g4[g4.index(b"stream\n") + 7:g4.rindex(b"\nendstream")]
    with pikepdf.open(io.BytesIO(image_page_pdf(image=g4))) as pdf:
        out = io.BytesIO()
        pdf.save(out, encryption=pikepdf.Encryption(owner="o", user="", R=3, aes=False,
                                                    metadata=False),
                 static_id=True, compress_streams=False)
    data = out.getvalue()
    with pikepdf.open(io.BytesIO(data)) as pdf:
        cipher = bytes(pdf.pages[0].Resources.XObject.Im0.read_raw_bytes())
    return data.replace(cipher, clear)  # same length: the offsets stay right


def slow_jpeg_pdf(scans: int = 200, side: int = 3000) -> bytes:
    """A progressive JPEG page whose last refinement scan is repeated `scans` times:
    decoding it takes time in proportion (an attacker review: 114 s at 5000 scans)."""
    out = io.BytesIO()
    text_image("PAY ALICE 100", side, side).convert("L").save(out, "JPEG", quality=50,
                                                              progressive=True)
    jpeg = out.getvalue()
    last = jpeg.rindex(b"\xff\xda")  # the last scan, up to the end-of-image marker
    jpeg = jpeg[:-2] + jpeg[last:-2] * (scans - 1) + b"\xff\xd9"
    size = side / 200 * 72
    return image_page_pdf(
        b"q %g 0 0 %g 0 0 cm /Im0 Do Q" % (size, size),
        image=_stream(b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace "
                      b"/DeviceGray /BitsPerComponent 8 /Filter /DCTDecode" % (side, side),
                      jpeg),
        mediabox=b"[0 0 %g %g]" % (size, size))


def flate_image_bomb_pdf() -> bytes:
    """A 1728 x 600 grey image whose Flate data inflates to 1 GB (a 1 MB file)."""
    import zlib

    deflate = zlib.compressobj(9)
    chunk = b"\xff" * 10**7
    data = b"".join(deflate.compress(chunk) for _ in range(100)) + deflate.flush()
    return image_page_pdf(image=_stream(
        b"/Type /XObject /Subtype /Image /Width 1728 /Height 600 /ColorSpace /DeviceGray "
        b"/BitsPerComponent 8 /Filter /FlateDecode", data))


def jpeg_header_bomb_pdf() -> bytes:
    """A 1728 x 600 image whose JPEG data is 12000 x 12000 pixels (144 MB decoded)."""
    out = io.BytesIO()
    Image.new("L", (12000, 12000), 255).save(out, "JPEG", quality=10)
    return image_page_pdf(image=_stream(
        b"/Type /XObject /Subtype /Image /Width 1728 /Height 600 /ColorSpace /DeviceGray "
        b"/BitsPerComponent 8 /Filter /DCTDecode", out.getvalue()))


def xref_stream_bomb_pdf(rows: int = 60_000_000) -> bytes:
    """A plain fax-like page whose cross-reference stream inflates to 420 MB of entries
    (a 400 KB file); poppler reads the entries it needs, qpdf all of them."""
    import zlib

    head = plain_fax_like_pdf()
    head = head[:head.rfind(b"xref")]
    deflate = zlib.compressobj(9)
    row = struct.pack(">BIH", 0, 0, 0) * 100_000
    data = b"".join(deflate.compress(row) for _ in range(rows // 100_000)) + deflate.flush()
    return (head + b"9 0 obj\n<< /Type /XRef /Size %d /W [1 4 2] /Root 1 0 R "
            b"/Filter /FlateDecode /Length %d >>\nstream\n" % (rows, len(data)) + data
            + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % len(head))


def wide_page_pdf() -> bytes:
    """A page 1,000,000 x 250 pt: pdfinfo prints its width as 1e+06."""
    return _empty_page_pdf(b"[0 0 1000000 250]")
