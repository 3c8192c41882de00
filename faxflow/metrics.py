"""Prometheus metrics, one registry per App (so tests and embedded workers never share)."""

from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.pulled = Counter("faxflow_faxes_pulled", "Faxes handed out to this worker.",
                              ["topic"], registry=r)
        self.acknowledged = Counter("faxflow_faxes_acknowledged",
                                    "Faxes acknowledged after every route succeeded.",
                                    ["topic"], registry=r)
        self.quarantined = Counter("faxflow_faxes_quarantined",
                                   "Faxes written to quarantine (then acknowledged).",
                                   ["topic"], registry=r)
        self.retried = Counter("faxflow_faxes_retried",
                               "Attempts that ended not-yet (the fax comes back).",
                               ["topic"], registry=r)
        self.deliveries = Counter("faxflow_deliveries", "Delivery attempts by outcome.",
                                  ["destination", "outcome"], registry=r)
        self.ocr_seconds = Histogram(
            "faxflow_ocr_seconds_per_page", "Text extraction time per page.",
            buckets=(0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30), registry=r)
        self.pull_errors = Counter("faxflow_pull_errors", "Pulls that failed after retries.",
                                   ["topic"], registry=r)
        self.in_flight = Gauge("faxflow_in_flight", "Faxes being processed now.", registry=r)
        self.last_pull = Gauge("faxflow_seconds_since_last_pull",
                               "Seconds since the last successful pull.", registry=r)
        self._last_pull: float | None = None
        self._extra: dict[str, Counter] = {}
        self._lock = threading.Lock()
        self.last_pull.set_function(self._since_last_pull)

    def counter(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Counter:
        """A plugin's own counter in this app's registry; asking again (a reload calls
        `faxflow_configure` again) returns the same one.

        Reached as ``app.metrics.counter(name, documentation, labels)``, e.g. in
        `faxflow_configure`: a ``prometheus_client.Counter``, served at ``/metrics`` with the
        core's (``name`` plus ``_total``). Start `name` with ``faxflow_`` and your plugin's
        name. Asking again returns the first counter whatever `documentation` and `labels`
        say."""
        with self._lock:
            if name not in self._extra:
                self._extra[name] = Counter(name, documentation, list(labels),
                                            registry=self.registry)
            return self._extra[name]

    def pull_succeeded(self) -> None:
        self._last_pull = time.time()

    def _since_last_pull(self) -> float:
        return float("nan") if self._last_pull is None else time.time() - self._last_pull

    def seconds_since_last_pull(self) -> float | None:
        return None if self._last_pull is None else time.time() - self._last_pull

    def total(self, name: str) -> float:
        """Sum of a counter over all its labels (e.g. "faxflow_faxes_retried"), by the name
        given to `counter`; handy in a plugin's tests."""
        return sum(s.value for m in self.registry.collect() if m.name == name
                   for s in m.samples if s.name == f"{name}_total")
