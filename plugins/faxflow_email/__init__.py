"""Destination ``email``: send the fax by SMTP (STARTTLS or implicit TLS, AUTH).

Config::

    [plugins.email]
    host = "smtp.example.com"
    port = 587                        # default: 465 for security "tls", else 587
    security = "starttls"             # "starttls", "tls" (implicit) or "none" (local relay)
    username = "faxflow"
    password = "${SMTP_PASSWORD}"
    from = "Fax <fax@example.com>"
    max_attachment_bytes = 10000000
    link_template = "https://files.example.com/{topic}/{fax_id}/{file}"   # optional
    ca_file = "/etc/ssl/my-ca.pem"    # optional: trust this CA instead of the system's
    timeout = 30

Route options: ``to`` (address or list, required), ``cc``, ``from``, ``subject``, ``body``,
``content`` (original, searchable, both), ``link`` (a URL to put in the mail instead of
attachments that exceed the size limit; overrides ``link_template``).

Every item of ``to``/``cc``/``from`` must be exactly one address (``a@host`` or
``Name <a@host>``), also after a template filled it in: a rendered value with a comma, a
control character or anything else is a permanent failure of the route, never an extra
recipient. Header text from the fax goes through `headers.header_text` (see there why).
"""

from __future__ import annotations

import email.policy
import logging
import smtplib
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from faxflow import delivery
from faxflow.app import App
from faxflow.config import Config, ConfigProblem
from faxflow.hookspecs import hookimpl
from faxflow.types import DeliveryResult, DestinationType, Fax, Notice, Route
from faxflow_email import headers

log = logging.getLogger("faxflow.email")

ROUTE_OPTIONS: dict[str, tuple[type, ...]] = {
    "to": (str, list), "cc": (str, list), "from": (str,), "subject": (str,), "body": (str,),
    "content": (str,), "link": (str,),
}
PLUGIN_OPTIONS: dict[str, tuple[type, ...]] = {
    "host": (str,), "port": (int,), "security": (str,), "username": (str,),
    "password": (str,), "from": (str,), "max_attachment_bytes": (int,),
    "link_template": (str,), "ca_file": (str,), "timeout": (int, float),
    **delivery.RETRY_OPTIONS,
}
SECURITY = ("starttls", "tls", "none")


def check_options(options: Mapping[str, Any]) -> list[str]:
    problems = delivery.check_types(options, ROUTE_OPTIONS, required=("to",))
    problems += delivery.check_choice(options, "content", delivery.CONTENT_CHOICES)
    for name in ("to", "cc", "from"):
        value = options.get(name)
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            problems.append(f"{name}: must be a list of addresses")
            continue
        items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        for item in items:
            if "{{" in item or "{%" in item:
                continue  # a template: its rendered value is checked per fax
            try:
                headers.mailbox(item)
            except headers.AddressError as exc:
                problems.append(f"{name}: {exc}")
    return problems


@hookimpl
def faxflow_destination_types() -> list[DestinationType]:
    return [DestinationType("email", check_options, "Send the fax as an email (SMTP).",
                            address_options=frozenset({"to", "cc"}))]


@hookimpl
def faxflow_check_config(config: Config) -> list[ConfigProblem]:
    opts = config.plugin_options("email")
    if not opts:
        return []
    path = ("plugins", "email")
    problems = [ConfigProblem((*path, p.split(":")[0]), p.split(": ", 1)[1])
                for p in delivery.check_types(opts, PLUGIN_OPTIONS, required=("host", "from"))]
    if opts.get("security", "starttls") not in SECURITY:
        problems.append(ConfigProblem((*path, "security"), f"must be one of {', '.join(SECURITY)}"))
    if "username" in opts and "password" not in opts:
        problems.append(ConfigProblem((*path, "password"), "required with username"))
    if isinstance(opts.get("from"), str) and not _addresses(opts["from"]):
        problems.append(ConfigProblem((*path, "from"), "not an email address"))
    if isinstance(opts.get("link_template"), str):
        try:
            opts["link_template"].format(topic="t", fax_id="f", file="x", key="k")
        except (KeyError, IndexError, ValueError) as exc:
            problems.append(ConfigProblem((*path, "link_template"),
                                          f"unknown placeholder {exc} (use {{topic}}, "
                                          "{fax_id}, {file}, {key})"))
    return problems


@hookimpl
def faxflow_deliver(fax: Fax, route: Route, app: App) -> DeliveryResult | None:
    if route.type != "email":
        return None
    return mailed(app, lambda settings: build_message(fax, route, settings))


def mailed(app: App, build: Callable[[Mapping[str, Any]], Outgoing]) -> DeliveryResult:
    """Build a mail with the [plugins.email] settings and send it: a fax's or a digest."""
    settings = app.plugin_options("email")
    if not settings.get("host"):
        # The operator's to fix, not the fax's fault: let the fax wait for it.
        return DeliveryResult.transient("email: [plugins.email] host is not configured")
    try:
        mail = build(settings)
        send(mail, settings, delivery.policy_from(settings))
    except delivery.DeliveryError as exc:
        return delivery.as_result(exc)
    return DeliveryResult.delivered(f"mailed to {', '.join(mail.recipients)}{mail.note}",
                                    reference=str(mail.message["Message-ID"]))


def _addresses(value: str | list[str]) -> list[str]:
    """The addr-specs of a static config value, or [] if any item is not one mailbox."""
    try:
        return [m.address for m in headers.mailboxes(value)]
    except headers.AddressError:
        return []


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One mail as it goes to the server: the envelope is ours, never read from headers."""

    message: EmailMessage
    sender: str
    recipients: list[str]
    data: bytes
    note: str = ""


def envelope(route: Route, settings: Mapping[str, Any], subject: str, key: str
             ) -> tuple[EmailMessage, headers.Mailbox, list[headers.Mailbox]]:
    """A message with its From/To/Cc/Subject/Message-ID/Date headers, its sender and its
    recipients, each parsed as exactly one mailbox."""
    opts = route.options
    try:
        to = headers.mailboxes(opts.get("to", []))
        cc = headers.mailboxes(opts["cc"]) if opts.get("cc") else []
    except headers.AddressError as exc:
        raise delivery.permanent(f"to/cc: {exc}") from None
    try:
        (sender,) = headers.mailboxes(str(opts.get("from") or settings["from"]))
    except (headers.AddressError, ValueError) as exc:
        raise delivery.permanent(f"from: {exc}") from None
    msg = EmailMessage()
    msg["From"] = sender.header()
    msg["To"] = [m.header() for m in to]
    if cc:
        msg["Cc"] = [m.header() for m in cc]
    msg["Subject"] = headers.header_text(subject)
    # Stable per fax and route, so a mail sent twice (crash after the server accepted it)
    # can be recognized as the same one by the receiver.
    msg["Message-ID"] = f"<{key}@faxflow>"
    msg["Date"] = formatdate(localtime=False)
    return msg, sender, [*to, *cc]


def verified(msg: EmailMessage, sender: headers.Mailbox, recipients: list[headers.Mailbox],
             note: str = "") -> Outgoing:
    data = msg.as_bytes(policy=email.policy.SMTP)
    try:
        headers.verify(data, msg, recipients)
    except headers.AddressError as exc:
        raise delivery.permanent(f"email: refusing to send a mail that would not arrive as "
                                 f"built: {exc}") from None
    return Outgoing(msg, sender.address, [m.address for m in recipients], data, note)


@hookimpl
def faxflow_notify(notice: Notice, route: Route, app: App) -> DeliveryResult | None:
    """An alert digest as a plain text mail to the route's recipients."""
    if route.type != "email":
        return None

    def build(settings: Mapping[str, Any]) -> Outgoing:
        msg, sender, recipients = envelope(route, settings, notice.subject, notice.key)
        msg.set_content(notice.text + (f"\n\n{notice.link}\n" if notice.link else "\n"))
        return verified(msg, sender, recipients)

    return mailed(app, build)


def build_message(fax: Fax, route: Route, settings: Mapping[str, Any]) -> Outgoing:
    """The mail for one route. Every header is built from parsed mailboxes and header-safe
    text; the serialized bytes are parsed back and compared before they may be sent."""
    opts = route.options
    key = delivery.stable_key(fax, route)
    msg, sender, recipients = envelope(
        route, settings, str(opts.get("subject") or delivery.describe(fax)), key)
    msg["X-Faxflow-Fax-Id"] = headers.header_text(fax.id, 200)
    files = delivery.files_to_send(fax, str(opts.get("content", "original")))
    body = str(opts.get("body") or default_body(fax))
    limit = int(settings.get("max_attachment_bytes", 10_000_000))
    total = sum(f.size for f in files)
    note = ""
    if total > limit:
        links = [link_for(fax, route, settings, f.name, key) for f in files]
        if not all(links):
            raise delivery.permanent(
                f"email: attachments are {total} bytes, more than max_attachment_bytes "
                f"({limit}), and no link or link_template is configured")
        body += "\n\nThe fax is too large to attach; download it here:\n" + "\n".join(
            str(link) for link in links)
        files = []
        note = " (as a link: too large to attach)"
    msg.set_content(body)
    for f in files:
        maintype, _, subtype = f.content_type.partition("/")
        msg.add_attachment(f.path.read_bytes(), maintype=maintype,
                           subtype=subtype or "octet-stream", filename=f.name)
    return verified(msg, sender, recipients, note)


def default_body(fax: Fax) -> str:
    return delivery.summary(fax) + "\n"


def link_for(fax: Fax, route: Route, settings: Mapping[str, Any], file: str,
             key: str) -> str | None:
    if route.options.get("link"):
        return str(route.options["link"])
    template = settings.get("link_template")
    if not template:
        return None
    return str(template).format(topic=fax.topic, fax_id=fax.id, file=file, key=key)


def ssl_context(settings: Mapping[str, Any]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=settings.get("ca_file"))


def send(mail: Outgoing, settings: Mapping[str, Any],
         policy: delivery.RetryPolicy = delivery.DEFAULT_POLICY) -> None:
    """Connect and log in (retried on transient errors), then hand the mail over once: if the
    connection dies during DATA we cannot know whether the server took it, so no resend in
    this attempt (the next attempt resends with the same Message-ID: at-least-once)."""
    server = delivery.retry(lambda: connect(settings), policy, what="SMTP connect")
    try:
        delivery.retry(lambda: _send_message(server, mail), policy, what="SMTP send")
    finally:
        try:
            server.quit()
        except (smtplib.SMTPException, OSError):
            server.close()


def connect(settings: Mapping[str, Any]) -> smtplib.SMTP:
    host = str(settings["host"])
    security = settings.get("security", "starttls")
    port = int(settings.get("port") or (465 if security == "tls" else 587))
    timeout = float(settings.get("timeout", 30))
    server: smtplib.SMTP | None = None
    try:
        if security == "tls":
            server = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl_context(settings))
        else:
            server = smtplib.SMTP(host, port, timeout=timeout)
        server.ehlo()
        if security == "starttls":
            server.starttls(context=ssl_context(settings))
            server.ehlo()
        if settings.get("username"):
            server.login(str(settings["username"]), str(settings["password"]))
        return server
    except (smtplib.SMTPException, OSError) as exc:
        if server is not None:
            server.close()
        raise smtp_error(exc, f"SMTP {host}:{port}", sent=False) from None


def _send_message(server: smtplib.SMTP, mail: Outgoing) -> None:
    try:
        # The verified bytes and our own envelope: send_message would take the recipients
        # from the (decoded) headers again.
        refused = server.sendmail(mail.sender, mail.recipients, mail.data)
    except (smtplib.SMTPException, OSError) as exc:
        # Disconnects and timeouts here leave the outcome unknown (sent=True: no resend).
        raise smtp_error(exc, "SMTP send", sent=True) from None
    if refused:
        # Some recipients took it: resending would duplicate it for them.
        log.warning("email %s: refused by some recipients: %s", mail.message["Message-ID"],
                    {k: v[0] for k, v in refused.items()})


def smtp_error(exc: BaseException, what: str, *, sent: bool) -> delivery.DeliveryError:
    """4xx, network errors and timeouts are transient; 5xx answers permanent. Failed
    authentication and TLS problems are configuration problems: transient, so faxes wait
    for the fix."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return delivery.transient(f"{what}: authentication failed ({exc.smtp_code}); check "
                                  "[plugins.email] username and password")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        answers = {addr: (code, _text(msg)) for addr, (code, msg) in exc.recipients.items()}
        detail = "; ".join(f"{a}: {c} {m}" for a, (c, m) in answers.items())
        if all(code >= 500 for code, _ in answers.values()):
            return delivery.permanent(f"{what}: recipients refused: {detail}")
        return delivery.transient(f"{what}: recipients refused for now: {detail}")
    if isinstance(exc, smtplib.SMTPResponseException):
        detail = f"{what}: {exc.smtp_code} {_text(exc.smtp_error)}"
        if 400 <= exc.smtp_code < 500:
            return delivery.transient(detail)
        return delivery.permanent(detail)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return delivery.transient(f"{what}: {exc} (check [plugins.email] security)")
    if isinstance(exc, ssl.SSLError):
        return delivery.transient(f"{what}: TLS failed: {exc.reason or exc}")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return delivery.transient(f"{what}: server disconnected", sent=sent)
    if isinstance(exc, TimeoutError):
        return delivery.transient(f"{what}: timed out", sent=sent)
    if isinstance(exc, OSError):
        return delivery.transient(f"{what}: {exc.strerror or exc}", sent=sent)
    return delivery.transient(f"{what}: {exc}", sent=sent)


def _text(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return delivery.one_line(text, 300)

