"""A real SMTP server (aiosmtpd) on 127.0.0.1 with STARTTLS or implicit TLS and AUTH, using a
`trustme` test CA; it keeps what it receives for the test to read back."""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USER, PASSWORD = "fax", "s3cret-pw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Received:
    """One mail exactly as the server got it: envelope and raw bytes of DATA."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def header_block(self) -> bytes:
        return self.data.split(b"\r\n\r\n", 1)[0]

    def header_names(self) -> list[str]:
        """Names of the top-level header lines (continuation lines belong to the one above)."""
        return [line.split(b":", 1)[0].decode("ascii", "replace").lower()
                for line in self.header_block.split(b"\r\n")
                if line and not line[:1].isspace()]


class Handler:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.received: list[Received] = []
        self.refuse: dict[str, str] = {}  # recipient -> SMTP answer, e.g. "550 5.1.1 unknown"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      bytes(envelope.original_content or envelope.content)))
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        return "250 Message accepted for delivery"


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                  auth_data: Any) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode()
          and auth_data.password == PASSWORD.encode())
    # handled=False: let aiosmtpd send the 235/535 answer itself (else the client hangs).
    return AuthResult(success=ok, handled=False)


class SmtpServer:
    """Start with `start()`, stop with `stop()`; `ca_file` is the CA the client must trust."""

    def __init__(self, folder: Path, *, implicit_tls: bool = False,
                 port: int | None = None) -> None:
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self.context)
        self.ca_file = folder / "smtp-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.implicit_tls = implicit_tls
        self.port = port or free_port()
        self.handler = Handler()
        self.controller: Controller | None = None

    def start(self) -> SmtpServer:
        kwargs: dict[str, Any] = {"authenticator": authenticator, "auth_require_tls": True}
        if self.implicit_tls:
            # aiosmtpd only counts STARTTLS as TLS for AUTH; the whole session is TLS here.
            kwargs.update(ssl_context=self.context, auth_require_tls=False)
        else:
            kwargs.update(tls_context=self.context, require_starttls=True)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     server_hostname="127.0.0.1", **kwargs)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list[EmailMessage]:
        return self.handler.messages

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def settings_toml(self, **extra: Any) -> str:
        lines = ["[plugins.email]", 'host = "127.0.0.1"', f"port = {self.port}",
                 f'security = "{"tls" if self.implicit_tls else "starttls"}"',
                 f'username = "{USER}"', f'password = "{PASSWORD}"',
                 'from = "Fax Inbox <fax@example.test>"', f'ca_file = "{self.ca_file}"',
                 "timeout = 5"]
        extra = {"retry_delay": 0.01, **extra}  # keep in-attempt retries quick in tests
        for key, value in extra.items():
            lines.append(f"{key} = {value!r}" if isinstance(value, str)
                         else f"{key} = {value}")
        return "\n".join(lines).replace("'", '"') + "\n"
