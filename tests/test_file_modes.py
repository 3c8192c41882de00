"""Personal data on disk: every file faxflow writes is owner-only by default, whatever the
umask, and a site can give a group access to delivered files on purpose.

The worker runs in this process against the simulator with the real ocr, rules and folder
plugins under umask 022 (the usual default that made files 0644 before); the test then looks
at the modes of everything under the run folder.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from faxflow.app import load_app
from faxflow.runner import start_worker_thread
from faxflow.simulator import Simulator, SimulatorServer
from faxflow.simulator.minipdf import one_page_pdf

CONFIG = """
[retarus]
base_url = "{api_url}"
username = "99999"
password = "secret"
topics = ["t"]
lock_timeout = 30

[worker]
concurrency = 2
poll_interval_max = 0.2
reload = false
{worker}

[journal]
path = "state/journal.sqlite"

[plugins.ocr]
languages = "eng"
orientation = "off"

[plugins.folder]
base = "out"
{folder}

[plugins.rules.default]
[[plugins.rules.default.route]]
type = "folder"
path = "{{{{ sender }}}}"
"""


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def run(tmp_path: Path, worker: str = "", folder: str = "") -> dict[str, int]:
    """Two faxes (one good, one corrupt) through the worker; the mode of every path after."""
    sim = Simulator(users={"99999": "secret"}, topics={"t": "99999"}, seed=1)
    with SimulatorServer(sim, host="127.0.0.1", port=0) as server:
        sim.add_fax("t", senderIsdn="+4940123456",
                    documents=[{"extension": "pdf", "content": one_page_pdf("Patient data")}])
        sim.add_fax("t", documents=[{"extension": "pdf", "content": b"%PDF-1.7 broken"}])
        (tmp_path / "out").mkdir()
        config = tmp_path / "faxflow.toml"
        config.write_text(CONFIG.format(api_url=server.api_url, worker=worker, folder=folder))
        app = load_app(config, load=["ocr", "rules", "folder"])
        thread, handle = start_worker_thread(app, wait=20)
        assert handle is not None
        deadline = time.monotonic() + 60
        while sim.topic_state("t")["acknowledged"] < 2:
            assert time.monotonic() < deadline, "faxes not acknowledged"
            time.sleep(0.1)
        running = modes_under(tmp_path)  # the journal's -wal and -shm exist only now
        handle.stop()
        thread.join(30)
    return {**running, **modes_under(tmp_path)}


def modes_under(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode)
            for p in root.rglob("*") if p.name != "faxflow.toml" and p.exists()}


def test_everything_written_is_owner_only_by_default(tmp_path: Path, umask_022: None) -> None:
    modes = run(tmp_path)
    delivered = [p for p in modes if p.startswith("out/") and p.endswith((".pdf", ".json"))]
    quarantined = [p for p in modes if p.startswith("quarantine/") and "." in Path(p).name]
    journal = [p for p in modes if p.startswith("state/journal.sqlite")]
    cache = [p for p in modes if p.startswith("ocr-cache/")]
    assert len(delivered) == 2, modes  # the document and its sidecar with the OCR text
    assert {"metadata.json", "reason.txt", "text.txt"} <= {Path(p).name for p in quarantined}
    assert {"state/journal.sqlite", "state/journal.sqlite-wal"} <= set(journal), modes
    assert cache, modes
    loose = {p: oct(m) for p, m in modes.items() if m & 0o077 and p != "out"}  # out: the site's
    assert loose == {}, f"readable by others: {loose}"
    folders = {p: oct(m) for p, m in modes.items() if (tmp_path / p).is_dir()}
    # Folders the site made itself (out/) keep their mode; every one faxflow made is 0700.
    assert {p for p, m in folders.items() if m != "0o700"} <= {"out"}, folders


def test_a_site_can_share_delivered_files_with_a_group(tmp_path: Path, umask_022: None) -> None:
    modes = run(tmp_path, folder='file_mode = "0640"\ndir_mode = "0750"')
    delivered = {p: m for p, m in modes.items() if p.startswith("out/")}
    assert {oct(m) for p, m in delivered.items() if (tmp_path / p).is_file()
            and not p.endswith(".faxflow.lock")} == {"0o640"}, delivered
    assert {oct(m) for p, m in delivered.items() if (tmp_path / p).is_dir()} == {"0o750"}
    # The rest (spool, quarantine, journal, cache) stays owner-only.
    others = {p: oct(m) for p, m in modes.items() if not p.startswith("out") and m & 0o077}
    assert others == {}, others


def test_worker_modes_apply_to_the_core_files(tmp_path: Path, umask_022: None) -> None:
    modes = run(tmp_path, worker='file_mode = "0640"\ndir_mode = "0750"')
    assert oct(modes["state/journal.sqlite"]) == "0o640"
    reason = next(p for p in modes if p.endswith("reason.txt"))
    assert oct(modes[reason]) == "0o640"


def test_bad_modes_are_config_errors(tmp_path: Path) -> None:
    from faxflow.config import parse

    _, problems = parse('[worker]\nfile_mode = "rw-r--r--"\ndir_mode = "0999"\n')
    assert [(p.path, p.message) for p in problems] == [
        (("worker", "file_mode"), 'must be an octal mode such as "0600" or "0640"'),
        (("worker", "dir_mode"), 'must be an octal mode such as "0700" or "0750"')]
