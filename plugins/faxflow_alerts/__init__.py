"""Plugin ``alerts``: tell operators, in digests, what needs them.

    [plugins.alerts]
    digest_minutes = 15                 # at most one digest per this many minutes
    batch_seconds = 60                  # wait this long after the first alert, to batch
    destination_failing_minutes = 30    # a destination type failing at least this long
    no_pull_minutes = 30                # a topic without a successful pull this long
    console_url = "https://fax.example.com"   # links (default: [plugins.console] base_url)

    [[plugins.alerts.route]]            # where digests go: email or webhook, as in a rule
    type = "email"
    to = "it@clinic.example"

Every worker looks every half minute and notes conditions in the journal (`raise_alert`:
one alert per episode, keyed, so N workers and repeated checks make one); one worker at a
time sends the digest (`take_lease`), so N replicas send one digest, not N. A digest that
fails is sent again with the next one.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from faxflow import delivery
from faxflow.app import App
from faxflow.config import Config
from faxflow.hookspecs import hookimpl
from faxflow.records import Alert, RecordStore
from faxflow.stash import StashKey
from faxflow.types import Decision, Fax, Notice, Outcome, Route

log = logging.getLogger("faxflow.alerts")
NUMBERS = {"digest_minutes": 15.0, "batch_seconds": 60.0, "destination_failing_minutes": 30.0,
           "no_pull_minutes": 30.0, "check_seconds": 30.0}
OPTIONS = (*NUMBERS, "console_url", "route")
LEASE = "alerts-digest"


@dataclass(frozen=True)
class Settings:
    routes: tuple[Route, ...]
    digest: float
    batch: float
    failing: float
    no_pull: float
    check: float
    link: str | None


SETTINGS = StashKey[Settings]()
LOOP = StashKey["Loop"]()


def settings(config: Config) -> Settings:
    table = config.plugin_options("alerts")
    raw = table.get("route", [])
    routes = tuple(Route(f"alerts/{i}", str(r.get("type")),
                         {k: v for k, v in r.items() if k != "type"}, rule="alerts")
                   for i, r in enumerate(raw if isinstance(raw, list) else [raw])
                   if isinstance(r, dict))
    value = {k: float(table.get(k, d)) for k, d in NUMBERS.items()}
    link = table.get("console_url") or config.plugin_options("console").get("base_url")
    return Settings(routes, value["digest_minutes"] * 60, value["batch_seconds"],
                    value["destination_failing_minutes"] * 60, value["no_pull_minutes"] * 60,
                    value["check_seconds"], str(link).rstrip("/") if link else None)


@hookimpl
def faxflow_check_config(config: Config, app: App) -> list[str]:
    table = config.plugin_options("alerts")
    if not table:
        return []
    problems = [f"{k}: unknown option (known: {', '.join(OPTIONS)})" for k in table
                if k not in OPTIONS]
    for key in NUMBERS:
        value = table.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            problems.append(f"{key}: must be a positive number")
    raw = table.get("route")
    routes = raw if isinstance(raw, list) else [raw] if isinstance(raw, dict) else None
    if not routes or not all(isinstance(r, dict) for r in routes):
        problems.append("route: where digests go: at least one [[plugins.alerts.route]] with "
                        "a type (email or webhook) and its options")
        return problems
    for i, route in enumerate(routes):
        kind = route.get("type")
        dest = app.destinations.get(str(kind))
        if dest is None:
            problems.append(f"route.{i}.type: unknown destination type {kind!r}")
            continue
        options = {k: v for k, v in route.items() if k != "type"}
        if dest.check_options is not None:
            try:
                found = dest.check_options(options)
            except Exception as exc:
                found = [f"its option check raised {exc!r}"]
            problems += [f"route.{i}.{p}" for p in found or () if isinstance(p, str)]
        if any(isinstance(v, str) and "{{" in v for v in options.values()):
            problems.append(f"route.{i}: no templates here (a digest is not one fax)")
    return problems


@hookimpl
def faxflow_configure(config: Config, app: App) -> None:
    app.stash[SETTINGS] = settings(config)


@hookimpl
def faxflow_startup(app: App) -> None:
    if app.stash.get(SETTINGS, None) and app.stash[SETTINGS].routes and app.journal:
        loop = Loop(app)
        app.stash[LOOP] = loop
        loop.start()


@hookimpl
def faxflow_shutdown(app: App) -> None:
    loop = app.stash.get(LOOP, None)
    if loop is not None:
        loop.stop()


@hookimpl
def faxflow_fax_quarantined(fax: Fax, decision: Decision, app: App) -> None:
    if app.journal is None or not app.stash.get(SETTINGS, None):
        return
    ident = fax.scratch.get("quarantine_id")
    sender = str(fax.job.sender_isdn) if fax.job.sender_isdn else "unknown sender"
    detail = delivery.one_line(f"from {sender}: {'; '.join(decision.reasons)}", 300)
    try:
        app.journal.records.raise_alert(f"quarantined:{fax.topic}:{fax.id}", "quarantined",
                                        detail, ident)
    except Exception as exc:
        log.warning("fax %s: noting the alert failed: %s", fax.id, exc)


class Loop:
    """A worker's alert thread: look, note, and (holding the lease) send the digest."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.started = time.time()
        self.owner = f"{id(self):x}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="alerts")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.app.stash[SETTINGS].check):
            try:
                self.once()
            except Exception as exc:  # the journal or a destination away: next round
                log.warning("alerts: %s", exc)

    def once(self) -> bool:
        """One round; True when a digest went out."""
        app, config = self.app, self.app.stash[SETTINGS]
        assert app.journal is not None
        records = app.journal.records
        now = time.time()
        self.note(records, now, config)
        pending = records.pending_alerts()
        if not pending or now - min(a.first for a in pending) < config.batch:
            return False
        if not records.take_lease(LEASE, self.owner, config.digest):
            return False  # another worker sent one lately (or is sending now)
        notice = digest(records.pending_alerts(), config.link, now)
        results = [app.notify_people(notice, route) for route in config.routes]
        if all(r is not None and r.outcome is Outcome.DELIVERED for r in results):
            records.alerts_sent([item["key"] for item in notice.items], "alerts")
            return True
        log.error("alerts: the digest could not be sent (tried again with the next): %s",
                  "; ".join(r.detail if r else "no plugin sends to this type" for r in results))
        return False

    def note(self, records: RecordStore, now: float, config: Settings) -> None:
        view = records.overview(since=now - 3600)
        failing = {kind: since for kind, (_, since) in view["failing"].items()
                   if now - since >= config.failing}
        for kind, since in failing.items():
            records.raise_alert(f"destination:{kind}", "destination",
                                f"destination {kind} failing since {clock(since)}")
        records.clear_alerts("destination", [f"destination:{k}" for k in failing])
        silent = []
        for topic in self.app.config.retarus.topics:
            last = view["last_pull"].get(topic, self.started)
            if now - last >= config.no_pull:
                silent.append(f"pull:{topic}")
                records.raise_alert(f"pull:{topic}", "pull",
                                    f"topic {topic}: no successful pull since {clock(last)}")
        records.clear_alerts("pull", silent)


def clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def digest(alerts: list[Alert], link: str | None, now: float) -> Notice:
    """One notice for every pending alert; its subject holds counts only (no fax data)."""
    groups: dict[str, list[Alert]] = {}
    for alert in alerts:
        groups.setdefault(alert.kind, []).append(alert)
    titles = {"quarantined": "fax(es) quarantined", "destination": "destination(s) failing",
              "pull": "topic(s) without a successful pull"}
    subject = "faxflow: " + ", ".join(f"{len(groups[k])} {titles[k]}" for k in titles
                                      if k in groups)
    lines = [f"faxflow alert digest, {clock(now)}", ""]
    for kind, title in titles.items():
        if kind not in groups:
            continue
        lines.append(f"{title[0].upper()}{title[1:]}:")
        for alert in groups[kind]:
            where = f"#{alert.record_id} " if alert.record_id is not None else ""
            url = f"  {link}/faxes/{alert.record_id}" if link and alert.record_id else ""
            lines.append(f"- {where}{delivery.one_line(alert.detail, 300)}{url}")
        lines.append("")
    items: tuple[dict[str, Any], ...] = tuple(
        {"key": a.key, "kind": a.kind, "id": a.record_id, "detail": a.detail,
         "since": a.first} for a in alerts)
    # The same alerts give the same key: a digest resent after a failure is recognizable.
    key = "alerts-" + hashlib.sha256("|".join(sorted(a.key for a in alerts)).encode()).hexdigest()
    return Notice(key, subject, "\n".join(lines).rstrip() + "\n", items,
                  f"{link}/quarantine" if link else None)
