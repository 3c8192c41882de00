"""`faxflow demo` end to end, as the README's first command runs it: real simulator, OCR,
rules, folder and SMTP delivery, quarantine of the corrupt fax, and the summary."""

from __future__ import annotations

import email
import os
import subprocess
import sys
from pathlib import Path


def test_demo_routes_every_fax_where_the_rules_say(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FAXFLOW_LOAD_PLUGINS"}
    result = subprocess.run([sys.executable, "-m", "faxflow", "demo", "--dir",
                             str(tmp_path / "demo")], capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Summary" in out and "Traceback" not in out + result.stderr
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
