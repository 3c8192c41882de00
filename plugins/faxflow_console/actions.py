"""What an operator does with a quarantined fax, exactly once: release it (the pipeline again,
with today's configuration), route it to a target they pick, or dismiss it with a note.

Exactly once, as the worker: an item is claimed in the journal before anything happens, so
two operators (or two clicks) act once; deliveries go through the same per-route journal
records as the worker's, so a release that crashes halfway and is repeated delivers each
route once (an unfinished route is checked at its target before being sent again).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from faxflow import protocol
from faxflow.ack import decide
from faxflow.app import App
from faxflow.errors import FaxflowError
from faxflow.paths import make_dirs, safe_extension
from faxflow.records import FaxFilter, QuarantineItem, RecordStore
from faxflow.retarus.parse import parse_job
from faxflow.types import Decision, Document, DocumentRef, Fax, Job, Outcome, Verdict

CLAIM_SECONDS = 900.0  # an action's hold on an item; a crashed action frees it after this


class ActionError(FaxflowError):
    """The action cannot be done (resolved already, taken by someone else, unknown target)."""


@dataclass(frozen=True, slots=True)
class Result:
    """What an action did: `done` (the item is closed) and a line for people."""

    id: int
    done: bool
    message: str


def records(app: App) -> RecordStore:
    if app.journal is None:
        raise ActionError("no journal is open")
    return app.journal.records


@contextmanager
def claimed(app: App, ident: int, who: str) -> Iterator[QuarantineItem]:
    """The open item, claimed for `who` for the duration; let go if not resolved."""
    store = records(app)
    item = store.claim_quarantined(ident, who, CLAIM_SECONDS)
    if item is None:
        current = store.quarantine_item(ident)
        if current is None:
            raise ActionError(f"#{ident} is not in the quarantine")
        if current.state != "open":
            raise ActionError(f"#{ident} was {current.state} by {current.resolved_by} already")
        raise ActionError(f"#{ident} is being handled by {current.claimed_by} right now")
    try:
        yield item
    finally:
        store.unclaim_quarantined(ident, who)  # no-op once resolved


@contextmanager
def rebuilt(app: App, item: QuarantineItem) -> Iterator[Fax]:
    """The fax as the worker had it: its job from the stored metadata, its documents from
    the journal written to a private temporary folder."""
    raw = item.metadata.get("job") if isinstance(item.metadata.get("job"), dict) else None
    job = parse_job(raw) if raw else None
    if job is not None and item.fax_id.startswith(f"{job.id}#"):
        job = replace(job, id=item.fax_id)  # a part of a split fax: its parent's job
    if job is None or job.id != item.fax_id:
        job = Job(id=item.fax_id)
    folder = Path(tempfile.mkdtemp(prefix="faxflow-release-", dir=make_dirs(
        app.spool_dir, app.config.dir_mode)))
    try:
        documents = []
        for doc, data in records(app).quarantine_documents(item.id):
            path = folder / f"document-{doc.index}.{safe_extension(doc.extension)}"
            path.write_bytes(data)
            ref = DocumentRef(url="", name=doc.name, extension=doc.extension)
            documents.append(Document(ref, path, doc.size, doc.sha256, None))
        if not documents:
            raise ActionError(f"#{item.id} has no stored documents to process")
        yield Fax(job=job, topic=item.topic, documents=documents,
                  attempt=int(item.metadata.get("attempt", 0)) + 1)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def release(app: App, ident: int, who: str, note: str = "") -> Result:
    """Run the whole pipeline again on the stored documents with the configuration in use
    now. Closed as "released" when it is delivered; open again with the new reason when
    not."""
    with claimed(app, ident, who) as item, rebuilt(app, item) as fax:
        fax.scratch["actor"] = who
        before = delivered_routes(app, item)
        try:
            decision = app.process_fax(fax)
        except Exception as exc:
            decision = Decision(Verdict.NOT_YET, (f"the pipeline raised {exc!r}",), {})
        return _close(app, item, fax, decision, who, note, "released", "released", before)


def route(app: App, ident: int, target: str, who: str, note: str = "") -> Result:
    """Deliver to a target from the configuration (a rule's routes), whatever the fax's
    content would have chosen. Closed as "routed" when every route is delivered; the
    decision (target and the labels it gives) is kept, for a classifier to learn from."""
    chosen = app.targets().get(target)
    if chosen is None:
        raise ActionError(f"no target {target!r}; choose one of: "
                          f"{', '.join(app.route_targets()) or '(none configured)'}")
    with claimed(app, ident, who) as item, rebuilt(app, item) as fax:
        fax.scratch["actor"] = who
        before = delivered_routes(app, item)
        protocol.extract_text(fax, app)
        app.notify("faxflow_fax_read", fax=fax, app=app)
        if not fax.problems:
            protocol.classify(fax, app)
        if not fax.problems:
            routes = protocol.run_stage(fax, "route", lambda: app.route_to(fax, target))
            fax.routes = list(routes or [])
            fax.labels |= chosen.labels  # what the operator said it is
            if not fax.problems and not fax.routes:
                raise ActionError(f"target {target!r} has no routes for this fax")
        if not fax.problems:
            app.notify("faxflow_fax_routed", fax=fax, app=app)
            protocol.deliver(fax, app)
        decision = decide(app.ack_votes(fax))
        result = _close(app, item, fax, decision, who, note, "routed", f"to {target}", before)
        if result.done:
            records(app).decided(item.id, who, "routed", target, chosen.labels)
        return result


def dismiss(app: App, ident: int, who: str, note: str) -> Result:
    """Close the item without delivering; the note says why (required)."""
    if not note.strip():
        raise ActionError("dismissing needs a note saying why")
    with claimed(app, ident, who) as item:
        records(app).resolve_quarantined(item.id, who, "dismissed", note)
        return Result(ident, True, f"#{ident} dismissed")


def delivered_routes(app: App, item: QuarantineItem) -> set[str]:
    """Routes of this fax the journal records as delivered (by a worker or an action)."""
    journal = app.journal
    assert journal is not None
    return {k for k, r in journal.routes(item.topic, item.fax_id).items()
            if r.state == "delivered"}


def _close(app: App, item: QuarantineItem, fax: Fax, decision: Decision, who: str,
           note: str, state: str, what: str, before: set[str]) -> Result:
    store = records(app)
    now = [k for k, r in fax.results.items()
           if r.outcome is Outcome.DELIVERED and k not in before]
    if decision.verdict is Verdict.ACK:
        detail = f"{what}: delivered to {', '.join(now) or 'no route'}"
        if before:
            detail += f"; {', '.join(sorted(before))} before"
        store.resolve_quarantined(item.id, who, state, note, detail)
        return Result(item.id, True, f"#{item.id} {detail}")
    reasons = "; ".join(decision.reasons)
    verb = {"released": "release", "routed": "route"}[state]
    store.event(item.topic, item.fax_id, "failed", who, f"{verb} failed: {reasons}")
    return Result(item.id, False, f"#{item.id} stays in the quarantine: {reasons}")


def bulk(app: App, flt: FaxFilter, action: str, who: str, note: str = "",
         target: str | None = None) -> list[Result]:
    """Apply one action to every open item matching `flt`; one result per item, failures
    included (one item's failure does not stop the others)."""
    results: list[Result] = []
    store = records(app)
    cursor = None
    items = []
    while True:  # collect first: resolving items changes the list being paged
        page, cursor = store.quarantine_list(flt, cursor, 200)
        items += [item.id for _, item in page]
        if cursor is None:
            break
    for ident in items:
        try:
            if action == "release":
                results.append(release(app, ident, who, note))
            elif action == "route" and target:
                results.append(route(app, ident, target, who, note))
            elif action == "dismiss":
                results.append(dismiss(app, ident, who, note))
            else:
                raise ActionError(f"unknown action {action!r}")
        except ActionError as exc:
            results.append(Result(ident, False, str(exc)))
    return results
