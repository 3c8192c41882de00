"""The OCR plugin on generated fax documents, with the real tesseract and poppler.

About 10 pages are OCR'd in the whole file (~1.5 s each); the rest never reaches tesseract.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

import faxflow_ocr
import pluggy
import pytest
from faxflow_ocr.options import OcrOptions
from faxflow_ocr.service import OcrService
from PIL import Image

import faxflow.config
import faxflow.hookspecs
from faxflow import protocol
from faxflow.app import App
from faxflow.errors import PermanentError
from faxflow.samples import cer, make_fax, normalize_text
from faxflow.types import Document, DocumentRef, Fax, Job, Number, PageText


def make_app(tmp_path: Path, options: str = "") -> App:
    pm = pluggy.PluginManager("faxflow")
    pm.add_hookspecs(faxflow.hookspecs)
    pm.register(faxflow_ocr, name="ocr")
    text = f'[worker]\nspool_dir = "{tmp_path / "spool"}"\n[plugins.ocr]\n{options}\n'
    config, problems = faxflow.config.parse(text, path=tmp_path / "faxflow.toml")
    assert problems == []
    app = App(pm=pm, config=config)
    assert app.check_config(config) == []
    app.configure(config)
    app.startup()
    return app


def write(tmp_path: Path, name: str, content: bytes) -> Document:
    path = tmp_path / "spool" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    import hashlib

    return Document(DocumentRef(f"https://example.invalid/{name}", name,
                                name.rsplit(".", 1)[-1]),
                    path, len(content), hashlib.sha256(content).hexdigest(), None)


def fax_of(*documents: Document, receiver: str = "+498912345678") -> Fax:
    return Fax(job=Job(id="1", receiver_isdn=Number(receiver, receiver)), topic="t",
               documents=list(documents))


def document_cer(truth: list[str], pages: list[PageText]) -> float:
    """CER over all pages together (weighted by length), as the benchmark reports it."""
    return cer("\n".join(truth), "\n".join(p.text for p in pages))


def service(tmp_path: Path, **options: object) -> OcrService:
    return OcrService(OcrOptions(**options), tmp_path / "cache")  # type: ignore[arg-type]


# --- accuracy, formats, cache, searchable PDF ----------------------------------------------


def test_clean_fine_pdf_through_the_hooks_is_cached_and_searchable(tmp_path: Path) -> None:
    sample = make_fax(kind="letter", pages=1, resolution="fine", fmt="pdf", seed=1)
    app = make_app(tmp_path, "searchable_pdf = true")
    document = write(tmp_path, "29.pdf", sample.content)
    fax = fax_of(document)
    try:
        pages = app.extract_text(fax, document)
        assert pages is not None and [p.number for p in pages] == [1]
        assert pages[0].error is None and pages[0].document == "29.pdf"
        assert document_cer(sample.page_texts, pages) < 0.005
        assert pages[0].confidence is not None and pages[0].confidence > 80
        searchable = fax.artifacts["searchable_pdf"]
        text = subprocess.run(["pdftotext", str(searchable), "-"], capture_output=True,
                              text=True, check=True).stdout
        # pdftotext has its own reading order: compare words, not the sequence.
        words = set(normalize_text(sample.page_texts[0]).split())
        assert len(words & set(text.split())) > 0.9 * len(words)
        # The page shows the fax's own 1-bit pixels, not the smoothed copy tesseract read.
        listing = subprocess.run(["pdfimages", "-list", str(searchable)], capture_output=True,
                                 text=True, check=True).stdout.splitlines()[2:]
        assert [(row.split()[3], row.split()[5], row.split()[7]) for row in listing] == [
            ("1728", "gray", "1")]  # width, colour, bits per component

        service = app.state[faxflow_ocr.STATE_KEY]
        calls = service.engine.calls
        again = fax_of(document)
        searchable.unlink()
        assert app.extract_text(again, document) == pages
        assert again.scratch["ocr"]["29.pdf"]["cached"] is True
        assert service.engine.calls == calls  # tesseract did not run again
        assert again.artifacts["searchable_pdf"].is_file()  # the PDF comes from the cache too
    finally:
        app.shutdown()


@pytest.mark.slow
def test_standard_resolution_tiff_gets_square_pixels(tmp_path: Path) -> None:
    sample = make_fax(kind="invoice", pages=2, resolution="standard", fmt="tiff", seed=3)
    ocr = service(tmp_path, cache=False)
    try:
        outcome = ocr.read(write(tmp_path, "1.tif", sample.content).path, "1.tif", "", "eng")
    finally:
        ocr.close()
    assert [p.number for p in outcome.pages] == [1, 2]
    # Without square pixels these pages give about 2.5%; the average over many clean
    # standard pages is bounded in test_cer_over_ten_pages.
    assert document_cer(sample.page_texts, outcome.pages) < 0.008


KINDS = ("invoice", "letter", "order", "referral", "delivery_note")
GOAL = 0.005  # the brief: clean pages of both resolutions under 0.5% CER


@pytest.mark.slow
@pytest.mark.parametrize(("resolution", "noisy", "bound"), [
    ("fine", False, GOAL),  # measured 0.18%
    ("fine", True, 0.02),  # 0.37%
    ("standard", True, 0.02),  # 1.30%
    ("standard", False, 0.008),  # 0.64%
    pytest.param("standard", False, GOAL, marks=pytest.mark.xfail(
        strict=True, reason="clean standard pages measure ~0.6%: strokes thinner than a "
        "98 dpi row are missing from the image (docs/ocr.md, Accuracy)")),
])
def test_cer_over_ten_pages(tmp_path: Path, resolution: str, noisy: bool,
                            bound: float) -> None:
    """Mean CER over one page of each kind, seeds 1 and 2 (as `bench/ocr.py cer` reports
    it, weighted by length), through the default path with 2 workers."""
    samples = [make_fax(kind=kind, pages=1, resolution=resolution,  # type: ignore[arg-type]
                        noisy=noisy, fmt="pdf", seed=seed)
               for seed in (1, 2) for kind in KINDS]
    ocr = service(tmp_path, workers=2, cache=False)
    try:
        read = [ocr.read(write(tmp_path, f"{i}.pdf", s.content).path, f"{i}.pdf", "", "eng")
                for i, s in enumerate(samples)]
    finally:
        ocr.close()
    truth = [page for sample in samples for page in sample.page_texts]
    assert document_cer(truth, [page for outcome in read for page in outcome.pages]) < bound


def test_standard_pages_noise_is_told_apart(tmp_path: Path) -> None:
    # At 98 dpi a clean page has some one-pixel glyph details: this one measures 0.0017
    # isolated pixels per dark pixel, above the fine-page threshold (0.001), and was
    # despeckled (which costs clean pages) before the threshold was scaled for standard pages.
    clean = make_fax(kind="invoice", pages=1, resolution="standard", fmt="pdf", seed=2)
    noisy = make_fax(kind="delivery_note", pages=1, resolution="standard", fmt="pdf",
                     noisy=True, seed=1)
    ocr = service(tmp_path, cache=False)
    try:
        read_clean = ocr.read(write(tmp_path, "c.pdf", clean.content).path, "c.pdf", "", "eng")
        read_noisy = ocr.read(write(tmp_path, "n.pdf", noisy.content).path, "n.pdf", "", "eng")
    finally:
        ocr.close()
    assert read_clean.noisy == [] and read_noisy.noisy == [1]
    assert document_cer(clean.page_texts, read_clean.pages) < 0.025  # measured 1.6%
    # thin_rows after the median: this page 3.6% -> 1.9% CER
    assert document_cer(noisy.page_texts, read_noisy.pages) < 0.03


def test_noisy_skewed_page_is_despeckled_and_levelled(tmp_path: Path) -> None:
    sample = make_fax(kind="letter", pages=1, resolution="fine", fmt="pdf", noisy=True, seed=2)
    ocr = service(tmp_path, cache=False)
    try:
        outcome = ocr.read(write(tmp_path, "n.pdf", sample.content).path, "n.pdf", "", "eng")
    finally:
        ocr.close()
    assert outcome.noisy == [1]
    assert 0.2 <= abs(outcome.skew[1]) <= 1.6  # noisy samples are skewed 0.5-1.5 degrees
    assert document_cer(sample.page_texts, outcome.pages) < 0.02


@pytest.mark.slow
def test_upside_down_page_is_turned_and_read(tmp_path: Path) -> None:
    sample = make_fax(kind="letter", pages=1, resolution="fine", fmt="tiff",
                      upside_down_pages=(1,), seed=4)
    ocr = service(tmp_path, cache=False)
    try:
        outcome = ocr.read(write(tmp_path, "u.tif", sample.content).path, "u.tif", "", "eng")
    finally:
        ocr.close()
    assert outcome.rotated == {1: 180}
    assert document_cer(sample.page_texts, outcome.pages) < 0.005


def test_pdf2image_rasterizer_reads_a_clean_fine_page(tmp_path: Path) -> None:
    """pytesseract + pdf2image, the requested libraries, stay a supported, tested path."""
    sample = make_fax(kind="invoice", pages=1, resolution="fine", fmt="pdf", seed=3)
    ocr = service(tmp_path, rasterizer="pdf2image", cache=False)
    try:
        outcome = ocr.read(write(tmp_path, "p.pdf", sample.content).path, "p.pdf", "", "eng")
    finally:
        ocr.close()
    assert document_cer(sample.page_texts, outcome.pages) < 0.005


def test_fast_path_tesserocr_on_the_extracted_fax_image(tmp_path: Path) -> None:
    pytest.importorskip("tesserocr")
    sample = make_fax(kind="order", pages=1, resolution="standard", fmt="pdf", seed=6)
    ocr = service(tmp_path, engine="tesserocr", rasterizer="extract", cache=False)
    try:
        outcome = ocr.read(write(tmp_path, "f.pdf", sample.content).path, "f.pdf", "", "eng")
    finally:
        ocr.close()
    assert ocr.engine.calls == 1
    assert outcome.pages[0].confidence is not None
    assert document_cer(sample.page_texts, outcome.pages) < 0.015


def test_faxes_in_flight_share_one_pool(tmp_path: Path) -> None:
    """Two faxes read at once from two threads never run more tesseracts than workers."""
    import threading

    ocr = service(tmp_path, workers=1, cache=False)
    running, peak, lock = 0, 0, threading.Lock()
    real_ocr = ocr.engine.ocr

    def counting_ocr(*args: object, **kwargs: object) -> object:  # the real engine, counted
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            return real_ocr(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            with lock:
                running -= 1

    ocr.engine.ocr = counting_ocr  # type: ignore[method-assign,assignment]
    samples = [make_fax(kind="order", pages=1, resolution="standard", fmt="pdf", seed=s)
               for s in (7, 8)]
    paths = [write(tmp_path, f"{i}.pdf", s.content).path for i, s in enumerate(samples)]
    results: list[list[PageText]] = [[], []]

    def read(i: int) -> None:
        results[i] = ocr.read(paths[i], paths[i].name, "", "eng").pages

    threads = [threading.Thread(target=read, args=(i,)) for i in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        ocr.close()
    assert peak == 1
    for sample, pages in zip(samples, results, strict=True):
        assert document_cer(sample.page_texts, pages) < 0.03  # read, not garbage


def test_a_slow_page_does_not_hold_back_the_next_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With 2 workers, while page 1 is slow (2 s added before its real reading, as an OSD
    retry would add), the free worker goes on with pages 2 and 3; never more than 2 pages in
    flight, and the pages still come back in order."""
    import threading
    import time

    import faxflow_ocr.service

    real_read_page = faxflow_ocr.service.read_page
    lock = threading.Lock()
    running, peak, events = 0, 0, []

    def timed(*args: Any) -> Any:  # the real read_page, page 1 delayed
        nonlocal running, peak
        number = args[2].number
        with lock:
            running += 1
            peak = max(peak, running)
            events.append(("start", number))
        try:
            if number == 1:
                time.sleep(2)
            return real_read_page(*args)
        finally:
            with lock:
                running -= 1
                events.append(("end", number))

    monkeypatch.setattr(faxflow_ocr.service, "read_page", timed)
    ocr = service(tmp_path, workers=2, cache=False)
    sample = make_fax(kind="order", pages=3, resolution="standard", fmt="pdf", seed=5)
    try:
        outcome = ocr.read(write(tmp_path, "s.pdf", sample.content).path, "s.pdf", "", "eng")
    finally:
        ocr.close()
    assert peak == 2
    assert events.index(("start", 3)) < events.index(("end", 1))  # page 3 did not wait
    assert [p.number for p in outcome.pages] == [1, 2, 3]
    assert document_cer(sample.page_texts, outcome.pages) < 0.03


# --- limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["pdf", "tiff"])
def test_too_many_pages_quarantine_the_fax_before_any_page_is_decoded(
        tmp_path: Path, fmt: str) -> None:
    """The default: a document over max_pages is a permanent problem naming it, its page
    count and max_pages, decided from the headers (tesseract never runs). It used to be
    delivered with pages 2-3 silently empty."""
    sample = make_fax(kind="order", pages=3, resolution="standard", fmt=fmt, seed=5)
    app = make_app(tmp_path, "max_pages = 1")
    document = write(tmp_path, f"c.{sample.extension}", sample.content)
    fax = fax_of(document)
    try:
        protocol.extract_text(fax, app)
        assert app.state[faxflow_ocr.STATE_KEY].engine.calls == 0
    finally:
        app.shutdown()
    assert [(p.message, p.transient) for p in fax.problems] == [
        (f"document 1 of 1 (c.{sample.extension}): 3 pages, more than max_pages (1); "
         'not read (too_many_pages = "quarantine")', False)]
    assert fax.pages == []


@pytest.mark.parametrize("fmt", ["pdf", "tiff"])
def test_too_many_pages_deliver_reads_max_pages_and_keeps_every_page(
        tmp_path: Path, fmt: str) -> None:
    """too_many_pages = "deliver": page 1 read, pages 2-3 marked skipped (not an error), and
    the searchable PDF holds all 3 pages, the ones not read without a text layer."""
    sample = make_fax(kind="order", pages=3, resolution="standard", fmt=fmt, seed=5)
    app = make_app(tmp_path, 'max_pages = 1\ntoo_many_pages = "deliver"\n'
                   "searchable_pdf = true")
    document = write(tmp_path, f"c.{sample.extension}", sample.content)
    fax = fax_of(document)
    try:
        protocol.extract_text(fax, app)
        assert app.state[faxflow_ocr.STATE_KEY].engine.calls == 1
    finally:
        app.shutdown()
    assert fax.problems == []
    assert [(p.number, p.skipped, p.error) for p in fax.pages] == [
        (1, False, None), (2, True, None), (3, True, None)]
    assert fax.pages[0].text and (fax.pages_read, fax.pages_total) == (1, 3)
    assert fax.scratch["ocr"][document.ref.name]["skipped"] == [2, 3]
    searchable = fax.artifacts["searchable_pdf"]
    assert pdf_pages(searchable) == 3
    texts = [pdf_text(searchable, n) for n in (1, 2, 3)]
    assert "order" in texts[0].lower() and texts[1:] == ["", ""]
    images = pdf_images(searchable)
    assert [page for page, _ in images] == [1, 2, 3]  # every page shows the fax
    with Image.open(io.BytesIO(make_fax(kind="order", pages=3, resolution="standard",
                                        fmt="tiff", seed=5).content)) as tiff:
        tiff.seek(1)
        assert images[1][1] == tiff.size  # the fax's own pixels, not re-rendered


def pdf_pages(path: Path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True,
                          check=True).stdout
    return int(next(line.split()[1] for line in info.splitlines() if line.startswith("Pages:")))


def pdf_text(path: Path, page: int) -> str:
    return subprocess.run(["pdftotext", "-f", str(page), "-l", str(page), str(path), "-"],
                          capture_output=True, text=True, check=True).stdout.strip("\f\n ")


def pdf_images(path: Path) -> list[tuple[int, tuple[int, int]]]:
    """(page, (width, height)) of every image, from `pdfimages -list`."""
    rows = subprocess.run(["pdfimages", "-list", str(path)], capture_output=True, text=True,
                          check=True).stdout.splitlines()[2:]
    return [(int(r.split()[0]), (int(r.split()[3]), int(r.split()[4]))) for r in rows]


def test_page_timeout_gives_a_page_error_and_is_not_cached(tmp_path: Path) -> None:
    sample = make_fax(kind="letter", pages=1, resolution="fine", fmt="tiff", seed=1)
    path = write(tmp_path, "slow.tif", sample.content).path
    ocr = service(tmp_path, page_timeout=0.1)  # tesseract needs > 1 s for this page
    try:
        first = ocr.read(path, "slow.tif", "ab" * 32, "eng")
        second = ocr.read(path, "slow.tif", "ab" * 32, "eng")
    finally:
        ocr.close()
    for outcome in (first, second):
        assert outcome.cached is False  # a failed page gets another chance
        assert outcome.pages[0].text == ""
        assert (outcome.pages[0].error or "").startswith("OCR timed out: ")


@pytest.mark.parametrize("fmt", ["pdf", "tiff"])
def test_pixel_limit_is_checked_before_decoding(tmp_path: Path, fmt: str) -> None:
    sample = make_fax(kind="letter", pages=1, resolution="fine", fmt=fmt, seed=1)
    ocr = service(tmp_path, max_pixels=1_000_000, cache=False)
    try:
        outcome = ocr.read(write(tmp_path, f"b.{sample.extension}", sample.content).path,
                           "b", "", "eng")
    finally:
        ocr.close()
    assert ocr.engine.calls == 0
    assert outcome.pages[0].text == ""
    assert outcome.pages[0].error == ("page is too large: 1728 x 2287 pixels "
                                      "(max_pixels is 1000000)")


def test_small_page_with_a_huge_image_is_not_rendered(tmp_path: Path) -> None:
    """A 64-megapixel image drawn 100 pt wide: rendering at 200 dpi would decode it whole."""
    import zlib

    import pikepdf

    pdf = pikepdf.new()
    side = 8000
    image = pikepdf.Stream(pdf, zlib.compress(b"\xff" * (side // 8 * side)),
                           Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Image, Width=side,
                           Height=side, ColorSpace=pikepdf.Name.DeviceGray,
                           BitsPerComponent=1, Filter=pikepdf.Name.FlateDecode)
    page = pdf.add_blank_page(page_size=(595, 842))
    page.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image))
    page.Contents = pdf.make_stream(b"q 100 0 0 100 50 50 cm /Im0 Do Q")
    path = tmp_path / "bomb.pdf"
    pdf.save(path)
    ocr = service(tmp_path, cache=False)
    try:
        outcome = ocr.read(path, "bomb.pdf", "", "eng")
    finally:
        ocr.close()
    assert ocr.engine.calls == 0
    assert outcome.pages[0].error == ("page holds an image of 64000000 pixels "
                                      "(max_pixels is 40000000)")


# --- documents that cannot be read at all ---------------------------------------------------


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("empty.pdf", b"", "the file is empty (0 bytes)"),
    ("page.pdf", b"<html><body>Session expired</body></html>",
     "not a PDF: the file starts with '<html><body>'"),
    ("fax.docx", b"PK\x03\x04rest",
     "unsupported document type: the file starts with 'PK??rest'"),
    ("broken.pdf", b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ngarbage\n",
     "PDF is damaged: Syntax Error: Couldn't find trailer dictionary"),
    ("bad.tif", b"II*\x00garbage", "TIFF is damaged: cannot identify image file bad.tif"),
])
def test_unreadable_documents_are_rejected_with_a_reason(
        tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    ocr = service(tmp_path, cache=False)
    try:
        with pytest.raises(PermanentError) as caught:
            ocr.read(write(tmp_path, name, content).path, name, "", "eng")
    finally:
        ocr.close()
    assert str(caught.value).startswith(reason)
    assert ocr.engine.calls == 0


def test_truncated_pdf_is_rejected(tmp_path: Path) -> None:
    sample = make_fax(kind="letter", pages=1, resolution="standard", fmt="pdf", seed=1)
    ocr = service(tmp_path, cache=False)
    try:
        with pytest.raises(PermanentError, match=r"PDF is damaged: .+"):
            ocr.read(write(tmp_path, "t.pdf", sample.content[:200]).path, "t.pdf", "", "eng")
    finally:
        ocr.close()


# --- options --------------------------------------------------------------------------------


def test_config_problems_name_the_key(tmp_path: Path) -> None:
    pm = pluggy.PluginManager("faxflow")
    pm.add_hookspecs(faxflow.hookspecs)
    pm.register(faxflow_ocr, name="ocr")
    config, _ = faxflow.config.parse(
        '[plugins.ocr]\nlanguages = "eng+klingon"\nworkers = 0\nengine = "fast"\n'
        'langauges = "eng"\nlanguages_by_receiver = { "089 123" = "deu", "+4930123456" = 7 }\n')
    problems = {(p.path, p.message) for p in App(pm=pm, config=config).check_config(config)}
    base = ("plugins", "ocr")
    assert ((*base, "workers"), "must be between 1 and 256") in problems
    assert ((*base, "engine"), "must be one of pytesseract, tesserocr") in problems
    assert ((*base, "langauges"), "unknown option (did you mean languages?)") in problems
    assert ((*base, "languages_by_receiver", "089 123"),
            "not a phone number in international form (e.g. +498912345678)") in problems
    assert any(path == (*base, "languages") and "klingon is not installed" in message
               for path, message in problems)
    assert any(path == (*base, "languages_by_receiver", "+4930123456")
               for path, _ in problems)


def test_own_tessdata_folder_is_used_for_checks_and_reading(tmp_path: Path) -> None:
    """`tessdata` points the default engine at another model folder (e.g. tessdata_best):
    languages are checked against that folder, and pages are read with its models."""
    import shutil

    from faxflow_ocr.engine import find_tessdata

    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(Path(find_tessdata(), "eng.traineddata"), folder)  # eng only, no deu
    pm = pluggy.PluginManager("faxflow")
    pm.add_hookspecs(faxflow.hookspecs)
    pm.register(faxflow_ocr, name="ocr")
    config, _ = faxflow.config.parse(f'[plugins.ocr]\ntessdata = "{folder}"\n'
                                     'languages = "eng+deu"\n')
    problems = App(pm=pm, config=config).check_config(config)
    assert [(p.path[-1], p.message) for p in problems] == [
        ("languages", "language deu is not installed for tesseract (installed: eng)")]

    sample = make_fax(kind="order", pages=1, resolution="standard", fmt="pdf", seed=2)
    ocr = service(tmp_path, tessdata=str(folder), cache=False)
    try:
        outcome = ocr.read(write(tmp_path, "m.pdf", sample.content).path, "m.pdf", "", "eng")
        with pytest.raises(Exception, match="deu"):  # not in that folder, though installed
            ocr.engine.ocr(Image.new("L", (100, 100), 255), "deu", 4, 200, 30)
    finally:
        ocr.close()
    assert document_cer(sample.page_texts, outcome.pages) < 0.03


def test_reload_keeps_the_pool_unless_ocr_options_change(tmp_path: Path) -> None:
    app = make_app(tmp_path, "workers = 1")
    first = app.state[faxflow_ocr.STATE_KEY]
    try:
        app.configure(app.config)  # e.g. a reload that changed only the rules
        assert app.state[faxflow_ocr.STATE_KEY] is first
        config, _ = faxflow.config.parse(f'[worker]\nspool_dir = "{tmp_path / "spool"}"\n'
                                         "[plugins.ocr]\nworkers = 2\n",
                                         path=tmp_path / "faxflow.toml")
        app.configure(config)
        second = app.state[faxflow_ocr.STATE_KEY]
        assert second is not first and second.options.workers == 2
        assert first._pool is None  # nothing in flight: the old pool is closed at once
    finally:
        app.shutdown()
    assert faxflow_ocr.STATE_KEY not in app.state


def test_languages_by_receiver_compares_e164() -> None:
    options, problems = faxflow_ocr.opts.parse(
        {"languages": "eng", "languages_by_receiver": {"+49 89 1234-5678": "deu"}})
    assert problems == []
    assert options.languages_for("+498912345678") == "deu"
    assert options.languages_for("+4930999") == "eng"
    assert options.languages_for(None) == "eng"
