"""Validation of [[rule]] tables and [plugins.rules]: every problem names rule and key."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import pytest
from test_rules_support import make_app, make_fax, problems_of, routes

from faxflow.app import App
from faxflow.config import ConfigProblem, parse
from faxflow.plugins import make_manager

ROOT = Path(__file__).resolve().parent.parent


def one(problems: list[ConfigProblem]) -> ConfigProblem:
    assert len(problems) == 1, problems
    return problems[0]


def rule(body: str, name: str = "r", route: str = 'type = "folder"') -> str:
    return f'[[rule]]\nname = "{name}"\n{body}\n[[rule.route]]\n{route}\n'


@pytest.mark.parametrize(("body", "path", "words"), [
    ("when.text = { regex = '(unclosed' }", ("when", "text", "regex"), "bad regex"),
    ("when.csid = { regex = '[z-a]' }", ("when", "csid", "regex"), "bad regex"),
    ('when.receiver = "not a number"', ("when", "receiver"), "not a valid phone number"),
    ('when.receiver = { prefix = "+49abc" }', ("when", "receiver", "prefix"), "not a phone"),
    ('when.recevier = "089 1"', ("when", "recevier"), "did you mean receiver"),
    ('when.received = { weekdays = "mon-frx" }', ("when", "received", "weekdays"),
     "bad weekday"),
    ('when.received = { between = ["8", "25:00"] }', ("when", "received", "between"), "HH:MM"),
    ('when.received = { timezone = "Mars/Olympus" }', ("when", "received", "timezone"),
     "unknown time zone"),
    ('when.page_count = { min = "2" }', ("when", "page_count"), "integer"),
    ('when.text = { pages = "3-1", any = ["x"] }', ("when", "text", "pages"), "page number"),
    ('when.text = { fuzzy = "x", threshold = 0 }', ("when", "text", "threshold"), "1..100"),
    ('when.text = { case_sensitive = true }', ("when", "text"), "at least one of"),
    ('when.labels = { some = ["x"] }', ("when", "labels"), "any or all"),
    ('when.text = { any = ["ok", "--"] }', ("when", "text", "any"), "letter or digit"),
    ('when.text = { phrase = ["a b", "c d"] }', ("when", "text", "phrase"), "one phrase"),
    ("when.all = []", ("when", "all"), "non-empty list"),
    ('when.not = "x"', ("when", "not"), "table of conditions"),
    ("contnue = true", ("contnue",), "did you mean continue"),
    ('continue = "yes"', ("continue",), "true or false"),
    ("labels = [1]", ("labels",), "list of label names"),
    ("fields.total = \"money\"", ("fields", "total"), "type must be one of"),
    ("fields.when = { type = \"date\" }", ("fields", "when"), "needs a format"),
    ("fields.ghost = \"str\"", ("fields", "ghost"), "no regex of this rule"),
])
def test_rule_problems_name_rule_and_key(body: str, path: tuple[str, ...], words: str) -> None:
    problem = one(problems_of(rule(body, name="bad-one")))
    assert problem.path == ("rule", 0, *path)
    assert problem.message.startswith("rule 'bad-one': ")
    assert words in problem.message
    assert problem.line is not None  # the core found the line in the file


@pytest.mark.parametrize(("route", "path", "words"), [
    ('type = "fax-machine"', ("type",), "unknown destination type 'fax-machine' (known: "
                                        "email, folder)"),
    ("path = \"x\"", ("type",), "required"),
    ('type = "email"\nsubject = "hi"', ("to",), "email: to: required"),
    ('type = "folder"\ncontent = "all"', ("content",), "folder: content:"),
    ('type = "folder"\npath = "{{ nope }}"', ("path",), "unknown variable 'nope'"),
])
def test_route_problems_name_rule_route_and_option(route: str, path: tuple[str, ...],
                                                   words: str) -> None:
    problem = one(problems_of(rule("", name="dest", route=route)))
    assert problem.path == ("rule", 0, "route", 0, *path)
    assert problem.message.startswith("rule 'dest': route.0.")
    assert words in problem.message


def test_duplicate_names_and_missing_names() -> None:
    problems = problems_of(rule('when.csid = "y"', name="same")
                           + rule('when.csid = "x"', name="same")
                           + '[[rule]]\ncontinue = true\n')
    assert [(p.path, p.message) for p in problems] == [
        (("rule", 1, "name"), "rule 'same': name: duplicate rule name (also rule #1)"),
        (("rule", 2, "name"), "rule '#3': name: required: letters, digits, '.', '-', '_' "
                              "(used in route keys, so keep it stable)"),
    ]
    assert one(problems_of(rule("", name="default"))).message == (
        "rule 'default': name: 'default' is reserved for the default route")


def test_unreachable_rules_after_a_catch_all() -> None:
    text = (rule('when.csid = "a"', name="first") + rule("", name="everything")
            + rule('when.csid = "b"', name="late") + rule("", name="later"))
    problems = problems_of(text)
    assert [p.path for p in problems] == [("rule", 2), ("rule", 3)]
    assert problems[0].message == (
        "rule 'late': unreachable: rule 'everything' before it has no conditions and no "
        "continue = true, so it matches every fax first")
    # with continue, later rules are reachable
    assert problems_of(rule("", name="everything") .replace("name", "continue = true\nname")
                       + rule('when.csid = "b"', name="late")) == []


def test_a_broken_condition_causes_no_follow_up_errors() -> None:
    # A rule whose only condition is invalid is not a catch-all, and the fields of its broken
    # regex stay known to templates: one mistake, one message.
    text = (rule("when.text = { regex = '(?P<nr>\\d+' }", name="broken",
                 route='type = "folder"\npath = "{{ fields.nr }}"')
            + rule('when.csid = "x"', name="after"))
    problem = one(problems_of(text))
    assert problem.path == ("rule", 0, "when", "text", "regex")


def test_rule_without_route_must_continue() -> None:
    problem = one(problems_of('[[rule]]\nname = "lonely"\nwhen.csid = "x"\n'))
    assert problem.path == ("rule", 0, "route")
    assert "continue = true" in problem.message


@pytest.mark.parametrize(("options", "path", "words"), [
    ('default_country = "XX"', "default_country", "two-letter"),
    ('timezone = "Europe/Nowhere"', "timezone", "unknown time zone"),
    ("regex_timeout_ms = 0", "regex_timeout_ms", "1..60000"),
    ("fuzzy_threshold = 101", "fuzzy_threshold", "1..100"),
    ("max_output = -1", "max_output", "1..1000000"),
    ('external_fields = "x"', "external_fields", "list of field names"),
    ("regex_timout_ms = 5", "regex_timout_ms", "did you mean regex_timeout_ms"),
])
def test_plugin_option_problems(options: str, path: str, words: str) -> None:
    text = (f"[plugins.rules]\n{options}\n[plugins.rules.default]\n"
            '[[plugins.rules.default.route]]\ntype = "folder"\n')
    problem = one(problems_of("", options=text))
    assert problem.path == ("plugins", "rules", path)
    assert words in problem.message


def test_default_route_is_required_and_checked() -> None:
    problem = one(problems_of(rule("", name="x"), options="[plugins.rules]\n"))
    assert problem.path == ("plugins", "rules", "default")
    assert "required" in problem.message
    bad = """
[plugins.rules.default]
[[plugins.rules.default.route]]
type = "email"
"""
    problem = one(problems_of("", options=bad))
    assert problem.path == ("plugins", "rules", "default", "route", 0, "to")
    assert problem.message == "default route: route.0.to: email: to: required"


def test_rule_tables_must_be_an_array() -> None:
    problems = problems_of('[rule]\nname = "x"\n')
    assert ("rule",) in [p.path for p in problems]


def test_configure_refuses_invalid_rules_with_the_messages() -> None:
    from faxflow.errors import ConfigError

    with pytest.raises(ConfigError, match=r"rule 'r': when\.text\.regex: bad regex"):
        make_app(rule("when.text = { regex = '(' }"))


# --- The example file -----------------------------------------------------------------------


def example_path() -> Path:
    return ROOT / "rules.example.toml"


def example_app() -> App:
    path = example_path()
    text = path.read_text(encoding="utf-8")
    env = {name: "placeholder" for name in ("RETARUS_USERNAME", "RETARUS_PASSWORD",
                                            "SMTP_PASSWORD")}
    config, problems = parse(text, path, env)
    assert problems == []
    pm, report = make_manager(load=["ocr", "rules", "folder", "email"], trace=False)
    app = App(pm=pm, config=config, report=report)
    assert app.load_destination_types() == []
    problems = app.check_config(config)
    # Only warnings: the example's folders (/srv/faxflow/...) do not exist on this machine.
    assert [p for p in problems if not p.warning] == []
    assert all("does not exist" in p.message for p in problems)
    app.configure(config)
    return app


def test_example_validates_and_routes_like_its_comments_say() -> None:
    from datetime import datetime

    from faxflow.samples import make_fax as make_sample

    app = example_app()
    office = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # Wednesday 11:00 Berlin
    night = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)

    referral = make_sample(kind="referral", seed=2)
    rendered = routes(app, make_fax(*referral.page_texts, to="089 262080440", e164=False,
                                    received=night))
    assert [r.key for r in rendered] == ["after-hours/0", "referrals/0", "referrals/1"]
    folder = rendered[1].route
    assert folder is not None and folder.options["base"] == "referrals"
    assert folder.options["name"] == f"{referral.fields['patient_id']}-f1"

    invoice = make_sample(kind="invoice", seed=5)
    [mail] = routes(app, make_fax(*invoice.page_texts, to="+4989262080450", received=office))
    assert mail.key == "invoices/0" and mail.route is not None
    assert invoice.fields["invoice_number"] in mail.route.options["subject"]

    letter = make_sample(kind="letter", seed=1)
    [review] = routes(app, make_fax(*letter.page_texts, to="+4989262080450", received=office,
                                    csid="../KELLER"))
    assert review.key == "default/0" and review.route is not None
    assert review.route.options["name"] == "f1-KELLER"

