"""A worker's periodic chores, kept out of the pull loop: clean the spool of what killed
workers left, forget what is older than the retention, note successful pulls for operators.
Each is cheap to call often (it checks its own clock) and never raises."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from faxflow import spool

if TYPE_CHECKING:
    from faxflow.app import App
    from faxflow.journal import Journal

log = logging.getLogger("faxflow.worker")
PRUNE_EVERY = 3600.0
PULL_NOTE_EVERY = 5.0


class Housekeeper:
    def __init__(self, app: App, journal: Journal, worker_id: str) -> None:
        self.app = app
        self.journal = journal
        self.worker_id = worker_id
        self._next_clean = 0.0
        self._next_prune = 0.0
        self._pull_noted: dict[str, float] = {}

    def tick(self, busy: Collection[Path]) -> None:
        """At start and then every lock timeout (at least a minute): remove what killed
        workers left in the spool (not `busy`, this worker's faxes in flight); hourly:
        forget what is older than the retention."""
        now = time.monotonic()
        if now < self._next_clean:
            return
        self._next_clean = now + max(60.0, float(self.app.config.retarus.lock_timeout))
        try:
            spool.clean_stale(self.app.spool_dir, self.journal, busy)
            if now >= self._next_prune:
                self._next_prune = now + PRUNE_EVERY
                days = self.app.config.journal.retention_days
                gone = self.journal.prune(time.time() - days * 86400.0)
                if gone:
                    log.info("forgot %d fax(es) older than %d days (retention)", gone, days)
        except Exception as exc:  # e.g. the journal out of reach: next time
            log.warning("housekeeping failed: %s", exc)

    def pulled(self, topic: str) -> None:
        """The last successful pull per topic, for operators (at most every 5 s)."""
        now = time.monotonic()
        if now - self._pull_noted.get(topic, -PULL_NOTE_EVERY) < PULL_NOTE_EVERY:
            return
        self._pull_noted[topic] = now
        try:
            self.journal.records.pulled(topic, self.worker_id)
        except Exception as exc:  # the journal is away: pulling goes on
            log.warning("recording the pull failed: %s", exc)
