"""The pull loop: fetch as many faxes as there are free slots, process each in a thread,
piggy-back acknowledgements on the next pull, shut down gracefully.

Threads are enough: the heavy work (OCR, rasterizing) runs in subprocesses.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faxflow import quarantine, spool
from faxflow.ack import decide, describe
from faxflow.housekeeping import Housekeeper
from faxflow.paths import safe_extension
from faxflow.protocol import document_label
from faxflow.retarus import NotFoundError, ProtocolError, TooLargeError
from faxflow.types import Decision, Fax, Job, Problem, Verdict, Vote

if TYPE_CHECKING:
    from faxflow.app import App
    from faxflow.retarus import RetarusClient

log = logging.getLogger("faxflow.worker")


@dataclass
class Decided:
    fax: Fax
    decision: Decision | None  # None: decided in an earlier run (found in the journal)


class Worker:
    def __init__(self, app: App, client: RetarusClient,
                 worker_id: str | None = None,
                 on_idle: Callable[[], None] | None = None,
                 make_client: Callable[[], RetarusClient] | None = None) -> None:
        if app.journal is None:
            raise ValueError("the worker needs a journal")
        self.app = app
        self.client = client
        # A hot reload may change credentials or the data centre: then a new client is made
        # (the old one is closed once no download uses it any more, i.e. at shutdown).
        self._make_client = make_client
        self._client_settings = app.config.retarus
        self._old_clients: list[RetarusClient] = []
        self.journal = app.journal
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.on_idle = on_idle  # called when every topic came back empty (demo, tests)
        self.housekeeper = Housekeeper(app, self.journal, self.worker_id)
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._acks: dict[str, dict[str, Decided]] = {}
        self._topic_turn = 0
        self._busy: set[Path] = set()  # spool folders of the faxes in flight here
        self.metrics = app.metrics
        # Fixed for the life of the worker (its thread pool); a reload changes it at restart.
        self.concurrency = app.config.worker.concurrency

    # --- control -----------------------------------------------------------------------

    def stop(self) -> None:
        """Stop fetching; `run` lets in-flight faxes finish within the grace period."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        settings = self.app.config.worker
        executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="fax")
        self._recover_acks()
        delay = 0.0
        try:
            while not self._stop.is_set():
                with self._cond:
                    busy = set(self._busy)
                self.housekeeper.tick(busy)
                full = self._pull_round(executor)
                if full:  # more are waiting: pull again as soon as enough slots are free
                    delay = 0.0
                    self._wait_for_slots()
                    continue
                if full is None:  # a pull failed: back off, but keep the acks for later
                    delay = min(max(delay * 2, 1.0), max(settings.poll_interval_max, 1.0))
                else:
                    delay = min(max(delay * 2, 0.25), settings.poll_interval_max)
                    if self.on_idle and self._idle():
                        self.on_idle()
                self._wait(delay)
        finally:
            self._drain(executor, settings.grace_period)

    # --- the loop ----------------------------------------------------------------------

    def _free_slots(self) -> int:
        with self._cond:
            return self.concurrency - self._in_flight

    def _idle(self) -> bool:
        with self._cond:
            return self._in_flight == 0 and not any(self._acks.values())

    def _wait(self, seconds: float) -> None:
        """Sleep, but wake up at once to stop, or when a finished fax has an ack to send."""
        deadline = time.monotonic() + seconds
        with self._cond:
            while not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0 or any(self._acks.values()):
                    return
                self._cond.wait(left)

    def _refresh_client(self) -> None:
        settings = self.app.config.retarus
        keys = ("region", "base_url", "username", "password", "timeout", "allow_http")
        if self._make_client is None or all(
                getattr(settings, k) == getattr(self._client_settings, k) for k in keys):
            return
        self._old_clients.append(self.client)
        self.client = self._make_client()
        self._client_settings = settings
        log.info("Retarus connection settings changed: using %s from now on",
                 self.client.base_url)

    def close_clients(self) -> None:
        for client in self._old_clients:
            client.close()
        self.client.close()

    def _pull_round(self, executor: ThreadPoolExecutor) -> bool | None:
        """One pull per topic. True if a batch came back full (more are waiting), None if a
        pull failed."""
        self._refresh_client()
        retarus = self.app.config.retarus
        topics = list(retarus.topics)
        full = False
        failed = False
        for i in range(len(topics)):
            topic = topics[(self._topic_turn + i) % len(topics)]
            free = self._free_slots()
            with self._cond:
                pending = self._acks.pop(topic, {})
            if free <= 0 and not pending:
                continue
            fetch = max(0, min(free, retarus.fetch))
            try:
                batch = self.client.pull(topic, fetch=fetch, timeout=retarus.lock_timeout,
                                         ack_ids=list(pending))
            except Exception as exc:
                failed = True
                self.metrics.pull_errors.labels(topic).inc()
                log.error("pull from topic %s failed: %s", topic, exc)
                with self._cond:  # keep the acks for the next call
                    self._acks.setdefault(topic, {}).update(pending)
                continue
            self.metrics.pull_succeeded()
            self._confirm_acks(topic, pending)
            self.housekeeper.pulled(topic)
            for job in batch.jobs:
                with self._cond:
                    self._in_flight += 1
                    self.metrics.in_flight.set(self._in_flight)
                self.metrics.pulled.labels(topic).inc()
                executor.submit(self._handle, topic, job)
            if fetch and len(batch.jobs) >= fetch:
                full = True
        self._topic_turn += 1
        if self._free_slots() <= 0:
            return True  # every slot busy: more may be waiting
        return None if failed and not full else full

    def _wait_for_slots(self, ack_delay: float = 0.5) -> None:
        """Wait until half the slots are free, so pulls come in batches rather than one job
        per finished fax; finished faxes' acks wait at most `ack_delay` once a slot is free."""
        settings = self.app.config
        enough = max(1, min(settings.retarus.fetch, self.concurrency) // 2)
        started = time.monotonic()
        with self._cond:
            while not self._stop.is_set():
                free = self.concurrency - self._in_flight
                waited = time.monotonic() - started
                if free >= enough or (free > 0 and waited >= ack_delay):
                    return
                self._cond.wait(max(0.01, ack_delay - waited) if free > 0 else 1.0)

    def _confirm_acks(self, topic: str, acked: dict[str, Decided]) -> None:
        if not acked:
            return
        self.journal.acknowledged(topic, list(acked))
        for fax_id, item in acked.items():
            if item.decision is not None:
                if item.decision.verdict is Verdict.ACK:
                    self.metrics.acknowledged.labels(topic).inc()
                    log.info("fax %s topic %s: acknowledged", fax_id, topic,
                             extra=event(item.fax, "acknowledged"))
                    self.app.notify("faxflow_fax_acknowledged", fax=item.fax,
                                    decision=item.decision, app=self.app)
                else:
                    log.info("fax %s topic %s: quarantine acknowledged", fax_id, topic,
                             extra=event(item.fax, "acknowledged"))
            self._clean_spool(item.fax)

    def _recover_acks(self) -> None:
        """Decisions a crash left unacknowledged go out with the first pulls."""
        for topic, ids in self.journal.pending_acks().items():
            with self._cond:
                bucket = self._acks.setdefault(topic, {})
                for fax_id in ids:
                    bucket[fax_id] = Decided(Fax(job=Job(id=fax_id), topic=topic), None)
            log.info("recovered %d decided fax(es) to acknowledge on topic %s", len(ids), topic)

    def _drain(self, executor: ThreadPoolExecutor, grace: float) -> None:
        deadline = time.monotonic() + grace
        with self._cond:
            while self._in_flight and time.monotonic() < deadline:
                self._cond.wait(min(0.5, max(0.0, deadline - time.monotonic())))
            left = self._in_flight
            pending = {t: ids for t, ids in self._acks.items() if ids}
            self._acks = {}
        if left:
            log.warning("%d fax(es) still in flight after the grace period; they stay locked "
                        "and come back after the lock timeout", left)
        executor.shutdown(wait=False, cancel_futures=True)
        for topic, acked in pending.items():
            try:
                self.client.ack(topic, list(acked))  # the exit call
                self._confirm_acks(topic, acked)
            except Exception as exc:
                log.error("exit call for topic %s failed (%s); the journal acknowledges these "
                          "on the next start", topic, exc)

    # --- one fax -----------------------------------------------------------------------

    def _handle(self, topic: str, job: Job) -> None:
        fax = Fax(job=job, topic=topic)
        folder = self._spool_dir(fax)
        with self._cond:
            self._busy.add(folder)
        try:
            self._process(fax)
        except Exception as exc:
            log.exception("fax %s topic %s: unexpected error; it comes back after its lock "
                          "timeout", job.id, topic)
            if "owner" in fax.scratch:  # only our own attempt: never another worker's hold
                try:  # best effort: end the attempt so its hold is not renewed any more
                    self.journal.decide(topic, job.id, "retry", f"unexpected error: {exc!r}")
                except Exception:
                    log.exception("fax %s: recording the failed attempt failed too", job.id)
        finally:
            with self._cond:
                self._busy.discard(folder)
                self._in_flight -= 1
                self.metrics.in_flight.set(self._in_flight)
                self._cond.notify_all()

    def _process(self, fax: Fax) -> None:
        settings = self.app.config.worker
        record = self.journal.claim(fax.topic, fax.id, self.worker_id,
                                    float(self.app.config.retarus.lock_timeout))
        if record is None:
            known = self.journal.get(fax.topic, fax.id)
            if known is not None and known.state == "done":
                # Acknowledged before, yet handed out again (our ack was lost): ack again.
                self._queue_ack(fax, None)
            else:
                log.info("fax %s topic %s: held by another worker; skipped", fax.id, fax.topic)
            return
        if record.state in ("ack", "quarantine"):
            self._queue_ack(fax, None)  # decided before a crash; only the ack was missing
            return
        fax.attempt = record.attempts
        fax.scratch["owner"] = self.worker_id
        log.info("fax %s topic %s: received (attempt %d)", fax.id, fax.topic, fax.attempt,
                 extra=event(fax, "received"))
        if fax.attempt > settings.max_attempts and self._old_enough(fax):
            self._download(fax)
            self._finish(fax, Decision(Verdict.QUARANTINE, (
                f"gave up after {settings.max_attempts} attempts: {record.reason or '?'}",),
                {"core": Vote.quarantine("max_attempts")}))
            return
        if self._download(fax):
            self.app.notify("faxflow_fax_received", fax=fax, app=self.app)
            try:
                decision = self.app.process_fax(fax)
            except Exception as exc:
                log.exception("fax %s: the protocol raised", fax.id)
                decision = Decision(Verdict.NOT_YET, (f"protocol raised {exc!r}",), {})
        else:
            decision = decide(self.app.ack_votes(fax))
        if (decision.verdict is Verdict.NOT_YET and fax.attempt >= settings.max_attempts
                and self._old_enough(fax)):
            decision = Decision(Verdict.QUARANTINE, (
                f"gave up after {fax.attempt} attempts", *decision.reasons), decision.votes)
        self._finish(fax, decision)

    def _old_enough(self, fax: Fax) -> bool:
        """Whether retries may end: `retry_for` seconds after receipt (unknown date: yes)."""
        window = self.app.config.worker.retry_for
        received = fax.job.date_received
        if window <= 0 or received is None:
            return True
        return (datetime.now(UTC) - received).total_seconds() >= window

    def _spool_dir(self, fax: Fax) -> Path:
        return spool.fax_dir(self.app.spool_dir, fax.topic, fax.id)

    def _download(self, fax: Fax) -> bool:
        """Download every document; a failure becomes a problem on the fax."""
        folder = spool.make_fax_dir(self.app.spool_dir, fax.topic, fax.id,
                                    self.app.config.dir_mode, self.app.config.file_mode)
        limit = self.app.config.retarus.max_download_bytes
        count = len(fax.job.documents)
        for i, ref in enumerate(fax.job.documents, start=1):
            dest = folder / f"document-{i}.{safe_extension(ref.extension)}"
            label = document_label(i, count, ref.name)
            try:
                fax.documents.append(self.client.download(ref, dest, max_bytes=limit))
            except NotFoundError as exc:
                fax.problems.append(Problem("download", None, f"{label}: gone at Retarus "
                                            f"(expired?): {exc}", transient=False))
            except (TooLargeError, ProtocolError) as exc:  # no second try can fix the document
                fax.problems.append(Problem("download", None, f"{label}: {exc}",
                                            transient=False))
            except Exception as exc:  # network, credentials: may work on the next attempt
                fax.problems.append(Problem("download", None, f"{label}: {exc}"))
        if not fax.job.documents:
            fax.problems.append(Problem("download", None, "the job lists no document",
                                        transient=False))
        return not fax.problems

    def _finish(self, fax: Fax, decision: Decision) -> None:
        app = self.app
        line = f"fax {fax.id} topic {fax.topic} attempt {fax.attempt}: {describe(decision)}"
        if decision.verdict is Verdict.QUARANTINE:
            try:
                where = quarantine.keep(self.journal, fax, decision, self.worker_id,
                                        app.quarantine_dir if app.config.worker.quarantine_dir
                                        else None, app.config.file_mode, app.config.dir_mode)
            except Exception as exc:  # the journal's database, or reading the spool
                log.error("%s; keeping it in the quarantine failed (%s): not acknowledged",
                          line, exc)
                self.journal.decide(fax.topic, fax.id, "retry", f"quarantine failed: {exc}")
                return
            if where is not None:
                fax.scratch["quarantine_dir"] = where
            self.journal.decide(fax.topic, fax.id, "quarantine", "; ".join(decision.reasons))
            self.metrics.quarantined.labels(fax.topic).inc()
            log.warning("%s -> quarantine %s", line, where or f"#{fax.scratch['quarantine_id']}",
                        extra=event(fax, "quarantined", decision))
            app.notify("faxflow_fax_quarantined", fax=fax, decision=decision, app=app)
            self._queue_ack(fax, decision)
        elif decision.verdict is Verdict.ACK:
            self.journal.decide(fax.topic, fax.id, "ack", "; ".join(decision.reasons))
            log.info("%s", line, extra=event(fax, "decided", decision))
            self._queue_ack(fax, decision)
        else:
            self.journal.decide(fax.topic, fax.id, "retry", "; ".join(decision.reasons))
            self.metrics.retried.labels(fax.topic).inc()
            log.warning("%s (comes back after the lock timeout)", line,
                        extra=event(fax, "retry", decision))
            app.notify("faxflow_fax_failed", fax=fax, decision=decision, app=app)
            self._clean_spool(fax)

    def _queue_ack(self, fax: Fax, decision: Decision | None) -> None:
        with self._cond:
            self._acks.setdefault(fax.topic, {})[fax.id] = Decided(fax, decision)
            self._cond.notify_all()

    def _clean_spool(self, fax: Fax) -> None:
        shutil.rmtree(self._spool_dir(fax), ignore_errors=True)


def event(fax: Fax, name: str, decision: Decision | None = None) -> dict[str, Any]:
    """Structured fields of a lifecycle log line (they become keys with --log-format json)."""
    fields: dict[str, Any] = {"event": name, "fax_id": fax.id, "topic": fax.topic,
                              "attempt": fax.attempt}
    rules = sorted({r.rule for r in fax.routes if r.rule})
    if rules:
        fields["rules"] = rules
        fields["destinations"] = sorted({r.type for r in fax.routes})
    if decision is not None:
        fields["verdict"] = decision.verdict.value
        fields["reasons"] = list(decision.reasons)
    return fields
