"""Logging set-up: plain text for people, one JSON object per line for log shippers."""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from typing import Any

# Attributes a LogRecord always has; anything else was passed with extra= and is kept.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def escape_controls(text: str) -> str:
    """Control and format characters (newlines, NUL, ESC, bidi overrides) as escapes, so text
    from a fax (ids, sender names) can never forge a log line or drive a terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


class TextFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))


def setup(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                                           "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # A library's warning about a hostile document (Pillow: "Corrupt EXIF data") would be
    # printed raw to stderr, two lines with the source line, unescaped: it goes through
    # the log instead, as one line. (warnings.catch_warnings is not thread-safe: pool
    # threads that silence Pillow can let a warning slip out past their filter.)
    warnings.showwarning = _log_warning
    # httpx logs every request URL at info: too chatty for a worker that polls.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    # watchdog logs every file event in the watched folders at debug level: with the log
    # file next to the config, each line would be an event producing another line.
    logging.getLogger("watchdog").setLevel(logging.INFO)


def _log_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: Any = None, line: str | None = None) -> None:
    logging.getLogger("py.warnings").warning("%s: %s (%s:%d)", category.__name__, message,
                                             filename.rsplit("/", 1)[-1], lineno)
