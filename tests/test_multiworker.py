"""Three `faxflow run` processes, each in its own folder as if on its own machine, share one
PostgreSQL journal and drain 300 faxes from the simulator. The Retarus lock is short (2 s) and
some deliveries take longer (5 s), so faxes are handed to a second worker while the first is
still delivering them. Checked from the outside: every fax acknowledged, each written exactly
once (the test plugin records a second write in duplicates.log)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pg_server as pg
import pytest
from test_core_e2e import PLUGINS, add_faxes, delivered, wait_for

from faxflow.journal import open_journal
from faxflow.paths import safe_name
from faxflow.simulator import Simulator, SimulatorServer

pg_server = pg.pg_server  # the fixtures, used by name
pg_url = pg.pg_url

WORKERS = 3
FAXES = 300
SLOW_SECONDS = 5  # over two lock timeouts: without held claims a second worker would deliver
SLOW_EVERY = 15  # about 20 of the 300 faxes

# Added next to the e2e test plugin: delays the delivery of some faxes, after the journal
# recorded the route as started, which is where a concurrent second delivery would hurt.
SLOW_PLUGIN = '''
import os, time, zlib
from faxflow.hookspecs import hookimpl

SECONDS = float(os.environ["E2E_SLOW_SECONDS"])
EVERY = int(os.environ["E2E_SLOW_EVERY"])


@hookimpl(wrapper=True)
def faxflow_deliver(fax, route, uncertain):
    if zlib.crc32(fax.id.encode()) % EVERY == 0:
        time.sleep(SECONDS)
    return (yield)
'''


def is_slow(fax_id: str) -> bool:
    return zlib.crc32(fax_id.encode()) % SLOW_EVERY == 0


def config_text(api_url: str, journal: str) -> str:
    return f"""
[retarus]
base_url = "{api_url}"
username = "99999"
password = "${{SIM_PASSWORD}}"
topics = ["abc123"]
fetch = 20
lock_timeout = 2

[worker]
concurrency = 4
max_attempts = 10
poll_interval_max = 0.3
grace_period = 10
reload = false

[journal]
{journal}
"""


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    simulator = Simulator(users={"99999": "secret"}, topics={"abc123": "99999"}, seed=5)
    with SimulatorServer(simulator, host="127.0.0.1", port=0) as server:
        yield server


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_three_workers_share_one_journal(
        sim: SimulatorServer, backend: str, tmp_path: Path,
        request: pytest.FixtureRequest) -> None:
    """PostgreSQL for workers on several machines; one SQLite file for several processes
    on one host. Either way a slow fax is never taken over mid-delivery."""
    if backend == "postgresql":
        pg_url = request.getfixturevalue("pg_url")
        journal_block = 'backend = "postgresql"\nurl = "${FAXFLOW_PG_URL}"'
        journal_args: tuple[Path, str | None] = (tmp_path, pg_url)
    else:
        pg_url = "unused:x:nothing@"
        db = tmp_path / "shared.sqlite"
        journal_block = f'backend = "sqlite"\npath = "{db}"'
        journal_args = (db, None)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(PLUGINS / "testdir.py", plugins / "testdir.py")
    (plugins / "slow.py").write_text(SLOW_PLUGIN)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "SIM_PASSWORD": "secret", "E2E_OUT": str(out),
           "FAXFLOW_LOAD_PLUGINS": "", "FAXFLOW_PLUGINS_DIR": str(plugins),
           "FAXFLOW_PG_URL": pg_url, "E2E_SLOW_SECONDS": str(SLOW_SECONDS),
           "E2E_SLOW_EVERY": str(SLOW_EVERY)}
    ids = add_faxes(sim, FAXES)
    assert 5 <= sum(map(is_slow, ids)) <= 60  # the mix the scenario needs
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    for i in range(WORKERS):
        home = tmp_path / f"worker{i}"
        home.mkdir()
        (home / "faxflow.toml").write_text(config_text(sim.api_url, journal_block))
        logs.append(home / "worker.log")
        with open(logs[-1], "ab") as fh:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "faxflow", "run", "-c", str(home / "faxflow.toml")],
                env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=home))
    try:
        wait_for(lambda: sim.sim.topic_state("abc123")["acknowledged"] == FAXES
                 or any(p.poll() is not None for p in procs), 120, "all faxes acknowledged")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(30) for p in procs]
    texts = [log.read_text() for log in logs]
    assert codes == [0] * WORKERS, texts
    state = sim.sim.topic_state("abc123")
    assert state["acknowledged"] == FAXES
    assert set(state["acks"]) == set(ids)  # a re-ack of a decided fax is allowed
    assert delivered(out) == {safe_name(i) + ".pdf" for i in ids}
    dups = (out / "duplicates.log").read_text() if (out / "duplicates.log").exists() else ""
    assert dups == "", f"delivered twice: {dups}"
    # The scenario happened: faxes came back to a worker while another still held them,
    # and the work was shared.
    assert sum(t.count("held by another worker; skipped") for t in texts) > 0
    assert sum(1 for t in texts if "delivered" in t) >= 2
    for text in texts:
        assert "Traceback" not in text, text
        if backend == "postgresql":
            assert pg_url.split(":")[2].split("@")[0] not in text  # the journal password
    journal = open_journal(backend, *journal_args)
    try:
        assert journal.counts() == {"done:ack": FAXES}
        assert journal.pending_acks() == {}
        for fax_id in ids:
            route = journal.routes("abc123", fax_id)["all/0"]
            assert route.state == "delivered"
    finally:
        journal.close()
