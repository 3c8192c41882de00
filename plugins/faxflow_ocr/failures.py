"""Whose fault a failure is: the document's (permanent) or the machine's (transient).

Parsing a hostile document can make Pillow, pikepdf or poppler fail with any exception type
(a truncated TIFF gives Pillow's ``TypeError: Missing dimensions``); retrying cannot change
the document, so those are permanent. Only what the machine lacks is worth a retry: disk
space, memory, file handles, a process slot, a tool that is not installed, a file of our own
spool that vanished. `is_transient` is the one place that decides, for whole documents
(`document_error`) and for single pages (service.py).
"""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path

from faxflow.errors import PermanentError

# errno values that describe the machine, not the input.
MACHINE_ERRNOS = frozenset({
    errno.ENOSPC, errno.EDQUOT,  # disk full, quota
    errno.ENOMEM,  # out of memory (also a failed fork)
    errno.EMFILE, errno.ENFILE,  # too many open files
    errno.EAGAIN, errno.ENOBUFS,  # no process slot / buffers right now
    errno.ETIMEDOUT, errno.EIO, errno.EROFS,  # the machine's own disk or network
    errno.ENOENT, errno.EACCES, errno.EPERM,  # our spool file or a tool missing / not allowed
})


def is_transient(exc: BaseException) -> bool:
    """True for a failure of the machine (retry later), False for a bad document."""
    if isinstance(exc, MemoryError):
        return True
    if isinstance(exc, OSError) and exc.errno in MACHINE_ERRNOS:
        return True
    if _tool_missing(exc):
        return True
    # A tesseract (the CLI, or libtesseract's child) killed by SIGKILL that we did not kill
    # (our timeouts raise their own errors): the kernel's out-of-memory killer.
    status = getattr(exc, "status", None)
    return type(exc).__name__ in ("TesseractError", "TesseractFailed") and status == -9


def _tool_missing(exc: BaseException) -> bool:
    # pytesseract's TesseractNotFoundError, pdf2image's PDFInfoNotInstalledError, and a
    # libtesseract child that could not load tesseract (libtess.StartFailed)
    return type(exc).__name__ in ("TesseractNotFoundError", "PDFInfoNotInstalledError",
                                  "StartFailed")


def describe(exc: BaseException, path: Path | None = None) -> str:
    """A one-line text for a reason: the exception's type and its message (the document's
    spool path shown as its name), no traceback."""
    if isinstance(exc, subprocess.CalledProcessError):
        stderr = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) \
            else str(exc.stderr or "")
        message = f"{exc.cmd[0] if exc.cmd else 'tool'} failed: {stderr.strip() or exc.returncode}"
    else:
        message = str(exc) or "(no message)"
    text = f"{type(exc).__name__}: {message}"
    if path is not None:
        text = text.replace(str(path), path.name)
    return " ".join(text.split())[:300]


def document_error(exc: Exception, kind: str | None, path: Path) -> Exception:
    """What to raise for `exc` from reading a whole document: `exc` itself when the machine is
    at fault (transient), else a PermanentError saying the document is damaged."""
    if is_transient(exc):
        return exc
    what = {"pdf": "PDF", "tiff": "TIFF"}.get(kind or "", "document")
    return PermanentError(f"{what} is damaged: {describe(exc, path)}")
