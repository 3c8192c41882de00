"""How the OCR plugin describes a PDF before reading it: a plain fax PDF in this process
(pikepdf), anything else by poppler (`pdfinfo`, `pdfimages -list`). The fast description
must be the one poppler gives, or none at all."""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from pathlib import Path

import pikepdf
import pytest
from faxflow_ocr import document as doc
from hostile import documents as hostile

from faxflow.errors import PermanentError
from faxflow.samples import make_fax
from faxflow.samples.encode import build_pdf


def fax(resolution: str = "fine", pages: int = 1) -> bytes:
    twin = make_fax(fmt="tiff", kind="letter", pages=pages, resolution=resolution, seed=3)
    return build_pdf(twin.content)


def edited(content: bytes, change: Callable[[pikepdf.Pdf], object]) -> bytes:
    with pikepdf.open(io.BytesIO(content)) as pdf:
        change(pdf)
        out = io.BytesIO()
        pdf.save(out)
    return out.getvalue()


def rotate(degrees: int) -> Callable[[pikepdf.Pdf], object]:
    def change(pdf: pikepdf.Pdf) -> None:
        pdf.pages[0].obj.Rotate = degrees
    return change


def crop(pdf: pikepdf.Pdf) -> None:
    box = [float(v) for v in pdf.pages[0].obj.MediaBox]
    pdf.pages[0].obj.CropBox = [box[0], box[1], box[2] / 2, box[3] / 2]


def content(text: bytes) -> Callable[[pikepdf.Pdf], object]:
    def change(pdf: pikepdf.Pdf) -> None:
        pdf.pages[0].obj.Contents = pikepdf.Stream(pdf, text)
    return change


def inherited(pdf: pikepdf.Pdf) -> None:
    """MediaBox and Rotate on the page tree's root, not on the page."""
    page = pdf.pages[0].obj
    pdf.Root.Pages.MediaBox = page.MediaBox
    pdf.Root.Pages.Rotate = 180
    del page["/MediaBox"]


def bad_colour_space(pdf: pikepdf.Pdf) -> None:
    """A colour space poppler does not know: it draws nothing, so neither may we read it."""
    image = next(iter(pdf.pages[0].images.values()))
    image.ColorSpace = pikepdf.Name("/DeviceGrax")


def wrong_count() -> bytes:
    """The page tree's /Count says 0 (poppler: no pages), its kids hold one page (edited in
    the bytes: pikepdf would write the right count)."""
    content = fax()
    assert content.count(b"/Count 1") == 1
    return content.replace(b"/Count 1", b"/Count 0")


def two_pages_second_odd(pdf: pikepdf.Pdf) -> None:
    pdf.pages.append(pdf.pages[0])
    pdf.pages[1].obj.CropBox = [0, 0, 100, 100]


PLAIN = {
    "fine": lambda: fax("fine"),
    "standard": lambda: fax("standard"),
    "three pages": lambda: fax("fine", 3),
    "upside down": lambda: edited(fax(), rotate(180)),
    "turned 90": lambda: edited(fax(), rotate(270)),
    "inherited box and rotation": lambda: edited(fax(), inherited),
    "many pages": lambda: hostile.many_pages_pdf(60),
    "bomb image": hostile.bomb_pdf,
}
OTHER = {
    "cropped": lambda: edited(fax(), crop),
    "skewed cm": lambda: edited(fax(), content(b"q 600 10 0 840 0 0 cm /Im0 Do Q")),
    "two images": lambda: edited(fax(), content(b"q 300 0 0 420 0 0 cm /Im0 Do Q "
                                                 b"q 300 0 0 420 300 0 cm /Im0 Do Q")),
    "text over the image": lambda: edited(fax(), content(
        b"q 600 0 0 840 0 0 cm /Im0 Do Q BT /F1 12 Tf (hi) Tj ET")),
    "second page cropped": lambda: edited(fax(), two_pages_second_odd),
    "unknown colour space": lambda: edited(fax(), bad_colour_space),
    "page count 0 in the tree": wrong_count,
    "huge page": hostile.huge_page_pdf,
    "lying page count": hostile.lying_page_count_pdf,
    "truncated": hostile.truncated_pdf,
    "corrupt": hostile.corrupt_pdf,
    "encrypted": hostile.encrypted_pdf,
}


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_a_plain_fax_pdf_is_described_as_poppler_describes_it(tmp_path: Path,
                                                             name: str) -> None:
    path = tmp_path / "fax.pdf"
    path.write_bytes(PLAIN[name]())
    fast = doc._plain_fax_pdf(path, 50)
    assert fast is not None, "the plain fax PDF went to poppler"
    assert fast == doc._poppler_pdf(path, 50, 30)


@pytest.mark.parametrize("name", sorted(OTHER))
def test_anything_else_is_left_to_poppler(tmp_path: Path, name: str) -> None:
    path = tmp_path / "odd.pdf"
    path.write_bytes(OTHER[name]())
    assert doc._plain_fax_pdf(path, 50) is None
    try:
        poppler = doc.inspect(path, "pdf", 50, 30)
    except PermanentError as exc:  # the same clear error as before there was a fast path
        assert "PDF" in str(exc)
    else:
        assert poppler.pages


def test_a_content_stream_bomb_is_not_unpacked(tmp_path: Path) -> None:
    """A page's 1 KB content stream that inflates to 50 MB: left to poppler's process,
    after reading at most a few bytes in this one."""
    bomb = zlib.compress(b"q 600 0 0 840 0 0 cm /Im0 Do Q " + b" " * 50_000_000, 9)
    assert len(bomb) < 100_000

    def change(pdf: pikepdf.Pdf) -> None:
        stream = pikepdf.Stream(pdf, bomb)
        stream.Filter = pikepdf.Name.FlateDecode
        pdf.pages[0].obj.Contents = stream

    path = tmp_path / "bomb.pdf"
    path.write_bytes(edited(fax(), change))
    assert doc._plain_fax_pdf(path, 50) is None


def test_only_the_pages_read_are_described(tmp_path: Path) -> None:
    path = tmp_path / "fax.pdf"
    path.write_bytes(hostile.many_pages_pdf(30))
    info = doc.inspect(path, "pdf", 4, 30)
    assert info.page_count == 30
    assert [p.number for p in info.pages] == [1, 2, 3, 4]
    assert all(p.image_width == 1728 for p in info.pages)


def test_damaged_fax_pdfs_are_described_as_poppler_does_or_left_to_it(tmp_path: Path) -> None:
    """Bytes of a real fax PDF flipped at random, mostly in its objects and xref: whatever
    the fast path describes, poppler describes the same way (a first version read images
    poppler cannot draw, and trusted the page tree where poppler trusts /Count)."""
    import random

    from faxflow.errors import PermanentError

    original = hostile.fax_pdf()
    rng = random.Random(17)
    path = tmp_path / "damaged.pdf"
    described = 0
    for _ in range(120):
        damaged = bytearray(original)
        for _ in range(rng.randint(1, 6)):
            where = rng.choice((rng.randrange(len(damaged)), rng.randrange(600),
                                len(damaged) - 1 - rng.randrange(600)))
            damaged[where] = rng.randrange(256)
        path.write_bytes(bytes(damaged))
        fast = doc._plain_fax_pdf(path, 50)
        if fast is None:
            continue
        described += 1
        try:
            poppler = doc._poppler_pdf(path, 50, 30)
        except PermanentError as exc:
            pytest.fail(f"described a PDF poppler rejects ({exc}): {bytes(damaged)[:40]!r}")
        assert fast == poppler
    assert described > 10  # the fast path was taken at all
