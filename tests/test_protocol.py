"""The core's per-fax protocol and its hooks, with small in-test plugins (no mocks needed:
the hooks are the seams)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from faxflow.errors import PermanentError
from faxflow.hookspecs import hookimpl
from faxflow.types import (
    Classification,
    DeliveryResult,
    DestinationType,
    Document,
    DocumentRef,
    Fax,
    Job,
    PageText,
    Route,
    Verdict,
    Vote,
)


def make_fax(tmp_path: Path, fax_id: str = "f1") -> Fax:
    path = tmp_path / f"{len(list(tmp_path.iterdir()))}.pdf"
    path.write_bytes(b"%PDF-1.4 test")
    ref = DocumentRef(url="http://x/files/1.pdf", name="1.pdf", extension="pdf")
    return Fax(job=Job(id=fax_id, documents=(ref,)), topic="t",
               documents=[Document(ref, path, 13, "0" * 64, "application/pdf")])


class Pipeline:
    """A configurable plugin touching every stage; records what the core asked of it."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.deliver_result: DeliveryResult | None = DeliveryResult.delivered("ok")
        self.raise_in: str | None = None
        self.uncertain: list[bool] = []

    def _maybe_raise(self, stage: str) -> None:
        self.calls.append(stage)
        if self.raise_in == stage:
            raise RuntimeError(f"{stage} broke")
        if self.raise_in == f"{stage}!":
            raise PermanentError(f"{stage} can never work")

    @hookimpl
    def faxflow_destination_types(self) -> list[DestinationType]:
        return [DestinationType("box")]

    @hookimpl
    def faxflow_extract_text(self, fax: Fax, document: Document) -> list[PageText]:
        self._maybe_raise("extract_text")
        return [PageText(1, "Invoice INV-1"), PageText(2, "page two")]

    @hookimpl
    def faxflow_classify(self, fax: Fax) -> Classification:
        self._maybe_raise("classify")
        return Classification(frozenset({"invoice"}), {"invoice_number": "INV-1"})

    @hookimpl
    def faxflow_route(self, fax: Fax) -> list[Route]:
        self._maybe_raise("route")
        assert "invoice" in fax.labels  # classification ran before routing
        return [Route("r/0", "box", {"to": fax.fields["invoice_number"]}, "r"),
                Route("r/0", "box", {}, "dup")]

    @hookimpl
    def faxflow_deliver(self, fax: Fax, route: Route, uncertain: bool) -> DeliveryResult | None:
        if route.type != "box":
            return None
        self._maybe_raise("deliver")
        self.uncertain.append(uncertain)
        return self.deliver_result


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    @hookimpl
    def faxflow_fax_delivered(self, fax: Fax, route: Route, result: DeliveryResult) -> None:
        self.events.append(("delivered", route.key))

    @hookimpl
    def faxflow_fax_received(self, fax: Fax) -> None:
        raise RuntimeError("observers may fail without harm")


def test_full_pipeline_acks(faxflow_app_factory: Any, tmp_path: Path) -> None:
    plugin, recorder = Pipeline(), Recorder()
    app = faxflow_app_factory(plugins={"p": plugin, "rec": recorder})
    fax = make_fax(tmp_path)
    decision = app.process_fax(fax)
    assert decision.verdict is Verdict.ACK, decision
    assert [p.text for p in fax.pages] == ["Invoice INV-1", "page two"]
    assert fax.pages[0].document == "1.pdf"
    assert fax.fields == {"invoice_number": "INV-1"}
    assert [r.rule for r in fax.routes] == ["r"]  # the duplicate key was dropped
    assert fax.routes[0].options == {"to": "INV-1"}
    assert recorder.events == [("delivered", "r/0")]
    app.notify("faxflow_fax_received", fax=fax, app=app)  # raises inside: logged, not fatal


@pytest.mark.parametrize(("stage", "verdict", "later_stages_run"), [
    ("extract_text", Verdict.NOT_YET, False),
    ("extract_text!", Verdict.QUARANTINE, False),
    ("classify", Verdict.NOT_YET, False),
    ("route", Verdict.NOT_YET, False),
    ("route!", Verdict.QUARANTINE, False),
    ("deliver", Verdict.NOT_YET, True),
    ("deliver!", Verdict.QUARANTINE, True),
])
def test_a_failing_stage_becomes_data_and_a_vote(faxflow_app_factory: Any, tmp_path: Path,
                                                 stage: str, verdict: Verdict,
                                                 later_stages_run: bool) -> None:
    plugin = Pipeline()
    plugin.raise_in = stage
    app = faxflow_app_factory(plugins={"p": plugin})
    fax = make_fax(tmp_path)
    decision = app.process_fax(fax)
    assert decision.verdict is verdict
    assert fax.problems and fax.problems[0].stage.startswith(stage.rstrip("!"))
    assert any(stage.rstrip("!") in reason for reason in decision.reasons)
    assert ("deliver" in plugin.calls) is later_stages_run or stage.startswith("deliver")


def test_transient_and_permanent_delivery_results(faxflow_app_factory: Any,
                                                  tmp_path: Path) -> None:
    plugin = Pipeline()
    app = faxflow_app_factory(plugins={"p": plugin})
    plugin.deliver_result = DeliveryResult.transient("smtp 421")
    decision = app.process_fax(make_fax(tmp_path))
    assert decision.verdict is Verdict.NOT_YET
    assert decision.reasons == ("core: route r/0: smtp 421",)
    plugin.deliver_result = DeliveryResult.permanent("550 no such user")
    assert app.process_fax(make_fax(tmp_path, "f2")).verdict is Verdict.QUARANTINE


def test_no_route_and_unknown_destination_quarantine(faxflow_app_factory: Any,
                                                     tmp_path: Path) -> None:
    class NoRoute:
        @hookimpl
        def faxflow_route(self) -> list[Route]:
            return []

    app = faxflow_app_factory(plugins={"n": NoRoute()})
    decision = app.process_fax(make_fax(tmp_path))
    assert decision.verdict is Verdict.QUARANTINE
    assert "no route" in decision.reasons[0]

    class Nowhere:
        @hookimpl
        def faxflow_route(self) -> list[Route]:
            return [Route("x/0", "carrier-pigeon")]

    app = faxflow_app_factory(plugins={"n": Nowhere()})
    decision = app.process_fax(make_fax(tmp_path, "f2"))
    assert decision.verdict is Verdict.QUARANTINE
    assert "no plugin delivers destination type 'carrier-pigeon'" in decision.reasons[0]


def test_journal_skips_delivered_routes_and_flags_uncertain_ones(faxflow_app_factory: Any,
                                                                 tmp_path: Path) -> None:
    plugin = Pipeline()
    app = faxflow_app_factory(plugins={"p": plugin})
    app.journal.claim("t", "f1", "w", 60)
    app.journal.route_started("t", "f1", "r/0")  # a crash right after this line
    app.process_fax(make_fax(tmp_path))
    assert plugin.uncertain == [True]
    app.process_fax(make_fax(tmp_path))  # delivered now: never called again
    assert plugin.uncertain == [True]


def test_any_plugin_vote_can_hold_or_quarantine(faxflow_app_factory: Any,
                                                tmp_path: Path) -> None:
    class Voter:
        verdict: Vote | None = None

        @hookimpl
        def faxflow_ack_vote(self, fax: Fax) -> Vote | None:
            return self.verdict

    class Broken:
        @hookimpl
        def faxflow_ack_vote(self) -> Vote:
            raise RuntimeError("bug in a voter")

    voter = Voter()
    app = faxflow_app_factory(plugins={"p": Pipeline(), "voter": voter})
    assert app.process_fax(make_fax(tmp_path)).verdict is Verdict.ACK
    voter.verdict = Vote.quarantine("virus found")
    decision = app.process_fax(make_fax(tmp_path, "f2"))
    assert decision.reasons == ("voter: virus found",)
    app = faxflow_app_factory(plugins={"p": Pipeline(), "broken": Broken()})
    decision = app.process_fax(make_fax(tmp_path, "f3"))
    assert decision.verdict is Verdict.NOT_YET
    assert "bug in a voter" in decision.reasons[0]


def test_process_fax_can_be_wrapped_or_replaced(faxflow_app_factory: Any,
                                                tmp_path: Path) -> None:
    seen: list[str] = []

    class Timer:
        @hookimpl(wrapper=True)
        def faxflow_process_fax(self, fax: Fax) -> Any:
            seen.append(f"before {fax.id}")
            decision = yield
            seen.append(f"after {decision.verdict}")
            return decision

    app = faxflow_app_factory(plugins={"p": Pipeline(), "timer": Timer()})
    app.process_fax(make_fax(tmp_path))
    assert seen == ["before f1", "after ack"]

    class Replace:
        @hookimpl
        def faxflow_process_fax(self, fax: Fax) -> Any:
            from faxflow.types import Decision
            return Decision(Verdict.QUARANTINE, ("replaced",), {})

    app = faxflow_app_factory(plugins={"p": Pipeline(), "replace": Replace()})
    assert app.process_fax(make_fax(tmp_path, "f2")).reasons == ("replaced",)


def test_lifecycle_hooks(faxflow_app_factory: Any) -> None:
    calls: list[str] = []

    class Life:
        @hookimpl
        def faxflow_config_sections(self) -> list[str]:
            return ["extra"]

        @hookimpl
        def faxflow_check_config(self, config: Any) -> list[Any]:
            from faxflow.config import ConfigProblem
            value = config.plugin_options("life").get("level", 1)
            return [] if value < 10 else [ConfigProblem(("plugins", "life", "level"),
                                                         "must be below 10")]

        @hookimpl
        def faxflow_configure(self, config: Any) -> None:
            calls.append("configure")

        @hookimpl
        def faxflow_startup(self) -> None:
            calls.append("startup")

        @hookimpl
        def faxflow_shutdown(self) -> None:
            calls.append("shutdown")

    app = faxflow_app_factory(plugins={"life": Life()}, config="[extra]\nx = 1\n")
    app.startup()
    app.shutdown()
    assert calls == ["configure", "startup", "shutdown"]
    from faxflow.errors import ConfigError
    with pytest.raises(ConfigError, match=r"plugins.life.level: must be below 10"):
        faxflow_app_factory(plugins={"life": Life()}, config="[plugins.life]\nlevel = 12\n")


def test_duplicate_destination_type_is_an_error(faxflow_app_factory: Any) -> None:
    from faxflow.errors import ConfigError
    with pytest.raises(ConfigError, match="destination type 'box' declared twice"):
        faxflow_app_factory(plugins={"a": Pipeline(), "b": Pipeline()})


def test_a_worker_that_lost_its_hold_does_not_deliver(faxflow_app_factory: Any,
                                                      tmp_path: Path) -> None:
    plugin = Pipeline()
    app = faxflow_app_factory(plugins={"p": plugin})
    app.journal.claim("t", "f1", "other-worker", 60)  # taken over after our hold ran out
    fax = make_fax(tmp_path)
    fax.scratch["owner"] = "this-worker"
    decision = app.process_fax(fax)
    assert decision.verdict is Verdict.NOT_YET
    assert "no longer holds the fax" in decision.reasons[0]
    assert plugin.uncertain == []  # faxflow_deliver was never called


# --- what text extraction reports: documents named, unreadable pages, pages read ------------


class Extractor:
    """Text per document name: a list of PageText, or an exception to raise."""

    def __init__(self, by_name: dict[str, Any]) -> None:
        self.by_name = by_name

    @hookimpl
    def faxflow_extract_text(self, document: Document) -> list[PageText]:
        answer = self.by_name[document.ref.name]
        if isinstance(answer, BaseException):
            raise answer
        return [PageText(p.number, p.text, error=p.error, skipped=p.skipped) for p in answer]


def fax_of(tmp_path: Path, *names: str) -> Fax:
    refs, documents = [], []
    for name in names:
        path = tmp_path / name
        path.write_bytes(b"%PDF-1.4 test")
        ref = DocumentRef(url=f"http://x/files/{name}", name=name, extension="pdf")
        refs.append(ref)
        documents.append(Document(ref, path, 13, "0" * 64, "application/pdf"))
    return Fax(job=Job(id="f1", documents=tuple(refs)), topic="t", documents=documents)


def test_an_extractor_s_error_names_the_document(faxflow_app_factory: Any,
                                                 tmp_path: Path) -> None:
    """Any extractor (here a third-party one) says only what is wrong; the core says which
    of several documents it is, for permanent and transient failures alike."""
    from faxflow import protocol

    good = [PageText(1, "fine")]
    app = faxflow_app_factory(plugins={"x": Extractor({
        "a.pdf": good, "29.pdf": PermanentError("PDF is damaged: no trailer"),
        "c.pdf": OSError(28, "No space left on device")})})
    fax = fax_of(tmp_path, "a.pdf", "29.pdf", "c.pdf")
    protocol.extract_text(fax, app)
    assert [(p.message, p.transient) for p in fax.problems] == [
        ("document 2 of 3 (29.pdf): PDF is damaged: no trailer", False),
        ("document 3 of 3 (c.pdf): OSError: [Errno 28] No space left on device", True)]


def test_unreadable_pages_quarantine_naming_document_and_pages(faxflow_app_factory: Any,
                                                              tmp_path: Path) -> None:
    """A page that failed is not a blank page: routing on the other pages' text could send
    the fax to the wrong place."""
    pages = [PageText(1, "Invoice"), PageText(2, "", error="OCR timed out: 60 s"),
             PageText(3, "", error="OCR timed out: 60 s"), PageText(4, "more"),
             PageText(5, "", error="page is too large: 40000 x 40000 pixels")]
    plugin = Pipeline()
    app = faxflow_app_factory(plugins={"p": plugin, "x": Extractor({"1.pdf": pages})})
    decision = app.process_fax(make_fax(tmp_path))
    assert decision.verdict is Verdict.QUARANTINE
    assert decision.reasons == (
        "core: extract_text: document 1 of 1 (1.pdf): 3 of 5 pages unreadable: "
        "pages 2-3: OCR timed out: 60 s; page 5: page is too large: 40000 x 40000 pixels",)
    assert "deliver" not in plugin.calls


def test_unreadable_pages_label_sends_the_fax_on_for_people(faxflow_app_factory: Any,
                                                            tmp_path: Path) -> None:
    pages = [PageText(1, "Invoice"), PageText(2, "", error="OCR timed out: 60 s")]

    class Review:
        @hookimpl
        def faxflow_route(self, fax: Fax) -> list[Route]:
            return [Route("review/0", "box", {}, "review")] \
                if "unreadable-pages" in fax.labels else []

    plugin = Pipeline()
    app = faxflow_app_factory(plugins={"p": plugin, "x": Extractor({"1.pdf": pages}),
                                       "review": Review()},
                              config='[worker]\nunreadable_pages = "label"\n')
    fax = make_fax(tmp_path)
    decision = app.process_fax(fax)
    assert decision.verdict is Verdict.ACK
    assert "unreadable-pages" in fax.labels
    assert sorted(r.key for r in fax.routes) == ["r/0", "review/0"]


def test_pages_not_read_on_purpose_are_no_problem_and_are_logged(
        faxflow_app_factory: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from faxflow import protocol

    pages = [PageText(1, "Invoice"), PageText(2, "", skipped=True), PageText(3, "", skipped=True)]
    app = faxflow_app_factory(plugins={"x": Extractor({"1.pdf": pages})})
    fax = make_fax(tmp_path)
    with caplog.at_level("INFO", logger="faxflow.protocol"):
        protocol.extract_text(fax, app)
    assert fax.problems == []
    assert (fax.pages_read, fax.pages_total) == (1, 3)
    assert "fax f1 topic t: read 1 of 3 pages (2 not read on purpose)" in caplog.messages
