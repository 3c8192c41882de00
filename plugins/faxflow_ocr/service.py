"""The OCR service of one app: options, the shared page pool, the engine and the cache.

All pages of all faxes in flight go through one pool of `workers` threads; each thread runs
one tesseract at a time (single-threaded), so at most `workers` tesseracts run at once and
the CPU is never oversubscribed. A document keeps at most `workers` pages in the pool, so
a 200-page fax neither holds 200 bitmaps nor starves the faxes queued behind it.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faxflow.types import PageText
from faxflow_ocr import document as doc
from faxflow_ocr.cache import TextCache
from faxflow_ocr.engine import Engine, make_engine
from faxflow_ocr.options import OcrOptions
from faxflow_ocr.page import PageResult, read_page
from faxflow_ocr.raster import PageTooLarge
from faxflow_ocr.tools import limit_threads, tool_env

log = logging.getLogger("faxflow.ocr")


@dataclass
class Outcome:
    """What reading one document gave, besides its pages (goes to fax.scratch["ocr"])."""

    pages: list[PageText]
    cached: bool = False
    page_count: int = 0
    skipped: list[int] = field(default_factory=list)
    noisy: list[int] = field(default_factory=list)
    rotated: dict[int, int] = field(default_factory=dict)
    skew: dict[int, float] = field(default_factory=dict)
    searchable_pdf: Path | None = None

    def summary(self) -> dict[str, Any]:
        return {"cached": self.cached, "page_count": self.page_count, "skipped": self.skipped,
                "noisy": self.noisy, "rotated": self.rotated, "skew": self.skew,
                "searchable_pdf": str(self.searchable_pdf) if self.searchable_pdf else None}


class OcrService:
    def __init__(self, options: OcrOptions, cache_dir: Path | None) -> None:
        limit_threads()
        self.options = options
        self.engine: Engine = make_engine(options.engine, options.tessdata, options.workers)
        self.cache_dir = cache_dir
        self.cache = TextCache(cache_dir) if options.cache and cache_dir else None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._reading = 0  # documents in flight
        self._retiring = False

    @property
    def pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.options.workers, thread_name_prefix="ocr")
            return self._pool

    def close(self, wait: bool = True) -> None:
        """Stop the pool and engines. wait=False (a config reload): documents being read
        finish on this pool, which closes after the last of them."""
        with self._lock:
            self._retiring = True
            if not wait and self._reading:
                return
        self._release(wait)

    def _release(self, wait: bool) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait)
        self.engine.close()

    def read(self, path: Path, name: str, sha256: str, languages: str,
             pdf_target: Path | None = None) -> Outcome:
        """Every page of one document; PermanentError when it cannot be read at all."""
        with self._lock:
            self._reading += 1
        try:
            return self._read(path, name, sha256, languages, pdf_target)
        finally:
            with self._lock:
                self._reading -= 1
                last = self._retiring and self._reading == 0
            if last:
                self._release(wait=False)

    def _read(self, path: Path, name: str, sha256: str, languages: str,
              pdf_target: Path | None) -> Outcome:
        options = self.options
        key = f"{sha256}|{languages}|{options.fingerprint()}|{options.max_pages}"
        if self.cache and sha256:
            cached = self.cache.get(key)
            if cached is not None and (pdf_target is None or self.cache.get_pdf(key, pdf_target)):
                return Outcome(cached, cached=True, page_count=len(cached),
                               searchable_pdf=pdf_target)
        kind = doc.sniff(path)
        info = doc.inspect(path, kind, options.max_pages, options.page_timeout)
        outcome = Outcome([], page_count=info.page_count)
        with tempfile.TemporaryDirectory(prefix="faxflow-ocr-") as scratch:
            pdf_pages: list[Path] = []
            for result in self._pages(path, kind, info, languages, pdf_target is not None):
                if isinstance(result, PageText):
                    result.document = name
                    outcome.pages.append(result)
                    continue
                outcome.pages.append(PageText(result.number, result.result.text,
                                              result.result.confidence, document=name))
                if result.noisy:
                    outcome.noisy.append(result.number)
                if result.rotated:
                    outcome.rotated[result.number] = result.rotated
                if result.skew:
                    outcome.skew[result.number] = round(result.skew, 1)
                if result.result.pdf is not None:
                    page_pdf = Path(scratch, f"{result.number:06d}.pdf")
                    page_pdf.write_bytes(result.result.pdf)
                    pdf_pages.append(page_pdf)
            if pdf_target is not None and pdf_pages:
                merge_pdfs(pdf_pages, pdf_target)
                outcome.searchable_pdf = pdf_target
        for number in range(len(info.pages) + 1, info.page_count + 1):
            outcome.skipped.append(number)
            outcome.pages.append(PageText(number, "", error=f"skipped: beyond max_pages "
                                          f"({options.max_pages})", document=name))
        failed = [p for p in outcome.pages if p.error and p.number <= len(info.pages)]
        if self.cache and sha256 and not failed:  # a failed page may work next time
            self.cache.put(key, outcome.pages)
            if outcome.searchable_pdf:
                self.cache.put_pdf(key, outcome.searchable_pdf)
        return outcome

    def _pages(self, path: Path, kind: str, info: doc.DocumentInfo, languages: str,
               want_pdf: bool) -> Any:
        """PageResults (or PageText errors) in page order, at most `workers` in the pool.

        A new page goes in as soon as any page of the window is done, not only the oldest:
        waiting for pages in order left a worker idle while an earlier page was slower (an
        OSD retry, a dense page). Finished results wait in `done` (text only; the bitmaps
        live inside read_page) until their turn.
        """
        running: dict[Future[PageResult], doc.PageInfo] = {}
        done: dict[int, PageResult | PageText] = {}
        pages = iter(info.pages)
        for wanted in info.pages:
            while wanted.number not in done:
                while len(running) < self.options.workers:
                    page = next(pages, None)
                    if page is None:
                        break
                    running[self.pool.submit(read_page, path, kind, page, self.options,
                                             self.engine, languages, want_pdf)] = page
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    page = running.pop(future)
                    try:
                        done[page.number] = future.result()
                    except Exception as exc:  # one bad page must not lose the others
                        done[page.number] = PageText(page.number, "", error=page_error(exc))
            yield done.pop(wanted.number)


def page_error(exc: BaseException) -> str:
    if isinstance(exc, PageTooLarge):
        return str(exc)
    if isinstance(exc, TimeoutError) or "timeout" in str(exc).lower():
        return f"OCR timed out: {exc}"
    return f"page could not be read: {type(exc).__name__}: {exc}"


def merge_pdfs(pages: list[Path], target: Path) -> None:
    """One PDF from tesseract's one-page PDFs (poppler's pdfunite; no extra dependency)."""
    if len(pages) == 1:
        target.write_bytes(pages[0].read_bytes())
        return
    subprocess.run(["pdfunite", *map(str, pages), str(target)], check=True,
                   capture_output=True, env=tool_env(), timeout=300)
