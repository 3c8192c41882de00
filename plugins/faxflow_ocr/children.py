"""Long-lived helper processes that take one JSON request per line and answer one per line,
and the pool that keeps them between pages: tesseract's library (libtess.py) and the
PDF reader that takes a fax's image out of its page (extract.py).

A child is a separate process for what the work may do to a process: a page that runs out
of time is stopped by killing it, a crash or a memory limit takes down only the child, and
the next request gets a fresh one.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, Generic, TypeVar

# A child answers this many requests, then the next one gets a fresh child: whatever a long
# run leaves behind in a library (caches, fragmentation) is given back now and then.
REQUESTS_PER_CHILD = 500


class ChildFailed(RuntimeError):
    """A child could not answer, or ended (`status`: its exit status, negative for a signal,
    as pytesseract's TesseractError has it)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Child:
    """One child process, started with `command`; `name` is what messages call it."""

    name = "child"
    failed: type[ChildFailed] = ChildFailed

    def __init__(self, command: list[str], env: dict[str, str], timeout: float) -> None:
        """`timeout`: seconds the start may take (until the child's first answer)."""
        self.requests = 0
        self.busy = False  # a request is out and its answer not read: unusable if left so
        self._buffer = b""
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env)
        try:
            self.ready = self._answer(timeout, "start")
        except BaseException:
            self.stop()
            raise

    def call(self, request: dict[str, Any], timeout: float,
             limit: float | None = None) -> dict[str, Any]:
        """The child's answer to `request` within `timeout` seconds; `limit`: the time
        the caller had in all, for the message when it runs out."""
        stdin: IO[bytes] = self.proc.stdin  # type: ignore[assignment]
        self.busy = True
        try:
            stdin.write(json.dumps(request).encode() + b"\n")
            stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._ended() from None
        self.requests += 1
        answer = self._answer(timeout, request["op"], limit)
        self.busy = False
        return answer

    def _answer(self, timeout: float, what: str, limit: float | None = None,
                ) -> dict[str, Any]:
        out: IO[bytes] = self.proc.stdout  # type: ignore[assignment]
        deadline = time.monotonic() + timeout
        waiting = select.poll()  # not select(): a busy worker may hold fds above 1024
        waiting.register(out, select.POLLIN)
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not waiting.poll(left * 1000):
                self.stop()
                raise TimeoutError(f"{self.name} ({what}) took longer than "
                                   f"{limit or timeout:.3g} s")
            chunk = os.read(out.fileno(), 65536)
            if not chunk:
                raise self._ended()
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _ended(self) -> ChildFailed:
        status = self.proc.wait()
        how = f"signal {-status}" if status < 0 else f"status {status}"
        return self.failed(f"{self.name} stopped ({how})", status)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """Kill the child (its request ran out of time, or the pool closes)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                # closing stdin flushes a request a dead child never read: EPIPE
                with contextlib.suppress(OSError):
                    pipe.close()

    def close(self) -> None:
        """Let the child end by itself (EOF on its stdin), killing it if it does not."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.stop()


C = TypeVar("C", bound=Child)


class Pool(Generic[C]):
    """Idle children between requests: a pool thread takes one, makes its request, gives
    it back. At most `keep` are kept idle (the OCR pool has that many threads)."""

    def __init__(self, keep: int) -> None:
        self.keep = max(1, keep)
        self.idle: list[C] = []  # oldest first; under _lock
        self._lock = threading.Lock()
        self._closed = False
        # A pool dropped without close() (a tool, a test, a service replaced) must not
        # leave its children waiting for requests for as long as this process lives.
        self._release = weakref.finalize(self, _close_idle, self.idle, self._lock)

    @contextmanager
    def child(self, suits: Callable[[C], bool], start: Callable[[], C]) -> Iterator[C]:
        """An idle child that `suits`, else a new one from `start()`."""
        child = self._take(suits) or start()
        try:
            yield child
        finally:
            if child.busy:  # interrupted between a request and its answer
                child.stop()
            self._give_back(child)

    def _take(self, suits: Callable[[C], bool]) -> C | None:
        with self._lock:
            # killed while idle (the OOM killer): dropped, and replaced if need be
            dead = [child for child in self.idle if not child.alive]
            self.idle[:] = [child for child in self.idle if child.alive]
            found = next((child for child in reversed(self.idle) if suits(child)), None)
            if found is not None:
                self.idle.remove(found)
        for child in dead:
            child.stop()
        return found

    def _give_back(self, child: C) -> None:
        if not child.alive or child.requests >= REQUESTS_PER_CHILD:
            child.close()
            return
        with self._lock:
            if self._closed:
                surplus = [child]
            else:
                self.idle.append(child)
                surplus = self.idle[:-self.keep]  # the oldest beyond one per thread
                del self.idle[:-self.keep]
        for extra in surplus:
            extra.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True  # children still working are closed when given back
        self._release()


def _close_idle(idle: list[C], lock: threading.Lock) -> None:
    """Close the idle children (the list itself: the finalizer must not hold the pool)."""
    with lock:
        children = idle[:]
        idle.clear()
    for child in children:
        child.close()
