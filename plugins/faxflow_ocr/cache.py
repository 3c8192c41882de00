"""Text already read, by document sha256: a re-delivered fax is not OCR'd twice.

SQLite, one short-lived connection per call, so any thread may use it; WAL lets readers and
a writer overlap and `timeout` waits out a concurrent write.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

from faxflow.types import PageText

SCHEMA = "CREATE TABLE IF NOT EXISTS pages (key TEXT PRIMARY KEY, pages TEXT, created REAL)"


class TextCache:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "ocr-cache.sqlite"
        self._ready = False
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        with self._lock:  # created with the first fax, not when the config is loaded
            if not self._ready:
                self.folder.mkdir(parents=True, exist_ok=True)
                with closing(sqlite3.connect(self.path, timeout=30)) as db, db:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute(SCHEMA)
                self._ready = True
        return sqlite3.connect(self.path, timeout=30)

    def get(self, key: str) -> list[PageText] | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT pages FROM pages WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return [PageText(**page) for page in json.loads(row[0])]

    def put(self, key: str, pages: list[PageText]) -> None:
        data = json.dumps([{"number": p.number, "text": p.text, "confidence": p.confidence,
                            "error": p.error, "document": p.document} for p in pages])
        with closing(self._connect()) as db, db:  # db: commit
            db.execute("INSERT OR REPLACE INTO pages VALUES (?, ?, ?)", (key, data, time.time()))

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
        shutil.copyfile(source, partial)
        partial.replace(target)  # atomic: a reader never sees half a file
