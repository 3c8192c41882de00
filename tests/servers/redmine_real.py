"""A real Redmine for the tests: Debian's `redmine redmine-sqlite thin` packages (installed by
./dev), started on 127.0.0.1 for the test session and stopped after it.

The package's postinst creates and migrates the SQLite database; here we switch the REST API
on, make sure a project exists, read the admin's API key with `rails runner`, and boot the
server (about 8 s). Locally, without the packages, the tests that need it are skipped; in CI
(CI=true) they fail instead, so a missing install step cannot hide.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path("/usr/share/redmine")
SETUP = """
Setting.rest_api_enabled = "1"
Project.find_by(identifier: "faxflow") || Project.create!(name: "Faxflow",
  identifier: "faxflow", is_public: true, tracker_ids: Tracker.pluck(:id))
puts "KEY=" + User.find_by(login: "admin").api_key
"""


@dataclass(frozen=True)
class RealRedmine:
    url: str
    key: str
    project: str = "faxflow"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must install redmine redmine-sqlite thin: see ./dev)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def real_redmine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealRedmine]:
    if not (ROOT / "bin" / "rails").exists():
        missing("Debian's redmine package is not installed")
    env = {**os.environ, "RAILS_ENV": "production", "X_DEBIAN_SITEID": "default"}
    setup = subprocess.run(["bin/rails", "runner", SETUP], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
    keys = [line[4:] for line in setup.stdout.splitlines() if line.startswith("KEY=")]
    if setup.returncode != 0 or not keys:
        pytest.fail(f"redmine set-up failed: {setup.stderr[-2000:]}")
    port = _free_port()
    logs = tmp_path_factory.mktemp("redmine")
    with open(logs / "server.log", "wb") as log:
        server = subprocess.Popen(
            ["bin/rails", "server", "-b", "127.0.0.1", "-p", str(port), "-e", "production",
             "-P", str(logs / "server.pid")],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/projects.json", headers={"X-Redmine-API-Key": keys[0]},
                             timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("redmine did not start: "
                            + (logs / "server.log").read_text(errors="replace")[-2000:])
            time.sleep(0.5)
        yield RealRedmine(url, keys[0])
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
