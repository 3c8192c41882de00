"""How many pages a fax has, in every output: the pages actually read, the pages in the
documents, and the count the sender's machine claimed (which may be anything: -3, null, 1
for a 3-page fax), each under its own name; never one passed off as another."""

from __future__ import annotations

import json
from pathlib import Path

import faxflow_folder
import faxflow_ocr
import faxflow_rules
import pluggy
import pytest
from faxflow_rules import ruleset
from test_ocr import pdf_pages
from test_rules_support import make_app as rules_app
from test_rules_support import make_fax as rules_fax

import faxflow.config
import faxflow.hookspecs
from faxflow import delivery, protocol
from faxflow.app import App
from faxflow.quarantine import write_quarantine
from faxflow.samples import make_fax as make_sample
from faxflow.types import (
    Decision,
    Document,
    DocumentRef,
    Fax,
    Job,
    PageText,
    Route,
    Verdict,
)


def fax_with(pages: list[PageText], claimed: int | None) -> Fax:
    return Fax(job=Job(id="f1", fax_page_count=claimed), topic="t", pages=pages)


PAGES = [PageText(1, "Invoice", document="a.pdf"),
         PageText(2, "", error="OCR timed out: 60 s", document="a.pdf"),
         PageText(3, "", skipped=True, document="a.pdf")]


def test_metadata_counts_pages_read_not_the_sender_s_claim() -> None:
    meta = delivery.metadata(fax_with(PAGES, claimed=-3))
    assert (meta["pages"], meta["pages_total"], meta["pages_reported"]) == (1, 3, -3)
    assert meta["page_errors"] == [{"document": "a.pdf", "page": 2,
                                    "error": "OCR timed out: 60 s"}]
    unknown = delivery.metadata(fax_with([], claimed=3))  # no text extraction at all
    assert (unknown["pages"], unknown["pages_total"], unknown["pages_reported"]) == (None,
                                                                                     None, 3)


def test_summary_says_how_many_pages_were_read() -> None:
    assert "Pages: read 1 of 3; unreadable: a.pdf page 2" in \
        delivery.summary(fax_with(PAGES, claimed=1)).splitlines()
    assert "Pages: 1" in delivery.summary(fax_with(PAGES[:1], claimed=7)).splitlines()
    assert "Pages: 3 (as the sender reported)" in \
        delivery.summary(fax_with([], claimed=3)).splitlines()


def test_quarantine_metadata_counts_pages_too(tmp_path: Path) -> None:
    fax = fax_with(PAGES, claimed=None)
    where = write_quarantine(tmp_path, fax, Decision(Verdict.QUARANTINE, ("why",), {}))
    meta = json.loads((where / "metadata.json").read_text())
    assert (meta["pages_read"], meta["pages_total"], meta["pages_reported"]) == (1, 3, None)
    assert [(p["number"], p["skipped"]) for p in meta["pages"]] == [
        (1, False), (2, False), (3, True)]


@pytest.mark.parametrize(("claimed", "expected"), [(None, 3), (1, 3), (-3, 3), (99, 3)])
def test_rules_page_count_and_pages_are_the_real_count(claimed: int | None,
                                                       expected: int) -> None:
    app = rules_app("""
[[rule]]
name = "three"
when.page_count = 3
[[rule.route]]
type = "folder"
path = "{{ pages }}-pages"
""")
    fax = rules_fax("one", "two", "three", page_count=claimed)
    evaluation = ruleset.evaluate(faxflow_rules.current(app), fax)
    assert evaluation.results[0].matched
    assert evaluation.variables["pages"] == expected


def test_rules_fall_back_to_the_sender_s_count_when_no_text_was_extracted() -> None:
    app = rules_app("")
    fax = rules_fax(page_count=4)
    assert ruleset.evaluate(faxflow_rules.current(app), fax).variables["pages"] == 4


def test_a_fax_over_max_pages_delivered_says_read_1_of_3_everywhere(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """too_many_pages = "deliver", through the real OCR and the real folder plugin: the
    sidecar, the summary and the log line say 1 of 3; the searchable PDF has 3 pages."""
    sample = make_sample(kind="order", pages=3, resolution="standard", fmt="pdf", seed=5)
    pm = pluggy.PluginManager("faxflow")
    pm.add_hookspecs(faxflow.hookspecs)
    pm.register(faxflow_ocr, name="ocr")
    text = (f'[worker]\nspool_dir = "{tmp_path / "spool"}"\n[plugins.ocr]\nmax_pages = 1\n'
            'too_many_pages = "deliver"\nsearchable_pdf = true\n')
    config, problems = faxflow.config.parse(text, path=tmp_path / "faxflow.toml")
    assert problems == []
    app = App(pm=pm, config=config)
    app.configure(config)
    spool = tmp_path / "spool"
    spool.mkdir()
    path = spool / "29.pdf"
    path.write_bytes(sample.content)
    ref = DocumentRef("https://example.invalid/29.pdf", "29.pdf", "pdf")
    fax = Fax(job=Job(id="f1", fax_page_count=1, documents=(ref,)), topic="t",
              documents=[Document(ref, path, len(sample.content), "", None)])
    try:
        with caplog.at_level("INFO", logger="faxflow.protocol"):
            protocol.extract_text(fax, app)
    finally:
        app.shutdown()
    assert fax.problems == []
    assert "fax f1 topic t: read 1 of 3 pages (2 not read on purpose)" in caplog.messages
    assert "Pages: read 1 of 3" in delivery.summary(fax).splitlines()
    out = tmp_path / "out"
    out.mkdir()
    route = Route("default/0", "folder", {"name": "f1", "content": "both"}, "default")
    result = faxflow_folder.deliver(fax, route, {"default": out})
    assert result.outcome.value == "delivered", result
    sidecar = json.loads((out / "f1.json").read_text())
    assert (sidecar["pages"], sidecar["pages_total"], sidecar["pages_reported"]) == (1, 3, 1)
    assert sorted(sidecar["files"]) == ["f1.pdf", "f1.searchable.pdf"]
    assert (out / "f1.pdf").read_bytes() == sample.content  # the original, complete
    assert pdf_pages(out / "f1.searchable.pdf") == 3
