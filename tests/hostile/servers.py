"""What carries the hostile input: a simulator that can serve a job exactly as a hostile
server would, and a server on another loopback address that records every request.

The simulator fills every job field that is not given and always builds the document URLs
itself (docs/simulator.md), so it can neither drop a field nor point a document elsewhere.
`RawSimulator` adds that, only for these tests, by changing what a poll shows of chosen jobs:
`drop` removes fields, `replace` sets raw values (any JSON type, also for `dateReceived`,
which `add_fax` only takes well-formed), `documents` replaces the document list, with
`{api}` in a URL standing for the simulator's API base.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from faxflow.simulator import Simulator
from faxflow.simulator.store import Job


@dataclass
class Override:
    drop: tuple[str, ...] = ()
    replace: dict[str, Any] = field(default_factory=dict)
    documents: list[Any] | None = None


class RawSimulator(Simulator):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.overrides: dict[str, Override] = {}

    def _view(self, job: Job, api_url: str) -> dict[str, Any]:  # type: ignore[override]
        view = Simulator._view(job, api_url)
        override = self.overrides.get(job.id)
        if override is None:
            return view
        for name in override.drop:
            view.pop(name, None)
        view.update(override.replace)
        if override.documents is not None:
            view["documents"] = [
                {**d, "url": d["url"].replace("{api}", api_url)}
                if isinstance(d, dict) and isinstance(d.get("url"), str) else d
                for d in override.documents]
        return view


class Recorder:
    """A plain HTTP server that answers 200 with a small PDF-looking body to anything and
    records each request line; the worker must never reach it."""

    def __init__(self, host: str) -> None:
        self.hits: list[str] = []
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                hits.append(f"{self.command} {self.path}")
                body = b"%PDF-1.4\n% from the other host\n"
                self.send_response(200)
                self.send_header("Content-Type", "application/pdf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_HEAD = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.host = host
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
