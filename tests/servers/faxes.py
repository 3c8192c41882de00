"""Build a Fax with real files on disk for destination tests."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pluggy

import faxflow.config
import faxflow.hookspecs
from faxflow.app import App
from faxflow.types import Document, DocumentRef, Fax, Job, Number, PageText

# A tiny but valid one-page PDF: destinations treat documents as opaque bytes.
PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
       b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
       b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\n"
       b"trailer<</Root 1 0 R>>\n%%EOF\n")


def make_fax(folder: Path, fax_id: str = "fax-1", *, sender_fax_id: str | None = "ACME Ltd",
             content: bytes = PDF, searchable: bool = False, topic: str = "inbox") -> Fax:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(fax_id.encode()).hexdigest()[:12]}.pdf"
    path.write_bytes(content)
    ref = DocumentRef(url=f"https://example.invalid/{fax_id}.pdf", name=f"{fax_id}.pdf",
                      extension="pdf")
    doc = Document(ref=ref, path=path, size=len(content),
                   sha256=hashlib.sha256(content).hexdigest(), content_type="application/pdf")
    job = Job(id=fax_id, sender_isdn=Number("+49 89 1234567", "+49891234567"),
              sender_fax_id=sender_fax_id, receiver_isdn=Number("+49895550", "+49895550"),
              date_received=datetime(2026, 11, 27, 9, 30, tzinfo=UTC), fax_page_count=1)
    fax = Fax(job=job, topic=topic, documents=[doc],
              pages=[PageText(number=1, text="INVOICE 4711\nTotal 12.50 EUR")],
              labels={"invoice"}, fields={"invoice_number": "4711", "total": 12.5})
    if searchable:
        pdf = folder / f"{path.stem}.searchable.pdf"
        pdf.write_bytes(content + b"%searchable\n")
        fax.artifacts["searchable_pdf"] = pdf
    return fax


def make_app(plugins: dict[str, object], toml: str) -> App:
    """A plugin manager with just these plugins and a config from TOML text; fails on any
    problem in the plugins' own tables (the core's `[retarus]` is not needed here)."""
    pm = pluggy.PluginManager("faxflow")
    pm.add_hookspecs(faxflow.hookspecs)
    for name, module in plugins.items():
        pm.register(module, name=name)
    config, problems = faxflow.config.parse(toml)
    problems = [p for p in problems if p.path[:1] != ("retarus",)]
    app = App(pm=pm, config=config)
    assert app.load_destination_types() == []
    problems += app.check_config(config)
    assert [p for p in problems if not p.warning] == [], problems
    return app
