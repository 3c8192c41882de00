"""The spool: one folder per fax being processed, spool/<topic>/<id>/, removed after its
acknowledgement. A worker killed mid-fax cannot remove its folder, and the fax is finished by
another worker (or by itself after a restart, under another attempt): `clean_stale` removes
such leftovers at start-up and periodically.

Folder names are hashed (`safe_name`), so each folder carries a small `.fax.json` naming its
topic and fax id; the journal then says whether any worker still holds that fax.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from faxflow.paths import make_dirs, safe_name

if TYPE_CHECKING:
    from faxflow.journal import Journal

log = logging.getLogger("faxflow.spool")
MARKER = ".fax.json"
UNMARKED_GRACE = 3600.0  # a folder without a marker (being made, or from an old version)


def fax_dir(spool: Path, topic: str, fax_id: str) -> Path:
    return spool / safe_name(topic) / safe_name(fax_id)


def make_fax_dir(spool: Path, topic: str, fax_id: str, mode: int = 0o700,
                 file_mode: int = 0o600) -> Path:
    folder = make_dirs(fax_dir(spool, topic, fax_id), mode)
    marker = folder / MARKER
    if not marker.exists():  # it names the fax: as private as the documents beside it
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                     file_mode & 0o600)
        os.fchmod(fd, file_mode)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps({"topic": topic, "id": fax_id}))
    return folder


def clean_stale(spool: Path, journal: Journal, busy: Collection[Path],
                now: float | None = None) -> int:
    """Remove the folders of faxes nobody holds: not in `busy` (this process's faxes in
    flight) and not held by any worker in the journal. Returns how many were removed."""
    now = time.time() if now is None else now
    removed = 0
    for folder in sorted(p for p in spool.glob("*/*") if p.is_dir() and not p.is_symlink()):
        if folder in busy:
            continue
        try:
            owner = json.loads((folder / MARKER).read_text(encoding="utf-8"))
            topic, fax_id = str(owner["topic"]), str(owner["id"])
        except (OSError, ValueError, KeyError, TypeError):
            try:
                if now - folder.stat().st_mtime < UNMARKED_GRACE:
                    continue
            except OSError:
                continue
        else:
            if fax_dir(spool, topic, fax_id) != folder or journal.held(topic, fax_id):
                continue
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    # Topic folders stay, even empty: removing one could race a fax thread creating its own.
    if removed:
        log.info("removed %d stale spool folder(s) of faxes no worker holds", removed)
    return removed
