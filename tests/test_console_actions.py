"""The shared quarantine as a work queue, through the real CLI: `faxflow faxes` and
`faxflow quarantine list|show|release|route|dismiss`, exactly once.

A worker (in this process, against the simulator) quarantines faxes because their folder is
missing (the operator's mistake); the operator fixes it and releases them. Deliveries are
counted at the sinks: the folder, and the e2e test destination that records any second
delivery in duplicates.log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from waiting import wait_for

from faxflow.app import load_app
from faxflow.hookspecs import hookimpl
from faxflow.journal import open_journal
from faxflow.runner import start_worker_thread
from faxflow.simulator import Simulator, SimulatorServer
from faxflow.simulator.minipdf import one_page_pdf
from faxflow.types import Fax, Route

PLUGINS = Path(__file__).parent / "e2e_plugins"
CONFIG = """\
[retarus]
base_url = "{api_url}"
username = "99999"
password = "secret"
topics = ["t"]
lock_timeout = 30

[worker]
poll_interval_max = 0.2
max_attempts = 1
reload = false
quarantine_dir = ""

[journal]
path = "journal.sqlite"

[plugins.folder]
base = "out"

# The e2e test plugin adds its own route all/0 (testdir) to every fax.
[plugins.rules.default]
[[plugins.rules.default.route]]
type = "folder"

[[rule]]
name = "archive"
when.csid = "NEVER-MATCHES"
[[rule.route]]
type = "folder"
path = "archive"
"""



@pytest.fixture
def quarantined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    """Three faxes quarantined because the folder `out` does not exist."""
    sink = tmp_path / "sink"
    sink.mkdir()
    monkeypatch.setenv("E2E_OUT", str(sink))
    monkeypatch.setenv("FAXFLOW_LOAD_PLUGINS", "rules,folder,history,console")
    monkeypatch.setenv("FAXFLOW_PLUGINS_DIR", str(PLUGINS))
    sim = Simulator(users={"99999": "secret"}, topics={"t": "99999"}, seed=8)
    with SimulatorServer(sim, host="127.0.0.1", port=0) as server:
        ids = [sim.add_fax("t", documents=[{"extension": "pdf",
                                             "content": one_page_pdf(f"fax {i}")}])["id"]
               for i in range(3)]
        config = tmp_path / "faxflow.toml"
        config.write_text(CONFIG.format(api_url=server.api_url))
        app = load_app(config, plugins_dir=PLUGINS)
        thread, worker = start_worker_thread(app, wait=20)
        assert worker is not None
        wait_for(lambda: sim.topic_state("t")["acknowledged"] == 3, 60, "acknowledgements")
        worker.stop()
        thread.join(30)
    return config, ids


def cli(*args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "faxflow", *args], capture_output=True,
                            text=True, timeout=120, env={**os.environ, **env})
    assert "Traceback" not in result.stderr, result.stderr
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def sink_count(config: Path) -> int:
    return len(list((config.parent / "sink").glob("*.pdf")))


def test_release_after_fixing_the_configuration_delivers_once(
        quarantined: tuple[Path, list[str]]) -> None:
    config, ids = quarantined
    c = str(config)
    listed = json.loads(cli("quarantine", "list", "-c", c, "--json").stdout)["items"]
    assert sorted(i["fax_id"] for i in listed) == sorted(ids)
    assert all("does not exist" in i["reason"] for i in listed)
    assert sink_count(config) == 3  # the testdir route of each fax went through already
    first = listed[0]["id"]
    shown = cli("quarantine", "show", str(first), "-c", c).stdout
    assert "delivered before: all/0" in shown and "out does not exist" in shown

    (config.parent / "out").mkdir()  # the fix
    result = cli("quarantine", "release", str(first), "-c", c, "--as", "alice",
                 "--note", "volume mounted")
    assert f"#{first} released: delivered to default/0; all/0 before" in result.stdout
    assert len(list((config.parent / "out").glob("*.pdf"))) == 1
    assert sink_count(config) == 3  # all/0 was delivered before: not again
    assert not (config.parent / "sink" / "duplicates.log").exists()
    again = cli("quarantine", "release", str(first), "-c", c, "--as", "bob", check=False)
    assert again.returncode == 1 and f"#{first} was released by alice already" in again.stdout
    detail = json.loads(cli("faxes", "show", str(first), "-c", c, "--json").stdout)
    assert detail["row"]["status"] == "released"
    names = [e["name"] for e in detail["events"]]
    assert names[0] == "received" and names[-1] == "released"
    assert detail["quarantine"]["resolved_by"] == "alice"
    assert detail["quarantine"]["note"] == "volume mounted"

    # The rest in bulk, by what their reason says.
    bulk = cli("quarantine", "release", "--all", "--reason", "does not exist", "-c", c,
               "--as", "alice")
    assert "2 of 2 done" in bulk.stdout
    assert len(list((config.parent / "out").glob("*.pdf"))) == 3
    assert json.loads(cli("quarantine", "list", "-c", c, "--json").stdout)["items"] == []
    statuses = json.loads(cli("faxes", "list", "-c", c, "--json").stdout)["faxes"]
    assert [f["status"] for f in statuses] == ["released"] * 3


def test_route_to_a_rule_and_dismiss(quarantined: tuple[Path, list[str]]) -> None:
    config, _ = quarantined
    c = str(config)
    items = json.loads(cli("quarantine", "list", "-c", c, "--json").stdout)["items"]
    (config.parent / "out").mkdir()
    bad = cli("quarantine", "route", str(items[0]["id"]), "--target", "nope", "-c", c,
              check=False)
    assert bad.returncode == 1 and "no target 'nope'; choose one of: archive, default" in \
        bad.stdout + bad.stderr
    routed = cli("quarantine", "route", str(items[0]["id"]), "--target", "archive", "-c", c)
    assert "delivered to archive/0" in routed.stdout
    assert len(list((config.parent / "out" / "archive").glob("*.pdf"))) == 1
    no_note = cli("quarantine", "dismiss", str(items[1]["id"]), "-c", c, check=False)
    assert no_note.returncode == 1 and "needs a note" in no_note.stdout
    cli("quarantine", "dismiss", str(items[1]["id"]), "-c", c, "--note", "junk fax")
    listed = cli("faxes", "list", "-c", c, "--status", "dismissed").stdout.splitlines()
    assert len(listed) == 2 and listed[0].split()[:2] == ["ID", "SEEN"]
    assert all(len(line) <= 80 for line in cli("faxes", "list", "-c", c).stdout.splitlines())


def test_two_operators_releasing_at_once_deliver_once(
        quarantined: tuple[Path, list[str]]) -> None:
    from faxflow_console import actions

    config, _ = quarantined
    (config.parent / "out").mkdir()
    app = load_app(config, plugins_dir=PLUGINS)
    app.journal = open_journal("sqlite", config.parent / "journal.sqlite")
    second = load_app(config, plugins_dir=PLUGINS)
    second.journal = open_journal("sqlite", config.parent / "journal.sqlite")
    try:
        items, _ = app.journal.records.quarantine_list()
        ident = items[0][1].id
        outcomes: list[str] = []
        barrier = threading.Barrier(2)

        def act(a: object, who: str) -> None:
            barrier.wait()
            try:
                outcomes.append(actions.release(a, ident, who).message)  # type: ignore[arg-type]
            except actions.ActionError as exc:
                outcomes.append(str(exc))

        threads = [threading.Thread(target=act, args=(a, w))
                   for a, w in ((app, "alice"), (second, "bob"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        app.journal.close()
        second.journal.close()
    assert sum("released: delivered" in o for o in outcomes) == 1, outcomes
    assert len(list((config.parent / "out").glob("*.pdf"))) == 1


def test_a_release_killed_halfway_and_repeated_delivers_each_route_once(
        quarantined: tuple[Path, list[str]], tmp_path: Path) -> None:
    """Two routes this time: folder (fast) and testdir (slow); the CLI is killed while the
    second one is being delivered, then the release is repeated."""
    config, _ = quarantined
    c = str(config)
    (config.parent / "out").mkdir()
    (config.parent / "sink").rename(config.parent / "sink-before")  # count afresh
    (config.parent / "sink").mkdir()
    ident = json.loads(cli("quarantine", "list", "-c", c, "--json").stdout)["items"][0]["id"]
    journal = open_journal("sqlite", config.parent / "journal.sqlite")
    try:
        # Forget that all/0 went through, as if the first attempt had not got that far.
        journal.records.db.run("reset", lambda db: db.execute(
            "DELETE FROM delivery WHERE route = 'all/0'"))
    finally:
        journal.close()
    slow = subprocess.Popen([sys.executable, "-m", "faxflow", "quarantine", "release",
                             str(ident), "-c", c, "--as", "alice"],
                            env={**os.environ, "E2E_DELIVER_DELAY": "30"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: len(list((config.parent / "out").glob("*.pdf"))) == 1, 60,
             "the folder route")
    time.sleep(0.5)  # inside the slow testdir delivery now
    slow.send_signal(signal.SIGKILL)
    slow.wait(10)
    assert sink_count(config) == 0
    result = cli("quarantine", "release", str(ident), "-c", c, "--as", "alice")
    assert "released: delivered to all/0; default/0 before" in result.stdout, result.stdout
    assert len(list((config.parent / "out").glob("*.pdf"))) == 1
    assert sink_count(config) == 1
    assert not (config.parent / "sink" / "duplicates.log").exists()


class Observer:
    """Implements the lifecycle and hand-routing hooks, as a third-party plugin would."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def faxflow_fax_read(self, fax: Fax) -> None:
        self.seen.append(f"read {len(fax.pages)}")

    @hookimpl
    def faxflow_fax_routed(self, fax: Fax) -> None:
        self.seen.append(f"routed {[r.key for r in fax.routes]}")

    @hookimpl
    def faxflow_route_targets(self) -> list[str]:
        return ["legal-team"]

    @hookimpl
    def faxflow_route_to(self, fax: Fax, target: str) -> list[Route] | None:
        if target != "legal-team":
            return None
        return [Route("legal-team/0", "folder", {"path": "legal"}, rule="legal-team")]


def test_lifecycle_and_hand_routing_hooks(tmp_path: Path) -> None:
    from faxflow_console import actions

    observer = Observer()
    (tmp_path / "out").mkdir()
    config = tmp_path / "f.toml"
    config.write_text('[plugins.folder]\nbase = "out"\n[plugins.rules.default]\n'
                      '[[plugins.rules.default.route]]\ntype = "folder"\n')
    app = load_app(config, load=["rules", "folder"], extra=[("observer", observer)])
    app.journal = open_journal("sqlite", tmp_path / "journal.sqlite")
    try:
        assert app.route_targets() == ["default", "legal-team"]
        ident = app.journal.records.quarantine(
            "t", "f1", [("f1.pdf", "pdf", one_page_pdf("x"))], ["a reason"], {}, {}, [],
            None, "w")
        result = actions.route(app, ident, "legal-team", "carol")
        assert result.done and "delivered to legal-team/0" in result.message
        assert (tmp_path / "out" / "legal").is_dir()
        # No text-extraction plugin is loaded here: no pages.
        assert observer.seen == ["read 0", "routed ['legal-team/0']"]
    finally:
        app.journal.close()


def test_a_queue_route_waits_for_a_person_whose_decision_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """needs-review faxes go to the shared queue; routing one by hand to a rule that labels
    keeps the decision (target, labels, the fax's text) for a classifier to learn from."""
    from faxflow_console import actions

    (tmp_path / "out").mkdir()
    config = tmp_path / "faxflow.toml"
    config.write_text("""
[plugins.folder]
base = "out"
[plugins.rules.default]
[[plugins.rules.default.route]]
type = "queue"
reason = "needs review: nobody knows what it is"
[[rule]]
name = "lab-results"
labels = ["lab_result"]
when.csid = "NEVER"
[[rule.route]]
type = "folder"
path = "lab"
""")
    monkeypatch.delenv("FAXFLOW_LOAD_PLUGINS", raising=False)
    app = load_app(config, load=["rules", "folder", "console", "history"])
    app.journal = open_journal("sqlite", tmp_path / "journal.sqlite")
    try:
        pdf = tmp_path / "a.pdf"
        pdf.write_bytes(one_page_pdf("Potassium 4.1 mmol/l"))
        from faxflow.types import Document, DocumentRef, Job, PageText

        fax = Fax(job=Job(id="lab-1"), topic="t", documents=[Document(
            DocumentRef("", "lab-1.pdf", "pdf"), pdf, pdf.stat().st_size, "x", None)])
        fax.pages = [PageText(1, "Potassium 4.1 mmol/l", document="lab-1.pdf")]
        decision = app.process_fax(fax)
        assert decision.verdict.value == "ack"  # delivered to the queue: acknowledged
        (_row, item), = app.journal.records.quarantine_list()[0]
        assert item.reasons == ("needs review: nobody knows what it is",)
        detail = app.journal.records.fax(item.id)
        assert detail is not None and "queued" in [e.name for e in detail.events]
        assert app.targets()["lab-results"].labels == {"lab_result"}
        result = actions.route(app, item.id, "lab-results", "dana")
        assert result.done, result.message
        assert len(list((tmp_path / "out" / "lab").glob("*.pdf"))) == 1
        (kept,) = app.journal.records.decisions()
        assert (kept.who, kept.action, kept.target, kept.labels) == (
            "dana", "routed", "lab-results", ("lab_result",))
        assert kept.text is not None and "Potassium" in kept.text
    finally:
        app.journal.close()
