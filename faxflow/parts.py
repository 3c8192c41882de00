"""Split faxes: a fax cut into parts (`faxflow_split`, e.g. at separator sheets) has each part
classified, routed and delivered as a fax of its own, and is acknowledged only when every
part is delivered or quarantined.

A part is a child `Fax` with the id "<fax id>#<n>", its own document (the part's pages,
built the same byte for byte on every attempt) and the pages' text. The journal keeps its
deliveries under that id, like any fax's, so a part delivered before a crash is not
delivered again; and the parent fax's record has one entry per part ("part:<n>"), so a part
that is done (delivered, or quarantined on its own under its id) is skipped when the fax
comes back. A part that says not-yet leaves the whole fax to come back.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from faxflow import protocol, quarantine, subset
from faxflow.ack import describe
from faxflow.types import Decision, DeliveryResult, Fax, Part, Verdict, Vote

if TYPE_CHECKING:
    from faxflow.app import App

log = logging.getLogger("faxflow.parts")


def problem(fax: Fax, parts: object) -> str | None:
    """What is wrong with a split hook's answer, or None."""
    if not isinstance(parts, list) or not all(isinstance(p, Part) for p in parts):
        return f"the split hook returned {type(parts).__name__}, not a list of Part"
    if not parts:
        return "no part left after splitting (every page a separator?)"
    seen: set[int] = set()
    for part in parts:
        if not part.pages:
            return "a part without pages"
        for page in part.pages:
            if not 1 <= page <= len(fax.pages) or page in seen:
                return f"page {page} is not a page of the fax, or in two parts"
            seen.add(page)
    return None


def page_label(pages: tuple[int, ...]) -> str:
    return protocol.page_list(list(pages))


def child(fax: Fax, part: Part, n: int, count: int, documents: bool = True) -> Fax:
    """Part `n` of `count` as a fax of its own: its document made of the part's pages
    (`documents=False`: its pages only, for `faxflow explain`, which writes nothing)."""
    chosen = [fax.pages[i - 1] for i in part.pages]
    name = f"part-{n}.pdf"
    document = None
    if documents:
        folder = fax.documents[0].path.parent
        paths = {d.ref.name: d.path for d in reversed(fax.documents)}  # first of a name wins
        document = subset.write_pages([(paths.get(p.document, fax.documents[0].path),
                                        p.number) for p in chosen], folder / name)
    pages = [replace(p, number=k, document=name,
                     barcodes=tuple(replace(b, page=k, document=name) for b in p.barcodes))
             for k, p in enumerate(chosen, 1)]
    sub = Fax(job=replace(fax.job, id=f"{fax.id}#{n}"), topic=fax.topic, attempt=fax.attempt,
              parent=fax.id, documents=[document] if document else [], pages=pages,
              labels=set(fax.labels))
    sub.scratch = {k: v for k, v in fax.scratch.items() if k in ("owner", "actor")}
    sub.scratch["part"] = {"parent": fax.id, "number": n, "of": count,
                           "pages": list(part.pages), "reason": part.reason}
    searchable = [fax.artifacts.get(f"searchable_pdf:{p.document}") for p in chosen]
    if document is not None and all(searchable):
        folder = document.path.parent
        pdf = subset.write_pages([(s, p.number) for s, p in zip(searchable, chosen, strict=True)
                                  if s is not None], folder / f"part-{n}.searchable.pdf")
        sub.artifacts["searchable_pdf"] = pdf.path
        sub.artifacts[f"searchable_pdf:{name}"] = pdf.path
    return sub


def process(fax: Fax, parts: list[Part], app: App) -> Decision:
    """Every part not done yet, then the fax's decision: not-yet if any part said so,
    else acknowledged (its parts delivered or quarantined)."""
    journal = app.journal
    done = journal.routes(fax.topic, fax.id) if journal else {}
    owner = fax.scratch.get("owner")
    _event(app, fax, fax.id, "routed", f"split into {len(parts)} parts: " + ", ".join(
        f"#{n} pages {page_label(p.pages)}" for n, p in enumerate(parts, 1)))
    waiting: list[str] = []
    summary: list[str] = []
    for n, part in enumerate(parts, 1):
        key = f"part:{n}"
        record = done.get(key)
        if record is not None and record.state == "delivered":
            summary.append(f"part {n}: {record.detail}")  # done in an earlier attempt
            continue
        if journal and owner and not journal.owns(fax.topic, fax.id, owner):
            waiting.append(f"part {n}: this worker no longer holds the fax in the journal")
            break
        if journal:
            journal.route_started(fax.topic, fax.id, key, "part")
        try:
            sub = child(fax, part, n, len(parts))
        except Exception as exc:  # the documents were read a moment ago: the machine's fault
            log.warning("fax %s: building part %d failed: %r", fax.id, n, exc)
            waiting.append(f"part {n}: building its document failed: {exc!r}")
            if journal:
                journal.route_finished(fax.topic, fax.id, key, DeliveryResult.transient(
                    f"building its document failed: {exc!r}"))
            continue
        _event(app, fax, sub.id, "received",
               f"part {n} of {len(parts)} of fax {fax.id}: pages {page_label(part.pages)}",
               status="processing")
        decision = run_part(sub, app)
        log.info("fax %s part %d (pages %s): %s", fax.id, n, page_label(part.pages),
                 describe(decision), extra={"event": "part", "fax_id": fax.id,
                                            "topic": fax.topic, "part": n,
                                            "verdict": decision.verdict.value})
        result = finish(sub, decision, app)
        if journal:
            journal.route_finished(fax.topic, fax.id, key, result)
        if result.outcome.value == "delivered":
            summary.append(f"part {n}: {result.detail}")
        else:
            waiting.append(f"part {n}: {result.detail}")
    if waiting:
        return Decision(Verdict.NOT_YET, tuple(waiting), {"parts": Vote.not_yet(waiting[0])})
    reason = f"{len(parts)} parts done: " + "; ".join(summary)
    return Decision(Verdict.ACK, (), {"parts": Vote.ack(reason)})


def run_part(sub: Fax, app: App) -> Decision:
    """Classify, route, hold vote, deliver and vote for one part, as for a whole fax."""
    try:
        return protocol.route_and_deliver(sub, app)
    except Exception as exc:
        log.exception("fax %s: the protocol raised", sub.id)
        return Decision(Verdict.NOT_YET, (f"protocol raised {exc!r}",), {})


def finish(sub: Fax, decision: Decision, app: App) -> DeliveryResult:
    """What became of a part, as the parent's record of it: delivered (also when kept in
    the quarantine: it is done) or transient (the fax comes back for it)."""
    reasons = "; ".join(decision.reasons)
    if decision.verdict is Verdict.ACK:
        _event(app, sub, sub.id, "acknowledged", "part delivered; its fax is acknowledged "
               "once every part is done", status="delivered")
        return DeliveryResult.delivered(f"delivered to {len(sub.routes)} route(s)", sub.id)
    if decision.verdict is Verdict.QUARANTINE and app.journal is not None:
        config = app.config
        try:
            where = quarantine.keep(app.journal, sub, decision,
                                    str(sub.scratch.get("owner") or ""),
                                    app.quarantine_dir if config.worker.quarantine_dir
                                    else None, config.file_mode, config.dir_mode)
        except Exception as exc:
            return DeliveryResult.transient(f"keeping it in the quarantine failed: {exc}")
        if where is not None:
            sub.scratch["quarantine_dir"] = where
        app.metrics.quarantined.labels(sub.topic).inc()
        log.warning("fax %s: quarantined on its own: %s", sub.id, reasons,
                    extra={"event": "quarantined", "fax_id": sub.id, "topic": sub.topic})
        app.notify("faxflow_fax_quarantined", fax=sub, decision=decision, app=app)
        return DeliveryResult.delivered(f"quarantined: {reasons}",
                                        f"quarantine #{sub.scratch.get('quarantine_id')}")
    app.notify("faxflow_fax_failed", fax=sub, decision=decision, app=app)
    return DeliveryResult.transient(reasons or decision.verdict.value)


def _event(app: App, fax: Fax, fax_id: str, name: str, detail: str,
           status: str | None = None) -> None:
    """A line in the history (best effort: the history never stops a fax)."""
    if app.journal is None:
        return
    try:
        app.journal.records.event(fax.topic, fax_id, name,
                                  str(fax.scratch.get("owner") or fax.scratch.get("actor") or ""),
                                  detail, status=status)
    except Exception as exc:
        log.warning("fax %s: recording %s in the history failed: %s", fax_id, name, exc)
