"""One quarantine for all replicas: three `faxflow run` processes on one PostgreSQL journal
(tests/pg_server.py) quarantine faxes; one `faxflow quarantine` sees them all and releases
them while a worker is SIGKILLed, each delivered once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pg_server as pg
from waiting import wait_for

from faxflow.simulator import Simulator, SimulatorServer
from faxflow.simulator.minipdf import one_page_pdf

pg_server = pg.pg_server  # the fixtures, used by name
pg_url = pg.pg_url
PLUGINS = Path(__file__).parent / "e2e_plugins"
CONFIG = """\
[retarus]
base_url = "{api_url}"
username = "99999"
password = "secret"
topics = ["{topic}"]
fetch = 1
lock_timeout = 30

[worker]
concurrency = 1
poll_interval_max = 0.2
max_attempts = 1
reload = false
quarantine_dir = ""
spool_dir = "{spool}"

[journal]
backend = "postgresql"
url = "{url}"

[plugins.folder]
base = "out"

[plugins.rules.default]
[[plugins.rules.default.route]]
type = "folder"
"""



def test_three_replicas_one_quarantine_released_once_across_a_kill(
        pg_url: str, tmp_path: Path) -> None:
    topic = f"pg-{os.getpid()}-{time.monotonic_ns()}"  # the database outlives the test
    sink = tmp_path / "sink"
    sink.mkdir()
    env = {**os.environ, "E2E_OUT": str(sink), "E2E_DELIVER_DELAY": "0.3",
           "FAXFLOW_LOAD_PLUGINS": "rules,folder,history,console",
           "FAXFLOW_PLUGINS_DIR": str(PLUGINS)}
    sim = Simulator(users={"99999": "secret"}, topics={topic: "99999"}, seed=11)
    workers: list[subprocess.Popen[bytes]] = []
    with SimulatorServer(sim, host="127.0.0.1", port=0) as server:
        configs = []
        for n in range(3):
            config = tmp_path / f"worker{n}.toml"
            config.write_text(CONFIG.format(api_url=server.api_url, topic=topic, url=pg_url,
                                            spool=f"spool{n}"))
            configs.append(config)
            with open(tmp_path / f"worker{n}.log", "wb") as log:
                workers.append(subprocess.Popen(
                    [sys.executable, "-m", "faxflow", "run", "-c", str(config)], env=env,
                    cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT))
        try:
            for i in range(9):
                sim.add_fax(topic, documents=[{"extension": "pdf",
                                               "content": one_page_pdf(f"fax {i}")}])
            wait_for(lambda: sim.topic_state(topic)["acknowledged"] == 9, 90, "9 acks")

            def cli(*args: str) -> subprocess.CompletedProcess[str]:
                return subprocess.run([sys.executable, "-m", "faxflow", *args, "-c",
                                       str(configs[0])], env={**env, "E2E_DELIVER_DELAY": "0"},
                                      cwd=tmp_path, capture_output=True, text=True, timeout=300)

            listed = json.loads(cli("quarantine", "list", "--json").stdout)["items"]
            ours = [i for i in listed if i["topic"] == topic]
            assert len(ours) == 9
            workers_seen = set()
            for item in ours:
                detail = json.loads(cli("faxes", "show", str(item["id"]), "--json").stdout)
                workers_seen |= {e["worker"] for e in detail["events"]
                                 if e["name"] == "quarantined"}
            assert len(workers_seen) >= 2, workers_seen  # several replicas, one queue

            (tmp_path / "out").mkdir()  # the fix
            release = subprocess.Popen(
                [sys.executable, "-m", "faxflow", "quarantine", "release", "--all", "--topic",
                 topic, "--as", "ops", "-c", str(configs[0])], env=env, cwd=tmp_path,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            wait_for(lambda: any((tmp_path / "out").glob("*.pdf")), 60, "a first release")
            workers[1].send_signal(signal.SIGKILL)  # a replica dies meanwhile
            out, err = release.communicate(timeout=300)
            assert release.returncode == 0, out + err
            assert "9 of 9 done" in out
        finally:
            for proc in workers:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in workers:
                proc.wait(30)
    assert len(list((tmp_path / "out").glob("*.pdf"))) == 9
    assert len(list(sink.glob("*.pdf"))) == 9  # delivered before the quarantine, not again
    assert not (sink / "duplicates.log").exists()
