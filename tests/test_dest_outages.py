"""A destination away for a while, through the real worker (simulator, rules, real servers):
the faxes wait (not acknowledged, counted as retried), the logs say why, and once the
destination is back each fax is delivered once and acknowledged, with nobody restarting
anything. The issue speaks of "a minute" down; here it is 6 s (several lock timeouts of 1 s),
which exercises the same path: every attempt in between ends not-yet.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import servers.http
from faxflow_folder import LOCK_NAME
from servers.redmine import FakeRedmine
from servers.smtp import SmtpServer
from test_core_e2e import add_faxes, wait_for

from faxflow.app import App, load_app
from faxflow.runner import start_worker_thread
from faxflow.simulator import Simulator, SimulatorServer

TOPIC = "abc123"
FAXES = 5
DOWN_SECONDS = 6


def config_text(api_url: str, routes: str, plugins: str) -> str:
    return f"""
[retarus]
base_url = "{api_url}"
username = "99999"
password = "secret"
topics = ["{TOPIC}"]
fetch = 20
lock_timeout = 1

[worker]
concurrency = 4
max_attempts = 100
poll_interval_max = 0.2
grace_period = 5
reload = false

[journal]
path = "journal.sqlite"

{plugins}
[plugins.rules]
default_country = "DE"

[plugins.rules.default]
{routes}
"""


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    simulator = Simulator(users={"99999": "secret"}, topics={TOPIC: "99999"}, seed=11)
    with SimulatorServer(simulator, host="127.0.0.1", port=0) as server:
        yield server


class Running:
    """The real worker (as `faxflow run` runs it) in a thread, with its app for metrics."""

    def __init__(self, config: Path, load: list[str]) -> None:
        self.app: App = load_app(config, load=load)
        self.thread, worker = start_worker_thread(self.app, wait=10)
        assert worker is not None
        self.worker = worker

    def retried(self) -> float:
        return self.app.metrics.total("faxflow_faxes_retried")

    def stop(self) -> None:
        self.worker.stop()
        self.thread.join(20)
        assert not self.thread.is_alive()


def outage(sim: SimulatorServer, running: Running, restore: Callable[[], object]) -> list[str]:
    """Faxes arrive while the destination is away; check they wait; restore it; wait for
    every fax to be acknowledged. Returns the fax ids."""
    ids = add_faxes(sim, FAXES)

    def acked() -> int:
        return int(sim.sim.topic_state(TOPIC)["acknowledged"])

    wait_for(lambda: running.retried() >= FAXES, 30, "a failed attempt for each fax")
    first = running.retried()
    time.sleep(DOWN_SECONDS)
    assert acked() == 0, "acknowledged while the destination was away"
    assert running.retried() > first, "not retried while the destination was away"
    restore()
    wait_for(lambda: acked() == FAXES, 60, "every fax acknowledged once it is back")
    return ids


def test_smtp_server_down_then_back(sim: SimulatorServer, tmp_path: Path,
                                    caplog: pytest.LogCaptureFixture) -> None:
    smtp = SmtpServer(tmp_path)  # its port is chosen, nothing listens there yet
    config = tmp_path / "faxflow.toml"
    config.write_text(config_text(sim.api_url, plugins=smtp.settings_toml(), routes="""
[[plugins.rules.default.route]]
type = "email"
to = "inbox@example.test"
"""))
    running = Running(config, ["rules", "email"])
    try:
        with caplog.at_level(logging.INFO, logger="faxflow"):
            ids = outage(sim, running, smtp.start)
    finally:
        running.stop()
        smtp.stop()
    sent = sorted(str(m["X-Faxflow-Fax-Id"]) for m in smtp.messages)
    assert sent == sorted(ids), "each fax mailed exactly once when the server was back"
    assert "Connection refused" in caplog.text
    assert "not-yet because core: route default/0: SMTP" in caplog.text
    assert "comes back after the lock timeout" in caplog.text
    assert not list((tmp_path / "quarantine").rglob("reason.txt"))


def start_on(service: FakeRedmine, port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Start the fake on a given port (FakeService.start always picks a free one)."""
    with monkeypatch.context() as m:
        m.setattr(servers.http, "ThreadingHTTPServer",
                  lambda _address, handler: ThreadingHTTPServer(("127.0.0.1", port), handler))
        service.start()


def test_ticketing_server_down_then_back(sim: SimulatorServer, tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    redmine = FakeRedmine(projects=("fax",))
    redmine.start()
    url = redmine.url
    port = int(url.rsplit(":", 1)[1])
    redmine.stop()  # down from the start: connections are refused
    monkeypatch.setenv("REDMINE_KEY", redmine.api_key)
    config = tmp_path / "faxflow.toml"
    config.write_text(config_text(sim.api_url, plugins=f"""
[plugins.redmine]
url = "{url}"
api_key = "${{REDMINE_KEY}}"
retry_delay = 0.01
""", routes="""
[[plugins.rules.default.route]]
type = "redmine"
project = "fax"
"""))
    running = Running(config, ["rules", "redmine"])
    try:
        with caplog.at_level(logging.INFO, logger="faxflow"):
            ids = outage(sim, running, lambda: start_on(redmine, port, monkeypatch))
    finally:
        running.stop()
        redmine.stop()
    # One issue per fax, whatever number of attempts it took.
    assert len(redmine.issues) == FAXES
    descriptions = "\n".join(i["description"] for i in redmine.issues.values())
    assert all(descriptions.count(fax_id) >= 1 for fax_id in ids)
    assert "not-yet because core: route default/0: redmine lookup: cannot connect" in caplog.text
    assert "Connection refused" in caplog.text
    assert "comes back after the lock timeout" in caplog.text
    assert not list((tmp_path / "quarantine").rglob("reason.txt"))


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], check=False, capture_output=True)


@pytest.fixture
def out_folder(tmp_path: Path) -> Iterator[Path]:
    out = tmp_path / "out"
    out.mkdir()
    yield out
    umount(out)  # whatever a test left mounted there


def read_only(out: Path) -> Callable[[], object]:
    # Tests run as root, and chmod does not stop root: a read-only bind mount does.
    mount("--bind", str(out), str(out))
    mount("-o", "remount,ro,bind", str(out))
    return lambda: umount(out)


def full_disk(out: Path) -> Callable[[], object]:
    mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(out))
    filler = out / "filler"
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass  # the disk is full now
    return filler.unlink


def away(out: Path) -> Callable[[], object]:
    # A volume not mounted: the folder is not there at all.
    aside = out.with_name("out-away")
    out.rename(aside)
    return lambda: aside.rename(out)


@pytest.mark.parametrize("condition, message", [
    (read_only, "Read-only file system"),
    (full_disk, "No space left on device"),
    (away, "does not exist (not mounted?)"),
], ids=["read-only", "disk-full", "folder-away"])
def test_output_folder_unwritable_then_fixed(
        sim: SimulatorServer, tmp_path: Path, out_folder: Path,
        caplog: pytest.LogCaptureFixture, condition: Callable[[Path], Callable[[], object]],
        message: str) -> None:
    try:
        clear = condition(out_folder)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"cannot mount here (needs root and mount): {exc}")
    config = tmp_path / "faxflow.toml"
    config.write_text(config_text(sim.api_url, plugins=f"""
[plugins.folder]
base = "{out_folder}"
""", routes="""
[[plugins.rules.default.route]]
type = "folder"
"""))
    running = Running(config, ["rules", "folder"])
    try:
        with caplog.at_level(logging.INFO, logger="faxflow"):
            ids = outage(sim, running, clear)
    finally:
        running.stop()
    written = sorted(p.name for p in out_folder.glob("*.pdf"))
    assert len(written) == len(ids) == FAXES
    left = [p.name for p in out_folder.glob(".*") if p.name != LOCK_NAME]
    assert not left, "temporary files left behind"
    assert "not-yet because core: route default/0: folder: " in caplog.text
    assert message in caplog.text
    assert "comes back after the lock timeout" in caplog.text
    assert not list((tmp_path / "quarantine").rglob("reason.txt"))

