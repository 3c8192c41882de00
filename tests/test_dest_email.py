"""Destination `email` against a real SMTP server (aiosmtpd on 127.0.0.1, STARTTLS or
implicit TLS with a trustme certificate, AUTH); tests read back what the server received."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import faxflow_email
import pytest
from servers import faxes
from servers.faxes import PDF, make_fax
from servers.smtp import SmtpServer

import faxflow.config
from faxflow import delivery
from faxflow.app import App
from faxflow.types import Outcome, Route


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path).start()
    yield server
    server.stop()


def app_for(server: SmtpServer, **extra: object) -> App:
    return faxes.make_app({"email": faxflow_email}, server.settings_toml(**extra))


def route(**options: object) -> Route:
    return Route("mail/0", "email", {"to": "office@example.test", **options})


def test_starttls_auth_attachment(smtp: SmtpServer, tmp_path: Path) -> None:
    app = app_for(smtp)
    fax = make_fax(tmp_path / "spool", sender_fax_id="ACME\r\nBcc: evil@example.test")
    r = route(subject="Invoice from ACME\r\nBcc: evil@example.test", body="See attached.")
    result = app.deliver(fax, r, uncertain=False)
    assert result is not None and result.outcome is Outcome.DELIVERED, result
    (msg,) = smtp.messages
    key = delivery.stable_key(fax, r)
    assert msg["Message-ID"].strip() == f"<{key}@faxflow>" == result.reference
    assert msg["Subject"] == "Invoice from ACME Bcc: evil@example.test"  # no header injection
    assert msg["Bcc"] is None
    assert msg["To"] == "office@example.test"
    body = msg.get_body(("plain",))
    assert body is not None and "See attached." in body.get_content()
    (part,) = list(msg.iter_attachments())
    assert part.get_filename() == "fax-1.pdf"
    assert part.get_content_type() == "application/pdf"
    assert part.get_content() == PDF


def test_implicit_tls(tmp_path: Path) -> None:
    server = SmtpServer(tmp_path, implicit_tls=True).start()
    try:
        app = app_for(server)
        fax = make_fax(tmp_path / "spool", searchable=True)
        result = app.deliver(fax, route(content="both", cc=["a@example.test"]), False)
        assert result is not None and result.outcome is Outcome.DELIVERED, result
        (msg,) = server.messages
        names = [p.get_filename() for p in msg.iter_attachments()]
        assert names == ["fax-1.pdf", "fax-1.searchable.pdf"]
        assert msg["Cc"] == "a@example.test"
        assert "Fax from +49891234567 (fax-1)" in msg["Subject"]
    finally:
        server.stop()


def test_server_down_is_transient_then_delivered_once(tmp_path: Path) -> None:
    server = SmtpServer(tmp_path)  # not started: connection refused
    app = app_for(server)
    fax = make_fax(tmp_path / "spool")
    down = app.deliver(fax, route(), uncertain=False)
    assert down is not None and down.outcome is Outcome.TRANSIENT
    assert "SMTP 127.0.0.1" in down.detail
    server.start()
    try:
        up = app.deliver(fax, route(), uncertain=False)
        assert up is not None and up.outcome is Outcome.DELIVERED
        assert len(server.messages) == 1
    finally:
        server.stop()


def test_unknown_recipient_is_permanent(smtp: SmtpServer, tmp_path: Path) -> None:
    smtp.handler.refuse["nobody@example.test"] = "550 5.1.1 <nobody@example.test>: unknown user"
    app = app_for(smtp)
    result = app.deliver(make_fax(tmp_path / "spool"), route(to="nobody@example.test"), False)
    assert result is not None and result.outcome is Outcome.PERMANENT
    assert "550" in result.detail and "unknown user" in result.detail
    assert smtp.messages == []


def test_greylisting_4xx_is_transient(smtp: SmtpServer, tmp_path: Path) -> None:
    smtp.handler.refuse["grey@example.test"] = "451 4.7.1 greylisted, try again later"
    app = faxes.make_app({"email": faxflow_email}, smtp.settings_toml())
    fast = delivery.RetryPolicy(attempts=2, base_delay=0.01)
    settings = app.plugin_options("email")
    mail = faxflow_email.build_message(make_fax(tmp_path / "spool"),
                                       route(to="grey@example.test"), settings)
    with pytest.raises(delivery.DeliveryError) as info:
        faxflow_email.send(mail, settings, fast)
    assert info.value.transient and "451" in info.value.message


def test_wrong_password_is_transient_and_not_logged(smtp: SmtpServer, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    toml = smtp.settings_toml().replace("s3cret-pw", "wrong-pw-123")
    app = faxes.make_app({"email": faxflow_email}, toml)
    result = app.deliver(make_fax(tmp_path / "spool"), route(), uncertain=False)
    assert result is not None and result.outcome is Outcome.TRANSIENT
    assert "authentication failed" in result.detail
    assert "wrong-pw-123" not in result.detail + caplog.text


def test_untrusted_certificate_is_transient(smtp: SmtpServer, tmp_path: Path) -> None:
    toml = "\n".join(line for line in smtp.settings_toml().splitlines()
                     if not line.startswith("ca_file"))
    app = faxes.make_app({"email": faxflow_email}, toml)
    result = app.deliver(make_fax(tmp_path / "spool"), route(), uncertain=False)
    assert result is not None and result.outcome is Outcome.TRANSIENT
    assert "TLS" in result.detail
    assert smtp.messages == []


def test_too_large_without_link_is_permanent(smtp: SmtpServer, tmp_path: Path) -> None:
    app = app_for(smtp, max_attachment_bytes=100)
    result = app.deliver(make_fax(tmp_path / "spool"), route(), uncertain=False)
    assert result is not None and result.outcome is Outcome.PERMANENT
    assert "max_attachment_bytes" in result.detail
    assert smtp.messages == []


def test_too_large_with_link_template_sends_link(smtp: SmtpServer, tmp_path: Path) -> None:
    app = app_for(smtp, max_attachment_bytes=100,
                  link_template="https://files.example.test/{topic}/{fax_id}/{file}")
    result = app.deliver(make_fax(tmp_path / "spool"), route(), uncertain=False)
    assert result is not None and result.outcome is Outcome.DELIVERED
    (msg,) = smtp.messages
    assert list(msg.iter_attachments()) == []
    body = msg.get_body(("plain",))
    assert body is not None
    assert "https://files.example.test/inbox/fax-1/fax-1.pdf" in body.get_content()


def test_message_id_is_stable_per_fax_and_route(tmp_path: Path) -> None:
    fax = make_fax(tmp_path / "spool")
    settings = {"from": "fax@example.test"}
    a = faxflow_email.build_message(fax, route(), settings).message
    b = faxflow_email.build_message(fax, route(), settings).message
    c = faxflow_email.build_message(fax, Route("mail/1", "email", {"to": "x@example.test"}),
                                    settings).message
    assert a["Message-ID"] == b["Message-ID"] != c["Message-ID"]


def test_check_options_and_config() -> None:
    assert faxflow_email.check_options({"to": "{{ rule.to }}", "subject": "{{ x }}"}) == []
    problems = faxflow_email.check_options({"subject": 3, "to": [1]})
    assert "to: required" not in problems
    assert any(p.startswith("subject:") for p in problems)
    assert any(p.startswith("to:") for p in problems)
    assert faxflow_email.check_options({}) == ["to: required"]
    cfg, _ = faxflow.config.parse('[plugins.email]\nhost = "h"\nfrom = "nope"\n'
                                  'security = "ssl"\nusername = "u"\nlink_template = "{x}"\n')
    paths = {p.path[-1] for p in faxflow_email.faxflow_check_config(cfg)}
    assert paths == {"from", "security", "password", "link_template"}
