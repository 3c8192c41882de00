"""A small threaded HTTP server on 127.0.0.1 for fake services, with scripted faults.

A fake subclasses `FakeService` and implements `handle(request) -> Reply`. Tests queue
faults: an error answer instead of the real one (401, 429 with Retry-After, 503, ...) or the
real work done and then the connection dropped without an answer (a lost response, the case
where a client cannot know whether its create call worked).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def multipart(self) -> list[tuple[str | None, str | None, bytes]]:
        """(field name, file name, content) of each part of a multipart/form-data body."""
        head = f"Content-Type: {self.headers.get('content-type', '')}\r\n\r\n".encode()
        msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(head + self.body)
        parts = []
        for part in msg.iter_parts():
            payload = part.get_payload(decode=True)
            name = part.get_param("name", header="content-disposition")
            parts.append((name if isinstance(name, str) else None, part.get_filename(),
                          payload if isinstance(payload, bytes) else b""))
        return parts


@dataclass
class Reply:
    status: int
    body: Any = None  # dict/list -> JSON, bytes as they are
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    method: str
    path: str  # regular expression matched against the path
    reply: Reply | None = None  # None: do the real work, then drop the connection
    times: int = 1


class FakeService:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # --- to override ---
    def handle(self, request: Request) -> Reply:
        raise NotImplementedError

    # --- running ---
    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeService:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else delayed ACKs add ~40 ms per request

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                service._serve(self)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def fail(self, method: str, path: str, status: int | None = None, body: Any = None,
             headers: dict[str, str] | None = None, times: int = 1) -> None:
        """Queue a fault; `status=None` means do the work, then drop the connection."""
        reply = None if status is None else Reply(status, body, headers or {})
        self.faults.append(Fault(method, path, reply, times))

    def _fault_for(self, request: Request) -> Fault | None:
        for fault in self.faults:
            if fault.method == request.method and re.fullmatch(fault.path, request.path):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        split = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        request = Request(h.command, split.path, parse_qs(split.query, keep_blank_values=True),
                          {k.lower(): v for k, v in h.headers.items()}, h.rfile.read(length))
        with self.lock:
            self.requests.append(request)
            fault = self._fault_for(request)
            if fault is not None and fault.reply is not None:
                reply = fault.reply
            else:
                try:
                    reply = self.handle(request)
                except Exception as exc:  # a fake's bug shows up as a 500 with its message
                    reply = Reply(500, {"message": repr(exc)})
        if fault is not None and fault.reply is None:
            h.close_connection = True  # the work is done, the answer is lost
            return
        if isinstance(reply.body, bytes):
            data, ctype = reply.body, "application/octet-stream"
        elif reply.body is None:
            data, ctype = b"", "application/json"
        else:
            data, ctype = json.dumps(reply.body).encode(), "application/json; charset=utf-8"
        h.send_response(reply.status)
        h.send_header("Content-Type", reply.headers.pop("Content-Type", ctype))
        for name, value in reply.headers.items():
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def count(self, method: str, path: str) -> int:
        return sum(1 for r in self.requests if r.method == method and re.fullmatch(path, r.path))
