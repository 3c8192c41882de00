"""Tests for the sample fax generator (faxflow.samples)."""

from __future__ import annotations

import io
import json
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat, TiffImagePlugin

from faxflow.samples import (
    KINDS,
    SampleFax,
    cer,
    levenshtein,
    make_fax,
    normalize_text,
    write_fax,
)
from faxflow.samples.__main__ import main
from faxflow.samples.kinds import PLANNERS

HEIGHT = {"fine": 2287, "standard": 1143}
YDPI = {"fine": 196, "standard": 98}
needs_poppler = pytest.mark.skipif(shutil.which("pdfimages") is None, reason="needs poppler-utils")


@pytest.fixture(scope="module")
def tiffs() -> dict[str, SampleFax]:
    return {res: make_fax(kind="invoice", pages=2, resolution=res, fmt="tiff", seed=5)
            for res in HEIGHT}


def frames(content: bytes) -> list[Image.Image]:
    out = []
    with Image.open(io.BytesIO(content)) as tif:
        assert isinstance(tif, TiffImagePlugin.TiffImageFile)
        for i in range(tif.n_frames):
            tif.seek(i)
            assert tif.info["compression"] == "group4"
            assert tif.tag_v2[TiffImagePlugin.PHOTOMETRIC_INTERPRETATION] == 0  # min-is-white
            assert len(tif.tag_v2[TiffImagePlugin.STRIPOFFSETS]) == 1
            dpi = tif.info["dpi"]
            frame = tif.copy()
            frame.info["dpi"] = dpi
            out.append(frame)
    return out


def g4_strips(content: bytes) -> list[bytes]:
    strips = []
    with Image.open(io.BytesIO(content)) as tif:
        assert isinstance(tif, TiffImagePlugin.TiffImageFile)
        for i in range(tif.n_frames):
            tif.seek(i)
            (offset,), (count,) = (tif.tag_v2[TiffImagePlugin.STRIPOFFSETS],
                                   tif.tag_v2[TiffImagePlugin.STRIPBYTECOUNTS])
            strips.append(content[offset:offset + count])
    return strips


@pytest.mark.parametrize("resolution", ["fine", "standard"])
def test_tiff_pages_are_1bit_fax_geometry(tiffs: dict[str, SampleFax], resolution: str) -> None:
    fax = tiffs[resolution]
    assert (fax.extension, fax.content_type) == ("tif", "image/tiff")
    pages = frames(fax.content)
    assert len(pages) == fax.pages == len(fax.page_texts) == 2
    for page in pages:
        assert page.mode == "1"
        assert page.size == (1728, HEIGHT[resolution])
        assert page.info["dpi"] == (204, YDPI[resolution])
        # mostly white paper: catches inverted polarity
        assert ImageStat.Stat(page.convert("L")).mean[0] > 200


def test_standard_is_half_the_height_of_fine(tiffs: dict[str, SampleFax]) -> None:
    fine, std = frames(tiffs["fine"].content)[0], frames(tiffs["standard"].content)[0]
    assert abs(2 * std.height - fine.height) <= 1
    assert fine.width == std.width
    # same text at both resolutions
    assert tiffs["fine"].page_texts == tiffs["standard"].page_texts


@needs_poppler
@pytest.mark.parametrize("resolution", ["fine", "standard"])
def test_pdf_wraps_the_g4_data_unchanged(tmp_path: Path, tiffs: dict[str, SampleFax],
                                         resolution: str) -> None:
    fax = make_fax(kind="invoice", pages=2, resolution=resolution, fmt="pdf", seed=5)
    assert (fax.extension, fax.content_type) == ("pdf", "application/pdf")
    assert b"/CCITTFaxDecode" in fax.content
    path = write_fax(fax, tmp_path)
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    assert re.search(r"^Pages:\s+2$", info.stdout, re.MULTILINE)
    listing = subprocess.run(["pdfimages", "-list", str(path)], capture_output=True, text=True,
                             check=True).stdout.splitlines()[2:]
    assert len(listing) == 2
    for line in listing:
        cols = line.split()
        # page num type width height color comp bpc enc interp object ID x-ppi y-ppi ...
        assert cols[3:9] == ["1728", str(HEIGHT[resolution]), "gray", "1", "1", "ccitt"]
        assert cols[12:14] == ["204", str(YDPI[resolution])]
    # the embedded CCITT streams are byte for byte the TIFF's strips
    subprocess.run(["pdfimages", "-ccitt", str(path), str(tmp_path / "img")], check=True)
    extracted = [p.read_bytes() for p in sorted(tmp_path.glob("img-*.ccitt"))]
    assert extracted == g4_strips(tiffs[resolution].content)


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="needs poppler-utils")
def test_pdf_renders_black_on_white(tmp_path: Path) -> None:
    path = write_fax(make_fax(kind="letter", pages=1, fmt="pdf", seed=2), tmp_path)
    pgm = subprocess.run(["pdftoppm", "-r", "50", "-gray", str(path)], capture_output=True,
                         check=True).stdout
    with Image.open(io.BytesIO(pgm)) as page:
        assert 200 < ImageStat.Stat(page).mean[0] < 254  # white paper with some text


def test_same_seed_same_bytes() -> None:
    def noisy(seed: int) -> SampleFax:
        return make_fax(kind="referral", pages=2, resolution="standard", fmt="tiff", noisy=True,
                        seed=seed)

    first = noisy(9)
    make_fax(kind="order", resolution="standard", noisy=True, seed=3)  # other work in between
    again = noisy(9)
    assert first.content == again.content
    assert first.page_texts == again.page_texts and first.fields == again.fields
    assert make_fax(kind="letter", seed=9).content == make_fax(kind="letter", seed=9).content
    other = noisy(10)
    assert other.content != first.content and other.page_texts != first.page_texts


@pytest.mark.parametrize("kind", KINDS)
def test_page_texts_and_fields(kind: str) -> None:
    fax = make_fax(kind=kind, pages=3, fmt="tiff", seed=11)
    assert (fax.kind, fax.pages, fax.resolution) == (kind, 3, "fine")
    assert len(fax.page_texts) == 3 == len(frames(fax.content))
    text = normalize_text("\n".join(fax.page_texts))
    for key in ("date", "sender_name", "sender_number"):
        assert fax.fields[key]
    for key, value in fax.fields.items():
        assert normalize_text(value) in text, key
    for number, page in enumerate(fax.page_texts, 1):
        lines = page.split("\n")
        assert lines[0].endswith(f"P.{number:02d}/03")
        assert fax.fields["sender_number"] in lines[0]
        assert lines[-1] == f"Page {number} of 3"
        assert all(line and line == line.strip() for line in lines)
        assert page.isascii()


def test_kind_specific_fields() -> None:
    invoice = make_fax(kind="invoice", fmt="tiff", seed=1).fields
    assert invoice["invoice_number"].startswith("INV-20")
    assert len(invoice["invoice_number"]) == len("INV-2026-004711")
    assert "total" in invoice and "iban" in invoice
    referral = make_fax(kind="referral", fmt="tiff", seed=1).fields
    assert referral["patient_id"].startswith("PID-") and len(referral["patient_id"]) == 10
    assert {"patient_name", "date_of_birth", "diagnosis", "referring_doctor"} <= set(referral)
    assert make_fax(kind="order", fmt="tiff", seed=1).fields["order_number"].startswith("PO-")
    note = make_fax(kind="delivery_note", fmt="tiff", seed=1).fields
    assert note["delivery_note_number"].startswith("DN-")


def test_kinds_close_to_others_have_their_fields_and_vary_by_seed() -> None:
    credit = make_fax(kind="credit_note", fmt="tiff", seed=1).fields
    assert credit["credit_note_number"].startswith("CN-20")
    assert credit["invoice_number"].startswith("INV-20") and "total" in credit
    lab = make_fax(kind="lab_result", fmt="tiff", seed=1).fields
    assert lab["patient_id"].startswith("PID-") and "lab_order_number" in lab
    assert {"patient_name", "prescribing_doctor", "insurance_number"} <= set(
        make_fax(kind="prescription", fmt="tiff", seed=1).fields)
    assert {"case_number", "court", "plaintiff", "defendant"} <= set(
        make_fax(kind="court_document", fmt="tiff", seed=1).fields)
    # Layouts and wording are drawn from the seed: the titles differ, numbers aside.
    for kind in ("credit_note", "lab_result", "prescription", "court_document"):
        titles = set()
        for seed in range(1, 9):
            plan = PLANNERS[kind](random.Random(f"faxflow.samples/{seed}/{kind}"))
            title = next(line.text for line in plan.first if line.style == "title")
            titles.add(re.sub(r"[\d-]", "", title))
        assert len(titles) > 2, (kind, titles)


def test_upside_down_page_is_rotated_180() -> None:
    upright = frames(make_fax(kind="letter", pages=2, fmt="tiff", seed=4).content)
    fax = make_fax(kind="letter", pages=2, fmt="tiff", seed=4, upside_down_pages=(2,))
    flipped = frames(fax.content)
    assert ImageChops.difference(upright[0].convert("L"), flipped[0].convert("L")).getbbox() is None
    turned = flipped[1].transpose(Image.Transpose.ROTATE_180)
    assert ImageChops.difference(upright[1].convert("L"), turned.convert("L")).getbbox() is None


def test_noisy_and_skewed_pages_differ_but_keep_geometry() -> None:
    clean = frames(make_fax(kind="invoice", fmt="tiff", seed=8).content)[0]
    for fax in (make_fax(kind="invoice", fmt="tiff", seed=8, noisy=True),
                make_fax(kind="invoice", fmt="tiff", seed=8, skew=1.0)):
        page = frames(fax.content)[0]
        assert page.mode == "1" and page.size == clean.size
        assert ImageChops.difference(clean.convert("L"), page.convert("L")).getbbox() is not None


def test_invalid_arguments() -> None:
    for bad in ({"kind": "memo"}, {"pages": 0}, {"pages": 201}, {"resolution": "superfine"},
                {"fmt": "png"}, {"pages": 2, "upside_down_pages": (3,)}):
        with pytest.raises(ValueError):
            make_fax(**bad)


def test_write_fax_and_command_line(tmp_path: Path) -> None:
    fax = make_fax(kind="delivery_note", fmt="tiff", seed=3)
    path = write_fax(fax, tmp_path / "out")
    assert path.read_bytes() == fax.content and path.suffix == ".tif"
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["page_texts"] == fax.page_texts and sidecar["fields"] == fax.fields
    assert main(["--out", str(tmp_path / "cli"), "--kind", "letter", "--resolution",
                 "standard", "--fmt", "tiff", "--seed", "3", "--count", "2"]) == 0
    written = sorted(p.name for p in (tmp_path / "cli").iterdir())
    assert written == ["letter_standard_1p_s3.json", "letter_standard_1p_s3.tif",
                       "letter_standard_1p_s4.json", "letter_standard_1p_s4.tif"]


def test_levenshtein_matches_textbook_algorithm() -> None:
    def textbook(a: str, b: str) -> int:
        prev = list(range(len(b) + 1))
        for i, ca in enumerate(a, 1):
            cur = [i]
            for j, cb in enumerate(b, 1):
                cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
            prev = cur
        return prev[-1]

    rng = random.Random(0)
    for _ in range(300):
        a = "".join(rng.choice("abc ") for _ in range(rng.randrange(0, 90)))
        b = "".join(rng.choice("abcd") for _ in range(rng.randrange(0, 90)))
        assert levenshtein(a, b) == textbook(a, b)
    assert levenshtein("kitten", "sitting") == 3


def test_cer_normalizes_whitespace() -> None:
    assert cer("Invoice  No.\nINV-1", " Invoice No. INV-1\n") == 0.0
    assert cer("abcd", "abed") == 0.25
    assert cer("", "") == 0.0 and cer("", "x") == 1.0


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="needs tesseract")
def test_tesseract_reads_a_clean_fine_page() -> None:
    fax = make_fax(kind="invoice", pages=1, resolution="fine", fmt="tiff", seed=1)
    # one thread: faster than OpenMP's default when the test suite runs in parallel
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    ocr = subprocess.run(["tesseract", "stdin", "stdout", "--psm", "4"], input=fax.content,
                         capture_output=True, check=True, env=env).stdout.decode()
    assert cer(fax.page_texts[0], ocr) < 0.02


def test_sheets_and_stickers_are_deterministic_with_their_ground_truth() -> None:
    from faxflow.samples import BarcodeSpec, Sheet, separator

    def build() -> SampleFax:
        return make_fax(kind="letter", pages=2, resolution="standard", noisy=True, seed=3,
                        sheets=[Sheet(1, "Referral", (BarcodeSpec("PAT-1", "datamatrix"),)),
                                separator(2)],
                        stickers=[BarcodeSpec("CASE-9", "code128", 0.4, x_mm=40, y_mm=200,
                                              page=2)])
    first, second = build(), build()
    assert first.content == second.content and first.pages == 4
    assert first.parts == ((1, 2), (4,))
    assert [(b["page"], b["value"], b["format"]) for b in first.barcodes] == [
        (1, "PAT-1", "datamatrix"), (3, "FAXFLOW-SPLIT", "qr"), (4, "CASE-9", "code128")]
    assert first.page_texts[0].splitlines()[1:3] == ["Referral", "PAT-1"]
    plain = make_fax(kind="letter", pages=2, resolution="standard", noisy=True, seed=3)
    assert plain.barcodes == () and plain.parts == () and "_bc" not in plain.name


def test_the_command_line_draws_cover_and_separator_sheets(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path), "--kind", "letter", "--pages", "2", "--cover",
                 "PAT-1:datamatrix:0.5", "--separator-before", "2"]) == 0
    (sidecar,) = tmp_path.glob("*.json")
    data = json.loads(sidecar.read_text())
    assert data["pages"] == 4 and data["parts"] == [[1, 2], [4]]
    assert [(b["page"], b["value"], b["format"]) for b in data["barcodes"]] == [
        (1, "PAT-1", "datamatrix"), (3, "FAXFLOW-SPLIT", "qr")]
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--cover", "PAT-1:maxicode"])
