"""Ordering, fan-out, the default route, fields, and the hooks through the core's stages."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from faxflow_rules import faxflow_route
from test_rules_support import evaluate, make_app, make_fax, matched, routes

from faxflow import protocol
from faxflow.errors import PermanentError
from faxflow.hookspecs import hookimpl
from faxflow.types import Classification, Fax

RULES = """
[[rule]]
name = "tag-urgent"
labels = ["urgent"]
continue = true
when.text = { any = ["urgent", "dringend"] }

[[rule]]
name = "referrals"
labels = ["referral"]
when.receiver = "089 262080440"
[[rule.route]]
type = "folder"
path = "referrals"
[[rule.route]]
type = "email"
to = "referrals@clinic.example"
subject = "Referral{% if 'urgent' in labels %} (URGENT){% endif %} from {{ sender }}"

[[rule]]
name = "invoices"
labels = ["invoice"]
when.text = { any = ["invoice", "Rechnung"] }
[[rule.route]]
type = "email"
to = "accounting@clinic.example"

[[rule]]
name = "never-after-referrals"
when.receiver = "089 262080440"
[[rule.route]]
type = "folder"
path = "never"
"""


def test_first_match_wins_in_order() -> None:
    app = make_app(RULES)
    # both "referrals" and "invoices" would match; the earlier one wins and stops
    fax = make_fax("Invoice No. 1", to="+4989262080440", sender="+4930111")
    assert matched(app, fax) == ["referrals"]
    evaluation = evaluate(app, fax)
    assert [r.check is None for r in evaluation.results] == [False, False, True, True]
    assert [r.key for r in routes(app, fax)] == ["referrals/0", "referrals/1"]


def test_continue_fans_out_and_labels_flow_to_later_rules() -> None:
    app = make_app(RULES)
    fax = make_fax("DRINGEND: Rechnung", to="+4930999", sender="+4930111")
    assert matched(app, fax) == ["tag-urgent", "invoices"]
    evaluation = evaluate(app, fax)
    assert evaluation.labels == {"urgent", "invoice"}
    rendered = routes(app, fax)
    assert [(r.key, r.type, r.rule) for r in rendered] == [
        ("invoices/0", "email", "invoices")]
    urgent_referral = routes(app, make_fax("urgent", to="089262080440", sender="+4930111",
                                           e164=False))
    assert urgent_referral[1].route is not None
    assert urgent_referral[1].route.options["subject"] == "Referral (URGENT) from +4930111"


def test_fan_out_routes_from_several_rules() -> None:
    app = make_app("""
[[rule]]
name = "copy-all"
continue = true
[[rule.route]]
type = "folder"
path = "archive"
[[rule]]
name = "invoices"
when.text = { any = ["invoice"] }
[[rule.route]]
type = "email"
to = "a@example.org"
""")
    keys = [r.key for r in routes(app, make_fax("invoice"))]
    assert keys == ["copy-all/0", "invoices/0"]
    # a rule with continue routes, so the default route is not used
    assert [r.key for r in routes(app, make_fax("hello"))] == ["copy-all/0"]


def test_default_route_when_nothing_matched() -> None:
    app = make_app(RULES)
    fax = make_fax("hello", to="+4930999", received=datetime(2026, 11, 27, 23, 30,
                                                              tzinfo=UTC))
    evaluation = evaluate(app, fax)
    assert evaluation.used_default
    assert evaluation.labels == {"unsorted"}
    [rendered] = routes(app, fax)
    assert rendered.key == "default/0"
    assert rendered.route is not None
    assert rendered.route.options == {"path": "review/2026-11"}
    # 23:30 UTC on Nov 30 is already December in Berlin: templates use the configured zone
    late = make_fax("hello", to="+4930999", received=datetime(2026, 11, 30, 23, 30,
                                                               tzinfo=UTC))
    assert routes(app, late)[0].route.options == {"path": "review/2026-12"}  # type: ignore[union-attr]


def test_labelling_only_rules_still_get_the_default_route() -> None:
    app = make_app(RULES)
    fax = make_fax("urgent", to="+4930999")
    evaluation = evaluate(app, fax)
    assert evaluation.used_default
    assert evaluation.labels == {"urgent", "unsorted"}


def test_route_keys_are_stable_across_attempts() -> None:
    app = make_app(RULES)
    first = make_fax("x", to="+4989262080440", sender="+4930111")
    again = make_fax("x", to="+4989262080440", sender="+4930111")
    again.attempt = 3
    assert [r.route for r in routes(app, first)] == [r.route for r in routes(app, again)]


FIELDS = r"""
[[rule]]
name = "invoices"
when.all = [
  { text = { regex = 'Invoice No\.:\s*(?P<invoice_number>[A-Z0-9-]+)' } },
  { text = { regex = 'Customer No\.:\s*(?P<customer>K\d+)' } },
  { text = { regex = 'Date:\s*(?P<invoice_date>\d{2}\.\d{2}\.\d{4})' } },
  { text = { regex = 'Total amount due\s+(?P<total>[\d.,]+)' } },
  { text = { regex = 'Pages:\s*(?P<sheets>\d+)' } },
]
fields.invoice_date = { type = "date", format = "%d.%m.%Y" }
fields.total = { type = "decimal", decimal_separator = "," }
fields.sheets = "int"
[[rule.route]]
type = "email"
to = "accounting@clinic.example"
subject = '''{{ fields.invoice_number }} of {{
    fields.invoice_date|date('%d %b %Y') }}: {{ fields.total }}'''
"""
INVOICE_TEXT = ("Invoice No.: INV-2026-42   Customer No.: K901952\nDate: 16.01.2026\n"
                "Total amount due 13.348,91\nPages: 2")


def test_fields_are_typed_and_used_in_templates() -> None:
    app = make_app(FIELDS)
    evaluation = evaluate(app, make_fax(INVOICE_TEXT))
    assert evaluation.fields == {"invoice_number": "INV-2026-42", "customer": "K901952",
                                 "invoice_date": date(2026, 1, 16),
                                 "total": Decimal("13348.91"), "sheets": 2}
    [rendered] = routes(app, make_fax(INVOICE_TEXT))
    assert rendered.route is not None
    assert rendered.route.options["subject"] == "INV-2026-42 of 16 Jan 2026: 13348.91"


def test_a_field_that_does_not_convert_is_reported_not_guessed() -> None:
    app = make_app(FIELDS)
    fax = make_fax(INVOICE_TEXT.replace("16.01.2026", "31.02.2026"))
    result = evaluate(app, fax).results[0]
    assert result.matched
    assert "invoice_date" not in result.fields
    assert result.field_errors == ["invoice_date: '31.02.2026' does not match date format "
                                   "'%d.%m.%Y'"]
    # the subject needs the date: the route cannot be rendered, which quarantines the fax
    [rendered] = routes(app, fax)
    assert rendered.route is None
    assert rendered.error is not None and "rule 'invoices'" in rendered.error
    assert "subject" in rendered.error
    with pytest.raises(PermanentError, match="invoice_date"):
        faxflow_route(fax, app)


# --- Through the core: classification of all plugins runs before routing --------------------


class TriageClassifier:
    """A third-party classifier: labels faxes from a cardiology practice."""

    @hookimpl
    def faxflow_classify(self, fax: Fax) -> Classification | None:
        if "cardio" in fax.text.lower():
            return Classification(frozenset({"cardiology"}), {"specialty": "cardiology"})
        return None


def test_third_party_labels_drive_routing_through_the_core() -> None:
    app = make_app("""
[plugins.rules]
external_fields = ["specialty"]
[[rule]]
name = "cardiology"
labels = ["to-cardiology"]
when.labels = "cardiology"
[[rule.route]]
type = "email"
to = "cardio@clinic.example"
subject = "{{ fields.specialty }}: {{ labels | join(',') }}"
""", options="""
[plugins.rules.default]
[[plugins.rules.default.route]]
type = "folder"
""", extra={"triage": TriageClassifier()})
    fax = make_fax("Referral to Cardiology", to="+4930999")
    protocol.classify(fax, app)
    # at classification time the triage label was not merged yet: only the triage plugin's
    # label is on the fax, the rules contributed nothing
    assert fax.labels == {"cardiology"}
    protocol.route(fax, app)
    assert not fax.problems
    assert [(r.key, r.options["subject"]) for r in fax.routes] == [
        ("cardiology/0", "cardiology: cardiology,to-cardiology")]


def test_classify_hook_contributes_labels_and_fields() -> None:
    app = make_app(FIELDS + """
[[rule]]
name = "rest"
labels = ["other"]
[[rule.route]]
type = "folder"
""")
    fax = make_fax(INVOICE_TEXT)
    protocol.classify(fax, app)
    assert fax.fields["invoice_number"] == "INV-2026-42"
    other = make_fax("nothing")
    protocol.classify(other, app)
    assert other.labels == {"other"}
    protocol.route(other, app)
    assert [r.key for r in other.routes] == ["rest/0"]


def test_render_error_becomes_a_permanent_problem() -> None:
    app = make_app(FIELDS)
    fax = make_fax(INVOICE_TEXT.replace("16.01.2026", "31.02.2026"))
    protocol.route(fax, app)
    assert fax.routes == []
    assert any(not p.transient and "invoice_date" in p.message for p in fax.problems)


def test_default_labels_wait_for_routing_when_rules_use_labels() -> None:
    label_rules = """
[[rule]]
name = "cardiology"
when.labels = "cardiology"
[[rule.route]]
type = "email"
to = "cardio@clinic.example"
"""
    app = make_app(label_rules, extra={"triage": TriageClassifier()})
    fax = make_fax("Cardiology referral", to="+4930999")
    protocol.classify(fax, app)
    assert fax.labels == {"cardiology"}  # not "unsorted": routing will match the label rule
    protocol.route(fax, app)
    assert [r.key for r in fax.routes] == ["cardiology/0"]
    # without label conditions the outcome is known at classification: the fax is unsorted
    plain = make_app(RULES)
    other = make_fax("hello", to="+4930999")
    protocol.classify(other, plain)
    assert other.labels == {"unsorted"}
