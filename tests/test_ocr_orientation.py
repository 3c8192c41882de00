"""The OCR page pass's orientation and deskew decisions on generated pages (issue 17).

Asserted are the decisions (OSD asked or not, turned or not, levelled or not, how many
tesseract runs), not timings. Pages are upright, turned 90/180/270, skewed, blank or a
photo-like picture; about eight pages reach tesseract.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from faxflow_ocr import barcodes, prep
from faxflow_ocr.options import OcrOptions
from faxflow_ocr.page import orientation_check
from faxflow_ocr.service import OcrService, Outcome
from PIL import Image, ImageFilter

from faxflow.samples import cer, make_fax


def fine_page(seed: int = 4, kind: str = "letter", **extra: object) -> tuple[Image.Image, str]:
    sample = make_fax(kind=kind, pages=1, resolution="fine", fmt="tiff", seed=seed,
                      **extra)  # type: ignore[arg-type]
    with Image.open(io.BytesIO(sample.content)) as tiff:
        return tiff.convert("L"), sample.page_texts[0]


def tiff_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    bilevel = image.convert("1", dither=Image.Dither.NONE) if image.mode != "1" else image
    bilevel.save(out, format="TIFF", compression="group4", dpi=(204, 196))
    return out.getvalue()


def read(tmp_path: Path, content: bytes, **options: object) -> tuple[Outcome, int]:
    """Outcome of one document and the number of tesseract runs (OCR and OSD) it took."""
    path = tmp_path / "page.tif"
    path.write_bytes(content)
    ocr = OcrService(OcrOptions(cache=False, workers=1, **options), None)  # type: ignore[arg-type]
    try:
        return ocr.read(path, path.name, "", "eng"), ocr.engine.calls
    finally:
        ocr.close()


# --- the layout test alone (no tesseract) ----------------------------------------------------


@pytest.mark.parametrize("turned", [0, 90, 180, 270])
@pytest.mark.parametrize("kind", ["invoice", "letter", "order"])
def test_lines_tell_which_way_is_up(turned: int, kind: str) -> None:
    page, _ = fine_page(seed=3, kind=kind)
    layout = prep.layout(page.rotate(turned, expand=True) if turned else page, 204)
    assert layout.lines
    assert layout.turn == (360 - turned) % 360  # degrees to turn back, counter-clockwise
    assert layout.upright == (turned == 0)


def test_skew_is_found_within_the_range_and_not_at_its_edge() -> None:
    page, _ = fine_page(seed=3, kind="letter")
    tilted = page.rotate(-1.5, resample=Image.Resampling.BICUBIC, fillcolor=255)
    assert prep.layout(tilted, 204).skew == pytest.approx(1.5, abs=0.2)
    # Beyond the +-3 degrees searched the best angle is the edge: that is no answer.
    far = page.rotate(-4.5, resample=Image.Resampling.BICUBIC, fillcolor=255)
    assert prep.layout(far, 204).skew is None


def test_blank_page_and_photo_have_no_lines() -> None:
    blank = Image.new("L", (1728, 2287), 255)
    specks = blank.copy()
    rng = random.Random(1)
    for _ in range(300):
        specks.putpixel((rng.randrange(1728), rng.randrange(2287)), 0)
    photo = Image.effect_noise((432, 572), 60).filter(ImageFilter.GaussianBlur(6)) \
        .resize((1728, 2287))
    for image in (blank, specks, photo):
        layout = prep.layout(image, 204)
        assert (layout.lines, layout.turn, layout.skew) == (False, None, None)
    assert prep.layout(blank, 204).blank and prep.layout(specks, 204).blank
    assert not prep.layout(photo, 204).blank  # a picture is no text, but it is not blank


def footer_only_page() -> Image.Image:
    """A fax page whose only text is its footer, drawn by the sample generator's own page
    (the footer line of a generated letter, everything above it whited out)."""
    page, truth = fine_page(seed=2, kind="letter")
    footer = truth.splitlines()[-1]
    assert footer.startswith("Page ")
    box = page.point(lambda v: 255 if v > 127 else 0).getbbox()
    assert box is not None
    rows = [y for y in range(box[3] - 1, box[1], -1)
            if page.crop((0, y, page.width, y + 1)).getextrema()[0] < 128]
    gap = next(y for y in range(rows[0], box[1], -1)
               if page.crop((0, y - 12, page.width, y)).getextrema()[0] > 127)
    blank = Image.new("L", page.size, 255)
    blank.paste(page.crop((0, gap, page.width, page.height)), (0, gap))
    return blank


def test_a_page_with_one_line_of_text_is_not_blank() -> None:
    layout = prep.layout(footer_only_page(), 204)
    assert not layout.blank and layout.ink < 0.001  # just above MIN_TEXT_INK: one line


def specked_blank_page() -> Image.Image:
    blank = Image.new("L", (1728, 2287), 255)
    for x, y in ((100, 200), (900, 1500), (1600, 40)):  # a few specks from the glass
        blank.putpixel((x, y), 0)
    return blank


@pytest.mark.parametrize(("make", "text"), [(specked_blank_page, False),
                                            (footer_only_page, True)])
def test_tesseract_is_given_a_blank_page_as_it_is_and_text_smoothed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: Callable[[], Image.Image],
        text: bool) -> None:
    """Smoothing is for text: a blank page (a few specks) reaches tesseract unsmoothed,
    black and white, and its barcodes get no second pass; a page with one line of text is
    still smoothed, and read. What tesseract is handed is taken at the engine."""
    path = tmp_path / "page.tif"
    path.write_bytes(tiff_bytes(make()))
    ocr = OcrService(OcrOptions(cache=False, workers=1), None)  # type: ignore[arg-type]
    handed: list[Image.Image] = []
    retries: list[int] = []
    real_ocr, real_retry = ocr.engine.ocr, barcodes.Reader.retry

    def ocr_recorded(picture: Image.Image, *args: Any, **kwargs: Any) -> Any:
        handed.append(picture)
        return real_ocr(picture, *args, **kwargs)

    def retry_recorded(reader: barcodes.Reader, *args: Any, **kwargs: Any) -> None:
        retries.append(1)
        real_retry(reader, *args, **kwargs)

    monkeypatch.setattr(ocr.engine, "ocr", ocr_recorded)
    monkeypatch.setattr(barcodes.Reader, "retry", retry_recorded)
    try:
        outcome = ocr.read(path, path.name, "", "eng")
    finally:
        ocr.close()
    assert len(handed) == 1 and prep.is_bilevel(handed[0]) != text
    assert bool(retries) == text
    assert outcome.pages[0].error is None
    assert ("Page 1 of 1" in outcome.pages[0].text) == text


# --- when OSD is asked (pure) ----------------------------------------------------------------


UPRIGHT = prep.Layout(True, 0, 0.0, (0.5, 0.1), 3.0)
UNSURE = prep.Layout(True, None, 0.0, (0.5, 0.1), 1.1)
NO_LINES = prep.Layout(False, None, None, (0.1, 0.1), 1.0)


@pytest.mark.parametrize(("orientation", "lines", "turned", "confidence", "asked"), [
    ("auto", UPRIGHT, 0, 92.0, False),  # reads well: never
    ("auto", UNSURE, 0, 92.0, False),
    ("auto", UPRIGHT, 0, 30.0, False),  # a poor page, upright beyond doubt
    ("auto", NO_LINES, 0, None, False),  # blank page or photo: OSD has nothing to go by
    ("auto", NO_LINES, 0, 20.0, False),
    ("auto", UNSURE, 0, 30.0, True),  # reads badly and the lines leave it in doubt
    ("auto", UPRIGHT, 180, 30.0, True),  # turned by its lines and reads badly: check
    ("auto", UPRIGHT, 180, 90.0, False),
    ("always", UPRIGHT, 0, 95.0, True),
    ("off", UNSURE, 0, 10.0, False),
])
def test_osd_only_when_in_doubt(orientation: str, lines: prep.Layout, turned: int,
                                confidence: float | None, asked: bool) -> None:
    options = OcrOptions(orientation=orientation)
    assert orientation_check(options, lines, turned, confidence) is asked


# --- the whole page pass -----------------------------------------------------------------------


def test_upright_page_is_read_once_without_osd(tmp_path: Path) -> None:
    page, truth = fine_page()
    outcome, calls = read(tmp_path, tiff_bytes(page))
    assert (outcome.rotated, outcome.osd, outcome.skew, calls) == ({}, [], {}, 1)
    assert cer(truth, outcome.pages[0].text) < 0.01


@pytest.mark.parametrize("turned", [90, 180, 270])
def test_turned_page_is_turned_back_before_its_only_read(tmp_path: Path, turned: int) -> None:
    page, truth = fine_page()
    outcome, calls = read(tmp_path, tiff_bytes(page.rotate(turned, expand=True)))
    assert outcome.rotated == {1: (360 - turned) % 360}
    assert (outcome.osd, calls) == ([], 1)  # no OSD, no wasted read
    assert cer(truth, outcome.pages[0].text) < 0.01


def test_upside_down_sample_is_turned(tmp_path: Path) -> None:
    sample = make_fax(kind="invoice", pages=2, resolution="fine", fmt="tiff",
                      upside_down_pages=(2,), seed=5)
    outcome, calls = read(tmp_path, sample.content)
    assert (outcome.rotated, outcome.osd, calls) == ({2: 180}, [], 2)
    assert cer("\n".join(sample.page_texts), "\n".join(p.text for p in outcome.pages)) < 0.01


def test_blank_page_is_neither_levelled_nor_asked_about(tmp_path: Path) -> None:
    blank = Image.new("L", (1728, 2287), 255)
    for x, y in ((100, 200), (900, 1500), (1600, 40)):  # a few specks from the glass
        blank.putpixel((x, y), 0)
    outcome, calls = read(tmp_path, tiff_bytes(blank))
    assert (outcome.rotated, outcome.osd, outcome.skew, calls) == ({}, [], {}, 1)
    assert outcome.pages[0].text == "" and outcome.pages[0].error is None


def test_orientation_always_still_asks_osd(tmp_path: Path) -> None:
    page, _ = fine_page()
    outcome, calls = read(tmp_path, tiff_bytes(page), orientation="always")
    assert (outcome.osd, outcome.rotated, calls) == ([1], {}, 2)


def test_skewed_page_is_levelled_and_a_page_past_the_range_is_not(tmp_path: Path) -> None:
    page, truth = fine_page(seed=6, kind="order")
    tilted = page.rotate(-1.2, resample=Image.Resampling.BICUBIC, fillcolor=255)
    outcome, _ = read(tmp_path, tiff_bytes(tilted))
    assert outcome.skew == {1: pytest.approx(1.2, abs=0.2)}
    assert cer(truth, outcome.pages[0].text) < 0.02
    far = page.rotate(-4.5, resample=Image.Resampling.BICUBIC, fillcolor=255)
    outcome, _ = read(tmp_path, tiff_bytes(far))
    assert outcome.skew == {}  # the edge of the range searched is no answer


def test_a_page_skewed_by_a_fifth_of_a_degree_is_left_alone(tmp_path: Path) -> None:
    """Under MIN_SKEW a turn would only resample the page (tesseract follows such lines)."""
    page, truth = fine_page(seed=6, kind="order")
    slight = page.rotate(-0.2, resample=Image.Resampling.BICUBIC, fillcolor=255)
    assert prep.layout(slight, 204).skew == pytest.approx(0.2, abs=0.05)  # measured, not used
    outcome, _ = read(tmp_path, tiff_bytes(slight))
    assert outcome.skew == {}
    assert cer(truth, outcome.pages[0].text) < 0.02


def test_despeckle_of_a_black_and_white_page_is_the_3x3_median() -> None:
    """The fast majority path gives exactly MedianFilter(3)'s pixels, edges included, on
    black and white pages of any size and density; a gray page still gets the median."""
    rng = random.Random(7)
    for _ in range(40):
        width, height, density = rng.randint(1, 70), rng.randint(1, 70), rng.random()
        page = Image.new("L", (width, height))
        page.putdata([0 if rng.random() < density else 255 for _ in range(width * height)])
        assert prep.despeckle(page).tobytes() == \
            page.filter(ImageFilter.MedianFilter(3)).tobytes(), (width, height, density)
    gray = Image.new("L", (40, 30))
    gray.putdata([rng.randrange(256) for _ in range(40 * 30)])
    assert prep.despeckle(gray).tobytes() == gray.filter(ImageFilter.MedianFilter(3)).tobytes()


def test_noise_ratio_counts_ink_pixels_without_an_inked_neighbour() -> None:
    """prep.noise_ratio against the definition, pixel by pixel, on random pages: dark
    pixels (< 128) of the middle third with no dark pixel among their 8 neighbours, per
    dark pixel; the third's outermost pixels are not counted."""
    rng = random.Random(11)
    for _ in range(40):
        width, height = rng.randint(3, 60), rng.randint(9, 90)
        density = rng.choice((0.002, 0.02, 0.1, 0.4))
        page = Image.new("L", (width, height), 255)
        page.putdata([rng.randrange(128) if rng.random() < density else rng.randrange(128, 256)
                      for _ in range(width * height)])
        third = height // 3
        rows = [[page.getpixel((x, y)) < 128 for x in range(width)]  # type: ignore[operator]
                for y in range(third, 2 * third)]
        dark = sum(map(sum, rows))
        alone = sum(1 for y in range(1, len(rows) - 1) for x in range(1, width - 1)
                    if rows[y][x] and not any(rows[y + dy][x + dx] for dy in (-1, 0, 1)
                                              for dx in (-1, 0, 1) if dy or dx))
        want = 0.0 if dark < prep.MIN_INK * width * third else alone / dark
        assert prep.noise_ratio(page) == pytest.approx(want), (width, height, density)


def test_box3_is_pillows_3x3_box_blur_within_a_gray_level() -> None:
    rng = random.Random(5)
    for _ in range(60):
        width, height = rng.randint(1, 50), rng.randint(1, 50)
        page = Image.new("L", (width, height))
        if rng.random() < 0.5:
            page.putdata([rng.choice((0, 255)) for _ in range(width * height)])
        else:
            page.putdata([rng.randrange(256) for _ in range(width * height)])
        mine, pillow = prep.box3(page), page.filter(ImageFilter.BoxBlur(1))
        assert mine.size == pillow.size
        assert max(abs(a - b) for a, b in zip(mine.tobytes(), pillow.tobytes(), strict=True)) \
            <= 1, (width, height)
