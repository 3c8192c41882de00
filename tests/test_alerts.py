"""Alerts reach operators at a real SMTP server (aiosmtpd) once per digest, not once per fax:
quarantined faxes, a destination failing too long, a topic nobody can pull from."""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from servers.smtp import SmtpServer
from waiting import wait_for

from faxflow.app import load_app
from faxflow.hookspecs import hookimpl
from faxflow.journal import SQLiteJournal
from faxflow.runner import start_worker_thread
from faxflow.simulator import Simulator, SimulatorServer
from faxflow.simulator.minipdf import one_page_pdf
from faxflow.types import DeliveryResult, DestinationType, Notice, Route

CONFIG = """
[retarus]
base_url = "{api_url}"
username = "99999"
password = "secret"
topics = ["t", "{extra_topic}"]
lock_timeout = 30

[worker]
poll_interval_max = 0.2
reload = false
quarantine_dir = ""

[journal]
path = "journal.sqlite"

{smtp}
[plugins.alerts]
digest_minutes = 0.1
batch_seconds = 1
check_seconds = 0.2
destination_failing_minutes = 0.02
no_pull_minutes = {no_pull}
console_url = "https://fax.example.test/console"
[[plugins.alerts.route]]
type = "email"
to = "ops@example.test"

[plugins.rules.default]
[[plugins.rules.default.route]]
type = "email"
to = "{to}"
"""


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path).start()
    yield server
    server.stop()



def digests(smtp: SmtpServer) -> list[email.message.EmailMessage]:
    out = []
    for got in smtp.received:
        if got.rcpt_tos == ["ops@example.test"]:
            msg = email.message_from_bytes(got.data, policy=email.policy.default)
            assert isinstance(msg, email.message.EmailMessage)
            out.append(msg)
    return out


def run(tmp_path: Path, smtp: SmtpServer, to: str, extra_topic: str,
        faxes: list[bytes], then: Callable[[Simulator], None] | None = None,
        until: Callable[[], bool] = lambda: True, no_pull: float = 5,
        **fields: object) -> None:
    sim = Simulator(users={"99999": "secret"}, topics={"t": "99999"}, seed=9)
    with SimulatorServer(sim, host="127.0.0.1", port=0) as server:
        for content in faxes:
            sim.add_fax("t", documents=[{"extension": "pdf", "content": content}], **fields)
        config = tmp_path / "faxflow.toml"
        config.write_text(CONFIG.format(api_url=server.api_url, extra_topic=extra_topic,
                                        to=to, smtp=smtp.settings_toml(), no_pull=no_pull))
        app = load_app(config, load=["ocr", "rules", "email", "alerts", "history"])
        thread, worker = start_worker_thread(app, wait=20)
        assert worker is not None
        try:
            wait_for(lambda: len(digests(smtp)) >= 1 and until(), 40, "a digest")
            if then is not None:
                then(sim)
        finally:
            worker.stop()
            thread.join(30)


def test_a_burst_of_quarantined_faxes_is_one_digest(tmp_path: Path, smtp: SmtpServer) -> None:
    broken = b"%PDF-1.4 broken in transmission"

    def one_more(sim: Simulator) -> None:
        first = len(digests(smtp))
        sim.add_fax("t", documents=[{"extension": "pdf", "content": broken + b"!"}])
        wait_for(lambda: len(digests(smtp)) > first, 30, "the next digest")

    run(tmp_path, smtp, "office@example.test", "t", [broken + bytes([i]) for i in range(5)],
        then=one_more)
    mails = digests(smtp)
    assert len(mails) == 2, [m["Subject"] for m in mails]
    assert mails[0]["Subject"] == "faxflow: 5 fax(es) quarantined"
    body = mails[0].get_content()
    assert body.count("PDF is damaged") == 5
    assert "https://fax.example.test/console/faxes/" in body
    assert mails[1]["Subject"] == "faxflow: 1 fax(es) quarantined"
    journal = SQLiteJournal(tmp_path / "journal.sqlite")
    try:
        rows, _ = journal.records.faxes(limit=10)
        timelines = [journal.records.fax(r.id) for r in rows]
        assert all(d is not None and "notified" in [e.name for e in d.events]
                   for d in timelines)
    finally:
        journal.close()


def test_a_hostile_sender_cannot_add_headers_recipients_or_lines_to_a_digest(
        tmp_path: Path, smtp: SmtpServer) -> None:
    """The sender's number reaches the digest's body; the raw mail the SMTP server got has
    our headers and envelope only, and the number stays on its fax's line."""
    hostile = ("0301234\r\nBcc: evil@attacker.test\r\n\r\ninjected body "
               "=?utf-8?q?=0D=0AReply-To:_evil@attacker.test?= \u202e\x00end")
    run(tmp_path, smtp, "office@example.test", "t", [b"%PDF-1.4 broken"],
        senderIsdn=hostile)
    (got,) = [g for g in smtp.received if g.rcpt_tos == ["ops@example.test"]]
    assert b"\x00" not in got.data and b"attacker" not in got.header_block
    assert got.mail_from and "attacker" not in got.mail_from
    (mail,) = digests(smtp)
    assert mail["Bcc"] is None and mail["Reply-To"] is None
    assert mail["Subject"] == "faxflow: 1 fax(es) quarantined"
    body = mail.get_content().splitlines()
    (line,) = [x for x in body if "0301234" in x]
    assert "injected body" in line and "PDF is damaged" in line  # all of it on one line
    assert not any(x.lower().startswith(("bcc:", "reply-to:", "injected")) for x in body)
    assert "\u202e" not in mail.get_content()


def test_a_failing_destination_and_a_silent_topic_are_told_once(
        tmp_path: Path, smtp: SmtpServer) -> None:
    smtp.handler.refuse["office@example.test"] = "451 4.3.0 mailbox busy, try later"

    def told() -> bool:
        subjects = [m["Subject"] for m in digests(smtp)]
        return any("destination" in s for s in subjects) and any("topic" in s for s in subjects)

    # A pull is noted at most every 5 s, so "silent" here means 10 s without one.
    run(tmp_path, smtp, "office@example.test", "unknown-topic",
        [one_page_pdf("a fax for a busy mailbox")], until=told, no_pull=10 / 60)
    time.sleep(0.5)
    text = "\n".join(m.get_content() for m in digests(smtp))
    assert text.count("destination email failing since") == 1
    assert text.count("topic unknown-topic: no successful pull since") == 1


def test_several_workers_send_one_digest(tmp_path: Path, smtp: SmtpServer) -> None:
    """Two alert loops on one journal (as two replicas): one digest between them."""
    from faxflow_alerts import Loop

    config = tmp_path / "faxflow.toml"
    config.write_text(CONFIG.format(api_url="http://127.0.0.1:9/x", extra_topic="t",
                                    to="office@example.test", smtp=smtp.settings_toml(),
                                    no_pull=5)
                      .replace("batch_seconds = 1", "batch_seconds = 0.01"))
    apps = [load_app(config, load=["rules", "email", "alerts"]) for _ in range(2)]
    journal = SQLiteJournal(tmp_path / "journal.sqlite")
    try:
        for app in apps:
            app.journal = journal
        journal.records.raise_alert("quarantined:t:1", "quarantined", "from x: broken", None)
        time.sleep(0.05)
        loops = [Loop(app) for app in apps]
        sent = [loop.once() for loop in loops] + [loop.once() for loop in loops]
        assert sent.count(True) == 1
        assert len(digests(smtp)) == 1
    finally:
        journal.close()


class Pager:
    """A third-party destination that takes alert digests (faxflow_notify)."""

    def __init__(self) -> None:
        self.pages: list[Notice] = []

    @hookimpl
    def faxflow_destination_types(self) -> list[DestinationType]:
        return [DestinationType("pager")]

    @hookimpl
    def faxflow_notify(self, notice: Notice, route: Route) -> DeliveryResult | None:
        if route.type != "pager":
            return None
        self.pages.append(notice)
        return DeliveryResult.delivered(f"paged {route.options['to']}")


def test_a_digest_goes_to_any_destination_that_takes_notices(tmp_path: Path) -> None:
    from faxflow_alerts import Loop

    pager = Pager()
    config = tmp_path / "faxflow.toml"
    config.write_text(
        '[retarus]\nbase_url = "http://127.0.0.1:9/x"\nusername = "1"\npassword = "x"\n'
        'topics = ["t"]\n[plugins.alerts]\nbatch_seconds = 0.01\n[[plugins.alerts.route]]\n'
        'type = "pager"\nto = "+4917012345678"\n')
    app = load_app(config, load=["alerts"], extra=[("pager", pager)])
    journal = SQLiteJournal(tmp_path / "journal.sqlite")
    try:
        app.journal = journal
        journal.records.raise_alert("quarantined:t:9", "quarantined", "from x: <b>hi</b>")
        time.sleep(0.05)
        assert Loop(app).once()
    finally:
        journal.close()
    (notice,) = pager.pages
    assert notice.subject == "faxflow: 1 fax(es) quarantined"
    assert "from x: <b>hi</b>" in notice.text and notice.items[0]["kind"] == "quarantined"
