"""HTTP/1.1 front of the simulator: asyncio streams plus h11, keep-alive, no framework.

Routes (see docs/simulator.md):
  POST /faxin/rest/v1/topics/{topic}      poll: acknowledge ids, fetch and lock jobs
  GET  /faxin/rest/v1/files/{name}        download a document
  POST /_sim/topics/{topic}/faxes         add a fax
  GET  /_sim/topics/{topic}               counts and acks
  POST /_sim/clock                        advance the clock
  POST /_sim/faults                       set fault injection
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import ipaddress
import json
import signal
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

import h11

from faxflow.simulator.store import (
    DEFAULT_FETCH,
    DEFAULT_TIMEOUT,
    NO_FAULTS,
    BadRequest,
    Simulator,
    SimulatorError,
)

API_PREFIX = "/faxin/rest/v1"
MAX_BODY = 64 * 1024 * 1024  # /_sim/ fax uploads carry base64 documents
JSON_TYPE = "application/json; charset=utf-8"


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop: bool = False  # close the connection instead of answering


def json_reply(status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> Reply:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return Reply(status, body, JSON_TYPE, headers or [])


def error_reply(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Reply:
    return json_reply(status, {"error": message}, headers)


def _reason(status: int) -> bytes:
    if status == 520:
        return b"Unknown Error"  # Retarus' non-standard server error
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def _is_loopback(peer: Any) -> bool:
    try:
        address = ipaddress.ip_address(peer[0])
    except (TypeError, ValueError, IndexError):
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()):  # rejects "", "-1", "1.5", " 1"
        raise BadRequest(f"{name} must be a non-negative integer")
    try:
        return int(raw)
    except ValueError:  # more digits than int() accepts
        raise BadRequest(f"{name} is too large") from None


@dataclass
class Request:
    method: str
    path: str  # still percent-encoded
    query: str
    headers: dict[bytes, bytes]
    body: bytes
    peer: Any


class SimulatorServer:
    """Serves a `Simulator` over HTTP/1.1.

    `start()` runs an asyncio loop in a daemon thread and returns once connections are
    accepted; `stop()` ends it. Inside a running loop use `start_async()`/`stop_async()`.
    """

    def __init__(
        self,
        sim: Simulator,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.sim = sim
        self.host = host
        self.port = port
        self.scheme = "https" if ssl_context else "http"
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        return self.base_url + API_PREFIX

    async def start_async(self) -> None:
        # One socket from the first resolved address, so port 0 yields a single port.
        family, kind, proto, _, address = socket.getaddrinfo(
            self.host, self.port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(
            self._serve_connection, sock=sock, ssl=self._ssl, backlog=1024
        )
        self.sim.default_api_url = self.api_url

    async def stop_async(self) -> None:
        if self._server is not None:
            self._server.close()
        await asyncio.sleep(0)  # let just-accepted connections register themselves
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def start(self) -> SimulatorServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
                loop.run_until_complete(self.stop_async())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="fax2wspull-simulator", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._thread = None
            self._loop = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def serve_until_signal(
        self, on_listening: Callable[[SimulatorServer], None] | None = None
    ) -> None:
        """Serve in the calling thread until SIGINT or SIGTERM (the CLI's mode)."""

        async def main() -> None:
            await self.start_async()
            if on_listening is not None:
                on_listening(self)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            await self.stop_async()

        asyncio.run(main())

    # -- connections ---------------------------------------------------------------------

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        peer = writer.get_extra_info("peername")
        try:
            while True:
                request = await self._read_request(conn, reader, writer, peer)
                if request is None:
                    break
                reply = await self._dispatch(request)
                if reply.drop:
                    break
                writer.write(self._encode(conn, reply))
                await writer.drain()
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    break  # Connection: close, or a body we did not fully read
                conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                with contextlib.suppress(h11.LocalProtocolError, ConnectionError):
                    writer.write(self._encode(conn, error_reply(400, str(exc))))
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # stop_async cancels us. Finish normally: asyncio.streams logs an error for
            # a connection task that ends cancelled.
            pass
        finally:
            writer.close()
            try:
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            finally:
                if task is not None:
                    self._connections.discard(task)

    async def _read_request(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: Any,
    ) -> Request | None:
        head: h11.Request | None = None
        chunks: list[bytes] = []
        size = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if head is not None and conn.they_are_waiting_for_100_continue:
                    go_on = h11.InformationalResponse(
                        status_code=100, headers=[], reason=b"Continue"
                    )
                    writer.write(conn.send(go_on) or b"")
                conn.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_BODY:
                    raise h11.RemoteProtocolError("request body too large")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                if head is None:  # cannot happen: h11 sends Request first
                    return None
                target = head.target.decode("ascii", "replace")
                path, _, query = target.partition("?")
                return Request(
                    method=head.method.decode("ascii", "replace"),
                    path=path,
                    query=query,
                    headers={name: value for name, value in head.headers},
                    body=b"".join(chunks),
                    peer=peer,
                )
            else:  # ConnectionClosed, or PAUSED after a client half-close
                return None

    @staticmethod
    def _encode(conn: h11.Connection, reply: Reply) -> bytes:
        headers = [
            ("Content-Type", reply.content_type),
            ("Content-Length", str(len(reply.body))),
            ("Server", "faxflow-simulator"),
            *reply.headers,
        ]
        out = conn.send(
            h11.Response(status_code=reply.status, headers=headers, reason=_reason(reply.status))
        ) or b""
        if reply.body:
            out += conn.send(h11.Data(data=reply.body)) or b""
        out += conn.send(h11.EndOfMessage()) or b""
        return out

    # -- routing -------------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Reply:
        try:
            if request.path.startswith("/faxin/"):
                return await self._faxin(request)
            if request.path.startswith("/_sim/"):
                return self._sim_api(request)
            return error_reply(404, "not found")
        except SimulatorError as exc:
            return error_reply(exc.status, str(exc))

    async def _faxin(self, request: Request) -> Reply:
        plan = self.sim.plan_faults()
        if plan is NO_FAULTS:
            return self._api(request)
        if plan.status is not None:  # answered before processing: no effect
            headers = [("Retry-After", "1")] if plan.status == 429 else []
            reply = error_reply(plan.status, "injected fault", headers)
        else:
            reply = self._api(request)
            if plan.malformed and reply.content_type == JSON_TYPE and reply.status == 200:
                reply.body = reply.body[: len(reply.body) // 2]
            reply.drop = plan.drop
        if plan.latency:
            await asyncio.sleep(plan.latency)  # other connections go on meanwhile
        return reply

    def _api(self, request: Request) -> Reply:
        rest = request.path[len(API_PREFIX) :] if request.path.startswith(API_PREFIX) else ""
        kind, _, name = rest[1:].partition("/")
        if kind not in ("topics", "files") or not name or "/" in name:
            return error_reply(404, "not found")
        wanted = "POST" if kind == "topics" else "GET"
        if request.method != wanted:
            return error_reply(405, "method not allowed", [("Allow", wanted)])
        user = self._user(request.headers.get(b"authorization"))
        if user is None:
            return error_reply(
                401, "unauthorized", [("WWW-Authenticate", 'Basic realm="Fax2WSPull"')]
            )
        if kind == "files":
            found = self.sim.get_file(user, unquote(name))
            if found is None:
                return error_reply(404, "no such file")
            content, content_type = found
            return Reply(200, content, content_type)
        return self._poll(request, user, unquote(name))

    def _poll(self, request: Request, user: str, topic: str) -> Reply:
        if not self.sim.owns(user, topic):
            return error_reply(403, "forbidden")
        params: dict[str, str] = {}
        ids: list[str] = []
        for key, value in parse_qsl(request.query, keep_blank_values=True):
            if key == "ids":  # encoded (a%2Cb) or literal (a,b) commas both split here
                ids.extend(part for part in value.split(",") if part)
            else:
                params.setdefault(key, value)
        fetch = _int_param(params, "fetch", DEFAULT_FETCH)
        timeout = _int_param(params, "timeout", DEFAULT_TIMEOUT)

        origin = f"{self.scheme}://{self._host(request)}"
        jobs = self.sim.pull(topic, ids, fetch, timeout, origin + API_PREFIX)

        topic_url = f"{origin}{API_PREFIX}/topics/{quote(topic, safe='')}"
        acks = ""
        if jobs:
            acks = "&ids=" + quote(",".join(job["id"] for job in jobs), safe="")
        meta = {
            "version": 1,
            "next": f"{topic_url}?fetch={fetch}&timeout={timeout}{acks}",
            "exit": f"{topic_url}?fetch=0&timeout={timeout}{acks}",
            "topic": topic,
            "resultSize": len(jobs),
            "parameters": {"fetch": fetch, "timeout": timeout, "ids": ids},
        }
        return json_reply(200, {"meta": meta, "results": jobs})

    def _host(self, request: Request) -> str:
        host = request.headers.get(b"host")
        if host:
            return host.decode("ascii", "replace")
        return self.base_url.split("://", 1)[1]

    def _user(self, header: bytes | None) -> str | None:
        """The authenticated user of an Authorization header, or None."""
        if header is None:
            return None
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return None
        try:  # standard base64 only: the URL-safe alphabet of the SDK bug is refused
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        name, colon, password = decoded.partition(":")
        if colon and self.sim.authenticate(name, password):
            return name
        return None

    # -- /_sim/ --------------------------------------------------------------------------

    def _sim_api(self, request: Request) -> Reply:
        if not _is_loopback(request.peer):
            return error_reply(403, "/_sim/ is for loopback clients only")
        parts = request.path.split("/")[2:]  # after "", "_sim"
        if len(parts) >= 2 and parts[0] == "topics":
            topic = unquote(parts[1])
            if len(parts) == 2:
                if request.method != "GET":
                    return error_reply(405, "method not allowed", [("Allow", "GET")])
                return json_reply(200, self.sim.topic_state(topic))
            if len(parts) == 3 and parts[2] == "faxes":
                if request.method != "POST":
                    return error_reply(405, "method not allowed", [("Allow", "POST")])
                return self._sim_add_fax(request, topic)
        elif parts == ["clock"]:
            if request.method != "POST":
                return error_reply(405, "method not allowed", [("Allow", "POST")])
            body = self._json_body(request)
            if "advance" not in body:
                raise BadRequest("advance is required")
            return json_reply(200, {"now": self.sim.advance(body["advance"])})
        elif parts == ["faults"]:
            if request.method != "POST":
                return error_reply(405, "method not allowed", [("Allow", "POST")])
            return json_reply(200, self.sim.set_faults(self._json_body(request)).to_json())
        return error_reply(404, "not found")

    def _sim_add_fax(self, request: Request, topic: str) -> Reply:
        body = self._json_body(request)
        documents = body.pop("documents", None)
        decoded: list[dict[str, Any]] | None = None
        if documents is not None:
            if not isinstance(documents, list):
                raise BadRequest("documents must be a list")
            decoded = []
            for doc in documents:
                if not isinstance(doc, dict) or not isinstance(doc.get("content_base64"), str):
                    raise BadRequest("each document needs extension and content_base64")
                try:
                    content = base64.b64decode(doc["content_base64"], validate=True)
                except binascii.Error:
                    raise BadRequest("content_base64 is not valid base64") from None
                decoded.append({"extension": doc.get("extension"), "content": content})
        api_url = f"{self.scheme}://{self._host(request)}{API_PREFIX}"
        return json_reply(201, self.sim.create_fax(topic, decoded, body, api_url))

    @staticmethod
    def _json_body(request: Request) -> dict[str, Any]:
        if not request.body.strip():
            return {}
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("body is not JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        return body
