"""The core's default per-fax protocol, itself a plugin (like pytest's runtestprotocol).

Stages run in order; a stage that raises becomes a `Problem` on the fax (data, not a crash)
and stops the stages after it: routing on half-read text would send a fax to the wrong place.
The core also votes, from those problems and from each route's delivery result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from faxflow import cover
from faxflow import parts as faxflow_parts
from faxflow.ack import decide
from faxflow.delivery import one_line
from faxflow.errors import PermanentError
from faxflow.hookspecs import hookimpl
from faxflow.types import (
    MAX_BARCODE_VALUE,
    Barcode,
    Decision,
    DeliveryResult,
    Document,
    Fax,
    Outcome,
    PageText,
    Part,
    Problem,
    Route,
    Verdict,
    Vote,
)

if TYPE_CHECKING:
    from faxflow.app import App

log = logging.getLogger("faxflow.protocol")
T = TypeVar("T")


def run_stage(fax: Fax, stage: str, call: Callable[[], T]) -> T | None:
    """Run one stage; turn its exception into a Problem on the fax (like pytest's CallInfo)."""
    try:
        return call()
    except PermanentError as exc:
        fax.problems.append(Problem(stage, None, str(exc), transient=False))
    except Exception as exc:
        log.warning("fax %s: stage %s failed: %r", fax.id, stage, exc, exc_info=True)
        fax.problems.append(Problem(stage, None, f"{type(exc).__name__}: {exc}"))
    return None


def document_label(index: int, count: int, name: str) -> str:
    """How a reason names one document of a fax: "document 2 of 3 (29.pdf)"."""
    shown = one_line(name, 120)
    return f"document {index} of {count}" + (f" ({shown})" if shown else "")


def extract_text(fax: Fax, app: App) -> None:
    """Text of every document. A document that cannot be read, and by default one with a page
    that could not be read, is a permanent problem naming it: routing a fax on the text of
    its readable pages, as if the others were blank, could send it to the wrong place."""
    count = len(fax.documents)
    for index, document in enumerate(fax.documents, start=1):
        def call(d: Document = document) -> list[PageText] | None:
            return app.extract_text(fax, d)

        label = document_label(index, count, document.ref.name)
        started = time.monotonic()
        before = len(fax.problems)
        pages = run_stage(fax, "extract_text", call)
        # Named here, not in each extractor, so a third-party extractor's error is named too.
        fax.problems[before:] = [replace(p, message=f"{label}: {p.message}")
                                 for p in fax.problems[before:]]
        if pages:
            per_page = (time.monotonic() - started) / len(pages)
            for _ in pages:
                app.metrics.ocr_seconds.observe(per_page)
        for page in pages or ():
            page.document = page.document or document.ref.name
            page.barcodes = bounded(page.barcodes)
            fax.pages.append(page)
        failed = [p for p in pages or () if p.error]
        if failed:
            unreadable(fax, app, f"{label}: {page_errors(failed, len(pages or ()))}")
    if fax.pages:
        skipped = sum(p.skipped for p in fax.pages)
        log.info("fax %s topic %s: read %d of %d pages%s", fax.id, fax.topic, fax.pages_read,
                 fax.pages_total, f" ({skipped} not read on purpose)" if skipped else "",
                 extra={"event": "text", "fax_id": fax.id, "topic": fax.topic,
                        "pages_read": fax.pages_read, "pages_total": fax.pages_total})


MAX_BARCODES = 50  # per page


def bounded(codes: object) -> tuple[Barcode, ...]:
    """An extractor's barcodes, bounded: at most MAX_BARCODES a page, each value at most
    MAX_BARCODE_VALUE characters (values are the sender's text and reach rules, templates
    and logs), anything that is not a Barcode left out."""
    if not isinstance(codes, tuple | list):
        return ()
    return tuple(b if len(b.value) <= MAX_BARCODE_VALUE else
                 replace(b, value=b.value[:MAX_BARCODE_VALUE])
                 for b in codes if isinstance(b, Barcode) and isinstance(b.value, str)
                 )[:MAX_BARCODES]


UNREADABLE_LABEL = "unreadable-pages"


def unreadable(fax: Fax, app: App, message: str) -> None:
    """Pages that could not be read: quarantine, or go on labelled for people to look at."""
    if app.config.worker.unreadable_pages == "label":
        fax.labels.add(UNREADABLE_LABEL)
        log.warning("fax %s topic %s: %s; labelled %s", fax.id, fax.topic, message,
                    UNREADABLE_LABEL)
    else:
        fax.problems.append(Problem("extract_text", None, message, transient=False))


def page_errors(failed: list[PageText], total: int, most: int = 5) -> str:
    """ "2 of 8 pages unreadable: pages 4, 5: OCR timed out ...; page 7: ..." (pages with the
    same error together, at most `most` different errors, so a reason stays one line)."""
    by_error: dict[str, list[int]] = {}
    for page in failed:
        by_error.setdefault(one_line(page.error or "", 300), []).append(page.number)
    parts = [f"page{'s' if len(numbers) > 1 else ''} {page_list(numbers)}: {error}"
             for error, numbers in list(by_error.items())[:most]]
    if len(by_error) > most:
        parts.append(f"and {len(by_error) - most} more different errors")
    return f"{len(failed)} of {total} pages unreadable: " + "; ".join(parts)


def page_list(numbers: list[int]) -> str:
    """[1, 2, 3, 7] -> "1-3, 7"."""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def classify(fax: Fax, app: App) -> None:
    results = run_stage(fax, "classify", lambda: app.classify(fax)) or []
    for result in results:
        fax.labels |= set(result.labels)
        for heading, lines in result.explain.items():
            fax.explanations.setdefault(str(heading), []).extend(
                [lines] if isinstance(lines, str) else map(str, lines))
        for key, value in result.fields.items():
            if key in fax.fields and fax.fields[key] != value:
                log.info("fax %s: field %s set twice; keeping the later value", fax.id, key)
            fax.fields[key] = value


def route(fax: Fax, app: App) -> None:
    contributed = run_stage(fax, "route", lambda: app.route(fax))
    if contributed is None:
        return
    seen: set[str] = set()
    for routes in contributed:
        for r in routes or ():
            if not isinstance(r, Route):
                log.warning("fax %s: a route plugin returned %r, not a Route; ignored", fax.id, r)
            elif r.key in seen:
                log.warning("fax %s: route %s contributed twice; keeping the first", fax.id, r.key)
            else:
                seen.add(r.key)
                fax.routes.append(r)
    if not fax.routes:
        fax.problems.append(Problem("route", None, "no route for this fax", transient=False))


def deliver(fax: Fax, app: App) -> None:
    journal = app.journal
    done = journal.routes(fax.topic, fax.id) if journal else {}
    for r in fax.routes:
        record = done.get(r.key)
        if record is not None and record.state == "delivered":
            # Delivered in an earlier attempt (before a crash or a not-yet): never again.
            fax.results[r.key] = DeliveryResult.delivered(record.detail or "", record.reference)
            continue
        # Started (a crash mid-call) or transient (the answer may have been lost after the
        # target acted): either way the target must be looked at before creating again.
        uncertain = record is not None
        owner = fax.scratch.get("owner")
        # A part of a split fax is held through its parent (faxflow.parts).
        if journal and owner and not journal.owns(fax.topic, fax.parent or fax.id, owner):
            # Our hold ran out (a stalled worker, a journal out of reach) and another worker
            # may have the fax now: delivering could double it. It comes back later.
            fax.problems.append(Problem(f"deliver:{r.key}", None,
                                        "this worker no longer holds the fax in the journal"))
            return
        if journal:
            journal.route_started(fax.topic, fax.id, r.key, r.type)
        def send(r: Route = r, u: bool = uncertain) -> DeliveryResult | None:
            sent, options = cover.view(fax, r)  # drop_cover: the fax without its cover page
            return app.deliver(sent, replace(r, options=options), u)

        result = run_stage(fax, f"deliver:{r.key}", send)
        if result is None and not any(p.stage == f"deliver:{r.key}" for p in fax.problems):
            result = DeliveryResult.permanent(f"no plugin delivers destination type {r.type!r}")
        if result is None:
            result = DeliveryResult.transient(fax.problems[-1].message)
        fax.results[r.key] = result
        if journal:
            journal.route_finished(fax.topic, fax.id, r.key, result)
        log.info("fax %s topic %s route %s (%s, rule %s): %s %s", fax.id, fax.topic, r.key,
                 r.type, r.rule, result.outcome.value, result.detail,
                 extra={"event": "delivery", "fax_id": fax.id, "topic": fax.topic,
                        "rule": r.rule, "route": r.key, "destination": r.type,
                        "outcome": result.outcome.value})
        app.metrics.deliveries.labels(r.type, result.outcome.value).inc()
        if result.outcome is Outcome.DELIVERED:
            app.notify("faxflow_fax_delivered", fax=fax, route=r, result=result, app=app)


def split(fax: Fax, app: App) -> list[Part] | None:
    """The parts a plugin cuts the fax into (`faxflow_split`), checked; None: one fax."""
    parts = run_stage(fax, "split", lambda: app.split(fax))
    if parts is None:
        return None
    wrong = faxflow_parts.problem(fax, parts)
    if wrong:
        fax.problems.append(Problem("split", None, wrong, transient=False))
        return None
    return parts


@hookimpl(trylast=True)
def faxflow_process_fax(fax: Fax, app: App) -> Decision:
    extract_text(fax, app)
    app.notify("faxflow_fax_read", fax=fax, app=app)
    if fax.problems:
        return decide(app.ack_votes(fax))
    parts = split(fax, app)
    if fax.problems:
        return decide(app.ack_votes(fax))
    if parts is not None:
        return faxflow_parts.process(fax, parts, app)
    return route_and_deliver(fax, app)


def route_and_deliver(fax: Fax, app: App) -> Decision:
    """Classify, route, the hold vote, deliver, the acknowledgement vote: the protocol after
    the text is read, for a whole fax or one part of a split one."""
    for stage in (classify, route):
        stage(fax, app)
        if fax.problems:
            return decide(app.ack_votes(fax))
    app.notify("faxflow_fax_routed", fax=fax, app=app)
    held = decide(app.hold_votes(fax))  # the gate: nothing delivered yet in this attempt
    if held.verdict is not Verdict.ACK:
        return Decision(held.verdict, tuple(f"held before delivery: {r}" for r in held.reasons),
                        held.votes)
    deliver(fax, app)
    return decide(app.ack_votes(fax))


@hookimpl
def faxflow_ack_vote(fax: Fax) -> Vote | None:
    """The core's own vote: problems and delivery results decide it."""
    permanent = [p for p in fax.problems if not p.transient]
    if permanent:
        return Vote.quarantine("; ".join(f"{p.stage}: {p.message}" for p in permanent))
    if fax.problems:
        return Vote.not_yet("; ".join(f"{p.stage}: {p.message}" for p in fax.problems))
    failed = {k: r for k, r in fax.results.items() if r.outcome is not Outcome.DELIVERED}
    if any(r.outcome is Outcome.PERMANENT for r in failed.values()):
        return Vote.quarantine("; ".join(f"route {k}: {r.detail}" for k, r in failed.items()
                                         if r.outcome is Outcome.PERMANENT))
    if failed:
        return Vote.not_yet("; ".join(f"route {k}: {r.detail}" for k, r in failed.items()))
    if not fax.routes:
        return Vote.not_yet("not routed")
    return Vote.ack(f"delivered to {len(fax.routes)} route(s)")
