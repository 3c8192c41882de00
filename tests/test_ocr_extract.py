"""Taking a fax PDF page's own image out instead of drawing it (rasterizer "extract"): the
worker never parses the PDF itself, the child that does is held to an address-space limit,
and the image handed to tesseract is what poppler would draw, whatever the PDF holds.

Real poppler, qpdf, Pillow and tesseract throughout; the PDFs are built in
tests/hostile/documents.py. The one mock (pdfinfo's output) is marked where it is used.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import faxflow_ocr.extract
import pikepdf
import pytest
from faxflow_ocr import document, raster
from faxflow_ocr.extract import Extractor
from faxflow_ocr.options import OcrOptions
from faxflow_ocr.service import OcrService
from hostile import documents as hostile
from PIL import Image, ImageChops, ImageStat
from processes import children

from faxflow.errors import PermanentError
from faxflow.samples import make_fax

HERE = Path(__file__).parent


def saved(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def page_of(path: Path, number: int = 1) -> document.PageInfo:
    return document.inspect(path, "pdf", 50, 30).pages[number - 1]


def drawn_by_poppler(path: Path, page: document.PageInfo) -> Image.Image:
    return raster.load(path, "pdf", page, OcrOptions(rasterizer="pdf2image")).image


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size
    return float(ImageStat.Stat(ImageChops.difference(a.convert("L"), b.convert("L"))).mean[0])


def our_children() -> list[int]:
    """pids of this process's PDF reader children."""
    return list(children("pdf_child.py"))


def test_a_fax_page_is_taken_out_exactly_without_the_worker_opening_the_pdf(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = saved(tmp_path, "fax.pdf", hostile.plain_fax_like_pdf())

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the worker opened a fax PDF with qpdf")

    monkeypatch.setattr(pikepdf, "open", refuse)  # only the child may: it has its own
    extractor = Extractor(1, 40_000_000)
    try:
        image = extractor.image(path, page_of(path), 30, tmp_path)
    finally:
        extractor.close()
    assert image is not None and image.mode == "1"
    # the very bitmap the PDF holds, bit for bit
    assert ImageChops.difference(image.convert("L"),
                                 hostile.text_image("PAY ALICE 100").convert("L")).getbbox() \
        is None
    assert our_children() == []  # closed with the extractor


def test_the_faxes_we_generate_are_taken_out_as_poppler_draws_them(tmp_path: Path) -> None:
    path = saved(tmp_path, "letter.pdf", make_fax(kind="letter", pages=2, seed=3).content)
    extractor = Extractor(1, 40_000_000)
    try:
        for number in (1, 2):
            page = page_of(path, number)
            image = extractor.image(path, page, 30, tmp_path)
            assert image is not None, number
            # poppler draws the same bitmap onto the same grid, with grey edges
            assert mean_difference(image, drawn_by_poppler(path, page)) < 8
    finally:
        extractor.close()


def test_a_fax_pdf_in_two_xref_tables_is_taken_out_too(tmp_path: Path) -> None:
    """img2pdf's default writer (pikepdf) gives a file with two xref tables and two
    trailers, each object listed once: still one set of objects for qpdf and poppler."""
    import img2pdf

    tiff = io.BytesIO()
    hostile.text_image("PAY ALICE 100").save(tiff, "TIFF", compression="group4",
                                             dpi=(204, 196))
    content = bytes(img2pdf.convert([tiff.getvalue()]))
    assert content.count(b"trailer") == 2  # what makes this case
    path = saved(tmp_path, "fax.pdf", content)
    page = page_of(path)
    extractor = Extractor(1, 40_000_000)
    try:
        image = extractor.image(path, page, 30, tmp_path)
    finally:
        extractor.close()
    assert image is not None
    assert mean_difference(image, drawn_by_poppler(path, page)) < 2


@pytest.mark.parametrize("name", sorted(hostile.shows_other_than_its_image()))
def test_tesseract_gets_what_poppler_draws_not_the_image_the_pdf_holds(
        tmp_path: Path, name: str) -> None:
    """Each PDF holds one fax image but shows something else (moved off the page, painted
    over, mirrored, inverted, stamped over by an annotation, a second name, a hidden layer,
    a crop box, a /DefaultGray, CCITT parameters of odd types or in the wrong form, a
    JPEG's colour transform, an encrypted stream qpdf leaves as stored, a second copy of
    the image object, G3 rows after the end of the page): the page handed to OCR is
    poppler's drawing."""
    path = saved(tmp_path, "fax.pdf", hostile.shows_other_than_its_image()[name])
    page = page_of(path)
    extractor = Extractor(1, 40_000_000)
    try:
        loaded = raster.load(path, "pdf", page, OcrOptions(), 30, extractor, tmp_path)
    finally:
        extractor.close()
    shown = drawn_by_poppler(path, page)
    assert loaded.image.size == shown.size
    assert mean_difference(loaded.image, shown) < 1.0


def test_what_is_read_from_a_swapped_page_is_what_a_viewer_shows(tmp_path: Path) -> None:
    """End to end, through the OCR service: the image moved off the page says "MALLORY";
    the page shows nothing, and nothing is read."""
    path = saved(tmp_path, "fax.pdf", hostile.shows_other_than_its_image()["off the page"])
    ocr = OcrService(OcrOptions(cache=False, workers=1), None)
    try:
        outcome = ocr.read(path, "fax.pdf", "", "eng")
    finally:
        ocr.close()
    assert [p.error for p in outcome.pages] == [None]
    assert "MALLORY" not in outcome.pages[0].text.upper()


READ = """
import json, sys, time
from pathlib import Path
import faxflow_ocr.extract
from faxflow_ocr.options import OcrOptions
from faxflow_ocr.service import OcrService
path, options, base_memory, searchable = sys.argv[1:5]
if base_memory:
    faxflow_ocr.extract.BASE_MEMORY = int(base_memory)
started = time.monotonic()
ocr = OcrService(OcrOptions(cache=False, workers=1, **json.loads(options)), None)
outcome = ocr.read(Path(path), Path(path).name, "", "eng",
                   Path(searchable) if searchable else None)
ocr.close()
# VmHWM, not ru_maxrss: that one keeps the forking pytest's size across exec
peak = next(int(line.split()[1]) for line in open("/proc/self/status")
            if line.startswith("VmHWM:"))
print(json.dumps({"rss_mb": peak // 1024,
                  "seconds": time.monotonic() - started,
                  "pages": [[p.text, p.error] for p in outcome.pages]}))
"""


def read_in_a_worker(path: Path, options: dict[str, object] | None = None,
                     base_memory: int | None = None,
                     searchable: Path | None = None) -> dict[str, object]:
    """What a worker process reads from `path`, and its own peak memory."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "plugins"),
                                                        str(HERE.parent)])}
    done = subprocess.run([sys.executable, "-c", READ, str(path), json.dumps(options or {}),
                           str(base_memory or ""), str(searchable or "")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    result["stderr"] = done.stderr
    return result


@pytest.mark.parametrize("name, shows", [
    ("flate_image_bomb_pdf", ""),  # poppler draws a blank page: nothing to read
    ("jpeg_header_bomb_pdf", ""),
    ("xref_stream_bomb_pdf", "ALICE"),
])
def test_bombs_for_the_pdf_reader_do_not_reach_the_worker(
        tmp_path: Path, name: str, shows: str) -> None:
    """A 1 MB image inflating to 1 GB, a JPEG whose own header is 12000 x 12000 pixels,
    an xref stream of 420 MB: the worker's memory stays that of a page (it was 0.8-2.1 GB
    when the worker parsed these itself), and the page is read as poppler draws it."""
    path = saved(tmp_path, "fax.pdf", getattr(hostile, name)())
    result = read_in_a_worker(path)
    ((text, error),) = result["pages"]  # type: ignore[misc]
    assert error is None
    assert shows in text.upper()
    assert result["rss_mb"] < 300, result  # type: ignore[operator]


def test_a_reader_at_its_memory_limit_leaves_the_page_to_poppler(tmp_path: Path) -> None:
    """The xref bomb under a 64 MB address space: qpdf runs out of memory in the child,
    which answers no or dies; poppler draws the page."""
    path = saved(tmp_path, "fax.pdf", hostile.xref_stream_bomb_pdf())
    result = read_in_a_worker(path, base_memory=64 * 2**20)
    ((text, error),) = result["pages"]  # type: ignore[misc]
    assert error is None and "ALICE" in text.upper()


def test_a_searchable_pdf_copies_an_unread_page_without_parsing_the_bomb(
        tmp_path: Path) -> None:
    """The page of the xref bomb is over max_pixels, so the searchable PDF holds the
    original page as it is: copied by poppler, not by qpdf in the worker (2.1 GB)."""
    path = saved(tmp_path, "fax.pdf", hostile.xref_stream_bomb_pdf())
    target = tmp_path / "searchable.pdf"
    result = read_in_a_worker(path, {"max_pixels": 1000}, searchable=target)
    ((_, error),) = result["pages"]  # type: ignore[misc]
    assert "too large" in str(error)
    assert result["rss_mb"] < 300, result  # type: ignore[operator]
    info = subprocess.run(["pdfinfo", str(target)], capture_output=True, text=True,
                          check=True).stdout
    assert re.search(r"^Pages:\s+1$", info, re.M), info


def test_a_jpeg_is_decoded_in_the_child_under_its_time_limit_not_in_the_worker(
        tmp_path: Path) -> None:
    """A progressive JPEG with one scan repeated 1000 times (~1 s to decode here; 114 s
    at 5000 scans on a 40-megapixel page in an attacker's review): the worker only reads
    the gray pixels the child wrote."""
    path = saved(tmp_path, "fax.pdf", hostile.slow_jpeg_pdf(scans=1000))
    page = page_of(path)
    extractor = Extractor(1, 40_000_000)
    try:
        extractor.image(path, page_of(saved(tmp_path, "plain.pdf",
                                            hostile.plain_fax_like_pdf())), 30, tmp_path)
        started = time.process_time()
        image = extractor.image(path, page, 30, tmp_path)
        spent = time.process_time() - started
    finally:
        extractor.close()
    assert image is not None and image.mode == "L" and image.size == (3000, 3000)
    assert spent < 0.15, spent


def test_a_reader_that_does_not_answer_in_time_leaves_the_page_to_poppler(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = saved(tmp_path, "fax.pdf", hostile.plain_fax_like_pdf())
    monkeypatch.setattr(faxflow_ocr.extract, "EXTRACT_SECONDS", 0.0)
    extractor = Extractor(1, 40_000_000)
    try:
        page = page_of(path)
        assert extractor.image(path, page, 30, tmp_path) is None
        loaded = raster.load(path, "pdf", page, OcrOptions(), 30, extractor, tmp_path)
    finally:
        extractor.close()
    assert loaded.image.mode == "L"  # drawn by poppler
    assert our_children() == []  # the slow one was killed, not left behind


def test_a_page_poppler_sizes_as_1e06_points_is_too_large_not_a_letter(
        tmp_path: Path) -> None:
    """pdfinfo prints 1,000,000 pt as "1e+06": read as it is, the page is over max_pixels
    at once (it used to be taken for 612 x 792 and drawn: 1.9 gigapixels, 3.7 GB)."""
    path = saved(tmp_path, "fax.pdf", hostile.wide_page_pdf())
    result = read_in_a_worker(path)
    ((text, error),) = result["pages"]  # type: ignore[misc]
    assert text == "" and "too large" in str(error) and "2777778 x 694" in str(error)
    assert result["rss_mb"] < 300 and result["seconds"] < 20  # type: ignore[operator]


def test_a_page_size_pdfinfo_does_not_give_fails_closed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Mock: pdfinfo's output, as no PDF makes poppler print a size we cannot parse.
    path = saved(tmp_path, "fax.pdf", hostile.plain_fax_like_pdf())
    real = document._run

    def pdfinfo(args: list[str], timeout: float, at: Path) -> str:
        out = real(args, timeout, at)
        return out.replace("Page    1 size: ", "Page    1 size: inf x ") \
            if args[0] == "pdfinfo" else out

    monkeypatch.setattr(document, "_run", pdfinfo)
    with pytest.raises(PermanentError, match="page 1 has no readable size"):
        page_of(path)


def test_the_reader_costs_the_worker_little(tmp_path: Path) -> None:
    """A sanity bound, not a benchmark (bench/ocr.py measures): a fax page taken out
    costs the worker a few ms, poppler's drawing ~60-80 ms."""
    path = saved(tmp_path, "letter.pdf", make_fax(kind="letter", pages=1, seed=3).content)
    page = page_of(path)
    extractor = Extractor(1, 40_000_000)
    try:
        extractor.image(path, page, 30, tmp_path)  # the child's start
        started = time.process_time()
        for _ in range(10):
            assert extractor.image(path, page, 30, tmp_path) is not None
        spent = (time.process_time() - started) / 10
    finally:
        extractor.close()
    assert spent < 0.03


def damaged_g4(image: Image.Image) -> bytes:
    """`image` as a G4 TIFF whose coded rows are damaged from a third of the way down."""
    out = io.BytesIO()
    image.save(out, "TIFF", compression="group4", strip_size=2**30)
    data = bytearray(out.getvalue())
    with Image.open(io.BytesIO(bytes(data))) as tiff:
        (at,), (size,) = tiff.tag_v2[273], tiff.tag_v2[279]
    for index in range(at + size // 3, at + size - 8):
        data[index] ^= 0x55
    return bytes(data)


@pytest.mark.parametrize("kind", ["tif", "pdf"])
def test_libtiff_does_not_write_a_line_per_damaged_row_into_the_log(
        tmp_path: Path, kind: str) -> None:
    """libtiff prints "Bad code word at line N" for each damaged row to the process's
    stderr, the worker's log (thousands of lines for one page of a fax); the page's own
    error, or text, is what the worker reports."""
    tiff = damaged_g4(hostile.text_image("PAY ALICE 100", 1728, 2200))
    if kind == "pdf":
        with Image.open(io.BytesIO(tiff)) as image:
            (at,), (size,) = image.tag_v2[273], image.tag_v2[279]
        content = hostile.image_page_pdf(
            b"q 612 0 0 779.3 0 0 cm /Im0 Do Q",
            image=hostile._stream(
                b"/Type /XObject /Subtype /Image /Width 1728 /Height 2200 /ColorSpace "
                b"/DeviceGray /BitsPerComponent 1 /Filter /CCITTFaxDecode /DecodeParms "
                b"<< /K -1 /Columns 1728 /Rows 2200 /BlackIs1 true >>", tiff[at:at + size]),
            mediabox=b"[0 0 612 779.3]")
    else:
        content = tiff
    path = saved(tmp_path, f"fax.{kind}", content)
    if kind == "pdf":  # the page goes the extract way: libtiff decodes it in the worker
        extractor = Extractor(1, 40_000_000)
        try:
            assert extractor.image(path, page_of(path), 30, tmp_path) is not None
        finally:
            extractor.close()
    result = read_in_a_worker(path)
    assert "Bad code word" not in str(result["stderr"])
    assert len(str(result["stderr"]).splitlines()) < 5, result["stderr"]


def test_an_xref_table_glued_to_a_keyword_is_checked_too() -> None:
    """poppler reads a linearized file's first table right after the first `endobj`, even
    written `endobjxref`; a table listing object 5 one byte into another object's header
    must be seen, or it would show poppler another object than qpdf reads."""
    from faxflow_ocr import pdf_child

    data = hostile.plain_fax_like_pdf()
    pdf_child.canonical(data)  # the plain file passes
    five = data.index(b"\n5 0 obj") + 1
    glued = (b"xref\n5 1\n%010d 00000 n \ntrailer\n<< /Root 1 0 R >>\n" % (five + 1))
    at = data.rindex(b"endobj") + len(b"endobj")  # after the last object: no offset moves
    head, _, tail = (data[:at] + glued + data[at:]).rpartition(b"startxref\n")
    shifted = head + b"startxref\n%d\n%%%%EOF\n" % (int(tail.split()[0]) + len(glued))
    with pytest.raises(pdf_child.NotPlain):
        pdf_child.canonical(shifted)
