"""End to end over real HTTP: the simulator in this process, `faxflow run` as a real process
(or the worker in a thread), a one-file test plugin from tests/e2e_plugins/ that writes each
fax to a folder and records any second delivery."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from waiting import wait_for

from faxflow.app import App, load_app
from faxflow.hookspecs import hookimpl
from faxflow.paths import safe_name
from faxflow.runner import start_worker_thread
from faxflow.simulator import Simulator, SimulatorServer
from faxflow.simulator.minipdf import one_page_pdf
from faxflow.types import Decision, Fax, Verdict
from faxflow.worker import Worker

PLUGINS = Path(__file__).parent / "e2e_plugins"
FAXFLOW = [sys.executable, "-m", "faxflow"]


def config_text(api_url: str, lock_timeout: int = 2, max_attempts: int = 3,
                concurrency: int = 4) -> str:
    return f"""
[retarus]
base_url = "{api_url}"
username = "99999"
password = "${{SIM_PASSWORD}}"
topics = ["abc123"]
fetch = 20
lock_timeout = {lock_timeout}

[worker]
concurrency = {concurrency}
max_attempts = {max_attempts}
poll_interval_max = 0.3
grace_period = 5
reload = false

[journal]
path = "journal.sqlite"
"""


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    simulator = Simulator(users={"99999": "secret"}, topics={"abc123": "99999"}, seed=3)
    with SimulatorServer(simulator, host="127.0.0.1", port=0) as server:
        yield server


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    out = tmp_path / "out"
    out.mkdir()
    values = {"SIM_PASSWORD": "secret", "E2E_OUT": str(out), "FAXFLOW_LOAD_PLUGINS": "",
              "FAXFLOW_PLUGINS_DIR": str(PLUGINS)}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **values}


def add_faxes(server: SimulatorServer, n: int) -> list[str]:
    pdf = one_page_pdf("end to end")
    return [server.sim.add_fax("abc123", documents=[{"extension": "pdf", "content": pdf}])["id"]
            for _ in range(n)]



def delivered(out: Path) -> set[str]:
    return {p.name for p in out.glob("*.pdf")}


def start_worker(config: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as fh:
        return subprocess.Popen([*FAXFLOW, "run", "-c", str(config)], env=env,
                                stdout=fh, stderr=subprocess.STDOUT, cwd=config.parent)


def test_run_drains_200_faxes_each_delivered_and_acknowledged_once(
        sim: SimulatorServer, env: dict[str, str], tmp_path: Path) -> None:
    ids = add_faxes(sim, 200)
    config = tmp_path / "faxflow.toml"
    config.write_text(config_text(sim.api_url, lock_timeout=60))
    out = Path(env["E2E_OUT"])
    proc = start_worker(config, env, tmp_path / "worker.log")
    try:
        wait_for(lambda: sim.sim.topic_state("abc123")["acknowledged"] == 200, 90,
                 "all faxes acknowledged")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    log = (tmp_path / "worker.log").read_text()
    assert code == 0, log
    assert delivered(out) == {safe_name(i) + ".pdf" for i in ids}
    assert not (out / "duplicates.log").exists()
    state = sim.sim.topic_state("abc123")
    assert sorted(state["acks"]) == sorted(ids)  # each acknowledged exactly once
    assert not list((tmp_path / "spool").rglob("*.pdf")), "spool cleaned after ack"
    assert "Traceback" not in log


@pytest.mark.slow
def test_sigkill_at_random_moments_still_delivers_each_fax_exactly_once(
        sim: SimulatorServer, env: dict[str, str], tmp_path: Path) -> None:
    ids = add_faxes(sim, 200)
    config = tmp_path / "faxflow.toml"
    config.write_text(config_text(sim.api_url, lock_timeout=2, max_attempts=10))
    out = Path(env["E2E_OUT"])
    rng = random.Random(int(os.environ.get("FAXFLOW_TEST_SEED", "0")) or None)
    kills = 0
    for _ in range(3):  # kill it three times, at a random number of deliveries
        target = len(delivered(out)) + rng.randint(1, 50)
        proc = start_worker(config, env, tmp_path / "worker.log")
        wait_for(lambda t=target, p=proc: len(delivered(out)) >= min(t, 200)
                 or p.poll() is not None, 60, "deliveries")
        time.sleep(rng.random() * 0.2)
        proc.kill()
        proc.wait(10)
        kills += 1
    proc = start_worker(config, env, tmp_path / "worker.log")
    try:
        wait_for(lambda: sim.sim.topic_state("abc123")["acknowledged"] == 200, 120,
                 "all faxes acknowledged after the crashes")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert kills == 3
    assert delivered(out) == {safe_name(i) + ".pdf" for i in ids}
    dups = (out / "duplicates.log").read_text() if (out / "duplicates.log").exists() else ""
    assert dups == "", f"delivered twice: {dups}"
    assert not list((tmp_path / "quarantine").rglob("metadata.json"))


class Notifications:
    """Records every notification hook, to check what fires when."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    @hookimpl
    def faxflow_fax_received(self, fax: Fax) -> None:
        self.events.append(("received", fax.id))

    @hookimpl
    def faxflow_fax_acknowledged(self, fax: Fax, decision: Decision) -> None:
        assert decision.verdict is Verdict.ACK
        self.events.append(("acknowledged", fax.id))

    @hookimpl
    def faxflow_fax_quarantined(self, fax: Fax, decision: Decision) -> None:
        assert (fax.scratch["quarantine_dir"] / "metadata.json").exists()
        self.events.append(("quarantined", fax.id))

    @hookimpl
    def faxflow_fax_failed(self, fax: Fax, decision: Decision) -> None:
        assert decision.verdict is Verdict.NOT_YET
        self.events.append(("failed", fax.id))


def run_in_thread(config: Path, stop_when: Callable[[], bool], timeout: float,
                  extra: dict[str, object] | None = None,
                  on_app: Callable[[App], None] | None = None,
                  ) -> tuple[Worker, threading.Thread]:
    app = load_app(config, plugins_dir=PLUGINS, extra=(extra or {}).items())
    if on_app:
        on_app(app)
    thread, worker = start_worker_thread(app, wait=10)
    assert worker is not None
    try:
        wait_for(stop_when, timeout, "the end state")
    finally:
        worker.stop()
        thread.join(20)
    return worker, thread


def test_not_yet_vote_retries_after_lock_expiry_then_quarantines(
        sim: SimulatorServer, env: dict[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ids = add_faxes(sim, 3)
    stubborn = ids[1]
    monkeypatch.setenv("E2E_NOT_YET", stubborn)  # read when the plugin file loads
    config = tmp_path / "faxflow.toml"
    config.write_text(config_text(sim.api_url, lock_timeout=1, max_attempts=3))
    seen = Notifications()
    worker, thread = run_in_thread(
        config, lambda: sim.sim.topic_state("abc123")["acknowledged"] == 3, 60,
        extra={"seen": seen})
    assert not thread.is_alive()
    quarantined = list((tmp_path / "quarantine").rglob("reason.txt"))
    assert len(quarantined) == 1
    folder = quarantined[0].parent
    assert folder.name == safe_name(stubborn)
    assert "test plugin says not yet" in quarantined[0].read_text()
    assert "gave up after 3 attempts" in quarantined[0].read_text()
    assert (folder / "document-1.pdf").read_bytes().startswith(b"%PDF")
    db = sqlite3.connect(tmp_path / "journal.sqlite")
    attempts, state, verdict = db.execute(
        "SELECT attempts, state, verdict FROM fax WHERE fax_id=?", (stubborn,)).fetchone()
    assert (attempts, state, verdict) == (3, "done", "quarantine")
    # The stubborn fax was delivered on its first attempt and never again.
    assert not (Path(env["E2E_OUT"]) / "duplicates.log").exists()
    assert worker.app.metrics.total("faxflow_faxes_retried") == 2
    assert worker.app.metrics.total("faxflow_faxes_quarantined") == 1
    assert worker.app.metrics.total("faxflow_faxes_acknowledged") == 2
    assert sorted(e for e in seen.events if e[1] == stubborn) == [
        ("failed", stubborn), ("failed", stubborn), ("quarantined", stubborn),
        ("received", stubborn), ("received", stubborn), ("received", stubborn)]
    others = sorted(set(ids) - {stubborn})
    assert sorted(i for e, i in seen.events if e == "acknowledged") == others


def test_fixing_the_password_in_the_config_file_takes_effect_without_restart(
        sim: SimulatorServer, env: dict[str, str], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    import logging

    ids = add_faxes(sim, 5)
    config = tmp_path / "faxflow.toml"
    good = config_text(sim.api_url).replace("reload = false", "reload = true")
    config.write_text(good.replace("${SIM_PASSWORD}", "wrong-password"))

    def fix_when_refused() -> bool:
        if "wrong username or password" in caplog.text and "wrong-password" in config.read_text():
            config.write_text(good)  # the operator fixes the file; the worker reloads it
        return sim.sim.topic_state("abc123")["acknowledged"] == 5

    with caplog.at_level(logging.INFO):
        run_in_thread(config, fix_when_refused, 60)
    assert delivered(Path(env["E2E_OUT"])) == {safe_name(i) + ".pdf" for i in ids}
    assert "configuration reloaded" in caplog.text
    assert "Retarus connection settings changed" in caplog.text
    assert "wrong-password" not in caplog.text


def test_retry_for_keeps_retrying_young_faxes_past_max_attempts(
        sim: SimulatorServer, env: dict[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime, timedelta

    pdf = one_page_pdf("retry window")
    now = datetime.now(UTC)
    old = sim.sim.add_fax("abc123", documents=[{"extension": "pdf", "content": pdf}],
                          dateReceived=(now - timedelta(hours=2)).strftime(
                              "%Y-%m-%dT%H:%M:%S%z"))["id"]
    young = sim.sim.add_fax("abc123", documents=[{"extension": "pdf", "content": pdf}],
                            dateReceived=now.strftime("%Y-%m-%dT%H:%M:%S%z"))["id"]
    monkeypatch.setenv("E2E_NOT_YET", f"{old},{young}")  # a destination that stays down
    config = tmp_path / "faxflow.toml"
    config.write_text(config_text(sim.api_url, lock_timeout=1, max_attempts=2)
                      .replace("max_attempts = 2", "max_attempts = 2\nretry_for = 3600"))
    journal = tmp_path / "journal.sqlite"

    def attempts(fax_id: str) -> int:
        if not journal.exists():
            return 0
        row = sqlite3.connect(journal).execute(
            "SELECT attempts FROM fax WHERE fax_id=?", (fax_id,)).fetchone()
        return int(row[0]) if row else 0

    run_in_thread(config, lambda: sim.sim.topic_state("abc123")["acknowledged"] == 1
                  and attempts(young) >= 4, 60)
    reasons = [p.read_text() for p in (tmp_path / "quarantine").rglob("reason.txt")]
    assert len(reasons) == 1 and "gave up after 2 attempts" in reasons[0]  # the old one
    assert sim.sim.topic_state("abc123")["acks"] == [old]
    assert attempts(young) >= 4  # past max_attempts, still waiting for its destination
