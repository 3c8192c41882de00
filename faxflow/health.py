"""The optional HTTP endpoint: /healthz (alive), /readyz (pulling and journal writable),
/metrics (Prometheus)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from faxflow.app import App


def readiness(app: App) -> tuple[bool, dict[str, Any]]:
    since = app.metrics.seconds_since_last_pull()
    limit = app.config.health.ready_after
    journal_ok = app.journal is not None and app.journal.writable()
    pulling = since is not None and since <= limit
    return pulling and journal_ok, {
        "seconds_since_last_pull": since, "ready_after": limit, "journal_writable": journal_ok}


class HealthServer:
    def __init__(self, app: App, host: str, port: int) -> None:
        self.app = app
        handler = type("Handler", (_Handler,), {"app": app})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                        name="health")

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    app: App

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(200, "application/json", b'{"status": "alive"}')
        elif path == "/readyz":
            ok, detail = readiness(self.app)
            body = json.dumps({"status": "ready" if ok else "not ready", **detail}).encode()
            self._send(200 if ok else 503, "application/json", body)
        elif path == "/metrics":
            self._send(200, CONTENT_TYPE_LATEST, generate_latest(self.app.metrics.registry))
        else:
            self._send(404, "text/plain", b"not found\n")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # probes every few seconds would flood the log


def parse_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)
