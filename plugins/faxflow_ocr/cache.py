"""Text already read, by document sha256: a re-delivered fax is not OCR'd twice.

SQLite, one short-lived connection per call, so any thread may use it; WAL lets readers and
a writer overlap and `timeout` waits out a concurrent write.

It holds the full text of every fax (and their searchable PDFs): personal data. The folder is
0700 and every file 0600 whatever the umask (SQLite gives its -wal and -shm files the mode of
the database file), and entries are pruned by age and by total size, at start-up and then at
most once an hour, when a text is added.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
from contextlib import closing
from dataclasses import asdict
from pathlib import Path

from faxflow.types import Barcode, PageText

log = logging.getLogger("faxflow.ocr")
SCHEMA = "CREATE TABLE IF NOT EXISTS pages (key TEXT PRIMARY KEY, pages TEXT, created REAL)"
PRUNE_EVERY = 3600.0  # seconds between prunings while texts are added
# A PDF without a row may belong to an entry being written right now: leave it this long.
ORPHAN_GRACE = 3600.0
OWN_PDF = re.compile(r"[0-9a-f]{32}\.pdf|[0-9a-f]{32}\.\d+\.part")  # pdf_path, put_pdf
OWN_FILE = re.compile(rf"ocr-cache\.sqlite(-wal|-shm|-journal)?|{OWN_PDF.pattern}")


class TextCache:
    def __init__(self, folder: Path, max_age_days: float = 7.0, max_mb: float = 512.0) -> None:
        self.folder = folder
        self.path = folder / "ocr-cache.sqlite"
        self.max_age = max_age_days * 86400
        self.max_bytes = int(max_mb * 1024 * 1024)
        self._ready = False
        self._lock = threading.Lock()
        self._pruned_at: float | None = None

    def _connect(self) -> sqlite3.Connection:
        with self._lock:  # created with the first fax, not when the config is loaded
            if not self._ready:
                self._prepare()
                self._ready = True
        return sqlite3.connect(self.path, timeout=30)

    def _prepare(self) -> None:
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.folder.mkdir(0o700)  # a umask only takes bits away: 0700 stays 0700
        except FileExistsError:
            if self.path.exists():  # ours, from an older version (0755 under umask 022)
                os.chmod(self.folder, 0o700)
        # The database file is made here, 0600, before SQLite opens it: SQLite creates its
        # -wal and -shm files with the database file's mode.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                         0o600))
        for entry in self._files():  # ours from before (0644 under umask 022)
            os.chmod(entry, 0o600)
        with closing(sqlite3.connect(self.path, timeout=30)) as db, db:
            if db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
                # Incremental: pruning can give the space back without rewriting the file.
                db.execute("PRAGMA auto_vacuum = INCREMENTAL")
                db.commit()
                db.execute("VACUUM")  # takes effect on an existing file only this way
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(SCHEMA)

    def get(self, key: str) -> list[PageText] | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT pages FROM pages WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return [PageText(**{**page, "barcodes": tuple(
            Barcode(**{**b, "box": tuple(b["box"])}) for b in page.get("barcodes", ()))})
            for page in json.loads(row[0])]

    def put(self, key: str, pages: list[PageText]) -> None:
        data = json.dumps([{"number": p.number, "text": p.text, "confidence": p.confidence,
                            "error": p.error, "document": p.document, "skipped": p.skipped,
                            "barcodes": [asdict(b) for b in p.barcodes]}
                           for p in pages])
        with closing(self._connect()) as db, db:  # db: commit
            db.execute("INSERT OR REPLACE INTO pages VALUES (?, ?, ?)", (key, data, time.time()))
        if self._pruned_at is None or time.monotonic() - self._pruned_at >= PRUNE_EVERY:
            self.prune()

    def pdf_path(self, key: str) -> Path:
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.pdf"

    def get_pdf(self, key: str, target: Path) -> bool:
        source = self.pdf_path(key)
        if not source.is_file():
            return False
        shutil.copyfile(source, target)
        return True

    def put_pdf(self, key: str, source: Path) -> None:
        target = self.pdf_path(key)
        partial = target.with_suffix(f".{threading.get_ident()}.part")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out)
        partial.replace(target)  # atomic: a reader never sees half a file

    def prune(self, now: float | None = None) -> int:
        """Drop entries older than max_age_days, then the oldest until the texts and PDFs
        together fit in max_mb; returns how many entries were dropped."""
        self._pruned_at = time.monotonic()
        now = time.time() if now is None else now
        with closing(self._connect()) as db:
            rows = db.execute("SELECT key, length(pages), created FROM pages "
                              "ORDER BY created DESC").fetchall()
            keep: set[str] = set()
            drop: list[str] = []
            size = 0
            for key, length, created in rows:
                size += (length or 0) + _size(self.pdf_path(key))
                if created < now - self.max_age or size > self.max_bytes:
                    drop.append(key)
                else:
                    keep.add(key)
            with db:
                db.executemany("DELETE FROM pages WHERE key = ?", [(k,) for k in drop])
            if drop:
                db.execute("PRAGMA incremental_vacuum")
        for key in drop:
            self.pdf_path(key).unlink(missing_ok=True)
        kept_pdfs = {self.pdf_path(k).name for k in keep}
        for leftover in self._files():
            if OWN_PDF.fullmatch(leftover.name) and leftover.name not in kept_pdfs \
                    and _age(leftover, now) > ORPHAN_GRACE:
                leftover.unlink(missing_ok=True)
        if drop:
            log.info("OCR cache: dropped %d entr%s (older than %g days or over %g MB)",
                     len(drop), "y" if len(drop) == 1 else "ies", self.max_age / 86400,
                     self.max_bytes / 1024 / 1024)
        return len(drop)


    def _files(self) -> list[Path]:
        """The cache's own files (never others that share a configured folder)."""
        return [p for p in self.folder.iterdir() if OWN_FILE.fullmatch(p.name)
                and p.is_file() and not p.is_symlink()]


def _size(path: Path) -> int:
    with contextlib.suppress(OSError):
        return path.stat().st_size
    return 0


def _age(path: Path, now: float) -> float:
    with contextlib.suppress(OSError):
        return now - path.stat().st_mtime
    return 0.0
