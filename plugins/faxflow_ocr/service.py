"""The OCR service of one app: options, the shared page pool, the engine and the cache.

All pages of all faxes in flight go through one pool of `workers` threads; each thread runs
one tesseract at a time (single-threaded), so at most `workers` tesseracts run at once and
the CPU is never oversubscribed. A document keeps at most `workers` pages in the pool, so
a 200-page fax neither holds 200 bitmaps nor starves the faxes queued behind it.
"""

from __future__ import annotations

import errno
import logging
import tempfile
import threading
import time
from collections.abc import Generator, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from faxflow.errors import PermanentError
from faxflow.types import PageText
from faxflow_ocr import document as doc
from faxflow_ocr import searchable
from faxflow_ocr.budget import Budget, OutOfTime
from faxflow_ocr.cache import TextCache
from faxflow_ocr.engine import Engine
from faxflow_ocr.extract import Extractor
from faxflow_ocr.failures import document_error, is_transient
from faxflow_ocr.libtess import make_engine
from faxflow_ocr.options import OcrOptions
from faxflow_ocr.page import PageResult, read_page
from faxflow_ocr.raster import PageTooLarge
from faxflow_ocr.tools import limit_threads, quiet_libtiff

log = logging.getLogger("faxflow.ocr")
DEFAULT_DOCUMENT_TIMEOUT = 300.0  # half the default lock_timeout; the plugin passes its own


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
    osd: list[int] = field(default_factory=list)  # pages tesseract's OSD was asked about
    searchable_pdf: Path | None = None

    @property
    def pages_read(self) -> int:
        return sum(p.read for p in self.pages)

    def summary(self) -> dict[str, Any]:
        return {"cached": self.cached, "page_count": self.page_count,
                "pages_read": self.pages_read, "skipped": self.skipped,
                "noisy": self.noisy, "rotated": self.rotated, "skew": self.skew,
                "osd": self.osd,
                "searchable_pdf": str(self.searchable_pdf) if self.searchable_pdf else None}


class OcrService:
    def __init__(self, options: OcrOptions, cache_dir: Path | None,
                 document_timeout: float | None = None) -> None:
        limit_threads()
        quiet_libtiff()
        self.options = options
        self.document_timeout = (options.document_timeout or document_timeout
                                 or DEFAULT_DOCUMENT_TIMEOUT)
        self.engine: Engine = make_engine(options.engine, options.model_folder, options.workers)
        self.extractor = Extractor(options.workers, options.max_pixels) \
            if options.rasterizer == "extract" else None
        self.cache_dir = cache_dir
        self.cache = TextCache(cache_dir, max_age_days=options.cache_max_age_days,
                               max_mb=options.cache_max_mb) \
            if options.cache and cache_dir else None
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

    def start(self) -> None:
        """Start the threads and prune the cache (again every hour, as texts are added)."""
        self.pool  # noqa: B018 - start the threads before the first fax
        if self.cache:
            self.cache.prune()

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
        if self.extractor is not None:
            self.extractor.close()

    def read(self, path: Path, name: str, sha256: str, languages: str,
             pdf_target: Path | None = None) -> Outcome:
        """Every page of one document; PermanentError when it cannot be read at all, has
        more pages than `max_pages` (too_many_pages = "quarantine") or runs out of time."""
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
        key = (f"{sha256}|{languages}|{options.fingerprint()}|{options.max_pages}|"
               f"{options.too_many_pages}")
        if self.cache and sha256:
            cached = self.cache.get(key)
            if cached is not None and (pdf_target is None or self.cache.get_pdf(key, pdf_target)):
                return Outcome(cached, cached=True, page_count=len(cached),
                               skipped=[p.number for p in cached if p.skipped],
                               searchable_pdf=pdf_target)
        budget = Budget(self.document_timeout)
        kind, info = self._inspect(path, budget)
        if info.page_count > options.max_pages and options.too_many_pages == "quarantine":
            # Decided from the headers, before any page is decoded.
            raise PermanentError(f"{info.page_count} pages, more than max_pages "
                                 f"({options.max_pages}); not read "
                                 '(too_many_pages = "quarantine")')
        outcome = Outcome([], page_count=info.page_count)
        with scratch_folder(path) as scratch:
            pdf_pages: dict[int, Path] = {}
            pages = self._pages(path, kind, info, languages, pdf_target is not None, budget,
                                scratch)
            try:
                with closing(pages):
                    for result in pages:
                        self._take(result, name, outcome, pdf_pages, scratch)
            except OutOfTime:
                read = outcome.pages_read + getattr(pages, "finished_early", 0)
                raise PermanentError(
                    f"not read within its time budget of {budget.seconds:g} s "
                    f"(document_timeout); {read} of {info.page_count} pages read") from None
            for number in range(len(info.pages) + 1, info.page_count + 1):
                outcome.skipped.append(number)  # too_many_pages = "deliver": on purpose
                outcome.pages.append(PageText(number, "", document=name, skipped=True))
            if pdf_target is not None:
                try:
                    searchable.assemble(path, kind, info.page_count, pdf_pages, pdf_target,
                                        scratch, options.max_pixels)
                except Exception as exc:
                    error = document_error(exc, kind, path)
                    raise (PermanentError(f"searchable PDF: {error}")
                           if isinstance(error, PermanentError) else error) from None
                outcome.searchable_pdf = pdf_target
        failed = [p for p in outcome.pages if p.error]
        if self.cache and sha256 and not failed:  # a failed page may work next time
            self.cache.put(key, outcome.pages)
            if outcome.searchable_pdf:
                self.cache.put_pdf(key, outcome.searchable_pdf)
        return outcome

    def _inspect(self, path: Path, budget: Budget) -> tuple[str, doc.DocumentInfo]:
        """Kind and page headers; an unexpected error from a parser is a damaged document,
        one from the machine is raised as it is (transient)."""
        started = time.monotonic()
        kind: str | None = None
        try:
            kind = doc.sniff(path)
            timeout = min(self.options.page_timeout, budget.seconds)
            return kind, doc.inspect(path, kind, self.options.max_pages, timeout)
        except PermanentError:
            raise
        except Exception as exc:
            raise document_error(exc, kind, path) from None
        finally:
            budget.spend(time.monotonic() - started)

    def _take(self, result: PageResult | PageText, name: str, outcome: Outcome,
              pdf_pages: dict[int, Path], scratch: Path) -> None:
        if isinstance(result, PageText):
            result.document = name
            outcome.pages.append(result)
            return
        outcome.pages.append(PageText(result.number, result.result.text,
                                      result.result.confidence, document=name,
                                      barcodes=tuple(replace(b, document=name)
                                                     for b in result.barcodes)))
        if result.noisy:
            outcome.noisy.append(result.number)
        if result.rotated:
            outcome.rotated[result.number] = result.rotated
        if result.skew:
            outcome.skew[result.number] = round(result.skew, 1)
        if result.osd:
            outcome.osd.append(result.number)
        if result.result.pdf is not None:
            page_pdf = scratch / f"{result.number:06d}.pdf"
            page_pdf.write_bytes(result.result.pdf)
            pdf_pages[result.number] = page_pdf

    def _pages(self, path: Path, kind: str, info: doc.DocumentInfo, languages: str,
               want_pdf: bool, budget: Budget, scratch: Path) -> _PageStream:
        return _PageStream(self, path, kind, info, languages, want_pdf, budget, scratch)

    def _read_page(self, budget: Budget, path: Path, kind: str, page: doc.PageInfo,
                   languages: str, want_pdf: bool, scratch: Path) -> PageResult:
        """One page in a pool thread, given no more time than its document has left."""
        left = budget.page_started()
        started = time.monotonic()
        try:
            if left <= 0:
                raise OutOfTime()
            limit = min(self.options.page_timeout, left)
            try:
                return read_page(path, kind, page, self.options, self.engine, languages,
                                 want_pdf, limit, scratch, self.extractor)
            except Exception as exc:
                # Stopped at the budget's end (poppler or tesseract killed by its timeout,
                # or no time left for the next step): the document's time is up, not the
                # page's fault.
                if limit < self.options.page_timeout and \
                        time.monotonic() >= started + limit - 0.1 and not is_transient(exc):
                    raise OutOfTime() from exc
                raise
        finally:
            budget.page_ended()


class _PageStream:
    """PageResults (or PageText errors) of one document in page order, at most `workers`
    pages in the pool.

    A new page goes in as soon as any page of the window is done, not only the oldest:
    waiting for pages in order left a worker idle while an earlier page was slower (an
    OSD retry, a dense page). Finished results wait in `done` (text only; the bitmaps
    live inside read_page) until their turn. A failure of the machine (disk full, out of
    memory) is raised: the fax comes back later; any other failure of a page is that page's
    error. When the document's budget runs out, OutOfTime is raised; closing the stream
    cancels the pages not started and waits for the running ones, which end by the budget's
    end, so the pool is free again when the document's reading ends.
    """

    def __init__(self, service: OcrService, path: Path, kind: str, info: doc.DocumentInfo,
                 languages: str, want_pdf: bool, budget: Budget, scratch: Path) -> None:
        self.service, self.path, self.kind, self.info = service, path, kind, info
        self.languages, self.want_pdf, self.budget, self.scratch = (languages, want_pdf,
                                                                    budget, scratch)
        self.running: dict[Future[PageResult], doc.PageInfo] = {}
        self.finished_early = 0  # pages read but not yet handed out when the time ran out
        self._iter = self._generate()

    def __iter__(self) -> Iterator[PageResult | PageText]:
        return self._iter

    def close(self) -> None:
        self._iter.close()
        for future in self.running:
            future.cancel()
        wait(self.running)
        self.running.clear()

    def _submit(self, page: doc.PageInfo) -> None:
        service = self.service
        future = service.pool.submit(service._read_page, self.budget, self.path, self.kind,
                                     page, self.languages, self.want_pdf, self.scratch)
        self.running[future] = page

    def _generate(self) -> Generator[PageResult | PageText, None, None]:
        workers = self.service.options.workers
        done: dict[int, PageResult | PageText] = {}
        pages = iter(self.info.pages)
        for wanted in self.info.pages:
            while wanted.number not in done:
                while len(self.running) < workers:
                    page = next(pages, None)
                    if page is None:
                        break
                    self._submit(page)
                finished, _ = wait(self.running, return_when=FIRST_COMPLETED)
                for future in finished:
                    page = self.running.pop(future)
                    try:
                        done[page.number] = future.result()
                    except OutOfTime:
                        self.finished_early = sum(isinstance(r, PageResult)
                                                  for r in done.values())
                        raise
                    except Exception as exc:
                        if is_transient(exc):
                            raise
                        done[page.number] = PageText(page.number, "", error=page_error(exc))
            yield done.pop(wanted.number)


@contextmanager
def scratch_folder(document: Path) -> Iterator[Path]:
    """A private (0700) folder for the engine's and the PDF's files, next to the document:
    in the worker that is the fax's spool folder, which the worker cleans even after a
    crash, so nothing of a fax is left in /tmp. Where that folder cannot be written (a
    read-only folder given to `faxflow explain`), the system's temp folder."""
    try:
        folder = tempfile.TemporaryDirectory(prefix=".ocr-", dir=document.parent)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        folder = tempfile.TemporaryDirectory(prefix="faxflow-ocr-")
    with folder as name:
        yield Path(name)


def page_error(exc: BaseException) -> str:
    if isinstance(exc, PageTooLarge):
        return str(exc)
    if isinstance(exc, TimeoutError) or "timeout" in str(exc).lower():
        return f"OCR timed out: {exc}"
    return f"page could not be read: {type(exc).__name__}: {exc}"
