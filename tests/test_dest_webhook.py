"""Destination `webhook` over real HTTP to a receiver on 127.0.0.1 (tests/servers/webhook.py)
that checks the HMAC signature and de-duplicates by Idempotency-Key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import faxflow_webhook
import httpx
import pytest
from servers import faxes
from servers.faxes import PDF, make_fax
from servers.webhook import Receiver

from faxflow import delivery
from faxflow.app import App
from faxflow.types import Outcome, Route


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()


def app_for(allow_private: bool = True, secret: str = "hook-secret", extra: str = "") -> App:
    toml = (f'[plugins.webhook]\nsecret = "{secret}"\n'
            f"allow_private = {str(allow_private).lower()}\nretry_delay = 0.01\n"
            f"timeout = 5\n{extra}")
    return faxes.make_app({"webhook": faxflow_webhook}, toml)


def route_to(receiver: Receiver, **options: object) -> Route:
    return Route("hook/0", "webhook", {"url": f"{receiver.url}/faxes", **options})


def test_multipart_signed_with_idempotency_key(receiver: Receiver, tmp_path: Path) -> None:
    fax = make_fax(tmp_path / "spool")
    route = route_to(receiver)
    result = app_for().deliver(fax, route, uncertain=False)
    assert result is not None and result.outcome is Outcome.DELIVERED, result
    got = receiver.only()
    assert got.path == "/faxes"
    assert got.headers["idempotency-key"] == delivery.stable_key(fax, route)
    parts = {name: (filename, content) for name, filename, content in got.multipart()}
    meta = json.loads(parts["metadata"][1])
    assert meta["fax"]["id"] == "fax-1" and meta["fax"]["fields"]["total"] == 12.5
    assert "INVOICE 4711" in meta["fax"]["text"]
    assert parts["file"] == ("fax-1.pdf", PDF)


def test_repeat_is_recognized_as_delivered(receiver: Receiver, tmp_path: Path) -> None:
    app = app_for()
    fax = make_fax(tmp_path / "spool")
    first = app.deliver(fax, route_to(receiver), uncertain=False)
    again = app.deliver(fax, route_to(receiver), uncertain=True)
    assert first and again and again.outcome is Outcome.DELIVERED
    assert "already delivered (409)" in again.detail
    assert len(receiver.deliveries) == 1


def test_link_mode(receiver: Receiver, tmp_path: Path) -> None:
    app = app_for(extra='link_template = "https://files.example.test/{fax_id}/{file}"\n')
    result = app.deliver(make_fax(tmp_path / "spool"), route_to(receiver, mode="link"), False)
    assert result is not None and result.outcome is Outcome.DELIVERED
    body = json.loads(receiver.only().body)
    assert body["documents"][0]["url"] == "https://files.example.test/fax-1/fax-1.pdf"
    assert receiver.only().headers["content-type"] == "application/json"


def test_too_large_without_link_is_permanent(receiver: Receiver, tmp_path: Path) -> None:
    app = app_for(extra="max_body_bytes = 10\n")
    result = app.deliver(make_fax(tmp_path / "spool"), route_to(receiver), False)
    assert result is not None and result.outcome is Outcome.PERMANENT
    assert "max_body_bytes" in result.detail and receiver.deliveries == {}


def test_wrong_secret_is_rejected(receiver: Receiver, tmp_path: Path) -> None:
    result = app_for(secret="other").deliver(make_fax(tmp_path / "spool"), route_to(receiver),
                                             False)
    assert result is not None and result.outcome is Outcome.TRANSIENT  # 401: our config
    assert "401" in result.detail and "other" not in result.detail


@pytest.mark.parametrize("status,outcome", [
    (400, Outcome.PERMANENT), (404, Outcome.PERMANENT), (410, Outcome.PERMANENT),
    (422, Outcome.PERMANENT), (408, Outcome.TRANSIENT), (429, Outcome.TRANSIENT),
    (500, Outcome.TRANSIENT), (503, Outcome.TRANSIENT), (302, Outcome.PERMANENT),
])
def test_status_classification(receiver: Receiver, tmp_path: Path, status: int,
                               outcome: Outcome) -> None:
    receiver.fail("POST", "/faxes", status, {"error": f"answer {status}"},
                  {"Retry-After": "0", "Location": "https://elsewhere.test/"}, times=10)
    result = app_for().deliver(make_fax(tmp_path / "spool"), route_to(receiver), False)
    assert result is not None and result.outcome is outcome
    assert str(status) in result.detail


def test_5xx_then_success_is_delivered_once(receiver: Receiver, tmp_path: Path) -> None:
    receiver.fail("POST", "/faxes", 503, {"error": "busy"})
    result = app_for().deliver(make_fax(tmp_path / "spool"), route_to(receiver), False)
    assert result is not None and result.outcome is Outcome.DELIVERED
    assert len(receiver.deliveries) == 1


def test_lost_answer_resend_is_deduplicated(receiver: Receiver, tmp_path: Path) -> None:
    receiver.fail("POST", "/faxes")  # received, answer lost: the resend gets 409
    result = app_for().deliver(make_fax(tmp_path / "spool"), route_to(receiver), False)
    assert result is not None and result.outcome is Outcome.DELIVERED
    assert len(receiver.deliveries) == 1


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/x", "http://localhost:9/x", "http://10.1.2.3/x", "http://192.168.0.1/",
    "http://169.254.169.254/latest/meta-data/", "http://[::1]:9/", "http://0.0.0.0:9/",
    "http://[::ffff:127.0.0.1]:9/", "http://100.64.0.1/", "http://224.0.0.1/",
])
def test_private_targets_refused(url: str, tmp_path: Path) -> None:
    app = app_for(allow_private=False)
    result = app.deliver(make_fax(tmp_path / "spool"), Route("h/0", "webhook", {"url": url}),
                         False)
    assert result is not None and result.outcome is Outcome.PERMANENT, result
    assert "allow_private" in result.detail


def test_bad_urls(tmp_path: Path) -> None:
    app = app_for()
    for url in ("ftp://example.test/", "not a url", ""):
        result = app.deliver(make_fax(tmp_path / "spool"), Route("h/0", "webhook",
                                                                 {"url": url}), False)
        assert result is not None and result.outcome is Outcome.PERMANENT, (url, result)


def test_unresolvable_host_is_transient(tmp_path: Path) -> None:
    route = Route("h/0", "webhook", {"url": "https://no-such-host.invalid/x"})
    result = app_for().deliver(make_fax(tmp_path / "spool"), route, False)
    assert result is not None and result.outcome is Outcome.TRANSIENT
    assert "cannot resolve" in result.detail


def test_receiver_down_is_transient(tmp_path: Path) -> None:
    server = Receiver()
    server.start()
    url = server.url
    server.stop()
    route = Route("h/0", "webhook", {"url": url})
    result = app_for().deliver(make_fax(tmp_path / "spool"), route, False)
    assert result is not None and result.outcome is Outcome.TRANSIENT
    assert "cannot connect" in result.detail


def test_check_options() -> None:
    assert faxflow_webhook.check_options({"url": "{{ rule.url }}", "mode": "link"}) == []
    problems = faxflow_webhook.check_options({"url": "gopher://x", "mode": "xml"})
    assert {p.split(":")[0] for p in problems} == {"url", "mode"}


def test_signature_is_over_the_exact_body(tmp_path: Path) -> None:
    fax = make_fax(tmp_path / "spool")
    with httpx.Client() as client:
        request = faxflow_webhook.build_request(
            client, fax, Route("h/0", "webhook", {"url": "https://example.test/"}),
            {"secret": "k"}, "key")
    import hashlib
    import hmac
    expected = hmac.new(b"k", request.content, hashlib.sha256).hexdigest()
    assert request.headers["X-Faxflow-Signature"] == f"sha256={expected}"
