"""Destination `folder` on the real file system: confinement, atomic idempotent writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import faxflow_folder
import pytest
from servers import faxes
from servers.faxes import PDF, make_fax

import faxflow.config
from faxflow.app import App
from faxflow.types import Job, Outcome, Route


def make_app(base: Path, extra: str = "") -> App:
    return faxes.make_app({"folder": faxflow_folder},
                          f'[plugins.folder]\nbase = "{base}"\n{extra}')


def all_files(root: Path) -> list[Path]:
    """Delivered files: everything but the folder plugin's own lock file."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != faxflow_folder.LOCK_NAME)


def test_writes_document_and_sidecar(tmp_path: Path) -> None:
    base = tmp_path / "out"
    base.mkdir()
    app = make_app(base)
    fax = make_fax(tmp_path / "spool", searchable=True)
    route = Route("r/0", "folder", {"path": "invoices/ACME", "content": "both"})
    result = app.deliver(fax, route, uncertain=False)
    assert result is not None and result.outcome is Outcome.DELIVERED, result
    folder = base / "invoices" / "ACME"
    assert (folder / "fax-1.pdf").read_bytes() == PDF
    assert (folder / "fax-1.searchable.pdf").read_bytes().endswith(b"%searchable\n")
    meta = json.loads((folder / "fax-1.json").read_text())
    assert meta["id"] == "fax-1" and meta["labels"] == ["invoice"]
    assert meta["fields"]["invoice_number"] == "4711"
    assert "INVOICE 4711" in meta["text"]
    assert result.reference == str(folder / "fax-1.pdf")
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_not_my_route_returns_none(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    fax = make_fax(tmp_path / "spool")
    assert faxflow_folder.faxflow_deliver(fax, Route("k", "email"), False, app) is None


def test_redelivery_is_idempotent(tmp_path: Path) -> None:
    base = tmp_path / "out"
    base.mkdir()
    app = make_app(base)
    fax = make_fax(tmp_path / "spool")
    route = Route("r/0", "folder", {"name": "invoice"})
    first = app.deliver(fax, route, uncertain=False)
    before = {p: p.stat().st_mtime_ns for p in all_files(base)}
    second = app.deliver(fax, route, uncertain=True)
    assert first == second
    assert {p: p.stat().st_mtime_ns for p in all_files(base)} == before  # not even rewritten


def test_other_fax_with_same_name_gets_stable_alternative(tmp_path: Path) -> None:
    base = tmp_path / "out"
    base.mkdir()
    app = make_app(base)
    route = Route("r/0", "folder", {"name": "same"})
    a = make_fax(tmp_path / "spool", "A", content=PDF + b"%a\n")
    b = make_fax(tmp_path / "spool", "B", content=PDF + b"%b\n")
    ra = app.deliver(a, route, uncertain=False)
    rb = app.deliver(b, route, uncertain=False)
    assert ra and rb and ra.reference != rb.reference
    assert Path(str(ra.reference)).read_bytes().endswith(b"%a\n")
    assert Path(str(rb.reference)).read_bytes().endswith(b"%b\n")
    # Re-delivering B (e.g. after a crash) finds its own alternative name, no third copy.
    again = app.deliver(b, route, uncertain=True)
    assert again == rb
    assert len(all_files(base)) == 4


# Sender-controlled text used as folder and file name: none of it may leave the base folder.
EVIL = [
    "../../etc/passwd", "..", ".", "/abs/olute", "a/../../b", "a\x00b", "x\r\nBcc: evil",
    "\\..\\..\\windows", "C:\\Windows\\system32", "CON", "nul.txt", "LPT1",
    "A" * 5000, "ü" * 300, "\u202egpj.exe",
    "\uff0e\uff0e\uff0f\uff0e\uff0e\uff0fetc",  # fullwidth dots and slash
    "..\u2215..\u2215etc", "%2e%2e%2fetc", "~/.ssh/authorized_keys", " ", "", "...",
    "a/./../../../../../tmp/x", "name\t\x07\x1b[31m", "ok",
]


@pytest.mark.parametrize("evil", EVIL)
def test_sender_text_never_escapes_base(tmp_path: Path, evil: str) -> None:
    base = tmp_path / "base" / "out"
    base.mkdir(parents=True)
    app = make_app(base)
    fax = make_fax(tmp_path / "spool", evil or "empty", sender_fax_id=evil)
    outside_before = set(all_files(tmp_path))
    route = Route("r/0", "folder", {"path": f"in/{evil}/{evil}", "name": evil})
    result = app.deliver(fax, route, uncertain=False)
    assert result is not None and result.outcome is Outcome.DELIVERED, result
    real_base = base.resolve()
    for f in all_files(base):
        assert real_base in f.resolve().parents
        for part in f.relative_to(base).parts:
            assert part not in ("..", ".")
            assert not any(ord(c) < 32 for c in part)
            assert len(part.encode()) <= 255
    assert set(all_files(tmp_path)) - set(all_files(base)) == outside_before
    # The written files are the fax's own.
    assert Path(str(result.reference)).read_bytes() == PDF


def test_symlink_leading_out_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "out"
    base.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (base / "in").symlink_to(elsewhere)
    app = make_app(base)
    fax = make_fax(tmp_path / "spool")
    result = app.deliver(fax, Route("r/0", "folder", {"path": "in/x"}), uncertain=False)
    assert result is not None and result.outcome is Outcome.PERMANENT
    assert "escapes" in result.detail
    assert list(elsewhere.iterdir()) == []


def test_symlink_at_file_name_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "out"
    base.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (base / "fax-1.pdf").symlink_to(victim)
    app = make_app(base)
    result = app.deliver(make_fax(tmp_path / "spool"), Route("r/0", "folder"), uncertain=False)
    # The name is taken by something that is not ours: the fax goes to its alternative name.
    assert result is not None and result.outcome is Outcome.DELIVERED
    assert result.reference != str(base / "fax-1.pdf")
    assert Path(str(result.reference)).read_bytes() == PDF
    assert victim.read_text() == "keep"
    assert (base / "fax-1.pdf").is_symlink()


def test_missing_base_is_transient(tmp_path: Path) -> None:
    app = make_app(tmp_path / "not-mounted")
    (warning,) = app.check_config(app.config)  # faxflow check names it
    assert warning.warning and str(tmp_path / "not-mounted") in warning.message
    result = app.deliver(make_fax(tmp_path / "spool"), Route("r/0", "folder"), uncertain=False)
    assert result is not None and result.outcome is Outcome.TRANSIENT
    assert "does not exist" in result.detail


def test_named_bases_and_unknown_base(tmp_path: Path) -> None:
    (tmp_path / "inv").mkdir()
    app = make_app(tmp_path, f'[plugins.folder.bases]\ninvoices = "{tmp_path / "inv"}"\n')
    fax = make_fax(tmp_path / "spool")
    ok = app.deliver(fax, Route("r/0", "folder", {"base": "invoices"}), uncertain=False)
    assert ok is not None and ok.outcome is Outcome.DELIVERED
    assert (tmp_path / "inv" / "fax-1.pdf").exists()
    bad = app.deliver(fax, Route("r/1", "folder", {"base": "nope"}), uncertain=False)
    assert bad is not None and bad.outcome is Outcome.PERMANENT and "nope" in bad.detail


def test_searchable_missing_is_permanent(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    fax = make_fax(tmp_path / "spool")
    result = app.deliver(fax, Route("r/0", "folder", {"content": "searchable"}), uncertain=False)
    assert result is not None and result.outcome is Outcome.PERMANENT
    assert "searchable PDF" in result.detail


def test_read_only_folder_is_transient(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores file permissions")
    base = tmp_path / "out"
    base.mkdir()
    base.chmod(0o500)
    try:
        app = make_app(base)
        result = app.deliver(make_fax(tmp_path / "spool"), Route("r/0", "folder"), False)
        assert result is not None and result.outcome is Outcome.TRANSIENT
    finally:
        base.chmod(0o700)


def test_check_options_and_config() -> None:
    assert faxflow_folder.check_options({"path": "{{ fax.sender }}", "content": "both"}) == []
    assert faxflow_folder.check_options({"content": "{{ x }}"}) == []
    problems = faxflow_folder.check_options({"content": "all", "sidecar": "yes", "bogus": 1})
    assert any(p.startswith("content:") for p in problems)
    assert any(p.startswith("sidecar:") for p in problems)
    assert any(p.startswith("bogus:") for p in problems)
    config, _ = faxflow.config.parse('[plugins.folder]\nbase = 3\nbasis = "x"\n')
    found = faxflow_folder.faxflow_check_config(config)
    assert {p.path[-1] for p in found} == {"base", "basis"}


def test_job_without_sender_fields(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    fax = make_fax(tmp_path / "spool")
    fax.job = Job(id="bare")
    result = app.deliver(fax, Route("r/0", "folder"), uncertain=False)
    assert result is not None and result.outcome is Outcome.DELIVERED


def test_too_deep_path_is_permanent(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    route = Route("r/0", "folder", {"path": "/".join(["d"] * 40)})
    result = app.deliver(make_fax(tmp_path / "spool"), route, uncertain=False)
    assert result is not None and result.outcome is Outcome.PERMANENT
    assert "levels" in result.detail
