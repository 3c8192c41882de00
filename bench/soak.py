"""Soak: N faxes through the full pipeline in one worker process, watching for leaks.

    .venv/bin/python bench/soak.py                       # 10,000 faxes
    .venv/bin/python bench/soak.py --faxes 2000          # shorter

The simulator runs as its own process (so its memory is not counted); this process runs the
real worker (`run_worker`) with the rules, folder and OCR plugins and a SQLite journal.
Every fax is routed to a folder. Every `--ocr-every`th fax (default 100) carries a generated
fax page (faxflow.samples) that the OCR plugin really reads; the others carry the
simulator's tiny text PDF, and a one-file plugin (below, `tryfirst`) answers their text
extraction with an empty page, so OCR time does not swamp the run.

Reported: throughput (faxes/s, start of the worker to the last acknowledgement), resident
memory (VmRSS) sampled every `--interval` seconds with the least-squares slope after warm-up,
open files (/proc/self/fd) and threads at the end. Not a test: run on demand.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from simproc import simulator_process

from faxflow.app import load_app
from faxflow.hookspecs import hookimpl
from faxflow.runner import start_worker_thread
from faxflow.types import Document, Fax, PageText

USER, PASSWORD, TOPIC = "99999", "soak-secret", "soak"

CONFIG = """
[retarus]
base_url = "{api_url}"
username = "{user}"
password = "{password}"
topics = ["{topic}"]
fetch = 50
lock_timeout = 120

[worker]
concurrency = {concurrency}
max_attempts = 3
poll_interval_max = 0.5
reload = false

[journal]
path = "journal.sqlite"

[plugins.ocr]
languages = "eng"
cache = false

[plugins.folder]
base = "out"

[plugins.rules]
default_country = "DE"

[plugins.rules.default]
[[plugins.rules.default.route]]
type = "folder"
path = "{{{{ received | date('%Y-%m-%d') }}}}"

[[rule]]
name = "invoices"
labels = ["invoice"]
when.text = {{ regex = 'Invoice\\s+(?:No\\.?|Number)\\s*:?\\s*(?P<invoice_number>INV-[0-9-]+)' }}
[[rule.route]]
type = "folder"
path = "invoices"
name = "{{{{ fields.invoice_number }}}}-{{{{ fax_id }}}}"
"""


class Soak:
    """The one-file plugin: text for unsampled faxes, and a count of acknowledgements."""

    def __init__(self, sampled: set[str]) -> None:
        self.sampled = sampled
        self.acked = 0
        self.quarantined = 0
        self.lock = threading.Lock()

    @hookimpl(tryfirst=True)
    def faxflow_extract_text(self, fax: Fax, document: Document) -> list[PageText] | None:
        if fax.id in self.sampled:
            return None  # the OCR plugin reads it
        return [PageText(number=1, text="", document=document.ref.name)]

    @hookimpl
    def faxflow_fax_acknowledged(self) -> None:
        with self.lock:
            self.acked += 1

    @hookimpl
    def faxflow_fax_quarantined(self) -> None:
        with self.lock:
            self.quarantined += 1


@dataclass
class Sample:
    seconds: float
    acked: int
    rss_mb: float
    fds: int
    threads: int


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


@contextmanager
def simulator() -> Iterator[str]:
    """A simulator process with an empty topic; yields its base URL."""
    with simulator_process(USER, PASSWORD, TOPIC) as (base, _):
        yield base


def add_faxes(base: str, n: int, ocr_every: int) -> set[str]:
    """Add n faxes; returns the ids of those with a real fax page (to be OCRed)."""
    from faxflow.samples import make_fax

    sampled = set()
    with httpx.Client(base_url=base, timeout=30) as client:
        for i in range(n):
            body: dict[str, object] = {}
            if ocr_every and i % ocr_every == 0:
                sample = make_fax(kind="invoice", pages=1, seed=i + 1)
                body["documents"] = [{"extension": sample.extension,
                                      "content_base64": base64.b64encode(sample.content).decode()}]
            reply = client.post(f"/_sim/topics/{TOPIC}/faxes", json=body)
            reply.raise_for_status()
            if "documents" in body:
                sampled.add(reply.json()["id"])
    return sampled


def slope(samples: list[Sample]) -> float:
    """Least-squares slope of RSS over time, in MB per minute."""
    xs = [s.seconds / 60 for s in samples]
    ys = [s.rss_mb for s in samples]
    if len(xs) < 2:
        return float("nan")
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faxes", type=int, default=10_000)
    parser.add_argument("--ocr-every", type=int, default=100,
                        help="every Nth fax is a real fax page read by OCR (0: none)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=0.2,
                        help="share of the faxes before the slope is measured")
    parser.add_argument("--timeout", type=float, default=7200)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")

    with simulator() as base, tempfile.TemporaryDirectory(prefix="faxflow-soak-") as home:
        print(f"adding {args.faxes} faxes ...", flush=True)
        sampled = add_faxes(base, args.faxes, args.ocr_every)
        config = Path(home) / "faxflow.toml"
        (Path(home) / "out").mkdir()
        config.write_text(CONFIG.format(api_url=base + "/faxin/rest/v1", user=USER,
                                        password=PASSWORD, topic=TOPIC,
                                        concurrency=args.concurrency))
        soak = Soak(sampled)
        app = load_app(config, load=["rules", "folder", "ocr"], extra=[("soak", soak)])
        start = time.monotonic()
        thread, worker = start_worker_thread(app)
        samples: list[Sample] = []
        print(f"{'s':>7} {'acked':>7} {'RSS MB':>8} {'fds':>5} {'threads':>7}", flush=True)
        next_sample = start
        while True:
            now = time.monotonic()
            done = soak.acked + soak.quarantined >= args.faxes
            if now >= next_sample or done:
                s = Sample(now - start, soak.acked, rss_mb(), open_files(),
                           threading.active_count())
                samples.append(s)
                print(f"{s.seconds:7.1f} {s.acked:7d} {s.rss_mb:8.1f} {s.fds:5d} "
                      f"{s.threads:7d}", flush=True)
                next_sample += args.interval
            if done or not thread.is_alive() or now - start > args.timeout:
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - start
        if worker is not None:
            worker.stop()
        thread.join(60)
        time.sleep(1)  # let pool threads wind down before counting what is left
        files_out = sum(1 for _ in (Path(home) / "out").rglob("*.pdf"))
        invoices = sum(1 for _ in (Path(home) / "out" / "invoices").glob("*.pdf"))

    steady = [s for s in samples if s.acked >= args.warmup * args.faxes] or samples
    ocr_pages = app.metrics.registry.get_sample_value("faxflow_ocr_seconds_per_page_sum") or 0.0
    print()
    print(f"faxes: {args.faxes} ({len(sampled)} with OCR), acknowledged {soak.acked}, "
          f"quarantined {soak.quarantined}, files written {files_out} "
          f"({invoices} recognised as invoices from their OCR text)")
    print(f"time: {elapsed:.1f} s, throughput {soak.acked / elapsed:.1f} faxes/s "
          f"(OCR time summed over threads: {ocr_pages:.1f} s)")
    print(f"RSS: first {samples[0].rss_mb:.1f} MB, after warm-up {steady[0].rss_mb:.1f} MB, "
          f"max {max(s.rss_mb for s in samples):.1f} MB, last {samples[-1].rss_mb:.1f} MB; "
          f"slope after warm-up {slope(steady):+.2f} MB/min over {len(steady)} samples, "
          f"over the second half {slope(steady[len(steady) // 2:]):+.2f} MB/min")
    print(f"while running: open files {samples[-1].fds}, threads {samples[-1].threads}; "
          f"after stop: open files {open_files()}, threads {threading.active_count()}")


if __name__ == "__main__":
    main()
