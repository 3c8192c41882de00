"""OCR of fax documents (PDF and multi-page TIFF) with tesseract; see docs/ocr.md.

Options under `[plugins.ocr]`; one page pool shared by all faxes in flight; text cached by
document sha256; optional searchable PDF in ``fax.artifacts["searchable_pdf"]``.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path

from faxflow.app import App
from faxflow.config import Config, ConfigProblem
from faxflow.hookspecs import hookimpl
from faxflow.types import Document, Fax, PageText
from faxflow_ocr import options as opts
from faxflow_ocr.libtess import find_library
from faxflow_ocr.service import OcrService

log = logging.getLogger("faxflow.ocr")
STATE_KEY = "plugins.ocr"  # the service lives in app.state, so each App has its own
_LOCK = threading.Lock()  # faxes in flight may all ask for the service at once
NEEDS = {("engine", "tesserocr"): "tesserocr", ("rasterizer", "extract"): "pikepdf"}


@hookimpl
def faxflow_check_config(config: Config) -> list[ConfigProblem]:
    table = config.plugin_options("ocr")
    installed = opts.installed_languages(opts.model_folder(table))
    parsed, problems = opts.parse(table, set(installed) if installed is not None else None)
    for (key, value), package in NEEDS.items():
        if getattr(parsed, key) == value and importlib.util.find_spec(package) is None:
            problems.append(ConfigProblem(("plugins", "ocr", key),
                                          f"{value} needs the Python package {package} "
                                          f"(pip install {package})"))
    if parsed.engine == "libtesseract" and find_library() is None:
        problems.append(ConfigProblem(("plugins", "ocr", "engine"),
                                      'engine = "libtesseract" (the default) needs '
                                      "tesseract's library, libtesseract (Debian: libtesseract5, "
                                      'installed with tesseract-ocr); or set engine = '
                                      '"pytesseract" to run the tesseract command per page'))
    lock_timeout = config.retarus.lock_timeout
    if parsed.document_timeout is not None and parsed.document_timeout >= lock_timeout:
        problems.append(ConfigProblem(("plugins", "ocr", "document_timeout"),
                                      f"must be less than [retarus] lock_timeout "
                                      f"({lock_timeout} s): a fax still being read would be "
                                      "handed out again"))
    return problems


@hookimpl
def faxflow_configure(config: Config, app: App) -> None:
    parsed, problems = opts.parse(config.plugin_options("ocr"))
    if problems:  # check_config ran first; this only guards direct calls
        raise ValueError("; ".join(p.format() for p in problems))
    cache_dir = _cache_dir(parsed, config, app)
    budget = _document_timeout(parsed, config)
    with _LOCK:
        old = app.state.get(STATE_KEY)
        if isinstance(old, OcrService) and old.options == parsed and \
                old.cache_dir == cache_dir and old.document_timeout == budget:
            return  # a reload that changed other plugins' options: keep pool and engines
        app.state[STATE_KEY] = OcrService(parsed, cache_dir, budget)
    if isinstance(old, OcrService):
        # Faxes in flight finish their pages on the old pool; its threads end after that.
        old.close(wait=False)


@hookimpl
def faxflow_startup(app: App) -> None:
    _service(app).start()  # the threads, before the first fax; prunes the cache


@hookimpl
def faxflow_shutdown(app: App) -> None:
    service = app.state.pop(STATE_KEY, None)
    if isinstance(service, OcrService):
        service.close()


@hookimpl
def faxflow_extract_text(fax: Fax, document: Document, app: App) -> list[PageText]:
    service = _service(app)
    receiver = fax.job.receiver_isdn.e164 if fax.job.receiver_isdn else None
    languages = service.options.languages_for(receiver)
    target = None
    if service.options.searchable_pdf:
        target = document.path.with_name(f"{document.path.stem}.searchable.pdf")
    outcome = service.read(document.path, document.ref.name, document.sha256, languages,
                           target)
    fax.scratch.setdefault("ocr", {})[document.ref.name] = outcome.summary()
    if outcome.searchable_pdf:
        fax.artifacts.setdefault("searchable_pdf", outcome.searchable_pdf)
        fax.artifacts[f"searchable_pdf:{document.ref.name}"] = outcome.searchable_pdf
    return outcome.pages


def _service(app: App) -> OcrService:
    with _LOCK:
        service = app.state.get(STATE_KEY)
        if not isinstance(service, OcrService):  # configure was not called (tests, tools)
            parsed, _ = opts.parse(app.plugin_options("ocr"))
            service = OcrService(parsed, _cache_dir(parsed, app.config, app),
                                 _document_timeout(parsed, app.config))
            app.state[STATE_KEY] = service
        return service


def _document_timeout(parsed: opts.OcrOptions, config: Config) -> float:
    """`document_timeout`, by default half the lock timeout: the fax must be decided (and
    quarantined if need be) before Retarus hands it out again."""
    if parsed.document_timeout is not None:
        return parsed.document_timeout
    return config.retarus.lock_timeout / 2


def _cache_dir(parsed: opts.OcrOptions, config: Config, app: App) -> Path:
    if parsed.cache_dir:
        return config.resolve(parsed.cache_dir)
    return opts.default_cache_dir(config.resolve(config.worker.spool_dir))


__all__ = ["faxflow_check_config", "faxflow_configure", "faxflow_extract_text",
                          "faxflow_shutdown", "faxflow_startup"]
