"""Writing a fax to the quarantine folder: documents, metadata, text and the reason."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from faxflow.paths import safe_extension, safe_name
from faxflow.types import Decision, Fax


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


def write_quarantine(base: Path, fax: Fax, decision: Decision) -> Path:
    """Write the fax under base/<topic>/<id>/ atomically (a temp folder renamed into place).

    Idempotent: a fax quarantined again (after a crash before its ack) replaces its folder.
    """
    target = base / safe_name(fax.topic) / safe_name(fax.id)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        for i, doc in enumerate(fax.documents, start=1):
            if doc.path.exists():
                name = f"document-{i}.{safe_extension(doc.ref.extension)}"
                shutil.copyfile(doc.path, tmp / name)
        meta = fax_metadata(fax)
        meta["quarantined_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        meta["reasons"] = list(decision.reasons)
        meta["votes"] = {n: (v.verdict.value, v.reason) if v else None
                         for n, v in decision.votes.items()}
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False,
                                                      default=str), encoding="utf-8")
        (tmp / "reason.txt").write_text("\n".join(decision.reasons) + "\n", encoding="utf-8")
        (tmp / "text.txt").write_text(fax.text, encoding="utf-8")
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
