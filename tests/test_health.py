"""The health endpoint answers during a real run: /healthz, /readyz, /metrics; and its cost
stays bounded whatever clients do (idle, slow, oversized, wrong method, stuck journal)."""

from __future__ import annotations

import itertools
import logging
import resource
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_core_e2e import add_faxes, config_text, run_in_thread, sim  # noqa: F401

NAMES = ["faxflow_faxes_pulled_total", "faxflow_faxes_acknowledged_total",
         "faxflow_faxes_quarantined_total", "faxflow_faxes_retried_total",
         "faxflow_deliveries_total", "faxflow_ocr_seconds_per_page",
         "faxflow_in_flight", "faxflow_seconds_since_last_pull"]


def test_metrics_and_probes_during_a_run(sim, env, tmp_path: Path) -> None:  # noqa: F811
    add_faxes(sim, 5)
    config = tmp_path / "faxflow.toml"
    config.write_text(config_text(sim.api_url) + '\n[health]\nlisten = "127.0.0.1:0"\n'
                      "ready_after = 30\n")
    seen: dict[str, httpx.Response] = {}

    def probe() -> bool:
        from faxflow.health import HealthServer  # noqa: F401  (started by the runner)
        done = sim.sim.topic_state("abc123")["acknowledged"] == 5
        port = probe.app.state.get("health_port") if hasattr(probe, "app") else None
        if done and port:
            base = f"http://127.0.0.1:{port}"
            for path in ("/healthz", "/readyz", "/metrics", "/nope"):
                seen[path] = httpx.get(base + path)
        return done and bool(seen)

    run_in_thread(config, probe, 30, on_app=lambda app: setattr(probe, "app", app))
    assert seen["/healthz"].status_code == 200
    assert seen["/readyz"].status_code == 200, seen["/readyz"].text
    assert seen["/readyz"].json()["journal_writable"] is True
    assert seen["/nope"].status_code == 404
    text = seen["/metrics"].text
    for name in NAMES:
        assert name in text, name
    assert 'faxflow_deliveries_total{destination="testdir",outcome="delivered"} 5.0' in text


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("SIM_PASSWORD", "secret")
    monkeypatch.setenv("E2E_OUT", str(out))
    monkeypatch.setenv("FAXFLOW_LOAD_PLUGINS", "")


def test_readyz_fails_without_a_recent_pull(faxflow_app_factory) -> None:  # type: ignore[no-untyped-def]
    from faxflow.health import HealthServer

    app = faxflow_app_factory()
    server = HealthServer(app, "127.0.0.1", 0).start()
    try:
        response = httpx.get(f"http://127.0.0.1:{server.port}/readyz")
        assert response.status_code == 503
        assert response.json()["seconds_since_last_pull"] is None
    finally:
        server.stop()


# --- Bounded cost, whatever clients do. Real sockets over loopback; short timeouts so each
# test takes a second or two (the defaults are in faxflow/health.py).

def _server(app: Any, **limits: Any) -> Any:
    from faxflow.health import HealthServer

    return HealthServer(app, "127.0.0.1", 0, **limits).start()


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """True once the server closed `sock` (EOF or reset), waiting up to `within` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionError:
        return True
    except TimeoutError:
        return False


def _still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""  # data would be a surprise; say "open" and let it show
    except BlockingIOError:
        return True
    except ConnectionError:
        return False
    finally:
        sock.setblocking(True)


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_idle_connections_do_not_cost_a_thread_each(faxflow_app_factory) -> None:  # type: ignore[no-untyped-def]
    # The old server (ThreadingHTTPServer) started one thread per connection and kept it
    # while the client stayed silent: 500 idle connections were 500 threads.
    idle = 500
    assert idle * 2 + 100 < resource.getrlimit(resource.RLIMIT_NOFILE)[0]  # both ends here
    server = _server(faxflow_app_factory(), max_connections=idle + 10, read_timeout=30)
    baseline = threading.active_count()
    socks: list[socket.socket] = []
    try:
        for i in range(idle):
            socks.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
            if i % 50 == 49:  # let the server catch up (a full listen queue drops SYNs,
                time.sleep(0.05)  # which costs a second each); fail early on threads
                assert threading.active_count() - baseline < 20, f"after {i + 1} connections"
        time.sleep(0.5)  # let the server accept them all
        assert threading.active_count() - baseline < 20
        assert all(_still_open(s) for s in socks)  # held, not refused: the test is real
        response = httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
        assert response.status_code == 200
        assert threading.active_count() - baseline < 20
    finally:
        for s in socks:
            s.close()
        server.stop()


def test_over_the_cap_closed_at_once_and_idle_ones_dropped_after_the_timeout(
        faxflow_app_factory, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    cap = 10
    server = _server(faxflow_app_factory(), max_connections=cap, read_timeout=1.0)
    try:
        first = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(cap)]
        time.sleep(0.3)
        more = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(20)]
        assert all(_closed_by_server(s, 1.0) for s in more)
        assert all(_still_open(s) for s in first)
        started = time.monotonic()
        assert all(_closed_by_server(s, 3.0) for s in first)  # the read timeout
        assert time.monotonic() - started < 2.0
        assert httpx.get(f"http://127.0.0.1:{server.port}/healthz").status_code == 200
        refusals = [r for r in caplog.records if "closed at once" in r.getMessage()]
        assert len(refusals) == 1, "one warning per interval, not one per connection"
    finally:
        for s in first + more:
            s.close()
        server.stop()


def test_a_slowloris_client_is_cut_off_after_the_read_timeout(faxflow_app_factory) -> None:  # type: ignore[no-untyped-def]
    # A byte every 0.05 s keeps any per-read timeout happy; the limit is on the whole
    # request, so the dribbling client is closed after read_timeout all the same.
    server = _server(faxflow_app_factory(), read_timeout=1.0)
    dribble = itertools.cycle(b"GET /healthz HTTP/1.1\r\nX-Never-Ending: a\r\n")
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            while time.monotonic() - started < 5:
                try:
                    sock.sendall(bytes([next(dribble)]))
                except (BrokenPipeError, ConnectionResetError):
                    break
                if _closed_by_server(sock, 0.05):
                    break
            else:
                pytest.fail("the server kept a dribbling client for 5 s")
        assert 0.9 < time.monotonic() - started < 2.5
    finally:
        server.stop()


def test_oversized_requests_are_refused(faxflow_app_factory) -> None:  # type: ignore[no-untyped-def]
    server = _server(faxflow_app_factory(), max_request_bytes=4096)
    try:
        headers = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 500) for i in range(40))
        answer = _raw(server.port, b"GET /healthz HTTP/1.1\r\n" + headers + b"\r\n")
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]
        answer = _raw(server.port, b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]
        assert _raw(server.port, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
        assert httpx.get(f"http://127.0.0.1:{server.port}/healthz").status_code == 200
    finally:
        server.stop()


def test_only_get_and_head(faxflow_app_factory, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG, logger="faxflow")
    server = _server(faxflow_app_factory())
    base = f"http://127.0.0.1:{server.port}"
    try:
        for method in ("POST", "PUT", "DELETE", "OPTIONS"):
            response = httpx.request(method, base + "/healthz", content=b"x" * 1000)
            assert response.status_code == 405, method
            assert response.headers["allow"] == "GET, HEAD"
        head = httpx.head(base + "/healthz")
        assert head.status_code == 200
        assert head.content == b""
        assert int(head.headers["content-length"]) == len(httpx.get(base + "/healthz").content)
        assert httpx.get(base + "/metrics").status_code == 200
        assert not [r for r in caplog.records if r.name.startswith("faxflow")], \
            "no log line per request"
    finally:
        server.stop()


class StuckJournal:
    """Stands in for a journal on a locked SQLite file: writable() waits (sqlite3 would wait
    its 30 s busy timeout) until the test releases it."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def writable(self) -> bool:
        self.calls += 1
        self.release.wait(10)
        return True

    def close(self) -> None:
        self.release.set()


def test_readyz_answers_503_quickly_when_the_journal_blocks(faxflow_app_factory) -> None:  # type: ignore[no-untyped-def]
    app = faxflow_app_factory(journal=False)
    app.journal = journal = StuckJournal()
    app.metrics.pull_succeeded()  # pulling is fine: only the journal can make it 503
    server = _server(app, check_timeout=0.3)
    url = f"http://127.0.0.1:{server.port}/readyz"
    try:
        started = time.monotonic()
        response = httpx.get(url, timeout=3)
        assert time.monotonic() - started < 1.5
        assert response.status_code == 503
        assert response.json()["journal_writable"] is False
        assert "no answer" in response.json()["journal_check"]
        for _ in range(3):  # more probes wait on the same stuck check, not on new threads
            assert httpx.get(url, timeout=3).status_code == 503
        assert journal.calls == 1
        assert httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=3).status_code == 200
        journal.release.set()
        time.sleep(0.1)
        assert httpx.get(url, timeout=3).status_code == 200
    finally:
        journal.release.set()
        server.stop()


def test_stop_closes_everything_promptly(faxflow_app_factory) -> None:  # type: ignore[no-untyped-def]
    server = _server(faxflow_app_factory(), read_timeout=30)
    socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(5)]
    try:
        time.sleep(0.2)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 1.0
        assert all(_closed_by_server(s, 1.0) for s in socks)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        assert not any(t.name == "health" for t in threading.enumerate())
    finally:
        for s in socks:
            s.close()
