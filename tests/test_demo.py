"""`faxflow demo` end to end, as the README's first command runs it: real simulator, OCR,
rules, folder and SMTP delivery, quarantine of the corrupt fax, and the summary."""

from __future__ import annotations

import email
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx


def test_demo_routes_every_fax_where_the_rules_say(tmp_path: Path) -> None:
    """Run with --console (the plain demo is the same until its last line): the console
    then shows the corrupt fax in the quarantine until Ctrl-C."""
    env = {k: v for k, v in os.environ.items() if k != "FAXFLOW_LOAD_PLUGINS"}
    demo = subprocess.Popen([sys.executable, "-m", "faxflow", "demo", "--console", "--dir",
                             str(tmp_path / "demo")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(demo.stdout.readline, "")),
                              daemon=True)
    reader.start()
    deadline = time.monotonic() + 600
    while not any(line.startswith("Web console:") for line in lines):
        assert demo.poll() is None and time.monotonic() < deadline, "".join(lines)
        time.sleep(0.2)
    try:
        line = next(line for line in lines if line.startswith("Web console:"))
        url, password = re.search(r"(http://127\.0\.0\.1:\d+/)\s+user: demo\s+password: "
                                  r"(\S+)", line).groups()
        with httpx.Client(base_url=url, timeout=30) as client:
            token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
            signed = client.post("/login", data={"username": "demo", "password": password,
                                                 "csrf": token.group(1)})
            assert signed.status_code == 303
            queue = client.get("/quarantine").text
            assert "PDF is damaged" in queue and queue.count('<th scope="row">') == 1
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(30)
        reader.join(10)
    stderr = demo.stderr.read()
    assert demo.returncode == 0, "".join(lines) + stderr
    out = "".join(lines)
    assert "Summary" in out and "Traceback" not in out + stderr
    assert out.rstrip().endswith("console stopped")
    # Progress lines only: the worker's log lines go to the demo's worker.log.
    assert "WARNING" not in out + stderr and " INFO " not in out + stderr
    assert "quarantine because" in (tmp_path / "demo" / "worker.log").read_text()
    base = tmp_path / "demo"
    referrals = list((base / "folders" / "referrals").glob("PID-*.pdf"))
    assert len(referrals) == 1 and referrals[0].with_suffix(".json").exists()
    assert len(list((base / "folders" / "review").glob("*.pdf"))) == 1
    mails = {}
    for path in (base / "mail").glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes())
        mails[message["To"]] = message
    assert set(mails) == {"referrals@clinic.example", "accounting@clinic.example",
                          "oncall@clinic.example"}
    assert mails["accounting@clinic.example"]["Subject"].startswith("Invoice INV-")
    attachment = next(p for p in mails["accounting@clinic.example"].walk()
                      if p.get_content_type() == "application/pdf")
    assert attachment.get_payload(decode=True).startswith(b"%PDF")
    (reason,) = (base / "quarantine").rglob("reason.txt")
    assert "PDF is damaged" in reason.read_text()
    assert "corrupt document" in out and "->  quarantined" in out


def test_demo_never_deletes_a_folder_it_did_not_make(tmp_path: Path) -> None:
    precious = tmp_path / "records"
    precious.mkdir()
    (precious / "patient.pdf").write_bytes(b"%PDF keep me")
    env = {k: v for k, v in os.environ.items() if k != "FAXFLOW_LOAD_PLUGINS"}
    result = subprocess.run([sys.executable, "-m", "faxflow", "demo", "--dir", str(precious)],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2
    assert "was not made by faxflow demo" in result.stderr and "Traceback" not in result.stderr
    assert (precious / "patient.pdf").read_bytes() == b"%PDF keep me"
    assert sorted(p.name for p in precious.iterdir()) == ["patient.pdf"]


def test_demo_replaces_only_its_own_folder(tmp_path: Path) -> None:
    from faxflow.demo import MARKER, DemoFolderError, prepare

    base = tmp_path / "demo"
    prepare(base)  # new
    (base / "old.eml").write_text("from the last demo")
    prepare(base)  # its own: replaced
    assert sorted(p.name for p in base.iterdir()) == [MARKER]
    empty = tmp_path / "empty"
    empty.mkdir()
    prepare(empty)  # an empty folder is fine
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "records", target_is_directory=True)
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / MARKER).write_text("forged")
    try:
        prepare(link)
    except DemoFolderError as exc:
        assert "not a folder" in str(exc)
    else:
        raise AssertionError("a symlink was followed")
    assert (tmp_path / "records" / MARKER).exists()
