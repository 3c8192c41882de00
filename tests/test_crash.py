"""Crash test: three `faxflow run` processes drain 500 faxes while they are SIGKILLed at
random moments and restarted, and the Retarus simulator fails 10% of the calls.

The real rules plugin routes every fax to a folder AND to an SMTP server (aiosmtpd in this
process, STARTTLS + AUTH, recording every message). Checked from the outside:
- every fax acknowledged at the simulator, none quarantined;
- each fax written exactly once to the folder (the folder plugin is idempotent);
- each fax mailed at least once; a repeated mail carries the Message-ID of the first, and
  repeats happen only around kills (at most kills x concurrency), as docs/destinations.md
  promises for email (at-least-once).
Set FAXFLOW_TEST_SEED to replay one schedule of kills.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pg_server as pg
import pytest
from faxflow_folder import LOCK_NAME
from servers.smtp import PASSWORD, SmtpServer
from test_core_e2e import add_faxes, wait_for

from faxflow.delivery import safe_component
from faxflow.journal import open_journal
from faxflow.simulator import Simulator, SimulatorServer

pg_server = pg.pg_server  # the fixtures, used by name
pg_url = pg.pg_url

WORKERS = 3
FAXES = 500
CONCURRENCY = 4
KILLS = 6
TOPIC = "abc123"


def config_text(api_url: str, journal: str, out: Path, smtp: SmtpServer) -> str:
    return f"""
[retarus]
base_url = "{api_url}"
username = "99999"
password = "${{SIM_PASSWORD}}"
topics = ["{TOPIC}"]
fetch = 20
lock_timeout = 2

[worker]
concurrency = {CONCURRENCY}
max_attempts = 50
poll_interval_max = 0.3
grace_period = 5
reload = false

[journal]
{journal}

[plugins.folder]
base = "{out}"

{smtp.settings_toml()}
[plugins.rules]
default_country = "DE"

[plugins.rules.default]
[[plugins.rules.default.route]]
type = "folder"
[[plugins.rules.default.route]]
type = "email"
to = "inbox@example.test"
subject = "Fax {{{{ fax_id }}}}"
"""


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    simulator = Simulator(users={"99999": "secret"}, topics={TOPIC: "99999"}, seed=7)
    with SimulatorServer(simulator, host="127.0.0.1", port=0) as server:
        yield server


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd's deprecation chatter
    server = SmtpServer(tmp_path).start()
    yield server
    server.stop()


class Workers:
    """N `faxflow run` processes, each in its own home folder; kill and restart by index."""

    def __init__(self, homes: list[Path], env: dict[str, str]) -> None:
        self.homes = homes
        self.env = env
        self.procs = [self._start(h) for h in homes]

    def _start(self, home: Path) -> subprocess.Popen[bytes]:
        with open(home / "worker.log", "ab") as fh:
            return subprocess.Popen(
                [sys.executable, "-m", "faxflow", "run", "-c", str(home / "faxflow.toml")],
                env=self.env, stdout=fh, stderr=subprocess.STDOUT, cwd=home)

    def kill_and_restart(self, i: int) -> None:
        self.procs[i].kill()  # SIGKILL: no grace period, no cleanup
        self.procs[i].wait(10)
        self.procs[i] = self._start(self.homes[i])

    def stop(self) -> list[int]:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        return [p.wait(30) for p in self.procs]

    def logs(self) -> list[str]:
        return [(h / "worker.log").read_text(errors="replace") for h in self.homes]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkilled_workers_lose_nothing_and_deliver_once(
        sim: SimulatorServer, smtp: SmtpServer, backend: str, tmp_path: Path,
        request: pytest.FixtureRequest) -> None:
    seed = int(os.environ.get("FAXFLOW_TEST_SEED", "0")) or random.randrange(1, 10**6)
    rng = random.Random(seed)
    pg_address = "unused:x:nothing@"
    if backend == "postgresql":
        pg_address = request.getfixturevalue("pg_url")
        journal = 'backend = "postgresql"\nurl = "${FAXFLOW_PG_URL}"'
    else:  # one SQLite file shared by the processes of one host
        journal = f'backend = "sqlite"\npath = "{tmp_path / "shared.sqlite"}"'
    out = tmp_path / "out"
    out.mkdir()
    homes = []
    for i in range(WORKERS):
        home = tmp_path / f"worker{i}"
        home.mkdir()
        (home / "faxflow.toml").write_text(config_text(sim.api_url, journal, out, smtp))
        homes.append(home)
    env = {**os.environ, "SIM_PASSWORD": "secret", "FAXFLOW_PG_URL": pg_address,
           "FAXFLOW_LOAD_PLUGINS": "rules,folder,email"}  # no OCR: 1-page text PDFs
    env.pop("FAXFLOW_PLUGINS_DIR", None)
    ids = add_faxes(sim, FAXES)
    sim.sim.set_faults({"rate": 0.1, "statuses": [429, 500, 503, 520], "drop_rate": 0.02})

    def acked() -> int:
        return int(sim.sim.topic_state(TOPIC)["acknowledged"])

    workers = Workers(homes, env)
    kills: list[tuple[int, int]] = []  # (worker, faxes acknowledged at that moment)
    try:
        # Kill while there is work in flight: spread the kills over the first 80% of the run.
        for _ in range(KILLS):
            target = min(acked() + rng.randint(10, 60), int(FAXES * 0.8))
            wait_for(lambda n=target: acked() >= n, 120,  # type: ignore[misc]
                     f"{target} faxes acknowledged")
            time.sleep(rng.random() * 0.5)
            victim = rng.randrange(WORKERS)
            kills.append((victim, acked()))
            workers.kill_and_restart(victim)
        wait_for(lambda: acked() >= FAXES, 180, "every fax acknowledged after the kills")
    finally:
        codes = workers.stop()
        sim.sim.set_faults({})
    logs = workers.logs()

    state = sim.sim.topic_state(TOPIC)
    assert state["acknowledged"] == FAXES
    assert set(state["acks"]) == set(ids)
    # The folder: exactly one document per fax (names are the fax ids) and its sidecar.
    pdfs = sorted(p.stem for p in out.rglob("*.pdf"))
    assert pdfs == sorted(safe_component(i, 100) for i in ids), "folder: missing or extra files"
    assert len(list(out.rglob("*.json"))) == FAXES
    # A process killed mid-write leaves a hidden temporary file (never a partial file under
    # the real name); the re-delivery of that fax removes it.
    leftovers = [p.name for p in out.rglob(".*") if p.name != LOCK_NAME]
    assert leftovers == [], leftovers
    # Mail: each fax at least once; a repeat is the same mail (same Message-ID).
    by_fax: dict[str, set[str]] = {}
    for message in list(smtp.messages):
        by_fax.setdefault(str(message["X-Faxflow-Fax-Id"]), set()).add(str(message["Message-ID"]))
    assert set(by_fax) == set(ids), "a fax was never mailed"
    assert all(len(mids) == 1 for mids in by_fax.values()), "a repeat with another Message-ID"
    counts = Counter(str(m["X-Faxflow-Fax-Id"]) for m in smtp.messages)
    duplicates = sum(n - 1 for n in counts.values())
    print(f"\ncrash test [{backend}] seed={seed}: {len(kills)} kills (worker, acked) {kills}; "
          f"{len(smtp.messages)} mails for {FAXES} faxes, {duplicates} duplicate(s); "
          f"{len(leftovers)} temporary file(s) left in the folder")
    assert duplicates <= len(kills) * CONCURRENCY
    assert len(leftovers) <= len(kills) * CONCURRENCY
    for home in homes:
        assert not list((home / "quarantine").rglob("reason.txt")), "quarantined"
    db = (open_journal("postgresql", tmp_path, pg_address) if backend == "postgresql"
          else open_journal("sqlite", tmp_path / "shared.sqlite", None))
    try:
        assert db.counts() == {"done:ack": FAXES}
    finally:
        db.close()
    assert codes == [0] * WORKERS, logs
    for text in logs:
        assert PASSWORD not in text
        assert "Traceback" not in text, text


# Loaded from a plugins dir into `faxflow run`: kills the process (SIGKILL, no cleanup) at the
# exact moment the folder plugin's temporary file is complete and about to be renamed.
CRASH_ON_RENAME = '''
import os, signal

FOLDER = os.environ.get("E2E_CRASH_ON_RENAME")  # the output folder
if FOLDER:
    _replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if os.path.dirname(str(dst)) == FOLDER and str(dst).endswith(".pdf"):
            os.kill(os.getpid(), signal.SIGKILL)
        return _replace(src, dst, *args, **kwargs)

    os.replace = replace
'''


def test_a_crash_mid_write_leaves_no_temporary_file_in_the_folder(
        sim: SimulatorServer, smtp: SmtpServer, tmp_path: Path) -> None:
    (fax_id,) = add_faxes(sim, 1)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "crash_on_rename.py").write_text(CRASH_ON_RENAME)
    out = tmp_path / "out"
    out.mkdir()
    journal = f'path = "{tmp_path / "journal.sqlite"}"'
    config = tmp_path / "faxflow.toml"
    text = config_text(sim.api_url, journal, out, smtp)
    config.write_text(text[:text.rindex("[[plugins.rules.default.route]]")])  # folder only
    env = {**os.environ, "SIM_PASSWORD": "secret", "FAXFLOW_LOAD_PLUGINS": "rules,folder",
           "FAXFLOW_PLUGINS_DIR": str(plugins), "E2E_CRASH_ON_RENAME": str(out)}
    crashing = Workers([tmp_path], env)
    assert crashing.procs[0].wait(60) == -signal.SIGKILL
    stale = [p.name for p in out.glob(".*.tmp")]
    assert len(stale) == 1 and not list(out.glob("*.pdf"))  # the crash happened mid-write
    env.pop("E2E_CRASH_ON_RENAME")
    workers = Workers([tmp_path], env)
    try:
        wait_for(lambda: sim.sim.topic_state(TOPIC)["acknowledged"] == 1, 60, "the ack")
    finally:
        assert workers.stop() == [0]
    assert [p.stem for p in out.glob("*.pdf")] == [safe_component(fax_id, 100)]
    left = [p.name for p in out.glob(".*") if p.name != LOCK_NAME]
    assert left == [], "stale temporary file left in the output folder"
