"""Plugin ``history``: every fax's record and timeline in the journal, for operators.

Listens to the lifecycle notifications and writes to ``app.journal.records``
(faxflow.records): who handled the fax, what it says it is (numbers, CSID, pages read,
labels, fields, rules, routes, why a rule matched), and each step with its time and worker.
The quarantine itself is kept by the core; the console reads all of it.

    [plugins.history]
    store_text = false     # the OCR text of every fax: personal data, off unless needed
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from faxflow.app import App
from faxflow.config import Config
from faxflow.hookspecs import hookimpl
from faxflow.records import Info, RecordStore
from faxflow.types import Decision, DeliveryResult, Fax, Route

log = logging.getLogger("faxflow.history")
OPTIONS = ("store_text",)


@hookimpl
def faxflow_check_config(config: Config) -> list[str]:
    table = config.plugin_options("history")
    problems = [f"{k}: unknown option (known: {', '.join(OPTIONS)})" for k in table
                if k not in OPTIONS]
    if not isinstance(table.get("store_text", False), bool):
        problems.append("store_text: must be true or false")
    return problems


def _write(app: App, fax: Fax, what: str, op: Callable[[RecordStore], Any]) -> None:
    """History must never stop a fax: a failure is logged and the fax goes on."""
    if app.journal is None:
        return
    try:
        op(app.journal.records)
    except Exception as exc:
        log.warning("fax %s: recording %s in the history failed: %s", fax.id, what, exc)


def _worker(fax: Fax) -> str:
    """The worker holding the fax, or the operator acting on it (a release)."""
    return str(fax.scratch.get("owner") or fax.scratch.get("actor") or "")


@hookimpl
def faxflow_fax_received(fax: Fax, app: App) -> None:
    job = fax.job
    info = Info(received=job.date_received.timestamp() if job.date_received else None,
                sender=str(job.sender_isdn) if job.sender_isdn else None,
                receiver=str(job.receiver_isdn) if job.receiver_isdn else None,
                csid=job.sender_fax_id)

    def op(records: RecordStore) -> None:
        records.event(fax.topic, fax.id, "received", _worker(fax),
                      f"attempt {fax.attempt}, {len(fax.documents)} document(s)",
                      status="processing" if fax.attempt == 1 else "retrying")
        records.describe(fax.topic, fax.id, info)

    _write(app, fax, "its receipt", op)


@hookimpl
def faxflow_fax_read(fax: Fax, app: App) -> None:
    read = [p for p in fax.pages if not p.error]
    failed = [p for p in fax.pages if p.error]
    detail = f"{len(read)} of {len(fax.pages)} page(s) read"
    if failed:
        detail += "; " + "; ".join(f"{p.document} page {p.number}: {p.error}"
                                   for p in failed[:5])

    def op(records: RecordStore) -> None:
        records.event(fax.topic, fax.id, "text read", _worker(fax), detail)
        records.describe(fax.topic, fax.id, Info(pages=len(read), pages_total=len(fax.pages)))

    _write(app, fax, "its text", op)


@hookimpl
def faxflow_fax_routed(fax: Fax, app: App) -> None:
    store_text = bool(app.plugin_options("history").get("store_text", False))
    rules = sorted({r.rule for r in fax.routes if r.rule})
    info = Info(labels=sorted(fax.labels), fields={k: str(v) for k, v in fax.fields.items()},
                rules=rules, routes=[{"key": r.key, "type": r.type, "rule": r.rule}
                                     for r in fax.routes],
                text=fax.text if store_text else None,
                explain=fax.scratch.get("explain"))
    detail = ", ".join(f"{r.key} ({r.type})" for r in fax.routes)

    def op(records: RecordStore) -> None:
        records.describe(fax.topic, fax.id, info)
        records.event(fax.topic, fax.id, "routed", _worker(fax), detail)

    _write(app, fax, "its routes", op)


@hookimpl
def faxflow_fax_delivered(fax: Fax, route: Route, result: DeliveryResult, app: App) -> None:
    detail = f"{route.key} ({route.type}): {result.detail}"
    if result.reference:
        detail += f" [{result.reference}]"
    _write(app, fax, "a delivery", lambda records: records.event(
        fax.topic, fax.id, "delivered", _worker(fax), detail))


@hookimpl
def faxflow_fax_failed(fax: Fax, decision: Decision, app: App) -> None:
    reason = "; ".join(decision.reasons)
    _write(app, fax, "a retry", lambda records: records.event(
        fax.topic, fax.id, "retried", _worker(fax), reason, status="retrying", reason=reason))


@hookimpl
def faxflow_fax_acknowledged(fax: Fax, decision: Decision, app: App) -> None:
    _write(app, fax, "the acknowledgement", lambda records: records.event(
        fax.topic, fax.id, "acknowledged", _worker(fax), "", status="delivered"))
