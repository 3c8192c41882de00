"""Logs: one line per fax lifecycle event with fax id, topic, rule and destination;
--log-format json gives one JSON object per line; never a password or document text."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

from test_core_e2e import add_faxes, config_text, env, sim, wait_for  # noqa: F401

from faxflow.logs import JsonFormatter, TextFormatter
from faxflow.simulator import SimulatorServer


def test_json_log_lines_carry_the_lifecycle_fields(sim: SimulatorServer,  # noqa: F811
                                                   env: dict[str, str],  # noqa: F811
                                                   tmp_path: Path) -> None:
    ids = add_faxes(sim, 3)
    config = tmp_path / "faxflow.toml"
    config.write_text(config_text(sim.api_url))
    run_env = {**env, "SIM_PASSWORD": "secret"}
    log = tmp_path / "worker.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "faxflow", "--log-format", "json", "run",
                                 "-c", str(config)], env=run_env, stderr=fh, cwd=tmp_path)
    try:
        wait_for(lambda: sim.sim.topic_state("abc123")["acknowledged"] == 3, 60, "acks")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    by_event: dict[str, list[dict[str, object]]] = {}
    for r in records:
        if "event" in r:
            by_event.setdefault(str(r["event"]), []).append(r)
    assert sorted(r["fax_id"] for r in by_event["received"]) == sorted(ids)
    deliveries = by_event["delivery"]
    assert {(r["rule"], r["destination"], r["outcome"], r["topic"]) for r in deliveries} == {
        ("all", "testdir", "delivered", "abc123")}
    decided = by_event["decided"]
    assert {r["verdict"] for r in decided} == {"ack"} and decided[0]["rules"] == ["all"]
    assert sorted(r["fax_id"] for r in by_event["acknowledged"]) == sorted(ids)
    assert "secret" not in log.read_text()  # the Retarus password


def test_text_logs_escape_control_characters_from_fax_ids() -> None:
    record = logging.LogRecord("faxflow.worker", logging.INFO, __file__, 1,
                               "fax %s: received", ("x\r\nINFO forged line\x1b[31m",), None)
    line = TextFormatter("%(levelname)s %(message)s").format(record)
    assert "\n" not in line and "\x1b" not in line
    assert line == "INFO fax x\\r\\nINFO forged line\\x1b[31m: received"
    assert json.loads(JsonFormatter().format(record))["message"].startswith("fax x\r\n")


def test_a_library_warning_about_a_document_is_one_escaped_log_line() -> None:
    """Pillow warns about a hostile TIFF's EXIF with text of the file; printed by Python it
    would be two raw lines on the worker's stderr."""
    code = ("import threading, warnings\n"
            "from faxflow.logs import setup\n"
            "setup()\n"
            "def page():\n"
            "    warnings.warn('Corrupt EXIF data\\r\\nERROR faxflow.worker: forged')\n"
            "thread = threading.Thread(target=page)\n"
            "thread.start()\n"
            "thread.join()\n")
    stderr = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert " WARNING py.warnings: UserWarning: Corrupt EXIF data\\r\\nERROR" in lines[0]
