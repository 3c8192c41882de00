"""`faxflow demo`: the whole product on one machine, with no account anywhere.

Starts the simulator in-process with generated faxes (a referral to the clinic's referral
line, an invoice recognised by its content, an after-hours fax, an order for the review
folder, and one corrupt document), a local SMTP server that keeps every mail as a .eml file,
and the real worker with the built-in plugins and a demo rules file. Everything lands under
./faxflow-demo/; the summary says where each fax went and why.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from faxflow.hookspecs import hookimpl
from faxflow.types import Decision, DeliveryResult, Fax, Route

BERLIN = ZoneInfo("Europe/Berlin")
USER, PASSWORD, TOPIC = "99999", "demo-only-password", "clinic-inbound"
REFERRAL_LINE, ADMIN_LINE = "+4989262080440", "+4989262080450"

RULES = """\
# The demo's configuration: written by `faxflow demo`, used as is by the real worker.
[retarus]
base_url = "{api_url}"
username = "{user}"
password = "${{FAXFLOW_DEMO_PASSWORD}}"
topics = ["{topic}"]
fetch = 10
lock_timeout = 30

[worker]
concurrency = 2
max_attempts = 2
poll_interval_max = 0.5
reload = false

[journal]
path = "journal.sqlite"

[plugins]
disable = ["jira", "zendesk", "redmine", "webhook"]

[plugins.ocr]
languages = "eng"

[plugins.folder]
base = "folders"

[plugins.email]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
from = "faxflow demo <fax@clinic.example>"

[plugins.rules]
default_country = "DE"
timezone = "Europe/Berlin"

[plugins.rules.default]
[[plugins.rules.default.route]]
type = "folder"
path = "review"
name = "{{{{ received | date('%Y-%m-%d') }}}}-{{{{ fax_id }}}}"

[[rule]]
name = "patient-id"
continue = true
when.text = {{ regex = 'Patient\\s+ID:\\s*(?P<patient_id>PID-\\d{{4,8}})' }}

[[rule]]
name = "after-hours"
labels = ["after-hours"]
continue = true
when.not.received = {{ weekdays = "mon-fri", between = ["08:00", "18:00"] }}
[[rule.route]]
type = "email"
to = "oncall@clinic.example"
subject = "After-hours fax from {{{{ sender or 'unknown sender' }}}} ({{{{ pages }}}} pages)"

[[rule]]
name = "referrals"
labels = ["referral"]
when.receiver = ["089 262080440"]
[[rule.route]]
type = "folder"
path = "referrals"
name = "{{{{ fields.patient_id | default('no-patient-id') }}}}-{{{{ fax_id }}}}"
[[rule.route]]
type = "email"
to = "referrals@clinic.example"
subject = "Referral {{{{ fields.patient_id | default('(no patient id)') }}}}"

[[rule]]
name = "invoices"
labels = ["invoice"]
when.text = {{ regex = 'Invoice\\s+(?:No\\.?|Number)\\s*:?\\s*(?P<invoice_number>INV-[0-9-]+)' }}
[rule.fields]
invoice_number = "str"
[[rule.route]]
type = "email"
to = "accounting@clinic.example"
subject = "Invoice {{{{ fields.invoice_number }}}} from {{{{ sender or 'unknown sender' }}}}"
"""


@dataclass
class DemoFax:
    label: str
    kind: str | None  # sample kind, None for the corrupt document
    receiver: str
    received: datetime
    id: str = ""
    rules: list[str] = field(default_factory=list)
    places: list[str] = field(default_factory=list)
    outcome: str = "pending"
    reason: str = ""


def _recent(now: datetime, hour: int, minute: int, weekday_only: bool) -> datetime:
    """The latest past moment at hour:minute (Berlin), on a weekday if asked; within 7 days
    so the simulator has not expired it."""
    for days in range(8):
        day = (now - timedelta(days=days)).replace(hour=hour, minute=minute, second=0,
                                                   microsecond=0)
        if day < now and (not weekday_only or day.weekday() < 5):
            return day
    raise AssertionError("unreachable: a weekday falls in any 8 days")


def plan(now: datetime) -> list[DemoFax]:
    office = _recent(now, 10, 15, weekday_only=True)
    night = _recent(now, 23, 30, weekday_only=False)
    return [
        DemoFax("referral to the referrals line", "referral", REFERRAL_LINE, office),
        DemoFax("invoice (recognised by content)", "invoice", ADMIN_LINE, office),
        DemoFax("fax received after hours", "letter", ADMIN_LINE, night),
        DemoFax("purchase order (no rule: review)", "order", ADMIN_LINE, office),
        DemoFax("corrupt document", None, ADMIN_LINE, office),
    ]


class Reporter:
    """A plugin that shows progress and collects the summary."""

    def __init__(self, faxes: list[DemoFax], echo: Any) -> None:
        self.by_id = {f.id: f for f in faxes}
        self.echo = echo
        self.lock = threading.Lock()

    def _line(self, fax: Fax, text: str) -> None:
        demo = self.by_id.get(fax.id)
        with self.lock:
            name = demo.label if demo else fax.id
            self.echo(f"  {time.strftime('%H:%M:%S')}  {name}: {text}")

    @hookimpl
    def faxflow_fax_received(self, fax: Fax) -> None:
        self._line(fax, f"received ({len(fax.documents)} document(s)), reading it")

    @hookimpl
    def faxflow_fax_delivered(self, fax: Fax, route: Route, result: DeliveryResult) -> None:
        demo = self.by_id.get(fax.id)
        if demo is not None:
            where = route.options.get("to") or result.reference or route.type
            demo.places.append(f"{route.type}: {where}")
            if route.rule and route.rule not in demo.rules:
                demo.rules.append(route.rule)
        self._line(fax, f"delivered by rule {route.rule} to {route.type}")

    @hookimpl
    def faxflow_fax_acknowledged(self, fax: Fax) -> None:
        demo = self.by_id.get(fax.id)
        if demo is not None:
            demo.outcome = "acknowledged"
        self._line(fax, "acknowledged at Retarus")

    @hookimpl
    def faxflow_fax_quarantined(self, fax: Fax, decision: Decision) -> None:
        demo = self.by_id.get(fax.id)
        if demo is not None:
            demo.outcome = "quarantined"
            demo.reason = "; ".join(decision.reasons)
            demo.places.append(f"quarantine: {fax.scratch.get('quarantine_dir')}")
        self._line(fax, "quarantined: " + "; ".join(decision.reasons))

    @hookimpl
    def faxflow_fax_failed(self, fax: Fax, decision: Decision) -> None:
        self._line(fax, "not yet: " + "; ".join(decision.reasons) + " (will retry)")


class MailStore:
    """aiosmtpd handler: every message becomes mail/NNN.eml."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        (self.folder / f"{self.count:03d}.eml").write_bytes(envelope.content)
        return "250 OK"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


MARKER = ".faxflow-demo"  # in a folder the demo made: only such a folder is ever replaced


class DemoFolderError(Exception):
    """The demo folder exists and is not the demo's own."""


def prepare(base: Path) -> None:
    """Make `base` an empty demo folder. An earlier demo's folder (it holds the marker) is
    replaced; an empty folder is used; anything else is refused, never deleted."""
    if base.is_symlink() or (base.exists() and not base.is_dir()):
        raise DemoFolderError(f"{base} exists and is not a folder")
    if base.exists() and any(base.iterdir()):
        if not (base / MARKER).is_file():
            raise DemoFolderError(
                f"{base} exists and was not made by faxflow demo (it has no {MARKER} file); "
                "its contents are left alone: choose another --dir or empty it yourself")
        shutil.rmtree(base)
    base.mkdir(parents=True, exist_ok=True)
    (base / MARKER).write_text("made by faxflow demo; the next demo replaces this folder\n",
                               encoding="utf-8")


def demo_env() -> dict[str, str]:
    """The environment the demo's configuration is read with (its simulator password)."""
    import os

    return {**os.environ, "FAXFLOW_DEMO_PASSWORD": PASSWORD}


def run_demo(base: Path, echo: Any = click.echo, timeout: float = 300) -> list[DemoFax]:
    """The demo in `base`, an empty folder made by `prepare`."""
    from aiosmtpd.controller import Controller

    from faxflow.app import load_app
    from faxflow.runner import start_worker_thread
    from faxflow.samples import make_fax
    from faxflow.simulator import Simulator, SimulatorServer

    (base / "mail").mkdir()
    (base / "folders").mkdir()
    faxes = plan(datetime.now(BERLIN))
    sim = Simulator(users={USER: PASSWORD}, topics={TOPIC: USER}, seed=1)
    mail = MailStore(base / "mail")
    smtp = Controller(mail, hostname="127.0.0.1", port=_free_port())
    smtp.start()
    try:
        with SimulatorServer(sim, host="127.0.0.1", port=0) as server:
            for i, demo in enumerate(faxes, start=1):
                if demo.kind is None:
                    content, ext = b"%PDF-1.4\n% a fax that broke in transmission\n", "pdf"
                else:
                    sample = make_fax(kind=demo.kind, pages=1, seed=i)
                    content, ext = sample.content, sample.extension
                job = sim.add_fax(TOPIC, documents=[{"extension": ext, "content": content}],
                                  receiverIsdn=demo.receiver, senderIsdn=f"00494012345{i:02d}",
                                  dateReceived=demo.received.strftime("%Y-%m-%dT%H:%M:%S%z"))
                demo.id = job["id"]
            config = base / "faxflow.toml"
            config.write_text(RULES.format(api_url=server.api_url, user=USER, topic=TOPIC,
                                           smtp_port=smtp.port), encoding="utf-8")
            echo(f"simulator on {server.base_url} holds {len(faxes)} faxes; "
                 f"SMTP on 127.0.0.1:{smtp.port}; rules in {config}")
            reporter = Reporter(faxes, echo)
            app = load_app(config, extra=[("demo", reporter)], env=demo_env())
            thread, worker = start_worker_thread(app)
            deadline = time.monotonic() + timeout
            while sim.topic_state(TOPIC)["acknowledged"] < len(faxes):
                if time.monotonic() > deadline or not thread.is_alive():
                    echo("the demo did not finish in time; see the log above")
                    break
                time.sleep(0.2)
            if worker is not None:
                worker.stop()
            thread.join(60)
    finally:
        smtp.stop()
    return faxes


@contextlib.contextmanager
def log_to(path: Path) -> Iterator[None]:
    """Send log records to `path` instead of the terminal (errors still show there)."""
    import logging

    from faxflow.logs import TextFormatter

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    file = logging.FileHandler(path, encoding="utf-8")
    file.setFormatter(TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    terminal = {h: h.level for h in saved[0] if not isinstance(h, logging.FileHandler)}
    for handler in terminal:
        handler.setLevel(max(handler.level, logging.ERROR))
    root.handlers[:] = [*terminal, file]
    root.setLevel(min(saved[1], logging.INFO) or logging.INFO)
    try:
        yield
    finally:
        file.close()
        for handler, level in terminal.items():
            handler.setLevel(level)
        root.handlers[:], root.level = saved[0], saved[1]


def summary(faxes: list[DemoFax], base: Path) -> str:
    lines = ["", "Summary", "======="]
    for demo in faxes:
        lines.append(f"- {demo.label}  [fax {demo.id}]")
        lines.append(f"    rule: {', '.join(demo.rules) or '(none)'}  ->  {demo.outcome}")
        for place in demo.places:
            lines.append(f"    {place}")
        if demo.reason:
            lines.append(f"    why: {demo.reason}")
    lines += ["", f"Folders: {base / 'folders'}   mails: {base / 'mail'}   "
                  f"quarantine: {base / 'quarantine'}"]
    return "\n".join(lines)


@click.command("demo")
@click.option("--dir", "folder", default="faxflow-demo", show_default=True,
              type=click.Path(path_type=Path, file_okay=False),
              help="Where the demo writes its folders, mails and journal; an earlier demo's "
                   "folder is replaced, any other non-empty folder refused.")
@click.option("--console", "with_console", is_flag=True,
              help="Then keep the web console running on the demo's faxes (Ctrl-C stops "
                   "it); needs the console extra.")
@click.pass_context
def demo_command(ctx: click.Context, folder: Path, with_console: bool) -> None:
    """Run the whole pipeline on sample faxes, locally, and show where each one went."""
    click.echo("faxflow demo: simulator + OCR + rules + folder and e-mail delivery, all local")
    base = folder.resolve()
    try:
        prepare(base)
    except DemoFolderError as exc:
        click.echo(f"faxflow demo: {exc}", err=True)
        sys.exit(2)
    console = console_demo(ctx) if with_console else None
    if console is not None:  # a missing console extra is said now, not after the demo
        ctx.invoke(console, folder=base, check=True)
    with log_to(base / "worker.log"):  # the progress lines tell the story; the log has detail
        faxes = run_demo(base)
    click.echo(summary(faxes, folder))
    click.echo(f"Worker log: {folder / 'worker.log'}")
    expected = {"acknowledged": 4, "quarantined": 1}
    got = {o: sum(1 for f in faxes if f.outcome == o) for o in expected}
    if got != expected:
        click.echo(f"unexpected outcome: {got}", err=True)
        sys.exit(1)
    if console is None:
        click.echo("See every fax's timeline and work the quarantine in the web console: "
                   "faxflow demo --console")
        return
    ctx.invoke(console, folder=base)


def console_demo(ctx: click.Context) -> click.Command:
    """The console plugin's `faxflow console demo`, found by name on the command line (the
    core imports no plugin)."""
    root = ctx.find_root().command
    group = root.get_command(ctx, "console") if isinstance(root, click.Group) else None
    command = group.get_command(ctx, "demo") if isinstance(group, click.Group) else None
    if command is None:
        raise click.ClickException("faxflow demo --console needs the console plugin, which "
                                   "is not loaded (see FAXFLOW_LOAD_PLUGINS)")
    return command
