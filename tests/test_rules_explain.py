"""`faxflow explain` on generated faxes, through the real CLI.

Most tests read the text from the sample's ground truth with a one-file plugin in a
``--plugins-dir`` (a plain text-extraction plugin, as a user could write one), so they are
fast and exact; `test_explain_through_real_ocr` runs the OCR plugin with tesseract.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from faxflow_rules.explain import format_text
from test_rules_support import CORE

from faxflow.cli import build_cli
from faxflow.samples import make_fax as make_sample
from faxflow.samples import write_fax

GROUND_TRUTH_PLUGIN = '''
"""Reads a sample document's text from its JSON sidecar instead of running OCR."""
import json

from faxflow.hookspecs import hookimpl
from faxflow.types import PageText


@hookimpl
def faxflow_extract_text(document):
    sidecar = document.path.with_suffix(".json")
    if not sidecar.exists():
        return None
    texts = json.loads(sidecar.read_text(encoding="utf-8"))["page_texts"]
    return [PageText(i, text) for i, text in enumerate(texts, start=1)]
'''

RULES = r"""
[plugins.rules]
default_country = "DE"
timezone = "Europe/Berlin"

[plugins.rules.default]
[[plugins.rules.default.route]]
type = "folder"
path = "review"

[[rule]]
name = "after-hours"
continue = true
when.not.received = { weekdays = "mon-fri", between = ["08:00", "18:00"] }
[[rule.route]]
type = "email"
to = "oncall@clinic.example"

[[rule]]
name = "referrals"
when.receiver = "089 262080440"
when.text = { regex = 'Patient ID:\s*(?P<patient_id>PID-\d+)' }
[[rule.route]]
type = "folder"
path = "referrals/{{ fields.patient_id }}"

[[rule]]
name = "invoices"
when.text = { any = ["invoice", "Rechnung"], regex = 'Invoice No\.:\s*(?P<invoice_number>\S+)' }
[[rule.route]]
type = "email"
to = "accounting@clinic.example"
subject = "Invoice {{ fields.invoice_number }}"
"""

OFFICE = "2026-11-25T11:00:00+01:00"
NIGHT = "2026-11-25T23:00:00+01:00"


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config file and a plugins dir with the ground-truth reader; returns tmp_path."""
    monkeypatch.setenv("FAXFLOW_LOAD_PLUGINS", "rules,folder,email")
    (tmp_path / "faxflow.toml").write_text(CORE + RULES, encoding="utf-8")
    plugins = tmp_path / "local-plugins"
    plugins.mkdir()
    (plugins / "ground_truth.py").write_text(GROUND_TRUTH_PLUGIN, encoding="utf-8")
    return tmp_path


def explain(tmp: Path, *args: str) -> Result:
    return CliRunner().invoke(build_cli(), [
        "explain", "-c", str(tmp / "faxflow.toml"), "--plugins-dir", str(tmp / "local-plugins"),
        *args])


def test_explain_is_a_faxflow_command() -> None:
    result = CliRunner().invoke(build_cli(), ["explain", "--help"])
    assert result.exit_code == 0, result.output
    assert "--received" in result.output and "--json" in result.output


def test_explain_referral_text(setup: Path) -> None:
    sample = make_sample(kind="referral", pages=2, seed=4)
    doc = write_fax(sample, setup / "in")
    result = explain(setup, str(doc), "--to", "+49 89 2620804-40", "--csid", "PRAXIS",
                     "--received", NIGHT)
    assert result.exit_code == 0, result.output
    out = result.output
    patient = sample.fields["patient_id"]
    assert "1. after-hours: MATCHED (continue)" in out
    assert "2. referrals: MATCHED" in out
    assert "3. invoices: not evaluated: rule 'referrals' matched first" in out
    assert "yes receiver is +4989262080440: receiver +4989262080440 matches" in out
    assert f"'Patient ID: {patient}' on page 1" in out
    assert f"patient_id = '{patient}'" in out
    assert "Default route: not used" in out
    assert f'referrals/0 (folder): {{"path": "referrals/{patient}"}}' in out
    assert "after-hours/0 (email)" in out


def test_explain_json_invoice_in_office_hours(setup: Path) -> None:
    sample = make_sample(kind="invoice", pages=1, seed=8)
    doc = write_fax(sample, setup / "in")
    result = explain(setup, str(doc), "--to", "0049 30 1234567", "--received", OFFICE, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # the log (the pages read) is on stderr
    assert [(r["name"], r["matched"]) for r in data["rules"]] == [
        ("after-hours", False), ("referrals", False), ("invoices", True)]
    after_hours = data["rules"][0]["check"]
    assert after_hours["condition"] == "not"
    assert after_hours["children"][0]["result"] is True
    assert "Wed 2026-11-25 11:00 CET" in after_hours["children"][0]["detail"]
    referral_check = data["rules"][1]["check"]
    assert referral_check["children"][0]["result"] is False
    assert referral_check["children"][1]["result"] is None  # not evaluated after a false
    number = sample.fields["invoice_number"]
    assert data["fields"]["invoice_number"] == number
    assert data["routes"] == [{"key": "invoices/0", "type": "email", "rule": "invoices",
                               "options": {"to": "accounting@clinic.example",
                                           "subject": f"Invoice {number}"},
                               "error": None}]
    assert data["default_route_used"] is False
    assert data["fax"]["receiver"] == "+49301234567"


def test_explain_default_route_and_labels(setup: Path) -> None:
    doc = write_fax(make_sample(kind="letter", seed=3), setup / "in")
    result = explain(setup, str(doc), "--received", OFFICE, "--label", "from-triage", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # the log (the pages read) is on stderr
    assert data["default_route_used"] is True
    assert data["labels"] == ["from-triage"]
    assert [r["key"] for r in data["routes"]] == ["default/0"]
    assert data["rules"][1]["check"]["children"][0]["detail"] == "no receiver number"


def test_explain_route_that_cannot_render_exits_1(setup: Path) -> None:
    (setup / "faxflow.toml").write_text(CORE + RULES.replace(
        'timezone = "Europe/Berlin"', 'timezone = "Europe/Berlin"\nexternal_fields = ["ward"]')
        + '[[rule]]\nname = "wards"\nwhen.labels = "ward"\n[[rule.route]]\n'
          'type = "folder"\npath = "{{ fields.ward }}"\n', encoding="utf-8")
    doc = write_fax(make_sample(kind="letter", seed=3), setup / "in")
    result = explain(setup, str(doc), "--received", OFFICE, "--label", "ward")
    assert result.exit_code == 1
    assert ("wards/0 (folder): ERROR rule 'wards': route 0 option 'path': undefined: "
            "'dict object' has no attribute 'ward'") in result.output


def test_explain_bad_config_is_a_clear_message(setup: Path) -> None:
    (setup / "faxflow.toml").write_text(
        CORE + RULES.replace("(?P<patient_id>PID-\\d+)", "(?P<patient_id>PID-\\d+"),
        encoding="utf-8")
    doc = write_fax(make_sample(kind="letter", seed=3), setup / "in")
    result = explain(setup, str(doc))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "faxflow.toml:" in result.output
    assert "rule[1].when.text.regex: rule 'referrals': when.text.regex: bad regex" \
        in result.output


def test_explain_unreadable_document(setup: Path) -> None:
    junk = setup / "junk.pdf"
    junk.write_bytes(b"not a pdf")
    result = explain(setup, str(junk))
    assert result.exit_code == 1
    assert "no text-extraction plugin could read this document" in result.output
    bad_time = explain(setup, str(junk), "--received", "yesterday")
    assert bad_time.exit_code == 2 and "ISO 8601" in bad_time.output


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract not installed")
def test_explain_through_real_ocr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAXFLOW_LOAD_PLUGINS", "ocr,rules,folder,email")
    config = tmp_path / "faxflow.toml"
    config.write_text(CORE + textwrap.dedent("""
        [plugins.ocr]
        languages = "eng"
        """) + RULES, encoding="utf-8")
    sample = make_sample(kind="invoice", pages=1, resolution="fine", fmt="tiff", seed=8)
    doc = tmp_path / f"invoice.{sample.extension}"
    doc.write_bytes(sample.content)  # no sidecar: the text must come from OCR
    result = CliRunner().invoke(build_cli(), ["explain", "-c", str(config), str(doc),
                                              "--received", OFFICE, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # the log (the pages read) is on stderr
    assert data["rules"][2]["matched"] is True
    assert data["fields"]["invoice_number"] == sample.fields["invoice_number"]
    assert data["routes"][0]["options"]["subject"] == \
        f"Invoice {sample.fields['invoice_number']}"


BROKEN_PAGES_PLUGIN = '''
"""Page 2 of any "broken-*" document failed, page 3 was not read on purpose."""
from faxflow.hookspecs import hookimpl
from faxflow.types import PageText


@hookimpl(tryfirst=True)
def faxflow_extract_text(document):
    if not document.ref.name.startswith("broken-"):
        return None
    return [PageText(1, "Invoice No.: INV-7"),
            PageText(2, "", error="OCR timed out: page took longer than page_timeout (60 s)"),
            PageText(3, "", skipped=True)]
'''

REVIEW_RULE = """
[[rule]]
name = "unreadable"
when.labels = "unreadable-pages"
[[rule.route]]
type = "folder"
path = "review/unreadable"
"""


def test_explain_shows_page_errors_and_what_the_worker_would_do(setup: Path) -> None:
    """By default a fax with an unreadable page is quarantined: explain says so, with every
    page error and the pages read of each document."""
    (setup / "local-plugins" / "broken_pages.py").write_text(BROKEN_PAGES_PLUGIN)
    doc = setup / "broken-scan.pdf"
    doc.write_bytes(b"%PDF-1.4 stand-in")
    result = explain(setup, str(doc))
    assert result.exit_code == 1
    assert ("cannot read the document: document 1 of 1 (broken-scan.pdf): 1 of 3 pages "
            "unreadable: page 2: OCR timed out") in result.output
    assert "  document 1 of 1 (broken-scan.pdf): read 1 of 3 pages" in result.output
    assert "    page 2: OCR timed out: page took longer than page_timeout (60 s)" \
        in result.output
    assert "    page 3: not read on purpose" in result.output


def test_explain_unreadable_pages_label_routes_to_review(setup: Path) -> None:
    """[worker] unreadable_pages = "label": the core labels the fax and a rule placed first
    sends it to people; explain shows the page errors and the rule that matched."""
    (setup / "local-plugins" / "broken_pages.py").write_text(BROKEN_PAGES_PLUGIN)
    (setup / "faxflow.toml").write_text(CORE + '[worker]\nunreadable_pages = "label"\n'
                                        + RULES.replace("[[rule]]", REVIEW_RULE + "\n[[rule]]",
                                                        1), encoding="utf-8")
    doc = setup / "broken-scan.pdf"
    doc.write_bytes(b"%PDF-1.4 stand-in")
    result = explain(setup, str(doc), "--received", OFFICE, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["fax"]["pages"] == 3 and data["fax"]["pages_read"] == 1
    assert data["documents"] == [{
        "document": "document 1 of 1 (broken-scan.pdf)", "pages_read": 1, "pages_total": 3,
        "page_errors": [{"page": 2, "error": "OCR timed out: page took longer than "
                                             "page_timeout (60 s)"}],
        "pages_skipped": [3]}]
    assert "unreadable-pages" in data["labels"]
    assert [r["key"] for r in data["routes"]] == ["unreadable/0"]
    assert data["routes"][0]["options"] == {"path": "review/unreadable"}


STAMP_PLUGIN = '''
from faxflow.hookspecs import hookimpl
from faxflow.types import Classification


@hookimpl
def faxflow_classify(fax):
    return Classification(frozenset({"stamped"}), explain={
        "stamp": ("label stamped: every fax is", "second line")})
'''


def test_explain_shows_what_classifier_plugins_say_under_their_names(setup: Path) -> None:
    doc = write_fax(make_sample(kind="letter", seed=2), setup / "in")
    assert "Classifiers:" not in explain(setup, str(doc), "--received", OFFICE).output
    (setup / "local-plugins" / "stamp.py").write_text(STAMP_PLUGIN, encoding="utf-8")
    result = explain(setup, str(doc), "--received", OFFICE)
    assert result.exit_code == 0, result.output
    assert ("\nClassifiers:\n  stamp:\n    label stamped: every fax is\n    second line\n\n"
            "Rules:\n") in result.output
    assert "Labels: stamped" in result.output
    data = json.loads(explain(setup, str(doc), "--received", OFFICE, "--json").stdout)
    assert data["classifiers"] == {"stamp": ["label stamped: every fax is", "second line"]}
    del data["classifiers"]  # a report the console kept before classifiers said anything
    assert "Classifiers:" not in format_text(data)
