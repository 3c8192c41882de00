"""The spool after crashes: what a killed worker left is removed once no worker holds the fax
(at start-up and periodically), and nothing a worker is still using is touched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from waiting import wait_for

from faxflow import spool
from faxflow.journal import SQLiteJournal
from faxflow.simulator import Simulator, SimulatorServer
from faxflow.simulator.minipdf import one_page_pdf

PLUGINS = Path(__file__).parent / "e2e_plugins"


def folder_for(root: Path, topic: str, fax_id: str) -> Path:
    folder = spool.make_fax_dir(root, topic, fax_id)
    (folder / "document-1.pdf").write_bytes(b"%PDF-1.4 patient data")
    return folder


def test_clean_stale_keeps_what_is_held_or_busy(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    journal = SQLiteJournal(tmp_path / "journal.sqlite")
    try:
        held = folder_for(root, "t", "held")  # another worker is on it
        assert journal.claim("t", "held", "other-host:1", 600) is not None
        done = folder_for(root, "t", "done/../x")  # decided and acknowledged elsewhere
        journal.claim("t", "done/../x", "other-host:1", 600)
        journal.decide("t", "done/../x", "ack", "")
        journal.acknowledged("t", ["done/../x"])
        expired = folder_for(root, "t", "expired")  # its worker died: the hold ran out
        journal.claim("t", "expired", "dead-host:1", 0.01)
        unknown = folder_for(root, "t", "unknown")  # never reached the journal
        busy = folder_for(root, "t", "busy")  # in flight in this process
        fresh = held.parent / "being-made"  # no marker yet: made a moment ago
        fresh.mkdir()
        old = held.parent / "old-unmarked"
        old.mkdir()
        os.utime(old, (time.time() - 7200, time.time() - 7200))
        time.sleep(0.05)
        removed = spool.clean_stale(root, journal, {busy})
        assert removed == 4
        assert held.exists() and busy.exists() and fresh.exists()
        assert not done.exists() and not expired.exists() and not unknown.exists()
        assert not old.exists()
    finally:
        journal.close()


def test_the_marker_names_the_fax(tmp_path: Path) -> None:
    folder = spool.make_fax_dir(tmp_path, "topic/..", "a\nb")
    assert json.loads((folder / spool.MARKER).read_text()) == {"topic": "topic/..", "id": "a\nb"}
    assert folder.parent.parent == tmp_path and oct(folder.stat().st_mode & 0o777) == "0o700"
    assert oct((folder / spool.MARKER).stat().st_mode & 0o777) == "0o600"


CONFIG = """
[retarus]
base_url = "{api_url}"
username = "99999"
password = "secret"
topics = ["t"]
lock_timeout = 2

[worker]
concurrency = 4
poll_interval_max = 0.2
grace_period = 1
reload = false
spool_dir = "{spool}"

[journal]
path = "journal.sqlite"
"""



def test_a_killed_workers_spool_is_cleaned_when_it_starts_again(tmp_path: Path) -> None:
    """Worker A is killed while delivering; worker B (its own spool, the same journal, as
    two processes on one host) finishes the faxes; A's leftovers go when A starts again."""
    sim = Simulator(users={"99999": "secret"}, topics={"t": "99999"}, seed=2)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "E2E_OUT": str(out), "FAXFLOW_LOAD_PLUGINS": "",
           "FAXFLOW_PLUGINS_DIR": str(PLUGINS)}

    def start(name: str, delay: float) -> subprocess.Popen[bytes]:
        config = tmp_path / f"{name}.toml"
        config.write_text(CONFIG.format(api_url=server.api_url, spool=f"spool-{name}"))
        with open(tmp_path / f"{name}.log", "ab") as log:
            return subprocess.Popen([sys.executable, "-m", "faxflow", "run", "-c", str(config)],
                                    env={**env, "E2E_DELIVER_DELAY": str(delay)},
                                    cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)

    def fax_folders(name: str) -> list[Path]:
        return [p for p in (tmp_path / f"spool-{name}").glob("*/*") if p.is_dir()]

    with SimulatorServer(sim, host="127.0.0.1", port=0) as server:
        for i in range(3):
            sim.add_fax("t", documents=[{"extension": "pdf", "content": one_page_pdf(f"{i}")}])
        a = start("a", delay=60)
        wait_for(lambda: len(fax_folders("a")) == 3 and all(
            any(f.glob("document-*")) for f in fax_folders("a")), 30, "A downloading")
        a.kill()
        a.wait(10)
        b = start("b", delay=0)
        wait_for(lambda: sim.topic_state("t")["acknowledged"] == 3, 60, "B finishing")
        b.send_signal(signal.SIGTERM)
        assert b.wait(30) == 0
        assert len(fax_folders("a")) == 3  # what the crash left
        assert fax_folders("b") == []
        a = start("a", delay=0)
        try:
            wait_for(lambda: fax_folders("a") == [], 30, "A cleaning its spool")
        finally:
            a.send_signal(signal.SIGTERM)
            a.wait(30)
    assert "removed 3 stale spool folder(s)" in (tmp_path / "a.log").read_text()
    assert sorted(p.name for p in out.glob("*.pdf")) and not (out / "duplicates.log").exists()
