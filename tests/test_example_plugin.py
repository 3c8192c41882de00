"""The example third-party package in examples/faxflow-urgent, installed from its folder
(./dev test does it, as a user would with pip), written only against the documented API: its
three plugins are found through their entry points, checked, and run in a real worker.

End to end: `faxflow run` against the simulator with the real OCR and rules plugins and the
package's `urgent` (classifier), `sender_block` (hold vote) and `pager` (destination type).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from faxflow.app import load_app
from faxflow.samples import make_fax
from faxflow.simulator import Simulator, SimulatorServer
from faxflow.types import Fax, Job, PageText

CONFIG = """\
[retarus]
base_url = "{api_url}"
username = "99999"
password = "secret"
topics = ["t"]
lock_timeout = 60

[worker]
poll_interval_max = 0.3
reload = false

[journal]
path = "journal.sqlite"

[plugins.ocr]
languages = "eng"
orientation = "off"

[plugins.urgent]
words = ["urgent", "asap"]

[plugins.sender_block]
numbers = [{blocked}]

[plugins.pager]
outbox = "pager.txt"

[plugins.folder]
base = "out"

[plugins.rules.default]
[[plugins.rules.default.route]]
type = "folder"

[[rule]]
name = "urgent"
when.labels = ["urgent"]
[[rule.route]]
type = "pager"
to = "{pager}"
text = "Urgent fax from {{{{ sender }}}}"
"""
PLUGINS = "ocr,rules,folder,urgent,sender_block,pager"


def env() -> dict[str, str]:
    return {**os.environ, "FAXFLOW_LOAD_PLUGINS": PLUGINS}


def write_config(folder: Path, api_url: str = "http://127.0.0.1:9/x",
                 blocked: str = '"+4930123456"', pager: str = "+4917012345678") -> Path:
    path = folder / "faxflow.toml"
    path.write_text(CONFIG.format(api_url=api_url, blocked=blocked, pager=pager))
    (folder / "out").mkdir(exist_ok=True)
    return path


def test_one_package_three_plugins_through_entry_points(tmp_path: Path) -> None:
    listed = subprocess.run([sys.executable, "-m", "faxflow", "plugins", "--json"],
                            capture_output=True, text=True, env=env(), check=True).stdout
    rows = {r["name"]: r for r in json.loads(listed)}
    for name, hook in (("urgent", "faxflow_classify"), ("sender_block", "faxflow_hold_vote"),
                       ("pager", "faxflow_deliver")):
        assert (rows[name]["distribution"], rows[name]["version"]) == ("faxflow-urgent",
                                                                       "2.0.0")
        assert hook in rows[name]["hooks"]
    words = subprocess.run([sys.executable, "-m", "faxflow", "urgent-words", "-c",
                            str(write_config(tmp_path))], capture_output=True, text=True,
                           env=env())
    assert words.stdout.strip() == "urgent, asap", words.stderr


def test_its_checks_report_with_file_line_and_rule(tmp_path: Path) -> None:
    config = write_config(tmp_path, blocked='"030 123456"', pager="12345")
    result = subprocess.run([sys.executable, "-m", "faxflow", "check", "-c", str(config)],
                            capture_output=True, text=True, env=env())
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert (f"{config}:23: plugins.sender_block.numbers: '030 123456' is not in "
            "international form (+49...)") in lines
    assert (f"{config}:40: rule[0].route[0].to: rule 'urgent': route.0.to: pager: to: must be "
            "a number in international form, e.g. +4917012345678") in lines


def test_two_apps_in_one_process_keep_their_own_settings(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for folder, words in ((first, '["asap"]'), (second, '["dringend"]')):
        folder.mkdir()
        (folder / "f.toml").write_text(f"[plugins.urgent]\nwords = {words}\n")
    a = load_app(first / "f.toml", load=["urgent"])
    b = load_app(second / "f.toml", load=["urgent"])
    fax = Fax(job=Job(id="1"), topic="t", pages=[PageText(1, "Bitte DRINGEND, asap")])
    assert [c.labels for c in a.classify(fax)] == [{"urgent"}]
    fax.pages = [PageText(1, "asap")]
    assert b.classify(fax) == []  # b's words are its own, not the last app's


def test_urgent_faxes_are_paged_and_blocked_ones_held(tmp_path: Path) -> None:
    sim = Simulator(users={"99999": "secret"}, topics={"t": "99999"}, seed=6)
    faxes = {
        "urgent": (["URGENT: please call the ward back"], "+4940111111"),
        "blocked": (["URGENT offer, buy now"], "+4930123456"),
        "plain": (["Dear colleague, the report is attached."], "+4940222222"),
    }
    with SimulatorServer(sim, host="127.0.0.1", port=0) as server:
        ids = {}
        for name, (text, sender) in faxes.items():
            sample = make_fax(kind="letter", text=text)
            ids[name] = sim.add_fax("t", senderIsdn=sender, documents=[
                {"extension": "pdf", "content": sample.content}])["id"]
        config = write_config(tmp_path, api_url=server.api_url)
        log = tmp_path / "worker.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "faxflow", "run", "-c",
                                     str(config)], env=env(), cwd=tmp_path, stderr=out)
        try:
            deadline = time.monotonic() + 120
            while sim.topic_state("t")["acknowledged"] < 3:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    text = log.read_text()
    assert "Traceback" not in text
    (line,) = (tmp_path / "pager.txt").read_text().splitlines()
    assert line.endswith("\t+4917012345678\tUrgent fax from +4940111111")
    sidecars = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("*.json")]
    assert [s["id"] for s in sidecars] == [ids["plain"]]
    (meta_path,) = (tmp_path / "quarantine").rglob("metadata.json")
    meta = json.loads(meta_path.read_text())
    assert meta["id"] == ids["blocked"]
    assert meta["reasons"] == ["held before delivery: sender_block: sender +4930123456 is "
                               "blocked"]
    assert meta["delivered_routes"] == []
