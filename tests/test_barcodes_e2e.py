"""Barcodes end to end, with the real OCR plugin reading generated faxes from the simulator in
`faxflow run`: a cover-sheet QR routes a fax to its patient's folder (and the cover sheet is
left out of the delivered document), and a fax split at two separator sheets is delivered as
three documents exactly once across a SIGKILL in the middle of delivering them.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pikepdf

from faxflow.delivery import safe_component
from faxflow.paths import safe_name
from faxflow.samples import BarcodeSpec, Sheet, make_fax, separator
from faxflow.simulator import Simulator, SimulatorServer

FAXFLOW = [sys.executable, "-m", "faxflow"]
PLUGINS = Path(__file__).parent / "e2e_plugins"

RETARUS = """\
[retarus]
base_url = "{api_url}"
username = "99999"
password = "secret"
topics = ["t"]
lock_timeout = {lock_timeout}

[worker]
poll_interval_max = 0.3
grace_period = 2
reload = false

[journal]
path = "journal.sqlite"

[plugins.ocr]
languages = "eng"
orientation = "off"
document_timeout = 15
"""

ROUTING = """
[plugins.folder]
base = "out"

[plugins.rules.default]
[[plugins.rules.default.route]]
type = "folder"
path = "review"

[[rule]]
name = "patients"
when.barcode = { regex = '^PAT-(?P<patient_id>\\d{4,8})$', format = ["qr", "datamatrix"] }
[[rule.route]]
type = "folder"
path = "patients/{{ fields.patient_id }}"
drop_cover = true
"""


def wait_for(condition: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def start(config: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as fh:
        return subprocess.Popen([*FAXFLOW, "run", "-c", str(config)], env=env, stdout=fh,
                                stderr=subprocess.STDOUT, cwd=config.parent)


def pages(path: Path) -> int:
    with pikepdf.open(path) as pdf:
        return len(pdf.pages)


def test_a_cover_sheet_qr_routes_the_fax_to_its_patients_folder(tmp_path: Path) -> None:
    sim = Simulator(users={"99999": "secret"}, topics={"t": "99999"}, seed=4)
    referral = make_fax(kind="referral", pages=1, resolution="standard", seed=3, sheets=[
        Sheet(1, "Referral", (BarcodeSpec("PAT-12345", "qr", 0.5),))])
    plain = make_fax(kind="letter", pages=1, seed=4)
    with SimulatorServer(sim, host="127.0.0.1", port=0) as server:
        ids = [sim.add_fax("t", documents=[{"extension": "pdf", "content": f.content}])["id"]
               for f in (referral, plain)]
        config = tmp_path / "faxflow.toml"
        config.write_text(RETARUS.format(api_url=server.api_url, lock_timeout=60) + ROUTING)
        (tmp_path / "out").mkdir()
        log = tmp_path / "worker.log"
        env = {**os.environ, "FAXFLOW_LOAD_PLUGINS": "ocr,rules,folder,barcodes"}
        proc = start(config, env, log)
        try:
            wait_for(lambda: sim.topic_state("t")["acknowledged"] == 2, 120, "two acks", log)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    assert "Traceback" not in log.read_text()
    (delivered,) = (tmp_path / "out" / "patients" / "12345").glob("*.pdf")
    assert delivered.name.startswith(safe_component(ids[0]))
    assert pages(delivered) == 1  # drop_cover: the referral without its cover sheet
    (reviewed,) = (tmp_path / "out" / "review").glob("*.pdf")
    assert reviewed.name.startswith(safe_component(ids[1])) and pages(reviewed) == 1


def test_three_parts_are_delivered_exactly_once_across_a_sigkill(tmp_path: Path) -> None:
    sim = Simulator(users={"99999": "secret"}, topics={"t": "99999"}, seed=5)
    batch = make_fax(kind="letter", resolution="standard", seed=5,
                     text=["First letter.", "Second letter, page one.", "Page two.",
                           "Third letter."], sheets=[separator(2), separator(4)])
    assert batch.parts == ((1,), (3, 4), (6,))
    out = tmp_path / "out"
    out.mkdir()
    config = tmp_path / "faxflow.toml"
    with SimulatorServer(sim, host="127.0.0.1", port=0) as server:
        fax_id = sim.add_fax("t", documents=[{"extension": "pdf",
                                              "content": batch.content}])["id"]
        config.write_text(RETARUS.format(api_url=server.api_url, lock_timeout=20)
                          + '\n[plugins.barcodes]\nseparators = ["FAXFLOW-SPLIT"]\n')
        log = tmp_path / "worker.log"
        env = {**os.environ, "FAXFLOW_LOAD_PLUGINS": "ocr,barcodes",
               "FAXFLOW_PLUGINS_DIR": str(PLUGINS), "E2E_OUT": str(out)}
        slow = start(config, {**env, "E2E_DELIVER_DELAY": "2"}, log)
        try:  # killed while part 2 is being delivered: part 1 is done, part 3 not started
            wait_for(lambda: len(list(out.glob("*.pdf"))) == 1, 120, "the first part", log)
            time.sleep(0.5)
        finally:
            slow.kill()
            slow.wait(10)
        assert len(list(out.glob("*.pdf"))) == 1
        assert sim.topic_state("t")["acknowledged"] == 0
        proc = start(config, env, log)
        try:  # the fax comes back after its lock timeout
            wait_for(lambda: sim.topic_state("t")["acknowledged"] == 1, 120, "the ack", log)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    assert "Traceback" not in log.read_text()
    names = sorted(p.name for p in out.glob("*.pdf"))
    assert names == [safe_name(f"{fax_id}#{n}") + ".pdf" for n in (1, 2, 3)]
    assert [pages(out / n) for n in names] == [1, 2, 1]  # separator sheets dropped
    assert not (out / "duplicates.log").exists()
    with sqlite3.connect(tmp_path / "journal.sqlite") as db:
        parts = db.execute("SELECT route, state, reference FROM delivery WHERE fax_id = ? "
                           "ORDER BY route", (fax_id,)).fetchall()
        routes = db.execute("SELECT fax_id, route, state FROM delivery WHERE fax_id LIKE ? "
                            "ORDER BY fax_id", (f"{fax_id}#%",)).fetchall()
    assert parts == [(f"part:{n}", "delivered", f"{fax_id}#{n}") for n in (1, 2, 3)]
    assert routes == [(f"{fax_id}#{n}", "all/0", "delivered") for n in (1, 2, 3)]
