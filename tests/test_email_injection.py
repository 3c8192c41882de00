"""Header and recipient injection into e-mail, asserted on what a real SMTP server received.

Every value a fax sender controls (CSID, numbers, the fax id, fields read from the page) is
tried with RFC 2047 encoded words (q and b, nested, odd charsets), folded lines, NUL and bidi
characters. The server (aiosmtpd on loopback) keeps the envelope and the raw DATA bytes; the
tests read the header block from those bytes, not from our own message object.
"""

from __future__ import annotations

import base64
import dataclasses
import email.parser
import email.policy
from collections.abc import Callable, Iterator
from pathlib import Path

import faxflow_email
import pytest
from servers import faxes
from servers.faxes import make_fax
from servers.smtp import Received, SmtpServer

from faxflow.types import Fax, Number, Outcome, Route


def q(text: str) -> str:
    return "=?utf-8?q?" + "".join(f"={b:02X}" if b < 33 or b > 126 or chr(b) in "=?_" else chr(b)
                                  for b in text.encode()) + "?="


def b(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


INJECT = "x\r\nBcc: evil@attacker.test\r\nReply-To: evil@attacker.test"
END_HEADERS = "x\r\n\r\nInjected body line"
PAYLOADS = {
    "q": q(INJECT),
    "b": b(INJECT),
    "q-upper-charset": q(INJECT).replace("utf-8?q", "UTF-8?Q"),
    "latin1": "=?iso-8859-1?q?x=0D=0ABcc:_evil@attacker.test?=",
    "end-of-headers": q(END_HEADERS),
    "glued": "abc" + q(INJECT) + "def",
    "nested": q(q(INJECT)),
    "nested-b-in-q": q(b(INJECT)),
    "folded": "x\r\n Bcc: evil@attacker.test",
    "bare-lf": "x\nBcc: evil@attacker.test",
    "nul": "x\x00Bcc: evil@attacker.test",
    "bidi": "\u202eevil@attacker.test\u202c" + q("\u202e" + INJECT),
    "long": q(INJECT) * 20,
}
EXPECTED_HEADERS = ["from", "to", "subject", "message-id", "date", "x-faxflow-fax-id",
                    "mime-version", "content-type"]
OFFICE = "office@example.test"


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path).start()
    yield server
    server.stop()


def assert_clean(got: Received, headers: list[str] = EXPECTED_HEADERS,
                 recipients: tuple[str, ...] = (OFFICE,)) -> None:
    """The raw mail has exactly our header lines, our envelope, and nothing decodes into a
    line break, a NUL or a header of the attacker's."""
    assert got.rcpt_tos == list(recipients)
    assert got.mail_from == "fax@example.test"
    assert b"\x00" not in got.data
    assert got.header_names() == headers, got.header_block
    raw = got.header_block.lower()
    assert b"\nbcc" not in raw and b"\nreply-to" not in raw
    parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(got.data)
    for name, value in parsed.items():
        assert not any(c in str(value) for c in "\r\n\0\u202e"), (name, str(value))
    assert parsed["Bcc"] is None and parsed["Reply-To"] is None
    # The body is ours: a text part and the one attachment, no part an attacker added.
    parts = [p.get_content_type() for p in parsed.walk()]
    assert parts == ["multipart/mixed", "text/plain", "application/pdf"], parts
    body = parsed.get_body(("plain",))
    assert body is not None
    assert not any(line.lower().startswith(("bcc:", "reply-to:", "injected"))
                   for line in body.get_content().splitlines())


Carrier = Callable[[Fax, str], Route]


def with_job(fax: Fax, **changes: object) -> None:
    fax.job = dataclasses.replace(fax.job, **changes)  # type: ignore[arg-type]


def csid_in_subject(fax: Fax, payload: str) -> Route:
    with_job(fax, sender_fax_id=payload)  # rendered from subject = "Fax from {{ csid }}"
    return Route("mail/0", "email", {"to": OFFICE, "subject": f"Fax from {payload}"})


def sender_number_default_subject(fax: Fax, payload: str) -> Route:
    with_job(fax, sender_isdn=Number(payload, None))
    return Route("mail/0", "email", {"to": OFFICE})


def field_in_subject(fax: Fax, payload: str) -> Route:
    fax.fields["patient"] = payload  # subject = "Patient {{ fields.patient }}"
    return Route("mail/0", "email", {"to": OFFICE, "subject": f"Patient {payload}"})


def receiver_csid_default(fax: Fax, payload: str) -> Route:
    with_job(fax, sender_fax_id=payload, receiver_fax_id=payload, cost_center=payload)
    return Route("mail/0", "email", {"to": OFFICE})


CARRIERS: dict[str, Carrier] = {
    "csid-subject": csid_in_subject,
    "sender-number-default-subject": sender_number_default_subject,
    "ocr-field-subject": field_in_subject,
    "sender-fields-default": receiver_csid_default,
}


@pytest.mark.parametrize("payload", list(PAYLOADS.values()), ids=list(PAYLOADS))
@pytest.mark.parametrize("carrier", list(CARRIERS.values()), ids=list(CARRIERS))
def test_headers_from_fax_data_cannot_inject(smtp: SmtpServer, tmp_path: Path,
                                             carrier: Carrier, payload: str) -> None:
    app = faxes.make_app({"email": faxflow_email},
                         smtp.settings_toml().replace("Fax Inbox <fax@example.test>",
                                                      "fax@example.test"))
    fax = make_fax(tmp_path / "spool")
    result = app.deliver(fax, carrier(fax, payload), uncertain=False)
    assert result is not None and result.outcome is Outcome.DELIVERED, result
    (got,) = smtp.received
    assert_clean(got)


@pytest.mark.parametrize("payload", list(PAYLOADS.values()), ids=list(PAYLOADS))
def test_fax_id_cannot_inject(smtp: SmtpServer, tmp_path: Path, payload: str) -> None:
    """The fax id reaches the default subject and X-Faxflow-Fax-Id."""
    app = faxes.make_app({"email": faxflow_email},
                         smtp.settings_toml().replace("Fax Inbox <fax@example.test>",
                                                      "fax@example.test"))
    fax = make_fax(tmp_path / "spool", fax_id=payload)
    result = app.deliver(fax, Route("mail/0", "email", {"to": OFFICE}), uncertain=False)
    assert result is not None and result.outcome is Outcome.DELIVERED, result
    (got,) = smtp.received
    assert_clean(got)


@pytest.mark.parametrize("payload", list(PAYLOADS.values()), ids=list(PAYLOADS))
def test_display_names_from_fax_data(smtp: SmtpServer, tmp_path: Path, payload: str) -> None:
    """A template may put sender text into a display name (from = "{{ csid }} <fax@...>"):
    raw control characters refuse the route, encoded words end up as harmless text."""
    app = faxes.make_app({"email": faxflow_email}, smtp.settings_toml())
    fax = make_fax(tmp_path / "spool")
    route = Route("mail/0", "email", {"to": f"{payload} <{OFFICE}>",
                                      "from": f"{payload} <fax@example.test>"})
    result = app.deliver(fax, route, uncertain=False)
    assert result is not None
    if any(c in payload for c in "\r\n\0"):
        assert result.outcome is Outcome.PERMANENT, result
        assert "control characters" in result.detail
        assert smtp.received == []
        return
    assert result.outcome is Outcome.DELIVERED, result
    (got,) = smtp.received
    assert_clean(got)
    parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(got.data)
    assert [a.addr_spec for a in parsed["To"].addresses] == [OFFICE]
    assert [a.addr_spec for a in parsed["From"].addresses] == ["fax@example.test"]


@pytest.mark.parametrize("rendered", [
    "evil@attacker.test, office@example.test",
    "office@example.test,",
    "office@example.test; evil@attacker.test",
    "office@example.test\x00",
    "office@example.test\r\nRCPT TO:<evil@attacker.test>",
    "Office <office@example.test> <evil@attacker.test>",
    "evil@attacker.test <office@example.test",
    "<>",
    "office@example.test (comment) evil@attacker.test",
    "",
])
def test_rendered_recipients_are_exactly_one_address(smtp: SmtpServer, tmp_path: Path,
                                                     rendered: str) -> None:
    app = faxes.make_app({"email": faxflow_email}, smtp.settings_toml())
    for to in (rendered, [OFFICE, rendered]):
        result = app.deliver(make_fax(tmp_path / "spool"), Route("mail/0", "email", {"to": to}),
                             uncertain=False)
        assert result is not None and result.outcome is Outcome.PERMANENT, (to, result)
        assert "to/cc:" in result.detail
    assert smtp.received == []


def test_a_list_of_single_addresses_is_fine(smtp: SmtpServer, tmp_path: Path) -> None:
    app = faxes.make_app({"email": faxflow_email}, smtp.settings_toml())
    route = Route("mail/0", "email", {"to": [OFFICE, "Lab <lab@example.test>"],
                                      "cc": "archive@example.test"})
    result = app.deliver(make_fax(tmp_path / "spool"), route, uncertain=False)
    assert result is not None and result.outcome is Outcome.DELIVERED, result
    (got,) = smtp.received
    assert got.rcpt_tos == [OFFICE, "lab@example.test", "archive@example.test"]
    assert "cc" in got.header_names()


def test_static_config_values_are_checked() -> None:
    problems = faxflow_email.check_options({"to": "a@example.test, b@example.test"})
    assert problems == ["to: 'a@example.test, b@example.test': one address per item "
                        "(use a list for several)"]
    assert faxflow_email.check_options({"to": ["a@example.test", "{{ fields.x }}"]}) == []
    assert faxflow_email.check_options({"to": "x", "from": "nope"}) == [
        "to: 'x': not an address of the form name@host",
        "from: 'nope': not an address of the form name@host"]


# --- End to end: `faxflow run` against the simulator, real OCR, a real SMTP server ----------

E2E_CONFIG = """
[retarus]
base_url = "{api_url}"
username = "99999"
password = "${{E2E_SIM_PASSWORD}}"
topics = ["mail"]
lock_timeout = 60

[worker]
concurrency = 2
poll_interval_max = 0.3
reload = false

[journal]
path = "journal.sqlite"

[plugins]
disable = ["jira", "zendesk", "redmine", "webhook", "folder"]

[plugins.ocr]
languages = "eng"
dpi = 300
orientation = "off"

{smtp}
[plugins.rules]
default_country = "DE"

[plugins.rules.default]
[[plugins.rules.default.route]]
type = "email"
to = "office@example.test"

[[rule]]
name = "with-ref"
when.text = {{ regex = 'Ref:\\s*(?P<ref>\\S+)' }}
[[rule.route]]
type = "email"
to = "office@example.test"
from = "{{{{ csid }}}} <fax@example.test>"
subject = "Fax {{{{ csid }}}} from {{{{ sender }}}} ref {{{{ fields.ref }}}}"
"""


def test_faxflow_run_mails_hostile_faxes_without_injection(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from faxflow.simulator import Simulator, SimulatorServer
    from faxflow.simulator.minipdf import one_page_pdf

    smtp = SmtpServer(tmp_path).start()
    simulator = Simulator(users={"99999": "secret"}, topics={"mail": "99999"}, seed=5)
    payload = q(INJECT)
    try:
        with SimulatorServer(simulator, host="127.0.0.1", port=0) as sim:
            # Read from the page by OCR into fields.ref (short enough to fit the line and
            # read exactly); the CSID, number and id are metadata.
            on_page = q("x\r\nBcc: evil@attacker.test")
            with_ref = sim.sim.add_fax("mail", id=q("r\r\nBcc: evil@attacker.test"),
                                       senderFaxId=payload, senderIsdn=b(INJECT),
                                       documents=[{"extension": "pdf",
                                                   "content": one_page_pdf(f"Ref: {on_page}")}])
            plain = sim.sim.add_fax("mail", id=q(END_HEADERS).replace(" ", ""),
                                    senderFaxId=b(END_HEADERS), senderIsdn=q(INJECT),
                                    documents=[{"extension": "pdf",
                                                "content": one_page_pdf("Nothing to see")}])
            config = tmp_path / "faxflow.toml"
            config.write_text(E2E_CONFIG.format(
                api_url=sim.api_url, smtp=smtp.settings_toml(
                    **{"from": "fax@example.test"}).replace(
                    'from = "Fax Inbox <fax@example.test>"\n', "")))
            env = {**os.environ, "E2E_SIM_PASSWORD": "secret", "FAXFLOW_LOAD_PLUGINS": ""}
            env.pop("FAXFLOW_LOAD_PLUGINS")
            log = tmp_path / "worker.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen([sys.executable, "-m", "faxflow", "run", "-c",
                                         str(config)], env=env, cwd=tmp_path, stdout=out,
                                        stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 120
                while sim.sim.topic_state("mail")["acknowledged"] < 2:
                    assert proc.poll() is None, log.read_text()
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.1)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    finally:
        smtp.stop()
    text = log.read_text()
    assert "Traceback" not in text, text
    assert len(smtp.received) == 2, text
    subjects = {}
    for got in smtp.received:
        assert_clean(got)
        parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(got.data)
        subjects[str(parsed["X-Faxflow-Fax-Id"])] = str(parsed["Subject"])
    # The payloads arrived as text on one line, decoded and defused, not dropped.
    assert sorted(subjects) == sorted(["r Bcc: evil@attacker.test",
                                       "x Injected body line"]), subjects
    ref_subject = subjects["r Bcc: evil@attacker.test"]
    assert ref_subject.count("Bcc: evil@attacker.test") == 3, ref_subject  # csid, sender, OCR
    assert ref_subject.startswith("Fax x Bcc: evil@attacker.test Reply-To:")
    default_subject = subjects["x Injected body line"]
    assert default_subject == ("Fax from x Bcc: evil@attacker.test Reply-To: "
                               "evil@attacker.test (x Injected body line)")
    assert with_ref["id"] != plain["id"]


def test_check_warns_when_a_recipient_comes_from_sender_data(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = tmp_path / "faxflow.toml"
    config.write_text("""
[retarus]
base_url = "http://127.0.0.1:9/faxin/rest/v1"
username = "99999"
password = "x"
topics = ["t"]

[plugins.email]
host = "127.0.0.1"
from = "fax@example.test"

[plugins.rules.default]
[[plugins.rules.default.route]]
type = "email"
to = "office@example.test"

[[rule]]
name = "by-csid"
when.csid = "ACME*"
[[rule.route]]
type = "email"
to = ["office@example.test", "{{ fields.reply_to }}"]
cc = "{{ csid | lower }}@example.test"
subject = "{{ csid }}"

[plugins.rules]
external_fields = ["reply_to"]
""")
    result = subprocess.run([sys.executable, "-m", "faxflow", "check", "-c", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if ": warning: " in line]
    assert len(warnings) == 2, result.stderr  # to and cc; a subject may use the CSID
    assert f"{config}:22: warning: rule[0].route[0].to: " in warnings[0]
    assert "fields, which the fax's sender controls" in warnings[0]
    assert f"{config}:23: warning: rule[0].route[0].cc: " in warnings[1]
    assert "csid, which the fax's sender controls" in warnings[1]
    assert "OK" in result.stdout
