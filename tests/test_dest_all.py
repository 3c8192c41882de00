"""One fax routed to folder + email + webhook + a ticket system (the fake Redmine), each a
real server on 127.0.0.1 or a real folder: it arrives at each exactly once, through crashes
(re-delivery with uncertain=True) and an SMTP outage. The journal is played by a dict here:
like the core's, it never calls a route again once it recorded it as delivered."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import faxflow_email
import faxflow_folder
import faxflow_webhook
import pytest
from faxflow_tickets import redmine
from servers import faxes
from servers.faxes import PDF, make_fax
from servers.redmine import FakeRedmine
from servers.smtp import SmtpServer
from servers.webhook import Receiver

from faxflow import protocol
from faxflow.app import App
from faxflow.journal import SQLiteJournal
from faxflow.types import DeliveryResult, Fax, Outcome, Route


@dataclass
class World:
    app: App
    out: Path
    smtp: SmtpServer
    hook: Receiver
    redmine: FakeRedmine
    routes: list[Route]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    out = tmp_path / "out"
    out.mkdir()
    smtp = SmtpServer(tmp_path)  # started by each test when it wants the server up
    hook = Receiver()
    hook.start()
    tracker = FakeRedmine()
    tracker.start()
    toml = (f'[plugins.folder]\nbase = "{out}"\n'
            f'[plugins.webhook]\nsecret = "hook-secret"\nallow_private = true\n'
            f'retry_delay = 0.01\n'
            f'[plugins.redmine]\nurl = "{tracker.url}"\napi_key = "rm-key"\nretry_delay = 0.01\n'
            + smtp.settings_toml(retries=2, retry_delay=0.01))
    app = faxes.make_app({"folder": faxflow_folder, "email": faxflow_email,
                          "webhook": faxflow_webhook, "redmine": redmine}, toml)
    routes = [
        Route("all/0", "folder", {"path": "inbox", "content": "original"}),
        Route("all/1", "email", {"to": "office@example.test"}),
        Route("all/2", "webhook", {"url": f"{hook.url}/faxes"}),
        Route("all/3", "redmine", {"project": "fax"}),
    ]
    yield World(app, out, smtp, hook, tracker, routes)
    smtp.stop()
    hook.stop()
    tracker.stop()


def run(world: World, fax: Fax, journal: dict[str, DeliveryResult], *,
        uncertain: frozenset[str] | set[str] = frozenset(), crash_after: str | None = None) -> None:
    """One attempt: deliver every route the journal does not have as delivered. With
    `crash_after`, that route is delivered but the process dies before recording it."""
    for route in world.routes:
        done = journal.get(route.key)
        if done is not None and done.outcome is Outcome.DELIVERED:
            continue
        result = world.app.deliver(fax, route, uncertain=route.key in uncertain)
        assert result is not None
        if route.key == crash_after:
            return
        journal[route.key] = result


def assert_once_each(world: World) -> None:
    inbox = world.out / "inbox"
    files = sorted(p.name for p in inbox.iterdir() if p.name != faxflow_folder.LOCK_NAME)
    assert files == ["fax-1.json", "fax-1.pdf"]
    assert (world.out / "inbox" / "fax-1.pdf").read_bytes() == PDF
    assert len(world.smtp.messages) == 1
    assert len(world.hook.deliveries) == 1
    assert len(world.redmine.issues) == 1
    (issue,) = world.redmine.issues.values()
    assert [a["content"] for a in issue["attachments"]] == [PDF]


def test_crashes_between_deliveries(world: World, tmp_path: Path) -> None:
    world.smtp.start()
    fax = make_fax(tmp_path / "spool")
    journal: dict[str, DeliveryResult] = {}
    # Killed after each non-mail route did its work but before the journal knew.
    for key in ("all/0", "all/2", "all/3"):
        run(world, fax, journal, uncertain={"all/0", "all/2", "all/3"}, crash_after=key)
    run(world, fax, journal, uncertain={"all/0", "all/2", "all/3"})
    assert all(r.outcome is Outcome.DELIVERED for r in journal.values()), journal
    assert_once_each(world)
    # A fully lost journal (every route uncertain) still creates nothing new, except mail.
    run(world, fax, {}, uncertain={"all/0", "all/2", "all/3"}, crash_after="all/0")
    assert_once_each(world)


def test_smtp_down_for_a_while(world: World, tmp_path: Path) -> None:
    fax = make_fax(tmp_path / "spool")
    journal: dict[str, DeliveryResult] = {}
    run(world, fax, journal)
    assert journal["all/1"].outcome is Outcome.TRANSIENT
    assert {k for k, r in journal.items() if r.outcome is Outcome.DELIVERED} == {
        "all/0", "all/2", "all/3"}
    run(world, fax, journal)  # still down
    assert journal["all/1"].outcome is Outcome.TRANSIENT
    world.smtp.start()
    run(world, fax, journal)
    assert all(r.outcome is Outcome.DELIVERED for r in journal.values()), journal
    assert_once_each(world)
    run(world, fax, journal)  # nothing left to do
    assert_once_each(world)


def test_mail_is_at_least_once_with_a_stable_message_id(world: World, tmp_path: Path) -> None:
    """The one place exactly-once is out of reach: SMTP cannot be asked whether it took a
    mail. Killed after the server accepted it, the next attempt sends it again, with the same
    Message-ID so mail systems and people can recognize the duplicate."""
    world.smtp.start()
    fax = make_fax(tmp_path / "spool")
    journal: dict[str, DeliveryResult] = {}
    run(world, fax, journal, crash_after="all/1")
    run(world, fax, journal, uncertain={"all/1"})
    first, second = world.smtp.messages
    assert first["Message-ID"] == second["Message-ID"]
    assert len(world.hook.deliveries) == 1 and len(world.redmine.issues) == 1


class Killed(BaseException):
    """The process dies (like SIGKILL): nothing after it runs, nothing catches it."""


class DyingJournal(SQLiteJournal):
    """The core's SQLite journal, killed once right before it records one route's result."""

    def __init__(self, path: Path, die_before: set[str]) -> None:
        super().__init__(path)
        self.die_before = die_before

    def route_finished(self, topic: str, fax_id: str, route: str,
                       result: DeliveryResult) -> None:
        if route in self.die_before:
            self.die_before.discard(route)
            raise Killed(route)
        super().route_finished(topic, fax_id, route, result)


def test_with_the_core_protocol_and_journal(world: World, tmp_path: Path) -> None:
    """The real `faxflow.protocol.deliver` and SQLite journal: the process is killed after
    each ticket/webhook/folder delivery did its work and before the journal recorded it, and
    the SMTP server is down for the first attempts."""
    journal = DyingJournal(tmp_path / "journal.sqlite", {"all/0", "all/2", "all/3"})
    world.app.journal = journal
    fax_path = tmp_path / "spool"
    attempts = 0
    while True:
        attempts += 1
        assert attempts < 10
        if attempts == 5:
            world.smtp.start()
        fax = make_fax(fax_path)  # a new process sees the fax anew
        fax.routes = list(world.routes)
        try:
            protocol.deliver(fax, world.app)
        except Killed:
            continue
        if all(r.outcome is Outcome.DELIVERED for r in fax.results.values()):
            break
    assert attempts == 5
    states = {k: r.state for k, r in journal.routes(fax.topic, fax.id).items()}
    assert set(states.values()) == {"delivered"}
    assert_once_each(world)
    journal.close()
