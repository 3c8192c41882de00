"""Barcodes: read by the OCR plugin's page pass on generated faxes (formats, resolutions,
noise, cache), `when.barcode` rules and their fields, explain, the printable cover sheet, and
hostile barcode values asserted where they end up (folder, mail, log)."""

from __future__ import annotations

import email.parser
import email.policy
import io
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faxflow_barcodes
import faxflow_email
import faxflow_folder
import faxflow_rules
import pytest
from faxflow_barcodes import sheet
from faxflow_ocr import barcodes as reader
from PIL import Image
from servers import faxes
from servers.smtp import SmtpServer
from test_email_injection import OFFICE, assert_clean

from faxflow import protocol
from faxflow.app import App
from faxflow.samples import BarcodeSpec, Sheet, make_fax, separator, write_fax
from faxflow.types import MAX_BARCODE_VALUE, Barcode, Fax, PageText

OCR = '[plugins.ocr]\nlanguages = "eng"\norientation = "off"\ncache = false\n'


def read_sample(app: App, sample_fax: Callable[..., Fax], tmp_path: Path, **kwargs: Any
                ) -> list[PageText]:
    sample = make_fax(**kwargs)
    path = write_fax(sample, tmp_path / "in")
    fax = sample_fax()
    fax.documents[0] = type(fax.documents[0])(fax.documents[0].ref, path, len(sample.content),
                                              "", "application/pdf")
    pages = app.extract_text(fax, fax.documents[0])
    assert pages is not None
    return pages


@pytest.mark.parametrize(("fmt", "resolution", "noisy", "value"), [
    ("qr", "standard", True, "PAT-12345"),
    ("datamatrix", "standard", False, "CASE-2026-0042"),
    ("code128", "fine", True, "PAT-778"),
    ("pdf417", "standard", False, "Referral 4711"),
])
def test_the_page_pass_reads_barcodes_with_format_page_and_place(
        faxflow_app_factory: Callable[..., App], sample_fax: Callable[..., Fax],
        tmp_path: Path, fmt: str, resolution: str, noisy: bool, value: str) -> None:
    app = faxflow_app_factory(load=["ocr"], config=OCR)
    pages = read_sample(app, sample_fax, tmp_path, kind="letter", resolution=resolution,
                        noisy=noisy, text=["Dear colleague, see the code above."],
                        sheets=[Sheet(1, "Cover", (BarcodeSpec(value, fmt, 0.7),))])
    first, second = pages
    assert second.barcodes == ()
    (code,) = first.barcodes
    assert (code.value, code.format, code.page) == (value, fmt, 1)
    assert code.document == first.document
    left, top, right, bottom = code.box  # drawn in the middle, 45 mm from the top
    assert 40 < top < 50 and bottom > top and 60 < (left + right) / 2 < 155


def test_barcodes_are_cached_with_the_text_and_can_be_turned_off(
        faxflow_app_factory: Callable[..., App], sample_fax: Callable[..., Fax],
        tmp_path: Path) -> None:
    app = faxflow_app_factory(load=["ocr"], config=OCR.replace("false", "true")
                              + f'cache_dir = "{tmp_path / "cache"}"\n')
    kwargs: dict[str, Any] = {"kind": "letter", "text": ["x"], "sheets": [separator(1)]}
    fresh = read_sample(app, sample_fax, tmp_path, **kwargs)
    sample = make_fax(**kwargs)
    fax = sample_fax()
    path = write_fax(sample, tmp_path / "again")
    import hashlib
    doc = type(fax.documents[0])(fax.documents[0].ref, path, len(sample.content),
                                 hashlib.sha256(sample.content).hexdigest(), "application/pdf")
    first = app.extract_text(fax, doc)
    cached = app.extract_text(fax, doc)
    assert fax.scratch["ocr"][doc.ref.name]["cached"] is True
    assert first is not None and cached is not None
    assert [p.barcodes for p in cached] == [p.barcodes for p in first]
    assert cached[0].barcodes[0].value == fresh[0].barcodes[0].value == "FAXFLOW-SPLIT"
    off = faxflow_app_factory(load=["ocr"], config=OCR + "barcodes = false\n")
    assert [p.barcodes for p in read_sample(off, sample_fax, tmp_path / "off", **kwargs)] \
        == [(), ()]


def test_barcode_options_are_checked(faxflow_app_factory: Callable[..., App]) -> None:
    from faxflow.errors import ConfigError

    with pytest.raises(ConfigError, match="barcode_formats: must be a list of: aztec"):
        faxflow_app_factory(load=["ocr"], config=OCR + 'barcode_formats = ["qr", "maxi"]\n')
    with pytest.raises(ConfigError, match="separators: must be a list"):
        faxflow_app_factory(load=["barcodes"], config="[plugins.barcodes]\nseparators = 'x'\n")


def test_a_retry_box_on_a_levelled_page_is_given_in_the_page_as_stored() -> None:
    """A code found only on the levelled page is placed where it is on the stored page:
    dots levelled by the page pass's own deskew, found on the levelled page, mapped back."""
    from faxflow_ocr import prep

    size = (400, 300)
    for angle in (2.0, -1.3):
        for x, y in ((10, 50), (200, 150), (390, 250)):
            image = Image.new("L", size, 255)
            image.putpixel((x, y), 0)
            (found,) = _dark(prep.deskew(image, angle))
            assert found != (x, y) or x == 200  # moved, except at the centre
            assert prep.unlevel(*found, size, angle) == (x, y)


def _dark(image: Image.Image) -> list[tuple[float, float]]:
    pixels = image.load()
    assert pixels is not None
    return [(i + 0.0, j + 0.0) for j in range(image.height) for i in range(image.width)
            if pixels[i, j] < 128]


def test_a_retry_box_on_a_page_the_lines_turned_is_given_in_the_page_as_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page pass turns a page whose text lines run sideways or upside down before
    reading it; a code only the retry finds is still placed on the page as stored. The
    first pass is made to miss (as on a code whose finder specks broke) so the retry runs."""
    from faxflow_ocr.options import OcrOptions
    from faxflow_ocr.service import OcrService

    sample = make_fax(kind="letter", pages=1, resolution="fine", fmt="tiff", seed=3,
                      stickers=[BarcodeSpec("PAT-4711", "qr", 0.7, x_mm=20, y_mm=30)])
    with Image.open(io.BytesIO(sample.content)) as tiff:
        upright = tiff.convert("1")
        dpi = tiff.info["dpi"]
    missed: list[int] = []
    monkeypatch.setattr(reader.Reader, "first",
                        lambda self, gray: (setattr(self, "_gray", gray), missed.append(1)))
    ocr = OcrService(OcrOptions(cache=False, workers=1), None)
    centres = {}
    try:
        for turned in (0, 90, 180):
            path = tmp_path / f"page{turned}.tif"
            upright.rotate(turned, expand=True).save(  # a sideways page's rows are columns
                path, compression="group4", dpi=dpi[::-1] if turned == 90 else dpi)
            outcome = ocr.read(path, path.name, "", "eng")
            assert outcome.rotated == ({1: (360 - turned) % 360} if turned else {})
            (code,) = outcome.pages[0].barcodes
            assert code.value == "PAT-4711"
            left, top, right, bottom = code.box
            centres[turned] = ((left + right) / 2, (top + bottom) / 2)
    finally:
        ocr.close()
    assert len(missed) == 3
    width, height = upright.width * 25.4 / dpi[0], upright.height * 25.4 / dpi[1]
    x, y = centres[0]
    assert 20 < x < 60 and 30 < y < 70  # the sticker, top left
    # PIL turns counter-clockwise: (x, y) goes to (y, width - x) at 90, (width - x,
    # height - y) at 180, in millimetres
    for turned, (ex, ey) in ((90, (y, width - x)), (180, (width - x, height - y))):
        cx, cy = centres[turned]
        assert abs(cx - ex) < 2 and abs(cy - ey) < 2, (turned, centres[turned], (ex, ey))

# --- rules ---------------------------------------------------------------------------------

RULES = """
[plugins.rules]
regex_timeout_ms = 50
[plugins.rules.default]
[[plugins.rules.default.route]]
type = "folder"
path = "review"

[[rule]]
name = "patients"
when.barcode = {{ regex = '^PAT-(?P<patient_id>\\d+)$', format = ["qr", "datamatrix"] }}
[[rule.route]]
type = "folder"
path = "patients/{{{{ fields.patient_id }}}}"

[[rule]]
name = "cases"
when.barcode = {{ prefix = "CASE-", pages = 1 }}
[[rule.route]]
type = "folder"
path = "cases"

[[rule]]
name = "batch"
when.barcode = "BATCH-7"
[[rule.route]]
type = "folder"
path = "batch"
{extra}
"""


def rules_app(tmp_path: Path, extra: str = "") -> App:
    return faxes.make_app({"rules": faxflow_rules, "folder": faxflow_folder},
                          f'[plugins.folder]\nbase = "{tmp_path / "out"}"\n'
                          + RULES.format(extra=extra))


def fax_with(tmp_path: Path, *codes: tuple[int, str, str], pages: int = 2) -> Fax:
    fax = faxes.make_fax(tmp_path / "spool")
    fax.pages = [PageText(n, f"page {n}", barcodes=tuple(
        Barcode(v, f, n) for page, f, v in codes if page == n)) for n in range(1, pages + 1)]
    fax.labels, fax.fields = set(), {}
    return fax


def routed(app: App, fax: Fax) -> list[str]:
    protocol.classify(fax, app)
    protocol.route(fax, app)
    assert not fax.problems, fax.problems
    return [f"{r.rule}:{r.options.get('path')}" for r in fax.routes]


@pytest.mark.parametrize(("codes", "want"), [
    ([(1, "qr", "PAT-12345")], ["patients:patients/12345"]),
    ([(2, "datamatrix", "PAT-9")], ["patients:patients/9"]),
    ([(1, "code128", "PAT-12345")], ["default:review"]),  # format not wanted
    ([(1, "qr", "PAT-12x")], ["default:review"]),  # regex is anchored by the rule
    ([(1, "code39", "CASE-77")], ["cases:cases"]),
    ([(2, "code39", "CASE-77")], ["default:review"]),  # only page 1
    ([(2, "ean13", "BATCH-7")], ["batch:batch"]),
    ([(1, "qr", "BATCH-70")], ["default:review"]),  # exact means exact
    ([], ["default:review"]),
])
def test_when_barcode_routes_by_value_format_and_page(
        tmp_path: Path, codes: list[tuple[int, str, str]], want: list[str]) -> None:
    assert routed(rules_app(tmp_path), fax_with(tmp_path, *codes)) == want


def test_a_barcode_value_is_one_line_for_the_regex(tmp_path: Path) -> None:
    """No MULTILINE: a line break in a value is the sender's and does not start a line."""
    fax = fax_with(tmp_path, (1, "qr", "junk\nPAT-12345"))
    assert routed(rules_app(tmp_path), fax) == ["default:review"]


def test_a_barcode_regex_that_times_out_fails_closed_even_under_not(tmp_path: Path,
                                                                    caplog: Any) -> None:
    extra = """
[[rule]]
name = "negated"
when.not.barcode = { regex = '(a+)+$' }
[[rule.route]]
type = "folder"
path = "negated"
"""
    app = faxes.make_app({"rules": faxflow_rules, "folder": faxflow_folder},
                         f'[plugins.folder]\nbase = "{tmp_path / "out"}"\n'
                         + RULES.format(extra="").replace('name = "patients"', 'name = "p0"')
                         .split("[[rule]]")[0] + extra)
    fax = fax_with(tmp_path, (1, "qr", "a" * 4000 + "b"))  # exponential backtracking
    with caplog.at_level(logging.WARNING):
        assert routed(app, fax) == ["default:review"]
    assert "timed out" in caplog.text


def test_the_barcodes_variable_and_fields_reach_templates_and_check_warns_on_addresses(
        tmp_path: Path) -> None:
    from faxflow.config import parse

    smtp = '[plugins.email]\nhost = "127.0.0.1"\nport = 2525\nfrom = "fax@example.test"\n'
    extra = """
[[rule]]
name = "mail"
when.barcode = { prefix = "MAIL-" }
[[rule.route]]
type = "email"
to = "{{ barcodes[0].value | lower }}@example.test"
subject = "Code {{ barcodes[0].value }} on page {{ barcodes[0].page }}"
"""
    toml = f'[plugins.folder]\nbase = "{tmp_path}"\n' + smtp + RULES.format(extra=extra)
    app = faxes.make_app({"rules": faxflow_rules, "folder": faxflow_folder,
                          "email": faxflow_email}, toml)
    config, _ = parse(toml)
    warnings = [p.message for p in app.check_config(config) if p.warning]
    assert any("route.0.to" in w and "barcodes" in w and "sender controls" in w
               for w in warnings), warnings
    fax = fax_with(tmp_path, (2, "qr", "MAIL-Ward7"))
    protocol.classify(fax, app)
    protocol.route(fax, app)
    (route,) = fax.routes
    assert route.options == {"to": "mail-ward7@example.test",
                             "subject": "Code MAIL-Ward7 on page 2"}


def test_explain_shows_every_barcode_and_the_conditions_it_satisfied(tmp_path: Path) -> None:
    sample = make_fax(kind="referral", resolution="standard", seed=2, sheets=[
        Sheet(1, "Referral", (BarcodeSpec("PAT-4711", "qr", 0.7),
                              BarcodeSpec("XYZ", "datamatrix", 0.7, x_mm=30, y_mm=120)))])
    document = write_fax(sample, tmp_path)
    config = tmp_path / "faxflow.toml"
    config.write_text('[retarus]\nregion = "de1"\nusername = "u"\npassword = "p"\n'
                      'topics = ["t"]\n' + OCR + f'[plugins.folder]\nbase = "{tmp_path}"\n'
                      + RULES.format(extra=""))
    result = subprocess.run([sys.executable, "-m", "faxflow", "explain", "-c", str(config),
                             str(document)], capture_output=True, text=True,
                            env={**__import__("os").environ,
                                 "FAXFLOW_LOAD_PLUGINS": "ocr,rules,folder"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Barcodes:\n  page 1: qr 'PAT-4711' at [" in out
    assert "    satisfies rule 'patients': barcode (datamatrix, qr) matches " in out
    assert "  page 1: datamatrix 'XYZ' at [" in out and "    satisfies no condition" in out
    assert "patients/0 (folder): {\"path\": \"patients/4711\"}" in out


# --- separator sheets ---------------------------------------------------------------------


def test_separator_pages_cut_the_fax_and_are_dropped() -> None:
    app = type("A", (), {"plugin_options": lambda self, name: {"separators": ["SPLIT"]}})()
    fax = Fax(job=faxes.make_fax.__globals__["Job"](id="1"), topic="t", pages=[
        PageText(1, "a"), PageText(2, "", barcodes=(Barcode("SPLIT", "qr", 2),)),
        PageText(3, "b"), PageText(4, "c"), PageText(5, "", barcodes=(Barcode("SPLIT", "qr", 5),))])
    parts = faxflow_barcodes.faxflow_split(fax, app)
    assert parts is not None and [p.pages for p in parts] == [(1,), (3, 4)]
    fax.pages = fax.pages[:1]
    assert faxflow_barcodes.faxflow_split(fax, app) is None


# --- the printable cover sheet ------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["qr", "datamatrix"])
def test_the_cover_sheet_survives_a_standard_fax(tmp_path: Path, fmt: str) -> None:
    """Printed (rendered), sent at 204 x 98 dpi (every other row, thresholded) and read by
    the page pass's reader."""
    pdf = tmp_path / "sheet.pdf"
    result = subprocess.run([sys.executable, "-m", "faxflow", "coversheet", "--value",
                             "PAT-12345", "--text", "Überweisung", "--format", fmt, "-o",
                             str(pdf)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    png = subprocess.run(["pdftoppm", "-r", "204", "-gray", "-png", str(pdf)],
                         capture_output=True, check=True).stdout
    page = Image.open(io.BytesIO(png)).convert("L")
    fax = page.resize((page.width, page.height // 2), Image.Resampling.BOX).point(
        lambda v: 0 if v < 128 else 255)
    square = fax.resize((fax.width, fax.height * 2), Image.Resampling.NEAREST)
    codes = reader.read(square, 204, [fmt])
    assert [(c.value, c.format) for c in codes] == [("PAT-12345", fmt)]
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "PAT-12345" in text and "Überweisung" in text and "module 0.7 mm" in text


@pytest.mark.parametrize(("value", "message"), [
    ("x" * 121, "121 characters long; at most 120"),
    ("PAT\n12345", "must be printable ASCII"),
    ("", "must be printable ASCII"),
    ("PAT-\u202e12345", "must be printable ASCII"),
])
def test_the_cover_sheet_refuses_values_it_cannot_carry(tmp_path: Path, value: str,
                                                        message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "faxflow", "coversheet", "--value", value,
                             "-o", str(tmp_path / "x.pdf")], capture_output=True, text=True)
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "x.pdf").exists()
    with pytest.raises(ValueError, match="module size"):
        sheet.make("PAT-1", module_mm=0.3)


# --- hostile values, at the sinks ---------------------------------------------------------

HOSTILE = {
    "traversal": "PAT-../../../../etc/passwd",
    "template": "PAT-{{ 7*7 }}{% if 1 %}x{% endif %}",
    "crlf": "PAT-x\r\nBcc: evil@attacker.test\r\nReply-To: evil@attacker.test",
    "huge": "PAT-" + "9" * 10_000,
    "bidi": "PAT-\u202egpj.exe\u202c/..\\..",
    "nul": "PAT-a\x00b",
}
SINKS = """
[[rule]]
name = "hostile"
when.barcode = { regex = '(?s)^PAT-(?P<patient_id>.+)$' }  # as loose as can be
[[rule.route]]
type = "folder"
path = "patients/{{ fields.patient_id }}"
name = "{{ barcodes[0].value }}"
[[rule.route]]
type = "email"
to = "office@example.test"
subject = "Patient {{ fields.patient_id }} ({{ barcodes[0].value }})"
"""


@pytest.mark.parametrize("payload", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_barcode_values_stay_harmless_at_every_sink(
        tmp_path: Path, payload: str, caplog: Any) -> None:
    (tmp_path / "smtp").mkdir()
    server = SmtpServer(tmp_path / "smtp").start()
    try:
        out = tmp_path / "out"
        out.mkdir()
        toml = (f'[plugins.folder]\nbase = "{out}"\n'
                + server.settings_toml().replace("Fax Inbox <fax@example.test>",
                                                 "fax@example.test")
                + RULES.format(extra="").split("[[rule]]")[0] + SINKS)
        app = faxes.make_app({"rules": faxflow_rules, "folder": faxflow_folder,
                              "email": faxflow_email}, toml)
        fax = faxes.make_fax(tmp_path / "spool")
        fax.pages = [PageText(1, "x", barcodes=(Barcode(payload, "qr", 1),))]
        fax.pages[0].barcodes = protocol.bounded(fax.pages[0].barcodes)  # as the core does
        fax.labels, fax.fields = set(), {}
        with caplog.at_level(logging.INFO):
            protocol.classify(fax, app)
            protocol.route(fax, app)
            assert not fax.problems, fax.problems
            protocol.deliver(fax, app)
        assert [r.outcome.value for r in fax.results.values()] == ["delivered", "delivered"]
        (got,) = server.received
    finally:
        server.stop()
    assert_clean(got, recipients=(OFFICE,))
    subject = str(email.parser.BytesParser(policy=email.policy.default).parsebytes(
        got.data)["Subject"]).strip()
    assert subject.startswith("Patient ") and len(subject) < 2 * MAX_BARCODE_VALUE + 40
    if "{{" in payload:  # data, never a template: rendered as written, not evaluated
        assert "{{ 7*7 }}{% if 1 %}x{% endif %}" in subject and "49" not in subject
    written = [p for p in out.rglob("*") if p.is_file()]
    assert written and all(p.resolve().is_relative_to(out.resolve()) for p in written)
    for p in written:
        rel = p.relative_to(out)
        assert ".." not in rel.parts and all(len(part.encode()) <= 255 for part in rel.parts)
        assert not any(c in str(rel) for c in "\r\n\x00\u202e\u202c\\")
    assert not (tmp_path / "etc").exists()
    assert len(fax.pages[0].barcodes[0].value) <= MAX_BARCODE_VALUE
    for record in caplog.records:  # a value reaches the log only made one line and short
        message = record.getMessage()
        assert "\r" not in message and "\x00" not in message and "\u202e" not in message
        assert "9" * 300 not in message
