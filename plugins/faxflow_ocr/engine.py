"""The OCR engines: pytesseract (the tesseract CLI per page) and tesserocr (the tesseract
library kept loaded in this process, about 11-20% less time per page); libtess.py has the
default, libtesseract. What they share: the page file for tesseract and what it writes."""

from __future__ import annotations

import io
import os
import queue
import re
import shlex
import tempfile
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from faxflow_ocr import prep
from faxflow_ocr.tools import limit_threads

TESSDATA_GUESSES = ("/usr/share/tesseract-ocr/5/tessdata", "/usr/share/tesseract-ocr/4.00/tessdata",
                    "/usr/share/tessdata", "/usr/local/share/tessdata")


@dataclass(slots=True)
class OcrResult:
    text: str
    confidence: float | None  # mean word confidence 0..100
    words: int
    pdf: bytes | None = None  # one-page searchable PDF, when asked for


class Engine(Protocol):
    calls: int  # tesseract runs so far (OCR and OSD), for tests and the benchmark

    def ocr(self, image: Image.Image, languages: str, psm: int, dpi: int, timeout: float,
            want_pdf: bool = False, picture: Image.Image | None = None,
            scratch: Path | None = None) -> OcrResult:
        """Text of `image`; with want_pdf also a one-page searchable PDF that shows
        `picture` (same pixel grid; None: `image` itself) under the text layer. Files the
        engine needs go to `scratch` (None: the system's temp folder)."""

    def rotation(self, image: Image.Image, dpi: int, timeout: float,
                 scratch: Path | None = None) -> int | None:
        """Degrees to turn the page counter-clockwise to make it upright, if OSD is sure."""

    def close(self) -> None: ...


class _Counter:
    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def count(self) -> None:
        with self._lock:
            self.calls += 1


# --- pytesseract ----------------------------------------------------------------------------


class PytesseractEngine(_Counter):
    def __init__(self, tessdata: str | None = None) -> None:
        super().__init__()
        limit_threads()  # pytesseract starts tesseract with os.environ
        # pytesseract splits config with shlex, so a quoted folder may hold spaces
        self.folder = f" --tessdata-dir {shlex.quote(tessdata)}" if tessdata else ""

    def ocr(self, image: Image.Image, languages: str, psm: int, dpi: int, timeout: float,
            want_pdf: bool = False, picture: Image.Image | None = None,
            scratch: Path | None = None) -> OcrResult:
        from pytesseract import pytesseract as pt

        # One run gives the text, the words' confidences (TSV) and, if asked, the PDF page;
        # asked for by variables, not by the `txt` and `pdf` config files, which another
        # model's folder (`tessdata`) need not have.
        outputs = "txt tsv pdf" if want_pdf else "txt tsv"
        config = f"--psm {psm} --dpi {dpi}{self.folder} " + \
            " ".join(f"-c tessedit_create_{kind}=1" for kind in outputs.split())
        self.count()
        with _files(image, scratch) as (base, input_file):
            pt.run_tesseract(input_file, base, "", languages, config=config,
                             timeout=_whole_seconds(timeout))
            return result_of(base, want_pdf, picture)

    def rotation(self, image: Image.Image, dpi: int, timeout: float,
                 scratch: Path | None = None) -> int | None:
        from pytesseract import pytesseract as pt

        self.count()
        try:
            with _files(image, scratch) as (base, input_file):
                pt.run_tesseract(input_file, base, "osd", "osd",
                                 config=f"--psm 0 --dpi {dpi}{self.folder}",
                                 timeout=_whole_seconds(timeout))
                osd = _output(f"{base}.osd").decode("utf-8", "replace")
        except (pt.TesseractError, NoOutput):
            return None  # too few characters to tell
        rotate = re.search(r"Rotate: (\d+)", osd)
        confidence = re.search(r"Orientation confidence: ([\d.]+)", osd)
        if not rotate or not confidence or float(confidence[1]) < 2.0:
            return None
        # tesseract's "Rotate" is clockwise; PIL rotates counter-clockwise (checked for
        # pages turned 90, 180 and 270 degrees).
        return (360 - int(rotate[1])) % 360

    def close(self) -> None:
        pass


def result_of(base: str, want_pdf: bool, picture: Image.Image | None) -> OcrResult:
    """The result from the files tesseract's text, TSV (and PDF) renderers wrote at `base`:
    the text as tesseract writes it, the words' confidences from the TSV."""
    confidence, words = tsv_confidences(_output(f"{base}.tsv").decode("utf-8", "replace"))
    return text_result_of(base, confidence, words, want_pdf, picture)


def text_result_of(base: str, confidence: float | None, words: int, want_pdf: bool,
                   picture: Image.Image | None) -> OcrResult:
    """The result from the files tesseract's text (and PDF) renderers wrote at `base`."""
    text = _output(f"{base}.txt").decode("utf-8", "replace")
    return OcrResult(text.strip(), confidence, words, _pdf_of(base, want_pdf, picture))


def _pdf_of(base: str, want_pdf: bool, picture: Image.Image | None) -> bytes | None:
    pdf = _output(f"{base}.pdf") if want_pdf else None
    if pdf is not None and picture is not None:
        pdf = replace_picture(pdf, picture)
    return pdf


def replace_picture(pdf: bytes, picture: Image.Image) -> bytes:
    """tesseract's one-page PDF with its page image swapped for `picture`.

    The text was read off a smoothed copy, which tesseract would embed as an 8-bit JPEG;
    the page should show the fax's own sharp pixels, 1 bit and Flate-compressed when the
    page is black and white. Same pixel grid, so the text layer still lines up."""
    import pikepdf

    picture = _gray_or_bilevel(picture)
    bilevel = picture.mode == "1"
    with pikepdf.open(io.BytesIO(pdf)) as document:
        xobjects = document.pages[0].Resources.get("/XObject", pikepdf.Dictionary())
        images = [x for x in xobjects.values() if x.get("/Subtype") == "/Image"]
        if len(images) != 1 or (int(images[0].Width), int(images[0].Height)) != picture.size:
            return pdf  # not the layout tesseract writes: keep its own picture
        stream = images[0]
        stream.write(zlib.compress(picture.tobytes()), filter=pikepdf.Name.FlateDecode)
        stream.BitsPerComponent = 1 if bilevel else 8
        stream.ColorSpace = pikepdf.Name.DeviceGray
        for key in ("/DecodeParms", "/Decode", "/SMask"):
            if key in stream:
                del stream[key]
        out = io.BytesIO()
        document.save(out)
    return out.getvalue()


@contextmanager
def _files(image: Image.Image, scratch: Path | None, pgm: bool = False,
           ) -> Iterator[tuple[str, str]]:
    """A base name for tesseract's output files and the page image written for it
    (`page_file`; `pgm`: an 8-bit PGM, which the OSD child reads itself), in `scratch` (the
    fax's spool folder, so a killed worker leaves nothing in /tmp; None: the system's temp
    folder); removed afterwards."""
    fd, base = tempfile.mkstemp(prefix="tess_", dir=scratch)
    os.close(fd)
    try:
        if pgm:
            input_file = f"{base}_input.pgm"
            image.save(input_file, format="PPM")
        else:
            input_file = page_file(image, base)
        yield base, input_file
    finally:
        for leftover in Path(base).parent.glob(f"{Path(base).name}*"):
            leftover.unlink(missing_ok=True)


def page_file(image: Image.Image, base: str) -> str:
    """The page as the file tesseract reads: a PBM when it is only black and white
    (tesseract then skips its own thresholding, and embeds it G4-compressed in a searchable
    PDF instead of as an 8-bit picture), else an uncompressed 8-bit TIFF. Not a PGM:
    leptonica reads one with a read call per pixel, ~35 ms of tesseract's CPU on a fine page
    (4% of its read; `perf stat` of the CLI, docs/benchmarks.md); not a PNG: encoding it
    costs 40-60 ms. Both written in ~3 ms."""
    image = _gray_or_bilevel(image)
    if image.mode == "1":
        name = f"{base}_input.pbm"
        image.save(name, format="PPM")
    else:
        name = f"{base}_input.tif"
        # "raw" said outright: Pillow would otherwise reuse the compression of the TIFF the
        # page was decoded from (a G4 fax), which an 8-bit page cannot have.
        image.save(name, format="TIFF", compression="raw")
    return name


class NoOutput(Exception):
    """tesseract ended without writing its output file (the page's problem, not the
    machine's: a missing file would otherwise read as the machine's ENOENT)."""


def _output(name: str) -> bytes:
    try:
        return Path(name).read_bytes()
    except FileNotFoundError:
        raise NoOutput(f"tesseract wrote no {Path(name).suffix} output") from None


def _whole_seconds(timeout: float) -> float:
    return max(0.5, timeout)


def _gray_or_bilevel(image: Image.Image) -> Image.Image:
    """`image` as 8-bit gray, or as 1 bit when it is only black and white."""
    if prep.is_bilevel(image):
        return image.convert("1", dither=Image.Dither.NONE)
    return image if image.mode in ("L", "1") else image.convert("L")


def tsv_confidences(tsv: str) -> tuple[float | None, int]:
    """Mean word confidence (0-100) and the number of words, from tesseract's TSV."""
    confidences: list[float] = []
    for row in tsv.splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) < 12 or cols[0] != "5":
            continue
        try:
            conf = float(cols[10])
        except ValueError:
            continue
        if conf >= 0:
            confidences.append(conf)
    mean = sum(confidences) / len(confidences) if confidences else None
    return mean, len(confidences)


# --- tesserocr ------------------------------------------------------------------------------


class TesserocrEngine(_Counter):
    """One loaded tesseract per worker thread and language set, reused page after page."""

    def __init__(self, tessdata: str | None, workers: int) -> None:
        super().__init__()
        self.tessdata = tessdata or find_tessdata()
        self.workers = workers
        self._free: dict[str, queue.SimpleQueue[Any]] = {}
        self._all: list[Any] = []
        self._lock = threading.Lock()

    @contextmanager
    def _api(self, languages: str) -> Iterator[Any]:
        import tesserocr  # type: ignore[import-untyped]

        with self._lock:
            free = self._free.setdefault(languages, queue.SimpleQueue())
        try:
            api = free.get_nowait()
        except queue.Empty:
            api = tesserocr.PyTessBaseAPI(path=self.tessdata, lang=languages)
            with self._lock:
                self._all.append(api)
        try:
            yield api
        finally:
            free.put(api)

    def ocr(self, image: Image.Image, languages: str, psm: int, dpi: int, timeout: float,
            want_pdf: bool = False, picture: Image.Image | None = None,
            scratch: Path | None = None) -> OcrResult:
        if want_pdf:
            raise ValueError("tesserocr engine cannot write searchable PDFs")
        self.count()
        with self._api(languages) as api:
            api.SetPageSegMode(psm)
            api.SetImage(image)
            api.SetSourceResolution(dpi)
            if not api.Recognize(timeout=max(1, round(timeout * 1000))):
                raise TimeoutError(f"tesseract gave up after {timeout:g} s")
            text = api.GetUTF8Text()
            confidences = [float(c) for c in api.AllWordConfidences()]
            api.Clear()
        mean = sum(confidences) / len(confidences) if confidences else None
        return OcrResult(text.strip(), mean, len(confidences))

    def rotation(self, image: Image.Image, dpi: int, timeout: float,
                 scratch: Path | None = None) -> int | None:
        import tesserocr  # type: ignore[import-untyped]

        self.count()
        with self._api("osd") as api:
            api.SetPageSegMode(tesserocr.PSM.OSD_ONLY)
            api.SetImage(image)
            api.SetSourceResolution(dpi)
            found = api.DetectOrientationScript()
            api.Clear()
        if not found or found.get("orient_conf", 0.0) < 2.0:
            return None
        # orient_deg turned counter-clockwise makes the page upright (checked for 90/180/270).
        return int(found["orient_deg"]) % 360

    def close(self) -> None:
        with self._lock:
            apis, self._all, self._free = self._all, [], {}
        for api in apis:
            api.End()


def find_tessdata() -> str:
    for folder in TESSDATA_GUESSES:
        if Path(folder, "eng.traineddata").is_file():
            return folder
    raise RuntimeError("no tessdata folder found; set tessdata in [plugins.ocr]")
