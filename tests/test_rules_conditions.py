"""Every condition kind of the rules plugin, on faxes whose text is given directly."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from faxflow_rules.phone import normalize, normalize_prefix
from test_rules_support import evaluate, make_app, make_fax, rule_matches

from faxflow.samples import make_fax as make_sample

UTC = UTC


# --- Numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize("written", ["+4989262080440", "+49 89 2620804-40", "0049 89 262080440",
                                     "089 262080440", "(089) 2620804 40", "089/262080440"])
@pytest.mark.parametrize("sent", ["+4989262080440", "0049 89 262080440", "089262080440"])
def test_receiver_matches_in_every_usual_form(written: str, sent: str) -> None:
    # Retarus gives no e164 for the national form: the plugin normalizes raw itself.
    fax = make_fax("x", to=sent, e164=sent.startswith("+"))
    assert rule_matches(f'when.receiver = "{written}"', fax)


def test_receiver_other_number_does_not_match() -> None:
    assert not rule_matches('when.receiver = "089 262080441"', make_fax("x", to="+4989262080440"))
    assert not rule_matches('when.receiver = "089 262080440"', make_fax("x", to=None))


def test_default_country_decides_national_numbers() -> None:
    options = """
[plugins.rules]
default_country = "AT"
[plugins.rules.default]
[[plugins.rules.default.route]]
type = "folder"
"""
    vienna = make_fax("x", to="01 5123456", e164=False)  # Vienna, written nationally
    assert rule_matches('when.receiver = "+43 1 5123456"', vienna, options)
    assert not rule_matches('when.receiver = "+49 1 5123456"', vienna, options)


def test_number_list_prefix_and_glob() -> None:
    fax = make_fax("x", to="+4989262080440", sender="0221 809413936", e164=False)
    assert rule_matches('when.receiver = ["+49301234567", "089 262080440"]', fax)
    assert rule_matches('when.receiver = { prefix = "089 2620804" }', fax)
    assert rule_matches('when.receiver = { prefix = "0049 89" }', fax)
    assert not rule_matches('when.receiver = { prefix = "+4930" }', fax)
    assert rule_matches('when.receiver = "089 2620804??"', fax)  # a glob
    assert rule_matches('when.sender = "+49221*"', fax)
    assert not rule_matches('when.sender = "+49 89 *"', fax)


def test_normalization_helpers() -> None:
    assert normalize("0049 (0)89 262080440", "DE") == "+4989262080440"
    assert normalize("not a number", "DE") is None
    assert normalize_prefix("089", "DE") == "+4989"
    assert normalize_prefix("0049 89", "DE") == "+4989"
    assert normalize_prefix("011 1 212", "US") == "+1212"


# --- Metadata -------------------------------------------------------------------------------


def test_csid_exact_glob_regex_case_insensitive() -> None:
    fax = make_fax("x", csid="  DR. MED. LAMBERT Praxis ")
    assert rule_matches('when.csid = "dr. med. lambert praxis"', fax)
    assert rule_matches('when.csid = ["nobody", "*lambert*"]', fax)
    assert rule_matches(r"when.csid = { regex = 'lambert\s+praxis$' }", fax)
    assert not rule_matches('when.csid = "lambert"', fax)
    assert not rule_matches('when.csid = "*x*"', make_fax("x", csid=None))


def test_cost_center_page_count_resolution() -> None:
    fax = make_fax("a", "b", "c", cost_center="4711", resolution="HIGH", page_count=3)
    assert rule_matches('when.cost_center = "4711"', fax)
    assert not rule_matches('when.cost_center = "4712"', fax)
    assert rule_matches("when.page_count = { min = 2, max = 5 }", fax)
    assert rule_matches("when.page_count = 3", fax)
    assert not rule_matches("when.page_count = { max = 2 }", fax)
    assert rule_matches('when.resolution = ["high", "fine"]', fax)
    assert not rule_matches('when.resolution = "low"', fax)
    # without a page count from Retarus, the extracted pages count
    assert rule_matches("when.page_count = { min = 3 }", make_fax("a", "b", "c"))


# --- Received time --------------------------------------------------------------------------

OFFICE = 'when.received = { weekdays = "mon-fri", between = ["08:00", "18:00"] }'
AFTER_HOURS = ('when.not.received = { weekdays = ["mon-fri"], between = ["08:00", "18:00"], '
               'timezone = "Europe/Berlin" }')


@pytest.mark.parametrize(("when", "office"), [
    (datetime(2026, 11, 27, 7, 0, tzinfo=UTC), True),     # Fri 08:00 Berlin (UTC+1)
    (datetime(2026, 11, 27, 6, 59, tzinfo=UTC), False),   # Fri 07:59 Berlin
    (datetime(2026, 11, 27, 16, 59, tzinfo=UTC), True),   # Fri 17:59 Berlin
    (datetime(2026, 11, 27, 17, 0, tzinfo=UTC), False),   # Fri 18:00 Berlin: end exclusive
    (datetime(2026, 11, 28, 10, 0, tzinfo=UTC), False),   # Saturday
    (datetime(2026, 7, 1, 16, 30, tzinfo=UTC), False),    # Wed 18:30 Berlin in summer (UTC+2)
    (datetime(2026, 7, 1, 15, 30, tzinfo=UTC), True),     # Wed 17:30 Berlin in summer
    (datetime(2026, 11, 27, 8, 0), True),                 # no offset: UTC
])
def test_office_hours_and_after_hours(when: datetime, office: bool) -> None:
    fax = make_fax("x", received=when)
    assert rule_matches(OFFICE, fax) is office
    assert rule_matches(AFTER_HOURS, fax) is not office


def test_overnight_window_belongs_to_its_start_day() -> None:
    night = 'when.received = { weekdays = "fri", between = ["22:00", "06:00"] }'
    fri_late = make_fax("x", received=datetime(2026, 11, 27, 22, 30, tzinfo=UTC))  # 23:30
    sat_early = make_fax("x", received=datetime(2026, 11, 28, 3, 0, tzinfo=UTC))  # Sat 04:00
    sat_late = make_fax("x", received=datetime(2026, 11, 28, 22, 30, tzinfo=UTC))
    assert rule_matches(night, fri_late)
    assert rule_matches(night, sat_early)
    assert not rule_matches(night, sat_late)


def test_other_time_zone_and_no_receive_time() -> None:
    tokyo = 'when.received = { between = ["09:00", "17:00"], timezone = "Asia/Tokyo" }'
    assert rule_matches(tokyo, make_fax("x", received=datetime(2026, 11, 27, 1, tzinfo=UTC)))
    assert not rule_matches(tokyo, make_fax("x", received=datetime(2026, 11, 27, 9, tzinfo=UTC)))
    assert not rule_matches(OFFICE, make_fax("x", received=None))


# --- Content --------------------------------------------------------------------------------

INVOICE = make_sample(kind="invoice", pages=2, seed=3)


def test_words_any_all_phrase_on_sample_text() -> None:
    fax = make_fax(*INVOICE.page_texts)
    assert rule_matches('when.text = { any = ["Rechnung", "INVOICE"] }', fax)
    assert rule_matches('when.text = { all = ["invoice", "delivery note"] }', fax)
    assert not rule_matches('when.text = { all = ["invoice", "referral"] }', fax)
    assert not rule_matches('when.text = { any = ["invoic"] }', fax)  # whole words only
    assert rule_matches('when.text = { phrase = "total   AMOUNT due" }', fax)
    assert not rule_matches('when.text = { phrase = "total due" }', fax)


def test_phrase_spans_line_breaks_and_case_sensitivity() -> None:
    fax = make_fax("Bitte um\nRückruf heute")
    assert rule_matches('when.text = { phrase = "bitte um rückruf" }', fax)
    assert not rule_matches('when.text = { phrase = "bitte um rückruf", case_sensitive = true }',
                            fax)
    assert rule_matches('when.text = { phrase = "Bitte um Rückruf", case_sensitive = true }', fax)


def test_words_ignore_punctuation_but_not_word_boundaries() -> None:
    fax = make_fax("Betreff: Bitte, um Rückruf!\nRechnungs-Nr.: 4711 (STRASSE)")
    assert rule_matches('when.text = { phrase = "bitte um rückruf" }', fax)
    assert rule_matches('when.text = { any = ["Rechnungs-Nr."] }', fax)
    assert rule_matches('when.text = { all = ["nr", "4711"] }', fax)
    assert not rule_matches('when.text = { any = ["Rechnung"] }', fax)  # "Rechnungs" only
    assert rule_matches('when.text = { any = ["straße"] }', fax)  # case folding: ß = ss


def test_regex_and_page_range() -> None:
    fax = make_fax("Page one: nothing here", "Page two: Order No.: PO-2026-15156", "last page")
    order = r"when.text = { regex = 'order no\.:\s*PO-\d{4}-\d+'"
    assert rule_matches(order + " }", fax)
    assert not rule_matches(order + ", pages = 1 }", fax)
    assert rule_matches(order + ', pages = "2-" }', fax)
    assert rule_matches(order + ', pages = "1-2" }', fax)
    assert not rule_matches(order + ", pages = -1 }", fax)  # last page only
    assert not rule_matches(order + ", case_sensitive = true }", fax)
    assert rule_matches('when.text = { any = ["last"], pages = -1 }', fax)


def test_fuzzy_survives_ocr_errors() -> None:
    fax = make_fax("Sehr geehrte Damen und Herren, anbei die Uberweisung vom Montag.")
    assert rule_matches('when.text = { fuzzy = "Überweisung" }', fax)
    assert not rule_matches('when.text = { fuzzy = "Überweisung", threshold = 95 }', fax)
    assert not rule_matches('when.text = { fuzzy = "Kostenvoranschlag" }', fax)


def test_labels_from_other_classifiers() -> None:
    fax = make_fax("x", labels={"urgent", "cardiology"})
    assert rule_matches('when.labels = "urgent"', fax)
    assert rule_matches('when.labels = ["urgent", "cardiology"]', fax)
    assert not rule_matches('when.labels = ["urgent", "spam"]', fax)
    assert rule_matches('when.labels = { any = ["urgent", "spam"] }', fax)
    assert not rule_matches('when.labels = { any = ["spam"] }', fax)


# --- Combinators ----------------------------------------------------------------------------


def test_all_any_not_nesting() -> None:
    fax = make_fax("Invoice No.: INV-1", to="+4989262080440", csid="ACME")
    when = """
[[rule.when.any]]
csid = "nobody"
[[rule.when.any]]
receiver = "089 262080440"
text = { any = ["invoice"] }
not = { any = [{ csid = "acme" }, { page_count = { min = 10 } }] }
[[rule.when.any]]
text = { any = ["invoice"] }
"""
    # second branch fails only through `not` (csid is acme); third branch matches
    assert rule_matches(when, fax)
    app_when = 'when.all = [{ receiver = "089 262080440" }, { not = { csid = "acme" } }]'
    assert not rule_matches(app_when, fax)
    assert rule_matches(app_when, make_fax("x", csid="other"))


def test_trace_shows_every_condition_and_skips() -> None:
    app = make_app("""
[[rule]]
name = "r"
when.any = [{ csid = "acme" }, { text = { regex = 'Patient ID:\\s*(?P<patient_id>PID-\\d+)' } }]
[[rule.route]]
type = "folder"
""")
    result = evaluate(app, make_fax("x", csid="ACME")).results[0]
    assert result.check is not None and result.check.ok
    first, second = result.check.children
    assert first.ok is True and "ACME" in first.detail
    assert second.ok is None  # `any` stopped at the first true branch


# --- The regex bound ------------------------------------------------------------------------


def test_hostile_regex_cannot_hang_the_worker() -> None:
    options = """
[plugins.rules]
regex_timeout_ms = 100
[plugins.rules.default]
[[plugins.rules.default.route]]
type = "folder"
"""
    app = make_app("""
[[rule]]
name = "hostile"
when.text = { regex = '(a+)+$' }
[[rule.route]]
type = "folder"
""", options)
    # (a+)+$ on "aaa…b" backtracks exponentially: 2^5000 steps without a bound.
    fax = make_fax("a" * 5000 + "b")
    done: list[object] = []
    worker = threading.Thread(target=lambda: done.append(evaluate(app, fax)), daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(timeout=60)  # generous: only a hang fails this
    assert not worker.is_alive(), "regex evaluation hung"
    assert time.monotonic() - started < 60
    evaluation = done[0]
    check = evaluation.results[0].check  # type: ignore[attr-defined]
    assert check.ok is False
    assert "timed out" in check.detail and "fails closed" in check.detail
    assert evaluation.used_default  # type: ignore[attr-defined]


TIMEOUT_OPTIONS = """
[plugins.rules]
regex_timeout_ms = 20
[plugins.rules.default]
[[plugins.rules.default.route]]
type = "folder"
"""
BACKTRACK = "a" * 5000 + "b"  # (a+)+$ backtracks exponentially on it


@pytest.mark.parametrize("when", [
    "when.not.text = { regex = '(a+)+$' }",
    "when.not.csid = { regex = '(a+)+$' }",
    "when.any = [{ not.text = { regex = '(a+)+$' } }, { csid = 'nobody' }]",
    "when.all = [{ not.not.not.text = { regex = '(a+)+$' } }]",
    "when.not.any = [{ text = { regex = '(a+)+$' } }, { csid = 'nobody' }]",
    "when.any = [{ text = { regex = '(a+)+$' } }, { not.csid = 'nobody' }]",
])
def test_a_regex_timeout_fails_the_whole_rule_closed(when: str) -> None:
    """A timed-out regex is not "no match": a `not` around it (or a later branch of `any`)
    must not make the rule match, or a sender could force a negated rule."""
    app = make_app(f"""
[[rule]]
name = "negated"
{when}
[[rule.route]]
type = "folder"
""", TIMEOUT_OPTIONS)
    fax = make_fax(BACKTRACK, csid=BACKTRACK)
    evaluation = evaluate(app, fax)
    (result,) = evaluation.results
    assert not result.matched
    assert result.check is not None and result.check.ok is False
    assert "timed out after 20 ms" in result.check.detail
    assert "the rule fails closed" in result.check.detail
    assert evaluation.timed_out == ["negated"]
    assert evaluation.used_default


def test_a_regex_timeout_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    import faxflow_rules

    app = make_app("""
[[rule]]
name = "negated"
when.not.text = { regex = '(a+)+$' }
[[rule.route]]
type = "folder"
""", TIMEOUT_OPTIONS)
    fax = make_fax(BACKTRACK)
    routes = faxflow_rules.faxflow_route(fax, app)
    assert [r.rule for r in routes] == ["default"]
    assert app.metrics.total("faxflow_rule_regex_timeouts") == 1
    assert "rule negated: a regex timed out" in caplog.text
