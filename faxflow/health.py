"""The optional HTTP endpoint: /healthz (alive), /readyz (pulling and journal writable),
/metrics (Prometheus).

Its cost is bounded whatever clients do. One thread runs an asyncio loop and each connection
is a coroutine there, not a thread. A connection gets one request and must send it (request
line and headers, at most `max_request_bytes`) within `read_timeout` seconds, in total, so a
client dribbling bytes is cut off as surely as a silent one. At most `max_connections` are
open; one more is closed at once. The calls that can block (the journal's `writable()`, which
waits on a locked SQLite file; `generate_latest`) run in a pool of CHECK_WORKERS threads and
get `check_timeout` seconds, after which /readyz says 503 instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from faxflow.app import App

log = logging.getLogger("faxflow")

T = TypeVar("T")

# Probes and Prometheus send their whole request in one packet, within milliseconds, and
# none of them needs tuning these; they are constructor arguments so tests can shrink them.
READ_TIMEOUT = 5.0        # to receive the request; also to send the answer
MAX_CONNECTIONS = 64      # a few probes and a scraper need a handful
MAX_REQUEST_BYTES = 8192  # request line and headers; probes send a few hundred bytes
CHECK_TIMEOUT = 2.0       # for writable() and generate_latest; SQLite alone waits 30 s
CHECK_WORKERS = 2         # a stuck journal check holds one, /metrics keeps the other
LINGER = 1.0              # reading on after an error answer, so closing does not reset it
LOG_INTERVAL = 60.0       # at most one warning of a kind per interval
STOP_TIMEOUT = 5.0


def readiness(app: App) -> tuple[bool, dict[str, Any]]:
    return _readiness(app, app.journal is not None and app.journal.writable())


def _readiness(app: App, journal_ok: bool) -> tuple[bool, dict[str, Any]]:
    since = app.metrics.seconds_since_last_pull()
    limit = app.config.health.ready_after
    pulling = since is not None and since <= limit
    return pulling and journal_ok, {
        "seconds_since_last_pull": since, "ready_after": limit, "journal_writable": journal_ok}


class HealthServer:
    def __init__(self, app: App, host: str, port: int, *, read_timeout: float = READ_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS,
                 max_request_bytes: int = MAX_REQUEST_BYTES,
                 check_timeout: float = CHECK_TIMEOUT) -> None:
        self.app = app
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self.max_request_bytes = max_request_bytes
        self.check_timeout = check_timeout
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.create_server((host, port), family=family)  # bind errors here
        self._sock.setblocking(False)
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self.port = self.address[1]
        self._loop = asyncio.new_event_loop()
        self._stopping = asyncio.Event()
        self._open: dict[asyncio.Task[None], socket.socket] = {}
        self._pool = ThreadPoolExecutor(CHECK_WORKERS, thread_name_prefix="health-check")
        self._journal_check: asyncio.Future[bool] | None = None
        self._refused = 0
        self._refusal_log = _Throttle(LOG_INTERVAL)
        self._error_log = _Throttle(LOG_INTERVAL)
        self._thread = threading.Thread(target=self._run, daemon=True, name="health")

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket and every connection; returns within STOP_TIMEOUT."""
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop closed in the meantime
                self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(STOP_TIMEOUT)
        elif self._thread.ident is None:  # never started
            self._sock.close()
            self._loop.close()
        # A check stuck in the journal keeps its thread until the journal answers.
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        except Exception:
            log.exception("the health endpoint stopped")
        finally:
            self._sock.close()
            self._loop.close()

    async def _serve(self) -> None:
        # Accepting from a reader callback rather than sock_accept(): 3.11 leaks a socket
        # when a pending sock_accept() is cancelled at stop.
        self._loop.add_reader(self._sock, self._accept)
        await self._stopping.wait()
        self._loop.remove_reader(self._sock)
        self._sock.close()
        open_now = dict(self._open)
        for task in open_now:
            task.cancel()
        await asyncio.gather(*open_now, return_exceptions=True)
        for conn in open_now.values():  # a task cancelled before it ran never closed its own
            conn.close()

    def _accept(self) -> None:
        for _ in range(100):  # then let the connections run
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:  # EMFILE and the like: pause instead of spinning
                self._note_error("accepting", exc)
                self._loop.remove_reader(self._sock)
                self._loop.call_later(1.0, self._resume_accepting)
                return
            if len(self._open) >= self.max_connections:
                conn.close()  # before any buffer or task is made for it
                self._note_refusal()
                continue
            task = self._loop.create_task(self._connection(conn))
            self._open[task] = conn
            task.add_done_callback(self._closed)

    def _resume_accepting(self) -> None:
        if not self._stopping.is_set():
            self._loop.add_reader(self._sock, self._accept)

    def _closed(self, task: asyncio.Task[None]) -> None:
        self._open.pop(task, None)

    async def _connection(self, conn: socket.socket) -> None:
        writer = None
        try:
            reader, writer = await asyncio.open_connection(sock=conn,
                                                           limit=self.max_request_bytes)
            await self._exchange(reader, writer)
        except (TimeoutError, ConnectionError):
            pass  # too slow, or gone
        except Exception as exc:  # a bug: say so, but not once per probe
            self._note_error("answering", exc)
        finally:
            if writer is None:
                conn.close()
            else:
                writer.transport.abort()  # nothing is left to send: _exchange drained it

    async def _exchange(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        # drain() then waits until everything is handed to the kernel.
        writer.transport.set_write_buffer_limits(high=0)
        async with asyncio.timeout(self.read_timeout):
            request = await _read_request(reader, self.max_request_bytes)
        if isinstance(request, int):  # refused: answer, then let the client read it
            writer.write(_response(request, "text/plain",
                                   f"{HTTPStatus(request).phrase}\n".encode()))
            await _send_and_linger(reader, writer, self.read_timeout)
            return
        method, target = request
        if method not in ("GET", "HEAD"):
            writer.write(_response(405, "text/plain", b"only GET and HEAD\n",
                                   extra="Allow: GET, HEAD\r\n"))
            await _send_and_linger(reader, writer, self.read_timeout)
            return
        status, content_type, body = await self._answer(target.split("?", 1)[0])
        writer.write(_response(status, content_type, body, head_only=method == "HEAD"))
        async with asyncio.timeout(self.read_timeout):
            await writer.drain()

    async def _answer(self, path: str) -> tuple[int, str, bytes]:
        if path == "/healthz":
            return 200, "application/json", b'{"status": "alive"}'
        if path == "/readyz":
            journal_ok, problem = await self._journal_writable()
            ok, detail = _readiness(self.app, journal_ok)
            if problem:
                detail["journal_check"] = problem
            body = json.dumps({"status": "ready" if ok else "not ready", **detail}).encode()
            return 200 if ok else 503, "application/json", body
        if path == "/metrics":
            try:
                metrics = await self._offload(
                    lambda: generate_latest(self.app.metrics.registry))
            except TimeoutError:
                return 503, "text/plain", b"metrics not collected in time\n"
            except Exception as exc:
                self._note_error("collecting metrics", exc)
                return 500, "text/plain", b"metrics failed\n"
            return 200, CONTENT_TYPE_LATEST, metrics
        return 404, "text/plain", b"not found\n"

    async def _journal_writable(self) -> tuple[bool, str | None]:
        """One check at a time, shared by concurrent /readyz requests: a journal that does
        not answer ties up one pool thread, not one per probe."""
        journal = self.app.journal
        if journal is None:
            return False, None
        if self._journal_check is None or self._journal_check.done():
            self._journal_check = asyncio.wrap_future(self._pool.submit(journal.writable))
            self._journal_check.add_done_callback(_retrieve)
        try:
            return await asyncio.wait_for(asyncio.shield(self._journal_check),
                                          self.check_timeout), None
        except TimeoutError:
            return False, f"no answer within {self.check_timeout:g} s"
        except Exception as exc:
            self._note_error("checking the journal", exc)
            return False, f"failed: {type(exc).__name__}"

    async def _offload(self, call: Callable[[], T]) -> T:
        # At most one waiting call per open connection, and a call that has not started
        # when its wait times out is cancelled: the pool's queue stays bounded.
        return await asyncio.wait_for(self._loop.run_in_executor(self._pool, call),
                                      self.check_timeout)

    def _note_refusal(self) -> None:
        self._refused += 1
        if self._refusal_log.due():
            log.warning("health endpoint: %d connection(s) closed at once, %d already open "
                        "(the cap; reported at most every %g s)", self._refused,
                        self.max_connections, LOG_INTERVAL)
            self._refused = 0

    def _note_error(self, doing: str, exc: Exception) -> None:
        if self._error_log.due():
            log.warning("health endpoint: %s failed: %s: %s (reported at most every %g s)",
                        doing, type(exc).__name__, exc, LOG_INTERVAL)


async def _read_request(reader: asyncio.StreamReader,
                        limit: int) -> tuple[str, str] | int:
    """(method, target), or the status refusing it: 431 for a request over `limit` bytes,
    400 for one that is not HTTP/1.x. The headers are read and ignored."""
    lines: list[bytes] = []
    size = 0
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            return 431
        except asyncio.IncompleteReadError as exc:
            raise ConnectionError("closed mid-request") from exc
        size += len(line)
        if size > limit:
            return 431
        if line.strip() == b"":
            if lines:
                break
            continue  # blank lines before the request line are allowed
        lines.append(line)
    parts = lines[0].decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return 400
    return parts[0], parts[1]


async def _send_and_linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           timeout: float) -> None:
    """Send an error answer, then read and drop what the client still sends for a moment:
    closing with unread data would reset the connection, and the client could lose the
    answer."""
    async with asyncio.timeout(timeout):
        await writer.drain()
    writer.write_eof()
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(min(LINGER, timeout)):
            while await reader.read(65536):
                pass


def _response(status: int, content_type: str, body: bytes, *, head_only: bool = False,
              extra: str = "") -> bytes:
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"{extra}Cache-Control: no-store\r\nConnection: close\r\n\r\n")
    return head.encode("latin-1") + (b"" if head_only else body)


def _retrieve(future: asyncio.Future[bool]) -> None:
    # A check nobody awaited any more (all waits timed out) still has its exception read,
    # so asyncio does not log "exception was never retrieved".
    if not future.cancelled():
        future.exception()


class _Throttle:
    """True at most once per interval."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._next = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.interval
        return True


def parse_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)
