"""Keeping a fax that cannot be processed: in the journal's database (the quarantine all
replicas share, where operators resolve it) and, unless turned off, exported to a folder
(documents, metadata, text and the reason)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faxflow.paths import make_dirs, safe_extension, safe_name
from faxflow.types import Decision, Fax

if TYPE_CHECKING:
    from faxflow.journal import Journal

log = logging.getLogger("faxflow.quarantine")


def fax_metadata(fax: Fax) -> dict[str, Any]:
    return {
        "id": fax.id,
        "topic": fax.topic,
        "attempt": fax.attempt,
        "job": fax.job.raw,
        "labels": sorted(fax.labels),
        "fields": {k: str(v) for k, v in fax.fields.items()},
        "routes": [{"key": r.key, "type": r.type, "rule": r.rule} for r in fax.routes],
        "results": {k: {"outcome": r.outcome.value, "detail": r.detail,
                        "reference": r.reference} for k, r in fax.results.items()},
        "problems": [asdict(p) for p in fax.problems],
        # Counts as in the delivered metadata (pages read, in the documents, the sender's
        # claim); "pages" here is the list of pages.
        "pages_read": fax.pages_read,
        "pages_total": fax.pages_total,
        "pages_reported": fax.job.fax_page_count,
        "pages": [{"document": p.document, "number": p.number, "confidence": p.confidence,
                   "error": p.error, "skipped": p.skipped} for p in fax.pages],
    }


def write_quarantine(base: Path, fax: Fax, decision: Decision, file_mode: int = 0o600,
                     dir_mode: int = 0o700, delivered: Sequence[str] = ()) -> Path:
    """Write the fax under base/<topic>/<id>/ atomically (a temp folder renamed into place),
    folders with `dir_mode` and files with `file_mode` (owner-only by default). `delivered`
    names the routes that were delivered before the fax was quarantined (they stay so).

    Idempotent: a fax quarantined again (after a crash before its ack) replaces its folder.
    """
    target = base / safe_name(fax.topic) / safe_name(fax.id)
    make_dirs(target.parent, dir_mode)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        for i, doc in enumerate(fax.documents, start=1):
            if doc.path.exists():
                name = f"document-{i}.{safe_extension(doc.ref.extension)}"
                shutil.copyfile(doc.path, tmp / name)
        meta = fax_metadata(fax)
        meta["quarantined_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        meta["reasons"] = list(decision.reasons)
        meta["delivered_routes"] = list(delivered)
        meta["votes"] = votes(decision)
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False,
                                                      default=str), encoding="utf-8")
        lines = list(decision.reasons)
        if delivered:
            lines.append(f"Already delivered before the quarantine: {', '.join(delivered)}")
        (tmp / "reason.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (tmp / "text.txt").write_text(fax.text, encoding="utf-8")
        for f in tmp.iterdir():
            os.chmod(f, file_mode)
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, dir_mode)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def keep(journal: Journal, fax: Fax, decision: Decision, worker: str,
         export: Path | None, file_mode: int = 0o600, dir_mode: int = 0o700) -> Path | None:
    """Quarantine `fax`: into the database (raises if that fails: then it must not be
    acknowledged), then into the export folder if one is configured (a failure there is
    logged, the database holds the fax). Returns the export folder, if written."""
    # Also the routes of earlier attempts (before a crash or a not-yet): the record must say
    # where the fax already went.
    delivered = sorted(k for k, r in journal.routes(fax.topic, fax.id).items()
                       if r.state == "delivered")
    meta = fax_metadata(fax)
    meta["votes"] = votes(decision)
    documents = [(doc.ref.name or f"document-{i}", safe_extension(doc.ref.extension),
                  doc.path.read_bytes()) for i, doc in enumerate(fax.documents, start=1)
                 if doc.path.exists()]
    fax.scratch["quarantine_id"] = journal.records.quarantine(
        fax.topic, fax.id, documents, decision.reasons, meta["votes"], meta, delivered,
        fax.text, worker)
    if export is None:
        return None
    try:
        return write_quarantine(export, fax, decision, file_mode, dir_mode, delivered)
    except OSError as exc:
        log.error("fax %s: exporting the quarantine to %s failed (%s); the journal's "
                  "quarantine holds it", fax.id, export, exc)
        return None


def votes(decision: Decision) -> dict[str, Any]:
    return {n: (v.verdict.value, v.reason) if v else None for n, v in decision.votes.items()}
