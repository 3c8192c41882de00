"""Split faxes (faxflow.parts) and the drop_cover route option (faxflow.cover), with a real
journal: each part is routed and delivered on its own, a part that fails for good is
quarantined alone, a part that says not-yet brings the fax back without the delivered parts
being delivered again, and the part documents are the same bytes on every attempt."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pikepdf
import pytest

from faxflow import cover, subset
from faxflow.app import App
from faxflow.hookspecs import hookimpl
from faxflow.types import (
    Barcode,
    DeliveryResult,
    DestinationType,
    Document,
    Fax,
    PageText,
    Part,
    Route,
    Verdict,
)

SEPARATORS = '[plugins.barcodes]\nseparators = ["FAXFLOW-SPLIT"]\n'


class Fake:
    """Reads sample faxes from their ground truth (a sheet's text says what its code is),
    routes a part by its first page's code and delivers to a sink that can refuse."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, int, str]] = []  # fax id, pages, route key
        self.refuse: set[str] = set()  # part ids refused for good
        self.later: set[str] = set()  # part ids refused once, for now

    @hookimpl
    def faxflow_extract_text(self, fax: Fax, document: Document) -> list[PageText]:
        out = []
        for n, text in enumerate(fax.scratch["ground_truth"], 1):
            codes = [line for line in text.splitlines() if line.startswith(("PAT-", "FAXF"))]
            out.append(PageText(n, text, barcodes=tuple(Barcode(c, "qr", n) for c in codes)))
        return out

    @hookimpl
    def faxflow_destination_types(self) -> list[DestinationType]:
        return [DestinationType("sink")]

    @hookimpl
    def faxflow_route(self, fax: Fax) -> list[Route]:
        codes = [b.value for b in fax.pages[0].barcodes]
        return [Route("sink/0", "sink", {"code": codes[0] if codes else "none"}, "sink")]

    @hookimpl
    def faxflow_deliver(self, fax: Fax, route: Route) -> DeliveryResult | None:
        if route.type != "sink":
            return None
        if fax.id in self.refuse:
            return DeliveryResult.permanent("the sink refuses this part")
        if fax.id in self.later:
            self.later.discard(fax.id)
            return DeliveryResult.transient("the sink is busy")
        with pikepdf.open(fax.documents[0].path) as pdf:
            self.delivered.append((fax.id, len(pdf.pages), str(route.options["code"])))
        return DeliveryResult.delivered("in the sink", fax.id)


class Splitter:
    """A split hook of the test suite's own: cuts where it is told to, right or wrong."""

    def __init__(self, parts: list[Part] | object) -> None:
        self.parts = parts

    @hookimpl(tryfirst=True)
    def faxflow_split(self, fax: Fax) -> object:
        return self.parts


PAGES = ["PAT-1\nReferral", "Letter one", "FAXFLOW-SPLIT", "PAT-2\nSecond", "Page two",
         "FAXFLOW-SPLIT", "Third"]


@pytest.fixture
def batch(sample_fax: Callable[..., Fax]) -> Callable[[], Fax]:
    """A 7-page fax: parts (1, 2), (4, 5), (7); pages 3 and 6 are separator sheets."""
    def make() -> Fax:
        fax = sample_fax(kind="letter", fax_id="F1", text=[t.replace("\n", " ") for t in PAGES])
        fax.scratch["ground_truth"] = PAGES
        return fax
    return make


def app_with(factory: Callable[..., App], fake: Fake, *extra: object) -> App:
    plugins: dict[str, object] = {"fake": fake}
    plugins |= {f"splitter{i}": p for i, p in enumerate(extra)}
    return factory(plugins=plugins, load=["barcodes"], config=SEPARATORS)


def test_each_part_is_routed_and_delivered_on_its_own(
        faxflow_app_factory: Callable[..., App], batch: Callable[[], Fax]) -> None:
    fake = Fake()
    app = app_with(faxflow_app_factory, fake)
    decision = app.process_fax(batch())
    assert decision.verdict is Verdict.ACK, decision
    assert fake.delivered == [("F1#1", 2, "PAT-1"), ("F1#2", 2, "PAT-2"), ("F1#3", 1, "none")]
    assert app.journal is not None
    records = app.journal.routes("abc123", "F1")
    assert {k: (r.state, r.reference) for k, r in records.items()} == {
        f"part:{n}": ("delivered", f"F1#{n}") for n in (1, 2, 3)}
    assert app.journal.routes("abc123", "F1#2")["sink/0"].state == "delivered"
    store = app.journal.records  # the history: a record per part, naming its fax
    ident = store.fax_id("abc123", "F1#2")
    assert ident is not None
    detail = store.fax(ident)
    assert detail is not None and detail.row.status == "delivered"
    assert ("received", "part 2 of 3 of fax F1: pages 4-5") in [
        (e.name, e.detail) for e in detail.events]
    parent = store.fax(store.fax_id("abc123", "F1") or 0)
    assert parent is not None and any(
        e.detail == "split into 3 parts: #1 pages 1-2, #2 pages 4-5, #3 pages 7"
        for e in parent.events)


def test_a_part_that_fails_for_good_is_quarantined_alone(
        faxflow_app_factory: Callable[..., App], batch: Callable[[], Fax]) -> None:
    fake = Fake()
    fake.refuse = {"F1#2"}
    app = app_with(faxflow_app_factory, fake)
    decision = app.process_fax(batch())
    assert decision.verdict is Verdict.ACK  # every part is delivered or quarantined
    assert [d[0] for d in fake.delivered] == ["F1#1", "F1#3"]
    assert app.journal is not None
    store = app.journal.records
    ((_, item),) = store.quarantine_list()[0]
    assert (item.fax_id, item.state) == ("F1#2", "open")
    assert "the sink refuses this part" in "; ".join(item.reasons)
    (doc, data), = store.quarantine_documents(item.id)
    assert doc.name == "part-2.pdf" and data.startswith(b"%PDF")
    part = app.journal.routes("abc123", "F1")["part:2"]
    assert part.state == "delivered" and part.detail.startswith("quarantined: ")


def test_a_part_not_yet_delivered_brings_the_fax_back_without_redelivering_the_others(
        faxflow_app_factory: Callable[..., App], batch: Callable[[], Fax]) -> None:
    fake = Fake()
    fake.later = {"F1#2"}
    app = app_with(faxflow_app_factory, fake)
    first = app.process_fax(batch())
    assert first.verdict is Verdict.NOT_YET
    assert first.reasons == ("part 2: core: route sink/0: the sink is busy",)
    second = batch()
    second.attempt = 2
    assert app.process_fax(second).verdict is Verdict.ACK
    assert [d[0] for d in fake.delivered] == ["F1#1", "F1#3", "F1#2"]  # each once


@pytest.mark.parametrize("answer", [[Part((1, 2)), Part((2, 3))], [Part((9,))], [], "x"])
def test_a_wrong_split_quarantines_the_fax_whole(
        faxflow_app_factory: Callable[..., App], batch: Callable[[], Fax],
        answer: object) -> None:
    fake = Fake()
    decision = app_with(faxflow_app_factory, fake, Splitter(answer)).process_fax(batch())
    assert decision.verdict is Verdict.QUARANTINE and "split: " in decision.reasons[0]
    assert fake.delivered == []


def test_part_documents_are_the_same_bytes_on_every_attempt(
        tmp_path: Path, sample_fax: Callable[..., Fax]) -> None:
    for fmt in ("pdf", "tiff"):
        source = sample_fax(kind="letter", text=["a", "b", "c"], fmt=fmt).documents[0].path
        made = [subset.write_pages([(source, 3), (source, 1)], tmp_path / f"{fmt}-{i}.pdf")
                for i in range(2)]
        assert made[0].sha256 == made[1].sha256 == hashlib.sha256(
            made[0].path.read_bytes()).hexdigest()
        with pikepdf.open(made[0].path) as pdf:
            assert len(pdf.pages) == 2


def test_drop_cover_leaves_out_a_first_page_that_carried_a_barcode(
        sample_fax: Callable[..., Fax]) -> None:
    fax = sample_fax(kind="letter", text=["cover", "body", "more"])
    fax.pages = [PageText(1, "cover", barcodes=(Barcode("PAT-1", "qr", 1),)),
                 PageText(2, "body"), PageText(3, "more")]
    for page in fax.pages:
        page.document = fax.documents[0].ref.name
    route = Route("r/0", "folder", {"drop_cover": True, "path": "x"})
    sent, options = cover.view(fax, route)
    assert options == {"path": "x"}
    with pikepdf.open(sent.documents[0].path) as pdf:
        assert len(pdf.pages) == 2
    assert [p.text for p in sent.pages] == ["body", "more"] and fax.pages[0].text == "cover"
    again, _ = cover.view(fax, route)
    assert again.documents[0].sha256 == sent.documents[0].sha256
    fax.pages[0].barcodes = ()  # no code on the first page: no cover sheet, nothing dropped
    assert cover.view(fax, route)[0] is fax
    assert cover.view(fax, Route("r/0", "folder", {"path": "x"}))[0] is fax


def test_explain_routes_each_part_of_a_split_fax(
        faxflow_app_factory: Callable[..., App], batch: Callable[[], Fax],
        tmp_path: Path) -> None:
    from faxflow_rules import explain

    fake = Fake()
    config = SEPARATORS + f'''
[plugins.folder]
base = "{tmp_path}"
[plugins.rules.default]
[[plugins.rules.default.route]]
type = "folder"
path = "review"
[[rule]]
name = "patients"
when.barcode = {{ regex = '^PAT-(?P<patient_id>\\d+)$' }}
[[rule.route]]
type = "folder"
path = "patients/{{{{ fields.patient_id }}}}"
'''
    app = faxflow_app_factory(plugins={"fake": fake}, load=["barcodes", "rules", "folder"],
                              config=config)
    data = explain.run(app, batch())
    routes = [[r["options"]["path"] for r in p["routes"] if r["type"] == "folder"]
              for p in data["parts"]]
    assert routes == [["patients/1"], ["patients/2"], ["review"]]
    assert [p["id"] for p in data["parts"]] == ["F1#1", "F1#2", "F1#3"]
    text = explain.format_text(data)
    assert "Split into 3 parts" in text and "  part 2 (F1#2): pages 4-5" in text
    assert "=== Part 3 of 3 (F1#3, pages 7 of the fax) ===" in text
    assert fake.delivered == [] and not list(tmp_path.rglob("part-*.pdf"))  # nothing made


def test_drop_cover_must_be_true_or_false_for_every_destination(
        faxflow_app_factory: Callable[..., App], tmp_path: Path) -> None:
    from faxflow.errors import ConfigError

    config = f'''
[plugins.folder]
base = "{tmp_path}"
[plugins.rules.default]
[[plugins.rules.default.route]]
type = "folder"
drop_cover = "yes"
'''
    with pytest.raises(ConfigError, match=r"route\.0\.drop_cover: must be true or false$"):
        faxflow_app_factory(load=["rules", "folder"], config=config)
    faxflow_app_factory(load=["rules", "folder"], config=config.replace('"yes"', "true"))
