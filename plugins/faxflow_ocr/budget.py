"""The time one document may take to read (`document_timeout`).

What counts is the time during which at least one of the document's pages is being read
(plus the header checks before them), not the wall time since the document came in. Its
pages share one pool with every other fax in flight: counted from the start, a normal
document queued behind a big fax's pages would run out of time without having done
anything. Counting each page's own time and adding them up would punish the parallel
reading of one document (8 pages on 4 threads would spend 4x the wall time). So the budget
is spent like a wall clock that only runs while the document is being worked on, and a page
is never given more time than the budget has left when it starts: pages that run at the
same time spend the same seconds, and a document ends within its budget.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class OutOfTime(Exception):
    """A page was stopped because its document's budget ran out."""


class Budget:
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._spent = 0.0
        self._running = 0
        self._since = 0.0  # when the current busy stretch began

    def left(self) -> float:
        with self._lock:
            return self.seconds - self._spent_now()

    def exhausted(self) -> bool:
        return self.left() <= 0

    def spend(self, seconds: float) -> None:
        """Time spent outside the page pool (reading the headers)."""
        with self._lock:
            self._spent += seconds

    def page_started(self) -> float:
        """A page of this document starts being read; returns the seconds left."""
        with self._lock:
            if self._running == 0:
                self._since = self._clock()
            self._running += 1
            return self.seconds - self._spent_now()

    def page_ended(self) -> None:
        with self._lock:
            self._running -= 1
            if self._running == 0:
                self._spent += self._clock() - self._since

    def _spent_now(self) -> float:
        busy = self._clock() - self._since if self._running else 0.0
        return self._spent + busy
