"""OCR benchmark: the plugin's paths next to the raw tesseract CLI on the same pages.

    .venv/bin/python bench/ocr.py speed --pages 6 --rounds 2      # s/page, pages/min, CER
    .venv/bin/python bench/ocr.py cer                             # CER by condition
    .venv/bin/python bench/ocr.py cer --resolutions standard --seeds 1,2,3,4,5
    .venv/bin/python bench/ocr.py cer --resolutions standard --seeds 1,2,3,4,5 --errors 15
    .venv/bin/python bench/ocr.py rss --sizes 1,10,50,200         # peak RSS per fax size
    .venv/bin/python bench/ocr.py real DIR --rounds 2             # your own PDFs / TIFFs

speed: for every path and 1 / 2 workers, runs are interleaved with raw `tesseract page.tif -
--psm 4` (OMP_THREAD_LIMIT=1, one process per page; 2 at a time for 2 workers) on the very
same pages as single-page G4 TIFFs, and the ratio to that baseline is reported (timings on a
shared machine are noisy, ratios much less). rss: each fax size in a fresh Python process;
peak RSS of the whole process tree (this process plus tesseract / pdftoppm children),
sampled every 20 ms from /proc (no psutil needed).
"""

from __future__ import annotations

import argparse
import atexit
import collections
import contextlib
import difflib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from faxflow_ocr import prep
from faxflow_ocr.options import OcrOptions
from faxflow_ocr.service import OcrService
from PIL import Image

from faxflow.logs import escape_controls
from faxflow.samples import cer, make_fax
from faxflow.samples.encode import build_pdf
from faxflow.samples.metrics import levenshtein, normalize_text

PATHS = {
    "default (libtesseract+extract)": {"engine": "libtesseract", "rasterizer": "extract"},
    "pytesseract+extract": {"engine": "pytesseract", "rasterizer": "extract"},
    "pytesseract+pdf2image": {"engine": "pytesseract", "rasterizer": "pdf2image"},
    "tesserocr+pdf2image": {"engine": "tesserocr", "rasterizer": "pdf2image"},
    "tesserocr+extract": {"engine": "tesserocr", "rasterizer": "extract"},
}
ENV = {**os.environ, "OMP_THREAD_LIMIT": "1"}


def split_tiff(content: bytes, folder: Path) -> list[Path]:
    paths = []
    with Image.open(io.BytesIO(content)) as tiff:
        for index in range(getattr(tiff, "n_frames", 1)):
            tiff.seek(index)
            path = folder / f"page{index + 1:03d}.tif"
            tiff.save(path, compression="group4", dpi=tiff.info["dpi"])
            paths.append(path)
    return paths


def cpu_seconds() -> float:
    """CPU time of this process (all threads), of its finished children and of its children
    still running: the libtesseract engine's children live on between pages, and getrusage
    counts a child only once it has ended."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime + running()


def running() -> float:
    """CPU seconds of this process's children that are still running (Linux /proc: the
    first field of each thread's schedstat is its nanoseconds on a CPU)."""
    me, total = str(os.getpid()), 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                parent = f.read().rsplit(")", 1)[1].split()[1]
            if parent != me:
                continue
            for task in os.scandir(f"/proc/{entry.name}/task"):
                with open(f"{task.path}/schedstat") as f:
                    total += int(f.read().split()[0]) / 1e9
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile: getrusage has it now
    return total


def raw_cli(pages: list[Path], workers: int) -> tuple[float, float, list[str]]:
    def one(path: Path) -> str:
        return subprocess.run(["tesseract", str(path), "-", "--psm", "4", "-l", "eng"],
                              capture_output=True, text=True, env=ENV, check=True).stdout

    started, cpu = time.perf_counter(), cpu_seconds()
    with ThreadPoolExecutor(workers) as pool:
        texts = list(pool.map(one, pages))
    return time.perf_counter() - started, cpu_seconds() - cpu, texts


_SERVICES: dict[str, OcrService] = {}
_STARTS: dict[str, float] = {}  # CPU s of each service's first read, not counted


def start_costs() -> None:
    for key, seconds in _STARTS.items():
        engine = _SERVICES[key].options.engine
        print(f"not counted: the first read of each path ({engine}, starting its pool and "
              f"children): {seconds:.2f} s CPU")


def plugin(pdf: Path, workers: int, options: dict[str, Any], cache: Path,
           ) -> tuple[float, float, list[str]]:
    """One fax through the plugin. One service per set of options for the whole run, as a
    worker keeps one: its pool threads and the libtesseract children (which start with
    the first fax read, whose time includes that start) live on from fax to fax."""
    chosen = OcrOptions(workers=workers, cache=False, **options)
    key = repr(chosen)
    if key not in _SERVICES:
        _SERVICES[key] = OcrService(chosen, cache)
        # A worker runs for days: its pool threads, libtesseract children (replaced after
        # 500 pages each) and imports start once. A first read, not counted, starts them
        # here; what it cost is printed apart (start_costs()).
        before = cpu_seconds()
        _SERVICES[key].read(pdf, pdf.name, "", "eng")
        _STARTS[key] = cpu_seconds() - before
    started, cpu = time.perf_counter(), cpu_seconds()
    outcome = _SERVICES[key].read(pdf, pdf.name, "", "eng")
    elapsed = time.perf_counter() - started
    return elapsed, cpu_seconds() - cpu, [p.text for p in outcome.pages]


@atexit.register
def _close_services() -> None:
    for service in _SERVICES.values():
        service.close()


def speed(args: argparse.Namespace) -> None:
    # The PDF wraps the TIFF's G4 pages unchanged: the same pages for both
    twin = make_fax(kind=args.kind, pages=args.pages, resolution=args.resolution,
                    fmt="tiff", seed=args.seed)
    truth = "\n".join(twin.page_texts)
    with tempfile.TemporaryDirectory() as folder:
        pdf = Path(folder, "fax.pdf")
        pdf.write_bytes(build_pdf(twin.content))
        tiffs = split_tiff(twin.content, Path(folder))
        paths = {k: v for k, v in PATHS.items() if not args.paths or k.split()[0] in args.paths}
        # (wall s, wall s of the raw run next to it, CER, CPU s, CPU s of that raw run)
        rows: dict[tuple[str, int], list[tuple[float, float, float, float, float]]] = {}
        for _ in range(args.rounds):
            for workers in args.workers:
                for name, options in paths.items():
                    base, base_cpu, raw_texts = raw_cli(tiffs, workers)
                    took, cpu, texts = plugin(pdf, workers, options, Path(folder, "cache"))
                    rows.setdefault((name, workers), []).append(
                        (took, base, cer(truth, "\n".join(texts)), cpu, base_cpu))
                    rows.setdefault(("raw tesseract CLI", workers), []).append(
                        (base, base, cer(truth, "\n".join(raw_texts)), base_cpu, base_cpu))
    n = args.pages
    print(f"\n{n} {args.resolution} {args.kind} pages, {args.rounds} rounds, median of rounds")
    print(f"{'path':34} {'workers':>7} {'s/page':>7} {'pages/min':>9} {'x raw':>6} "
          f"{'CPU s/page':>10} {'CPU x raw':>9} {'CER %':>6}")
    for (name, workers), runs in rows.items():
        took = statistics.median(r[0] for r in runs)
        ratio = statistics.median(r[0] / r[1] for r in runs)
        cpu = statistics.median(r[3] for r in runs)
        cpu_ratio = statistics.median(r[3] / r[4] for r in runs)
        print(f"{name:34} {workers:>7} {took / n:7.2f} {60 * n / took:9.1f} {ratio:6.2f} "
              f"{cpu / n:10.2f} {cpu_ratio:9.2f} {100 * statistics.mean(r[2] for r in runs):6.2f}",
              flush=True)
    for name in [*paths, "raw tesseract CLI"]:
        if (name, 1) in rows and (name, 2) in rows:
            # scaling within each round, so both runs met the same machine load
            one = [r[0] for r in rows[(name, 1)]]
            two = [r[0] for r in rows[(name, 2)]]
            print(f"{name}: 2 workers give {statistics.median(one) / statistics.median(two):.2f}x"
                  " the throughput of 1")


def word_errors(pairs: list[tuple[str, str]]) -> collections.Counter[tuple[str, str]]:
    """Character edits by word-level misread (truth words -> read words) over (truth, text).

    Differences one matching word apart count as one misread ("1 of 1" -> "lof 1"), each
    costing its character edit distance, so the counts add up to about the total."""
    edits: collections.Counter[tuple[str, str]] = collections.Counter()
    for truth, text in pairs:
        want, got = normalize_text(truth).split(" "), normalize_text(text).split(" ")
        ops = difflib.SequenceMatcher(None, want, got, autojunk=False).get_opcodes()
        runs: list[list[int]] = []  # [a1, a2, b1, b2] of merged differences
        for index, (op, a1, a2, b1, b2) in enumerate(ops):
            if op == "equal":
                continue
            near = runs and index >= 2 and ops[index - 1][2] - ops[index - 1][1] == 1 \
                and runs[-1][1] == ops[index - 1][1]
            if near:
                runs[-1][1], runs[-1][3] = a2, b2
            else:
                runs.append([a1, a2, b1, b2])
        for a1, a2, b1, b2 in runs:
            a, b = " ".join(want[a1:a2]), " ".join(got[b1:b2])
            edits[(a, b)] += levenshtein(a, b) if a and b else len(a or b) + 1
    return edits


def accuracy(args: argparse.Namespace) -> None:
    """CER of one path and of the raw CLI per condition, one page per kind and seed."""
    if args.old_standard_prep:
        # The standard-page prep before thicken, thin_rows and the scaled noise threshold,
        # to measure that change: `... cer --old-standard-prep` next to a run without it.
        prep.STANDARD_NOISE_SCALE = 1
        prep.thicken = prep.thin_rows = lambda gray: gray
        prep.SMOOTHING = dict.fromkeys(prep.SMOOTHING)  # no smoothing either
    options: dict[str, Any] = dict(PATHS[args.path])
    if args.tessdata:
        options["tessdata"] = args.tessdata
    options.update(args.set)
    if "scan300" in args.resolutions:
        scan_geometry()
    print(f"\nCER % ({args.path}{' tessdata ' + args.tessdata if args.tessdata else ''} vs raw "
          f"CLI on the same page), one page per kind and seed: {', '.join(args.kinds)}; "
          f"seeds {args.seeds}")
    print(f"{'condition':18} {'plugin':>7} {'raw CLI':>8} {'s/page':>7} {'CPU s/page':>10} "
          f"{'CPU x raw':>9}  per page (plugin)")
    records: list[dict[str, Any]] = []
    conditions = [c for c in [("fine", False), ("standard", False), ("fine", True),
                              ("standard", True), ("scan300", False), ("scan300", True)]
                  if c[0] in args.resolutions]
    with tempfile.TemporaryDirectory() as folder:
        for resolution, noisy in conditions:
            totals = [0.0, 0.0, 0]
            per_page = []
            pairs: list[tuple[str, str]] = []
            seconds = cpu_total = raw_total = 0.0
            for seed in args.seeds:
                for kind in args.kinds:
                    common = {"kind": kind, "pages": 1, "resolution": resolution,
                              "noisy": noisy, "seed": seed}
                    twin = make_fax(fmt="tiff", **common)  # type: ignore[arg-type]
                    pdf = Path(folder, "fax.pdf")
                    pdf.write_bytes(build_pdf(twin.content))
                    took, cpu, texts = plugin(pdf, 1, options, Path(folder, "cache"))
                    seconds += took
                    cpu_total += cpu
                    truth = twin.page_texts[0]
                    if args.no_raw:
                        raw = [truth]
                    else:
                        _, raw_cpu, raw = raw_cli(split_tiff(twin.content, Path(folder)), 1)
                        raw_total += raw_cpu
                    pairs.append((truth, texts[0]))
                    mine, base = cer(truth, texts[0]), cer(truth, raw[0])
                    records.append({"condition": f"{'noisy' if noisy else 'clean'} {resolution}",
                                    "seed": seed, "kind": kind, "chars": len(truth),
                                    "cer": mine, "raw_cer": None if args.no_raw else base,
                                    "seconds": took, "cpu": cpu})
                    totals[0] += mine * len(truth)
                    totals[1] += base * len(truth)
                    totals[2] += len(truth)
                    per_page.append(f"{100 * mine:.1f}")
            label = f"{'noisy' if noisy else 'clean'} {resolution}"
            mine_all, base_all = (100 * t / totals[2] for t in totals[:2])
            ratio = f"{cpu_total / raw_total:9.3f}" if raw_total else f"{'-':>9}"
            print(f"{label:18} {mine_all:7.2f} {base_all:8.2f} {seconds / len(per_page):7.2f} "
                  f"{cpu_total / len(per_page):10.2f} {ratio}  {' '.join(per_page)}",
                  flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps(records, indent=1))
            if args.errors:
                edits = word_errors(pairs)
                total = sum(edits.values())
                for (want, got), count in edits.most_common(args.errors):
                    print(f"    {count:4} edits {100 * count / total:5.1f}%  {want!r} -> {got!r}")


def scan_geometry() -> None:
    """A bench-only page geometry: the sample faxes' pages as a 300 dpi bilevel scan (the
    real documents' usual resolution), to measure what fax-tuned steps do there."""
    import faxflow.samples as samples
    from faxflow.samples import render

    render.GEOMETRY["scan300"] = (2541, 3500, 300, 300)
    samples.RESOLUTIONS = (*samples.RESOLUTIONS, "scan300")


def setting(text: str) -> tuple[str, Any]:
    key, _, value = text.partition("=")
    parsed: Any = {"true": True, "false": False}.get(value.lower(), value)
    if isinstance(parsed, str):
        with contextlib.suppress(ValueError):
            parsed = float(parsed) if "." in parsed else int(parsed)
    return key, parsed


def models(args: argparse.Namespace) -> None:
    """CER and CPU of the default path with each model, on the same pages, interleaved.

    `--models fast=,standard=/path/to/tessdata` (empty: tesseract's own folder). Spread:
    CER of each seed's five pages (min-max and standard deviation over the seeds), and
    per page, how often each model read better than the first one."""
    chosen = [m.split("=", 1) for m in args.models.split(",")]
    conditions = [c for c in [("fine", False), ("standard", False), ("fine", True),
                              ("standard", True)] if c[0] in args.resolutions]
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        for resolution, noisy in conditions:
            label = f"{'noisy' if noisy else 'clean'} {resolution}"
            for seed in args.seeds:
                for kind in args.kinds:
                    twin = make_fax(kind=kind, pages=1, resolution=resolution,  # type: ignore[arg-type]
                                    noisy=noisy, seed=seed, fmt="tiff")
                    pdf = Path(folder, "fax.pdf")
                    pdf.write_bytes(build_pdf(twin.content))
                    truth = twin.page_texts[0]
                    for name, tessdata in chosen:
                        options: dict[str, Any] = dict(PATHS[args.path])
                        if tessdata:
                            options["tessdata"] = tessdata
                        took, cpu, texts = plugin(pdf, 1, options, Path(folder, "cache"))
                        records.append({"condition": label, "model": name, "seed": seed,
                                        "kind": kind, "chars": len(truth),
                                        "edits": cer(truth, texts[0]) * len(truth),
                                        "seconds": took, "cpu": cpu})
                if args.json:
                    Path(args.json).write_text(json.dumps(records, indent=1))
            print_models(records, label, [name for name, _ in chosen])


def print_models(records: list[dict[str, Any]], label: str, names: list[str]) -> None:
    print(f"\n{label}: {len({(r['seed'], r['kind']) for r in records if r['condition'] == label})}"
          " pages")
    print(f"{'model':10} {'CER %':>6} {'per seed min-max (sd)':>24} {'CPU s/page':>10} "
          f"{'CPU x ' + names[0]:>11} {'better/worse pages vs ' + names[0]:>28}")
    rows = [r for r in records if r["condition"] == label]
    base = {(r["seed"], r["kind"]): r for r in rows if r["model"] == names[0]}
    for name in names:
        mine = [r for r in rows if r["model"] == name]
        total = 100 * sum(r["edits"] for r in mine) / sum(r["chars"] for r in mine)
        seeds = sorted({r["seed"] for r in mine})
        per_seed = [100 * sum(r["edits"] for r in mine if r["seed"] == s)
                    / sum(r["chars"] for r in mine if r["seed"] == s) for s in seeds]
        sd = statistics.stdev(per_seed) if len(per_seed) > 1 else 0.0
        ratio = statistics.median(r["cpu"] / base[(r["seed"], r["kind"])]["cpu"] for r in mine)
        better = sum(r["edits"] < base[(r["seed"], r["kind"])]["edits"] for r in mine)
        worse = sum(r["edits"] > base[(r["seed"], r["kind"])]["edits"] for r in mine)
        spread = f"{min(per_seed):.2f}-{max(per_seed):.2f} ({sd:.2f})"
        print(f"{name:10} {total:6.2f} {spread:>24} {statistics.mean(r['cpu'] for r in mine):10.2f}"
              f" {ratio:11.2f} {f'{better} / {worse}':>28}", flush=True)


# --- real documents -------------------------------------------------------------------------


def raw_pages(document: Path, kind: str, info: Any, folder: Path) -> list[Path]:
    """Each page as a one-page TIFF of the pixels the plugin starts from, for the raw CLI
    (a TIFF frame as it is; a PDF page's own image at its own size, else 200 dpi, as the
    plugin renders it). Made before anything is timed."""
    from pdf2image import convert_from_path

    out = []
    for page in info.pages:
        raw = folder / f"{document.stem}-{page.number:03d}-raw.tif"
        if kind == "tiff":
            with Image.open(document) as tiff:
                tiff.seek(page.number - 1)
                image = tiff.copy()
            dpi = (page.xdpi, page.ydpi) if page.xdpi else None
        elif page.image_width:
            image = convert_from_path(document, size=(page.image_width, page.image_height),
                                      first_page=page.number, last_page=page.number)[0]
            dpi = (page.xdpi, page.ydpi)
        else:
            image = convert_from_path(document, dpi=200, first_page=page.number,
                                      last_page=page.number)[0]
            dpi = (200.0, 200.0)
        save_tiff(image, raw, dpi)
        out.append(raw)
    return out


def save_tiff(image: Image.Image, path: Path, dpi: tuple[float, float] | None) -> None:
    gray = image.convert("L") if image.mode not in ("1", "L", "RGB") else image
    bilevel = image.mode == "1" or (gray.mode == "L" and
                                    sum(gray.histogram()[1:255]) == 0)
    extra: dict[str, Any] = {"dpi": dpi} if dpi else {}
    if bilevel:
        gray.convert("1", dither=Image.Dither.NONE).save(path, compression="group4", **extra)
    else:
        gray.save(path, compression="tiff_lzw", **extra)


def words_of(text: str) -> set[str]:
    return {w.strip(".,;:!?()[]{}\"'").lower() for w in text.split()} - {""}


def agreement(mine: str, raw: str) -> float:
    """Word-level similarity of two readings (difflib ratio over normalized words)."""
    a, b = normalize_text(mine).split(), normalize_text(raw).split()
    if not a and not b:
        return 1.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def real(args: argparse.Namespace) -> None:
    """The default path and raw `tesseract page.tif - --psm 4` on every page of every PDF
    and TIFF in a folder, interleaved page by page, CPU time of both."""
    folder = Path(args.folder)
    manifest = {}
    if (folder / "manifest.json").is_file():
        manifest = {d["name"]: d for d in json.loads((folder / "manifest.json").read_text())}
    documents = sorted(p for p in folder.iterdir()
                       if p.suffix.lower() in (".pdf", ".tif", ".tiff") and p.is_file())
    options: dict[str, Any] = {"cache": False, "workers": 1}
    if args.tessdata:
        options["tessdata"] = args.tessdata
    options.update(args.set)
    rows: list[dict[str, Any]] = []
    service = OcrService(OcrOptions(**options), None)
    with tempfile.TemporaryDirectory() as scratch:
        inspected = {d: inspect(d) for d in documents}
        raws = {d: raw_pages(d, *inspected[d][:2], Path(scratch)) for d in documents}
        for round_ in range(args.rounds):
            for document in documents:
                kind, info, _ = inspected[document]
                name = escape_controls(document.name)  # a site's file names reach the terminal
                # The document's own cost (sniff, its description), spread over its pages
                shared = inspect(document)[2] / len(info.pages)
                for page, raw in zip(info.pages, raws[document], strict=True):
                    # raw first in even rounds, the plugin first in odd ones
                    if round_ % 2 == 0:
                        raw_cpu, raw_text = run_raw(raw)
                        cpu, result = run_page(service, document, kind, page, Path(scratch))
                    else:
                        cpu, result = run_page(service, document, kind, page, Path(scratch))
                        raw_cpu, raw_text = run_raw(raw)
                    classes = manifest.get(name, {}).get("pages", [])
                    number = page.number
                    rows.append({
                        "round": round_, "document": name,
                        "page": number,
                        "class": classes[number - 1] if number <= len(classes) else "",
                        "cpu": cpu + shared, "raw_cpu": raw_cpu,
                        "text": result.result.text if result else "", "raw_text": raw_text,
                        "rotated": result.rotated if result else 0,
                        "osd": result.osd if result else False,
                        "lines": result.lines if result else True,
                        "skew": result.skew if result else 0.0, "error": result is None})
            if args.json:
                Path(args.json).write_text(json.dumps(rows, indent=1))
    service.close()
    report_real(rows, manifest, args.rounds)


def inspect(document: Path) -> tuple[str, Any, float]:
    from faxflow_ocr import document as doc

    before = cpu_seconds()
    kind = doc.sniff(document)
    info = doc.inspect(document, kind, 10_000, 120)
    return kind, info, cpu_seconds() - before


def run_page(service: OcrService, document: Path, kind: str, page: Any,
             scratch: Path) -> tuple[float, Any]:
    """One page through the plugin's page pass (what each pool thread runs)."""
    from faxflow_ocr.page import read_page

    before = cpu_seconds()
    try:
        result = read_page(document, kind, page, service.options, service.engine, "eng",
                           False, None, scratch, service.extractor)
    except Exception as exc:
        print(escape_controls(f"{document.name} page {page.number}: {exc}"), file=sys.stderr)
        result = None
    return cpu_seconds() - before, result


def run_raw(page: Path) -> tuple[float, str]:
    _, cpu, texts = raw_cli([page], 1)
    return cpu, texts[0]


def report_real(rows: list[dict[str, Any]], manifest: dict[str, Any], rounds: int) -> None:
    def ratio(selected: list[dict[str, Any]]) -> str:
        per_round = []
        for r in range(rounds):
            these = [x for x in selected if x["round"] == r]
            if these:
                per_round.append(sum(x["cpu"] for x in these) / sum(x["raw_cpu"] for x in these))
        if not per_round:
            return "-"
        low, high = min(per_round), max(per_round)
        mid = statistics.median(per_round)
        return f"{mid:.2f}" + (f" ({low:.2f}-{high:.2f})" if rounds > 1 else "")

    last = [x for x in rows if x["round"] == 0]
    print(f"\n{'document':24} {'pages':>5} {'raw CPU s':>9} {'CPU s':>7} {'x raw':>17} "
          f"{'agree':>6} {'words':>9}  decisions")
    for name in dict.fromkeys(x["document"] for x in rows):
        doc_rows = [x for x in rows if x["document"] == name]
        first = [x for x in last if x["document"] == name]
        text = "\n".join(x["text"] for x in first)
        raw_text = "\n".join(x["raw_text"] for x in first)
        expected = [w.lower() for w in manifest.get(name, {}).get("words", [])]
        found = f"{sum(w in words_of(text) for w in expected)}/" \
                f"{sum(w in words_of(raw_text) for w in expected)}" if expected else ""
        decisions = []
        for x in first:
            what = [f"turned {x['rotated']}"] if x["rotated"] else []
            what += ["OSD"] if x["osd"] else []
            what += ["no lines"] if not x["lines"] else []
            what += [f"levelled {x['skew']:+.1f}"] if x["skew"] else []
            what += ["error"] if x["error"] else []
            if what:
                decisions.append(f"p{x['page']}: {', '.join(what)}")
        raw_cpu = sum(x["raw_cpu"] for x in doc_rows) / rounds
        cpu = sum(x["cpu"] for x in doc_rows) / rounds
        print(f"{name:24} {len(first):5} {raw_cpu:9.2f} {cpu:7.2f} {ratio(doc_rows):>17} "
              f"{100 * agreement(text, raw_text):5.0f}% {found:>9}  {'; '.join(decisions)}")
    print(f"\nCPU x raw, median of {rounds} round(s) (min-max):")
    print(f"  all pages{'':16} {ratio(rows)}   ({len(last)} pages)")
    rotated_docs = {x["document"] for x in rows if x["class"] == "rotated"}
    if rotated_docs:
        others = [x for x in rows if x["document"] not in rotated_docs]
        print(f"  without the turned documents {ratio(others)}")
    for cls in sorted({x["class"] for x in rows if x["class"]}):
        selected = [x for x in rows if x["class"] == cls]
        n = len([x for x in selected if x["round"] == 0])
        print(f"  {cls:24} {ratio(selected):>17}   ({n} pages)")
    print("\nper page, blank / small / low-text / photo / rotated / upright-in-turned:")
    for x in last:
        if x["class"] in ("blank", "small", "low-text", "photo", "rotated", "upright",
                          "typewriter"):
            page_rows = [y for y in rows
                         if (y["document"], y["page"]) == (x["document"], x["page"])]
            print(f"  {x['document']:24} p{x['page']:<3} {x['class']:10} {ratio(page_rows):>17}  "
                  f"raw {statistics.median(y['raw_cpu'] for y in page_rows):.2f} s")
    expected_all = [(name, w.lower()) for name, d in manifest.items()
                    for w in d.get("words", []) if name in {x["document"] for x in rows}]
    if expected_all:
        texts = {n: words_of("\n".join(x["text"] for x in last if x["document"] == n))
                 for n, _ in expected_all}
        raws = {n: words_of("\n".join(x["raw_text"] for x in last if x["document"] == n))
                for n, _ in expected_all}
        mine = sum(w in texts[n] for n, w in expected_all)
        base = sum(w in raws[n] for n, w in expected_all)
        print(f"\nexpected words found: default path {mine}/{len(expected_all)}, "
              f"raw CLI {base}/{len(expected_all)}")


# --- memory ---------------------------------------------------------------------------------


def tree_rss_kb(root: int) -> int:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path("/proc", entry, "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid = int(entry)
        children.setdefault(int(fields.get("PPid", "0").strip() or 0), []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) if "VmRSS" in fields else 0
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def rss_one(args: argparse.Namespace) -> None:
    """Child mode: OCR the PDF at --file, print peak tree RSS as JSON.

    The fax is generated by the parent, so its generation does not count here."""
    pdf = Path(args.file)
    peak = 0
    done = threading.Event()

    def sample_rss() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_kb(os.getpid()))
            time.sleep(0.02)

    watcher = threading.Thread(target=sample_rss, daemon=True)
    start_rss = tree_rss_kb(os.getpid())
    watcher.start()
    # Memory is measured here, not time: a 200-page fax on a loaded machine must not end
    # at the document budget (300 s by default), nor a failure leave the sampler running.
    options = {**PATHS[args.path], "document_timeout": 86_400}
    try:
        with tempfile.TemporaryDirectory() as folder:
            took, _, texts = plugin(pdf, args.workers[0], options, Path(folder, "cache"))
    finally:
        done.set()
        watcher.join()
    print(json.dumps({"peak_kb": peak, "start_kb": start_rss, "seconds": took,
                      "pages_read": sum(1 for t in texts if t)}))


def rss(args: argparse.Namespace) -> None:
    print(f"\npeak RSS of the process tree, {args.path}, {args.workers[0]} workers")
    print(f"{'pages':>6} {'peak MB':>8} {'x 1-page':>8} {'start MB':>8} {'s/page':>7}")
    first = None
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            pdf = Path(folder, f"fax{size}.pdf")
            pdf.write_bytes(make_fax(kind=args.kind, pages=size, resolution=args.resolution,
                                     fmt="pdf", seed=args.seed).content)
            out = subprocess.run([sys.executable, __file__, "rss-one", "--file", str(pdf),
                                  "--path", args.path, "--workers", str(args.workers[0])],
                                 capture_output=True, text=True, check=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            assert result["pages_read"] == size, result
            first = first or result["peak_kb"]
            print(f"{size:>6} {result['peak_kb'] / 1024:8.1f} {result['peak_kb'] / first:8.2f} "
                  f"{result['start_kb'] / 1024:8.1f} {result['seconds'] / size:7.2f}",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["speed", "cer", "models", "real", "rss", "rss-one"])
    parser.add_argument("--pages", type=int, default=6, help="pages per fax (speed)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=lambda s: [int(w) for w in s.split(",")],
                        default=[1, 2])
    parser.add_argument("--paths", type=lambda s: s.split(","), default=None,
                        help="first word of path names to run, e.g. default,tesserocr+extract")
    parser.add_argument("--path", default="default (libtesseract+extract)",
                        choices=list(PATHS), help="path for rss")
    parser.add_argument("--sizes", type=lambda s: [int(n) for n in s.split(",")],
                        default=[1, 10, 50, 200])
    parser.add_argument("--resolution", default="fine", choices=["fine", "standard"])
    parser.add_argument("--kind", default="invoice")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--file", help="rss-one: the PDF to read")
    parser.add_argument("folder", nargs="?", help="real: a folder of PDFs and TIFFs")
    parser.add_argument("--kinds", type=lambda s: s.split(","),
                        default=["invoice", "letter", "order", "referral", "delivery_note"])
    parser.add_argument("--seeds", type=lambda s: [int(n) for n in s.split(",")], default=[1],
                        help="cer: sample seeds (one page per kind and seed)")
    parser.add_argument("--resolutions", type=lambda s: s.split(","),
                        default=["fine", "standard"], help="cer: e.g. standard")
    parser.add_argument("--errors", type=int, default=0, metavar="N",
                        help="cer: also print the N word-level misreads costing most edits")
    parser.add_argument("--tessdata", default=None,
                        help="cer: a folder of *.traineddata to read with (e.g. another model)")
    parser.add_argument("--models", default="fast=",
                        help="models: name=tessdata folder (empty: tesseract's own), ...")
    parser.add_argument("--set", type=setting, action="append", default=[], metavar="KEY=VALUE",
                        help="cer, real: a [plugins.ocr] option, e.g. barcodes=false")
    parser.add_argument("--no-raw", action="store_true", help="cer: skip the raw CLI runs")
    parser.add_argument("--json", default=None, help="cer: write per-page results to this file")
    parser.add_argument("--old-standard-prep", action="store_true",
                        help="cer: pages as before thicken / thin_rows / noise scale / smoothing")
    args = parser.parse_args()
    {"speed": speed, "cer": accuracy, "models": models, "real": real, "rss": rss,
     "rss-one": rss_one}[args.mode](args)
    start_costs()


if __name__ == "__main__":
    main()
