"""The gate before delivery (faxflow_hold_vote) and per-app plugin state (App.stash).

The worker runs in this process against the simulator with the e2e test plugin (it writes
each fax's document to $E2E_OUT and records any second delivery) and a voting plugin.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from waiting import wait_for

from faxflow.app import App, load_app
from faxflow.hookspecs import hookimpl
from faxflow.runner import start_worker_thread
from faxflow.simulator import Simulator, SimulatorServer
from faxflow.simulator.minipdf import one_page_pdf
from faxflow.stash import Stash, StashKey
from faxflow.types import Fax, Job, Vote

PLUGINS = Path(__file__).parent / "e2e_plugins"
CONFIG = """
[retarus]
base_url = "{api_url}"
username = "99999"
password = "secret"
topics = ["t"]
lock_timeout = 30

[worker]
poll_interval_max = 0.2
reload = false

[journal]
path = "journal.sqlite"
"""


class Scanner:
    """Votes on faxes whose page says VIRUS: before delivery (hold) or after (ack)."""

    def __init__(self, when: str) -> None:
        self.when = when
        self.asked: list[tuple[str, list[str]]] = []

    def _vote(self, fax: Fax, hook: str) -> Vote | None:
        self.asked.append((hook, [r.key for r in fax.routes]))
        if hook == self.when and b"VIRUS" in fax.documents[0].path.read_bytes():
            return Vote.quarantine("virus found")
        return None

    @hookimpl
    def faxflow_hold_vote(self, fax: Fax) -> Vote | None:
        return self._vote(fax, "hold")

    @hookimpl
    def faxflow_ack_vote(self, fax: Fax) -> Vote | None:
        return self._vote(fax, "ack")


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plugin: object) -> tuple[Path, Path]:
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("E2E_OUT", str(out))
    sim = Simulator(users={"99999": "secret"}, topics={"t": "99999"}, seed=4)
    with SimulatorServer(sim, host="127.0.0.1", port=0) as server:
        sim.add_fax("t", documents=[{"extension": "pdf", "content": one_page_pdf("VIRUS")}])
        sim.add_fax("t", documents=[{"extension": "pdf", "content": one_page_pdf("clean")}])
        config = tmp_path / "faxflow.toml"
        config.write_text(CONFIG.format(api_url=server.api_url))
        app = load_app(config, load=[], plugins_dir=PLUGINS, extra=[("scanner", plugin)])
        thread, worker = start_worker_thread(app, wait=20)
        assert worker is not None
        wait_for(lambda: sim.topic_state("t")["acknowledged"] == 2, 60)
        worker.stop()
        thread.join(30)
    return out, tmp_path / "quarantine"



def test_a_hold_vote_stops_the_fax_before_anything_is_delivered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scanner = Scanner("hold")
    out, quarantine = run(tmp_path, monkeypatch, scanner)
    assert len(list(out.glob("*.pdf"))) == 1  # only the clean one
    (meta_path,) = quarantine.rglob("metadata.json")
    meta = json.loads(meta_path.read_text())
    assert meta["reasons"] == ["held before delivery: scanner: virus found"]
    assert meta["delivered_routes"] == []
    # The gate is asked after routing, with the routes known.
    assert ("hold", ["all/0"]) in scanner.asked


def test_a_quarantine_after_delivery_says_where_the_fax_already_went(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, quarantine = run(tmp_path, monkeypatch, Scanner("ack"))
    assert len(list(out.glob("*.pdf"))) == 2  # delivered, then quarantined
    (meta_path,) = quarantine.rglob("metadata.json")
    meta = json.loads(meta_path.read_text())
    assert meta["delivered_routes"] == ["all/0"]
    reason = (meta_path.parent / "reason.txt").read_text()
    assert "Already delivered before the quarantine: all/0" in reason


COUNT = StashKey[list[str]]()


class Counter:
    """Keeps per-app state in the stash, not in a module global."""

    @hookimpl
    def faxflow_configure(self, app: App) -> None:
        app.stash.setdefault(COUNT, [])

    @hookimpl
    def faxflow_fax_received(self, fax: Fax, app: App) -> None:
        app.stash[COUNT].append(fax.id)


def test_two_apps_in_one_process_keep_their_own_state(tmp_path: Path) -> None:
    config = tmp_path / "f.toml"
    config.write_text("[worker]\nconcurrency = 1\n")
    plugin = Counter()
    first = load_app(config, load=[], extra=[("counter", plugin)])
    second = load_app(config, load=[], extra=[("counter", plugin)])
    first.notify("faxflow_fax_received", fax=Fax(job=Job(id="a"), topic="t"), app=first)
    assert first.stash[COUNT] == ["a"] and second.stash[COUNT] == []
    assert first.plugin_name(plugin) == "counter"
    assert COUNT in first.stash and StashKey[int]() not in first.stash
    assert Stash().get(COUNT, None) is None

