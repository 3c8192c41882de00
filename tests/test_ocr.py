"""The OCR plugin on generated fax documents, with the real tesseract and poppler.

About 10 pages are OCR'd in the whole file (~1.5 s each); the rest never reaches tesseract.
"""

from __future__ import annotations

import errno
import io
import os
import re
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import faxflow_ocr
import pluggy
import pytest
from faxflow_ocr.budget import Budget
from faxflow_ocr.failures import is_transient
from faxflow_ocr.options import OcrOptions
from faxflow_ocr.service import OcrService
from hostile import documents as hostile_docs
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
    ocr = service(tmp_path, engine="pytesseract", rasterizer="pdf2image", cache=False)
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
    assert ((*base, "engine"), "must be one of libtesseract, pytesseract, tesserocr") in problems
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


# --- unreadable pages, damaged documents, whose fault a failure is --------------------------


def test_a_page_over_max_pixels_in_a_good_pdf_quarantines_the_fax_naming_the_page(
        tmp_path: Path) -> None:
    """Page 2 is refused before decoding: the fax must not be routed on page 1 as if page 2
    were blank. The core makes it a permanent problem naming document and page."""
    app = make_app(tmp_path)
    document = write(tmp_path, "scan.pdf", hostile_docs.pdf_with_a_huge_page())
    fax = fax_of(document)
    try:
        protocol.extract_text(fax, app)
    finally:
        app.shutdown()
    assert [(p.number, p.read) for p in fax.pages] == [(1, True), (2, False)]
    assert [(p.message, p.transient) for p in fax.problems] == [(
        "document 1 of 1 (scan.pdf): 1 of 2 pages unreadable: page 2: page is too large: "
        "40000 x 40000 pixels (max_pixels is 40000000)", False)]


def test_unreadable_pages_label_lets_the_fax_go_on_with_every_page_in_the_pdf(
        tmp_path: Path) -> None:
    """[worker] unreadable_pages = "label": no problem, the label for a review rule, and the
    searchable PDF still has the page that could not be read (from the original)."""
    pm = pluggy.PluginManager("faxflow")
    pm.add_hookspecs(faxflow.hookspecs)
    pm.register(faxflow_ocr, name="ocr")
    text = (f'[worker]\nspool_dir = "{tmp_path / "spool"}"\nunreadable_pages = "label"\n'
            "[plugins.ocr]\nsearchable_pdf = true\n")
    config, problems = faxflow.config.parse(text, path=tmp_path / "faxflow.toml")
    assert problems == []
    app = App(pm=pm, config=config)
    app.configure(config)
    document = write(tmp_path, "scan.pdf", hostile_docs.pdf_with_a_huge_page())
    fax = fax_of(document)
    try:
        protocol.extract_text(fax, app)
    finally:
        app.shutdown()
    assert fax.problems == [] and fax.labels == {protocol.UNREADABLE_LABEL}
    assert pdf_pages(fax.artifacts["searchable_pdf"]) == 2


def test_a_truncated_tiff_is_a_damaged_document_not_a_retry(tmp_path: Path) -> None:
    """Pillow raises TypeError ("Missing dimensions") counting this TIFF's pages; it was
    taken for a transient failure and retried with a traceback before quarantine."""
    ocr = service(tmp_path, cache=False)
    try:
        with pytest.raises(PermanentError) as caught:
            ocr.read(write(tmp_path, "cut.tif", hostile_docs.truncated_tiff()).path,
                     "cut.tif", "", "eng")
    finally:
        ocr.close()
    assert str(caught.value) == "TIFF is damaged: Missing dimensions"


@pytest.mark.parametrize(("make", "error"), [
    (hostile_docs.tiff_cut_in_a_page, "page could not be read: OSError: decoder error -2"),
    (hostile_docs.huge_page_pdf, "page is too large: 40000 x 40000 pixels"),
])
def test_a_page_that_cannot_be_decoded_is_that_page_s_error(
        tmp_path: Path, make: Any, error: str) -> None:
    ocr = service(tmp_path, cache=False)
    try:
        outcome = ocr.read(write(tmp_path, "p.bin", make()).path, "p.bin", "", "eng")
    finally:
        ocr.close()
    assert (outcome.pages[0].error or "").startswith(error)


@pytest.mark.parametrize(("exc", "transient"), [
    (OSError(errno.ENOSPC, "No space left on device"), True),
    (OSError(errno.EMFILE, "Too many open files"), True),
    (MemoryError(), True),
    (TypeError("Missing dimensions"), False),  # Pillow on a truncated TIFF
    (OSError("decoder error -2"), False),  # Pillow on a truncated strip: no errno
    (OSError(errno.EINVAL, "Invalid argument"), False),  # a seek to a hostile offset
    (ValueError("tile cannot extend outside image"), False),
    (KeyError(256), False),
    (subprocess.CalledProcessError(1, ["pdfunite"]), False),
])
def test_failures_are_the_document_s_unless_the_machine_s(exc: BaseException,
                                                           transient: bool) -> None:
    assert is_transient(exc) is transient


def test_a_full_disk_is_transient_for_a_page_and_for_a_document(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC is simulated (raised by a stand-in); a full disk must make the fax come back
    later, never make a page 'unreadable' nor the document 'damaged'."""
    import faxflow_ocr.page
    import faxflow_ocr.service

    sample = make_fax(kind="letter", pages=1, resolution="fine", fmt="tiff", seed=1)
    path = write(tmp_path, "d.tif", sample.content).path

    def disk_full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device (simulated)")

    ocr = service(tmp_path, cache=False)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(faxflow_ocr.page.raster, "load", disk_full)  # page level
            with pytest.raises(OSError) as caught:
                ocr.read(path, "d.tif", "", "eng")
            assert caught.value.errno == errno.ENOSPC
            assert not isinstance(caught.value, PermanentError)
        with monkeypatch.context() as patch:
            patch.setattr(faxflow_ocr.service.doc, "inspect", disk_full)  # document level
            with pytest.raises(OSError) as caught:
                ocr.read(path, "d.tif", "", "eng")
            assert caught.value.errno == errno.ENOSPC
    finally:
        ocr.close()


# --- the time budget of a document ------------------------------------------------------------


def test_budget_runs_only_while_the_document_is_being_read() -> None:
    now = [0.0]
    budget = Budget(10, clock=lambda: now[0])
    now[0] = 100.0  # queued behind other faxes' pages: costs nothing
    assert budget.page_started() == 10
    now[0] = 101.0
    assert budget.page_started() == 9  # a second page at the same time
    now[0] = 103.0
    budget.page_ended()
    budget.page_ended()  # both ran 100-103: 3 s spent, not 5
    assert budget.left() == 7
    now[0] = 500.0  # idle again
    budget.spend(2)  # header checks
    assert budget.left() == 5 and not budget.exhausted()


def _children() -> list[tuple[str, str]]:
    """(command, state) of this process's child processes (tesseract, pdftoppm, ...)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1: text.rindex(")")]
        state, ppid = text[text.rindex(")") + 2:].split()[:2]
        # Only the tools OCR starts: other tests may leave helpers (multiprocessing's
        # resource tracker) as children of this process.
        if int(ppid) == os.getpid() and name.startswith(("pdf", "tesseract")):
            found.append((name, state))
    return found


def test_a_pathological_pdf_is_stopped_at_its_budget_and_frees_the_pool(
        tmp_path: Path) -> None:
    """8 pages of dashed strokes (seconds of rendering each) with a 3 s budget: stopped
    after about 3 s instead of 8 x page time, poppler and tesseract killed, and the next
    document is read at once."""
    ocr = service(tmp_path, cache=False, workers=2, document_timeout=3)
    slow = write(tmp_path, "x.pdf", hostile_docs.dashed_strokes_pdf()).path
    sample = make_fax(kind="letter", pages=1, resolution="fine", fmt="tiff", seed=1)
    normal = write(tmp_path, "n.tif", sample.content).path
    try:
        started = time.monotonic()
        with pytest.raises(PermanentError) as caught:
            ocr.read(slow, "x.pdf", "", "eng")
        took = time.monotonic() - started
        assert re.fullmatch(r"not read within its time budget of 3 s \(document_timeout\); "
                            r"[0-2] of 8 pages read", str(caught.value)), caught.value
        assert took < 3 + 3, took  # the budget, poppler's 1 s rounding and a little
        assert [c for c in _children() if c[1] != "Z"] == []  # nothing left running
        started = time.monotonic()
        outcome = ocr.read(normal, "n.tif", "", "eng")
        assert time.monotonic() - started < 15  # ~1.5 s: the pool was free
        assert document_cer(sample.page_texts, outcome.pages) < 0.01
    finally:
        ocr.close()


def test_a_busy_pool_does_not_spend_a_document_s_budget(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The only pool thread is busy for 2 s with another fax's page; a document with a 1 s
    budget whose page takes 0.3 s is read, because waiting in the queue costs nothing."""
    import threading

    import faxflow_ocr.service
    from faxflow_ocr.engine import OcrResult
    from faxflow_ocr.page import PageResult

    def quick_page(path: Path, kind: str, page: Any, *args: Any) -> PageResult:
        time.sleep(0.3)
        return PageResult(page.number, OcrResult("text", 90.0, 1), False, 0, 0.0, 0.3)

    monkeypatch.setattr(faxflow_ocr.service, "read_page", quick_page)
    ocr = service(tmp_path, cache=False, workers=1, document_timeout=1)
    sample = make_fax(kind="letter", pages=1, resolution="fine", fmt="pdf", seed=1)
    path = write(tmp_path, "q.pdf", sample.content).path
    busy = threading.Event()
    try:
        ocr.pool.submit(lambda: (busy.set(), time.sleep(2)))  # another fax's slow page
        busy.wait(5)
        started = time.monotonic()
        outcome = ocr.read(path, "q.pdf", "", "eng")
        assert time.monotonic() - started > 1.9  # it did wait for the pool
    finally:
        ocr.close()
    assert [p.text for p in outcome.pages] == ["text"]


def test_a_page_gets_no_more_time_than_its_document_has_left(tmp_path: Path) -> None:
    """The budget's remainder is the engine's timeout (tesseract is killed at the end)."""
    ocr = service(tmp_path, cache=False, workers=1, document_timeout=5)
    timeouts: list[float] = []
    real_ocr = ocr.engine.ocr

    def recording(*args: Any, **kwargs: Any) -> Any:  # the real engine, its timeout noted
        timeouts.append(args[4])
        return real_ocr(*args, **kwargs)

    ocr.engine.ocr = recording  # type: ignore[method-assign]
    sample = make_fax(kind="letter", pages=1, resolution="fine", fmt="tiff", seed=1)
    try:
        ocr.read(write(tmp_path, "t.tif", sample.content).path, "t.tif", "", "eng")
    finally:
        ocr.close()
    assert timeouts and all(0 < t <= 5 for t in timeouts)  # page_timeout is 60


# --- the cache: private, and pruned ---------------------------------------------------------


def test_cache_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    """The cache holds the text of every fax: folder 0700, the database, SQLite's -wal and
    -shm files and the cached PDFs 0600, under the usual umask 022."""
    import stat

    from faxflow_ocr.cache import TextCache

    old = os.umask(0o022)
    try:
        cache = TextCache(tmp_path / "ocr-cache")
        cache.put("k", [PageText(1, "patient record")])
        source = tmp_path / "s.pdf"
        source.write_bytes(b"%PDF-1.4 searchable")
        cache.put_pdf("k", source)
        assert cache.get("k") == [PageText(1, "patient record")]
        with sqlite3.connect(cache.path) as db:  # keeps the WAL files while open
            db.execute("SELECT count(*) FROM pages").fetchone()
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in cache.folder.iterdir()}
    finally:
        os.umask(old)
    assert stat.S_IMODE(cache.folder.stat().st_mode) == 0o700
    names = {"ocr-cache.sqlite", "ocr-cache.sqlite-wal", "ocr-cache.sqlite-shm",
             cache.pdf_path("k").name}
    assert names <= set(modes), modes
    assert set(modes.values()) == {0o600}, modes


def test_cache_is_pruned_by_age_and_size_at_start_and_then_hourly(tmp_path: Path) -> None:
    import faxflow_ocr.cache
    from faxflow_ocr.cache import TextCache

    cache = TextCache(tmp_path / "c", max_age_days=7, max_mb=1)
    day = 86400
    now = time.time()
    big = "x" * 400_000  # three of these are over 1 MB
    for key, age in (("old", 8 * day), ("a", 3 * day), ("b", 2 * day), ("c", day)):
        cache.put(key, [PageText(1, big)])
        with closing(sqlite3.connect(cache.path)) as db, db:
            db.execute("UPDATE pages SET created = ? WHERE key = ?", (now - age, key))
    assert cache.prune(now=now) == 2  # "old" by age, then "a", the oldest, by size
    assert [k for k in ("old", "a", "b", "c") if cache.get(k)] == ["b", "c"]

    # Not pruned on every text added: once at start-up (OcrService.start), then hourly.
    ocr = OcrService(OcrOptions(cache_max_age_days=1), tmp_path / "c")
    assert ocr.cache is not None
    calls: list[float] = []
    real = ocr.cache.prune
    ocr.cache.prune = lambda now=None: calls.append(1) or real(now)  # type: ignore[method-assign]
    ocr.start()
    ocr.cache.put("d", [PageText(1, "x")])
    ocr.cache.put("e", [PageText(1, "x")])
    assert len(calls) == 1  # start-up only
    ocr.cache._pruned_at = time.monotonic() - faxflow_ocr.cache.PRUNE_EVERY  # an hour later
    ocr.cache.put("f", [PageText(1, "x")])
    assert len(calls) == 2
    ocr.close()
    assert ocr.cache.get("b") is None  # two days old: over cache_max_age_days = 1


def test_scratch_files_are_in_a_private_folder_beside_the_document(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Page images and tesseract's output go to a 0700 folder in the document's (spool)
    folder, which the worker cleans even after a SIGKILL; never to the system temp folder."""
    import stat
    import tempfile

    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    ocr = service(tmp_path, cache=False, searchable_pdf=True)
    seen: list[tuple[Path, int, list[str]]] = []
    real_ocr = ocr.engine.ocr

    def recording(*args: Any, **kwargs: Any) -> Any:  # the real engine, its folder noted
        scratch = args[7]
        result = real_ocr(*args, **kwargs)
        seen.append((scratch, stat.S_IMODE(scratch.stat().st_mode),
                     [p.name for p in system_tmp.iterdir()]))
        return result

    ocr.engine.ocr = recording  # type: ignore[method-assign]
    sample = make_fax(kind="letter", pages=1, resolution="fine", fmt="tiff", seed=1)
    document = write(tmp_path, "s.tif", sample.content).path
    try:
        outcome = ocr.read(document, "s.tif", "", "eng", document.with_suffix(".searchable.pdf"))
    finally:
        ocr.close()
    assert [(folder.parent, mode, tmp) for folder, mode, tmp in seen] == [
        (document.parent, 0o700, [])]
    assert outcome.searchable_pdf is not None and outcome.searchable_pdf.is_file()
    assert sorted(p.name for p in document.parent.iterdir()) == ["s.searchable.pdf", "s.tif"]
    assert list(system_tmp.iterdir()) == []


def test_an_old_cache_folder_is_tightened_and_other_files_are_left_alone(
        tmp_path: Path) -> None:
    """A cache folder an older version left 0755/0644 is made private on first use; a file
    that is not the cache's (cache_dir pointed at a shared folder) is neither changed nor
    pruned."""
    import stat

    from faxflow_ocr.cache import TextCache

    folder = tmp_path / "ocr-cache"
    folder.mkdir(mode=0o755)
    old_db = folder / "ocr-cache.sqlite"
    old_db.touch(mode=0o644)
    foreign = folder / "notes.pdf"
    foreign.write_bytes(b"%PDF not ours")
    foreign.chmod(0o644)
    os.utime(foreign, (0, 0))  # very old
    cache = TextCache(folder)
    cache.put("k", [PageText(1, "x")])
    cache.prune(now=time.time() + 30 * 86400)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(old_db.stat().st_mode) == 0o600
    assert foreign.read_bytes() == b"%PDF not ours"
    assert stat.S_IMODE(foreign.stat().st_mode) == 0o644


def test_budget_and_page_options_are_checked(tmp_path: Path) -> None:
    pm = pluggy.PluginManager("faxflow")
    pm.add_hookspecs(faxflow.hookspecs)
    pm.register(faxflow_ocr, name="ocr")
    config, _ = faxflow.config.parse(
        '[plugins.ocr]\ndocument_timeout = 600\ntoo_many_pages = "truncate"\n'
        "cache_max_mb = 0\n")
    problems = {(p.path[-1], p.message) for p in App(pm=pm, config=config).check_config(config)}
    assert problems == {
        ("document_timeout", "must be less than [retarus] lock_timeout (600 s): a fax still "
                             "being read would be handed out again"),
        ("too_many_pages", "must be one of quarantine, deliver"),
        ("cache_max_mb", "must be between 1 and 1e+06")}
    app = make_app(tmp_path)  # no [retarus]: lock_timeout 600, so 300 s per document
    try:
        assert app.state[faxflow_ocr.STATE_KEY].document_timeout == 300
    finally:
        app.shutdown()
