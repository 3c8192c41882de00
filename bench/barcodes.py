"""Barcode benchmark: detection rate per format x resolution x noise x module size, and the
cost of reading barcodes per page next to the OCR's own cost, in the same run.

    .venv/bin/python bench/barcodes.py                       # the full table (~10 min)
    .venv/bin/python bench/barcodes.py --pages 100 --other-pages 20 --ocr-pages 10
    .venv/bin/python bench/barcodes.py --formats qr --modules 0.5 --pages 20   # quick look

Every page is a generated fax page (faxflow.samples) with one barcode drawn at its printed
size (module = one module of a 2D code, or the narrow bar of a 1D code) at a random place in
the middle of the page, resampled to fax geometry, thresholded and - for noisy pages -
blurred, skewed 0.5-1.5 degrees, specked, streaked and given corrupted scan lines. Each page
goes through the OCR plugin's own page pass (`faxflow_ocr.page.read_page`, the same prepared
square-pixel page and the same retry) with a stand-in engine, so only the barcode reading
runs; a page counts as detected when the drawn value is read back exactly.

Cost: on `--ocr-pages` ordinary text pages per resolution and noise (no barcode: what almost
every page is), the page pass with the real engine, CPU seconds of this process and its
tesseract children per page, against the CPU the barcode reader itself took on those pages.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from faxflow_ocr import page as page_pass
from faxflow_ocr.document import inspect
from faxflow_ocr.engine import OcrResult
from faxflow_ocr.libtess import make_engine
from faxflow_ocr.options import OcrOptions

from faxflow.samples import BarcodeSpec, make_fax

FORMATS = ("qr", "datamatrix", "pdf417", "aztec", "code128", "code39", "ean13")
MODULES = (0.3, 0.4, 0.5, 0.7)
KINDS = ("invoice", "letter", "order", "referral", "delivery_note")


class Recorder(page_pass.barcodes.Reader):
    """The page pass's reader, remembering itself so the bench can read its CPU time."""

    last: Recorder | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        Recorder.last = self


page_pass.barcodes.Reader = Recorder  # type: ignore[misc]


class NoOcr:
    """Stands in for tesseract: the page pass runs up to it, barcodes included."""

    def ocr(self, *args: Any, **kwargs: Any) -> OcrResult:
        return OcrResult("", 99.0, None)

    def rotation(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def close(self) -> None:
        pass


def value_for(fmt: str, rng: random.Random) -> str:
    if fmt == "ean13":
        return "".join(rng.choice("0123456789") for _ in range(12))
    return f"PAT-{rng.randrange(10**6):06d}"


def sample(fmt: str, resolution: str, noisy: bool, module: float, index: int
           ) -> tuple[bytes, str]:
    rng = random.Random(f"bench/{fmt}/{resolution}/{noisy}/{module}/{index}")
    value = value_for(fmt, rng)
    spec = BarcodeSpec(value, fmt, module, x_mm=rng.uniform(30, 90) if fmt in (
        "code128", "code39", "ean13", "pdf417") else rng.uniform(30, 160),
        y_mm=rng.uniform(120, 220), page=1)
    fax = make_fax(kind=rng.choice(KINDS), resolution=resolution, fmt="tiff", noisy=noisy,
                   seed=index, text=["Please find the enclosed documents. Code below."],
                   stickers=[spec])
    return fax.content, value


def read(content: bytes, options: OcrOptions, engine: Any) -> tuple[list[str], float]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "page.tif"
        path.write_bytes(content)
        info = inspect(path, "tiff", 10, 30)
        result = page_pass.read_page(path, "tiff", info.pages[0], options, engine, "eng", False)
    reader = Recorder.last
    return [b.value for b in result.barcodes], reader.seconds if reader else 0.0


def condition(args: tuple[str, str, bool, float, int]) -> dict[str, Any]:
    fmt, resolution, noisy, module, pages = args
    options = OcrOptions(workers=1, cache=False)
    found = 0
    seconds = 0.0
    for index in range(1, pages + 1):
        content, value = sample(fmt, resolution, noisy, module, index)
        values, spent = read(content, options, NoOcr())
        seconds += spent
        found += any(v == value or (fmt == "ean13" and v.startswith(value)) for v in values)
    return {"format": fmt, "resolution": resolution, "noisy": noisy, "module": module,
            "pages": pages, "found": found, "read_ms": seconds / pages * 1000}


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def ocr_cost(resolution: str, noisy: bool, pages: int) -> dict[str, Any]:
    """The real page pass on ordinary text pages: its CPU per page and the reader's."""
    options = OcrOptions(workers=1, cache=False)
    engine = make_engine(options.engine, options.tessdata, 1)
    total = reading = 0.0
    try:
        for index in range(pages):
            fax = make_fax(kind=KINDS[index % len(KINDS)], resolution=resolution, fmt="tiff",
                           noisy=noisy, seed=1 + index // len(KINDS))
            started = cpu_seconds()
            _, spent = read(fax.content, options, engine)
            total += cpu_seconds() - started
            reading += spent
    finally:
        engine.close()
    return {"resolution": resolution, "noisy": noisy, "pages": pages,
            "page_s": total / pages, "read_ms": reading / pages * 1000}


def conditions(formats: list[str], modules: list[float], pages: int, other: int
               ) -> Iterator[tuple[str, str, bool, float, int]]:
    for fmt in formats:
        for resolution in ("standard", "fine"):
            for noisy in (False, True):
                for module in modules:
                    main = fmt in ("qr", "datamatrix")
                    n = pages if main and resolution == "standard" else \
                        max(other, pages // 2) if main else other
                    yield fmt, resolution, noisy, module, n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--modules", default=",".join(str(m) for m in MODULES))
    parser.add_argument("--pages", type=int, default=100,
                        help="pages per QR/DataMatrix standard-resolution condition "
                             "(half as many at fine resolution)")
    parser.add_argument("--other-pages", type=int, default=20,
                        help="pages per condition of the other formats")
    parser.add_argument("--ocr-pages", type=int, default=10,
                        help="text pages per resolution and noise for the cost comparison")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    todo = list(conditions(args.formats.split(","), [float(m) for m in args.modules.split(",")],
                           args.pages, args.other_pages))
    started = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(condition, todo))
    print(f"## Detection rate ({time.perf_counter() - started:.0f} s)\n")
    print("| format | resolution | noise | module mm | pages | read | rate | reader ms/page |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['format']} | {r['resolution']} | {'noisy' if r['noisy'] else 'clean'} | "
              f"{r['module']:g} | {r['pages']} | {r['found']} | "
              f"{100 * r['found'] / r['pages']:.0f}% | {r['read_ms']:.1f} |")
    sys.stdout.flush()
    if args.ocr_pages:
        print("\n## Cost per text page: the page pass with tesseract, and the barcode reader "
              "in it\n")
        print("| resolution | noise | pages | page pass CPU s/page | reader ms/page | share |")
        print("| --- | --- | --- | --- | --- | --- |")
        for resolution in ("fine", "standard"):
            for noisy in (False, True):
                c = ocr_cost(resolution, noisy, args.ocr_pages)
                share = c["read_ms"] / 1000 / c["page_s"] * 100
                print(f"| {resolution} | {'noisy' if noisy else 'clean'} | {c['pages']} | "
                      f"{c['page_s']:.2f} | {c['read_ms']:.1f} | {share:.1f}% |")
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
