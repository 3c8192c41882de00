"""Helpers for the rules plugin's tests (no tests here): apps with the real folder and email
destination plugins, and faxes whose page text is given directly."""

from __future__ import annotations

import textwrap
from datetime import datetime
from typing import Any

import faxflow_email
import faxflow_folder
import faxflow_rules
from faxflow_rules import ruleset

from faxflow.app import App
from faxflow.config import ConfigProblem, parse
from faxflow.errors import ConfigError
from faxflow.plugins import make_manager
from faxflow.types import Fax, Job, Number, PageText

CORE = """
[retarus]
base_url = "http://127.0.0.1:9/faxin/rest/v1"
username = "99999"
password = "test-only"
topics = ["t"]
"""

OPTIONS = """
[plugins.rules]
default_country = "DE"
timezone = "Europe/Berlin"

[plugins.rules.default]
labels = ["unsorted"]
[[plugins.rules.default.route]]
type = "folder"
path = "review/{{ received | date('%Y-%m') }}"
"""


def config_text(rules: str, options: str = OPTIONS) -> str:
    return CORE + textwrap.dedent(options) + textwrap.dedent(rules)


def make_app(rules: str, options: str = OPTIONS, extra: dict[str, Any] | None = None) -> App:
    """An app with the rules plugin and the real folder/email destinations, configured."""
    config, problems = parse(config_text(rules, options))
    plugins = {"rules": faxflow_rules, "folder": faxflow_folder, "email": faxflow_email,
               **(extra or {})}
    pm, report = make_manager(extra=plugins.items(), entry_points=False, load=None, trace=False)
    app = App(pm=pm, config=config, report=report)
    errors = app.load_destination_types()
    problems = problems or app.check_config(config)
    if problems or errors:
        raise ConfigError("\n".join([p.format() for p in problems] + errors))
    app.configure(config)
    return app


def problems_of(rules: str, options: str = OPTIONS) -> list[ConfigProblem]:
    """What `faxflow check` reports for these rules (with the real destination plugins)."""
    config, problems = parse(config_text(rules, options))
    assert not problems, problems
    pm, report = make_manager(extra=[("rules", faxflow_rules), ("folder", faxflow_folder),
                                     ("email", faxflow_email)], entry_points=False, load=None,
                              trace=False)
    app = App(pm=pm, config=config, report=report)
    app.load_destination_types()
    return app.check_config(config)


def make_fax(*pages: str, to: str | None = "+4989262080440", sender: str | None = None,
             csid: str | None = None, received: datetime | None = None,
             cost_center: str | None = None, resolution: str | None = None,
             page_count: int | None = None, labels: set[str] | None = None,
             e164: bool = True, fax_id: str = "f1") -> Fax:
    """A fax with the given page texts; numbers as Retarus would send them (`e164=False`:
    Retarus could not normalize them, as for a national number)."""
    def number(raw: str | None) -> Number | None:
        if raw is None:
            return None
        return Number(raw, raw if e164 and raw.startswith("+") else None)

    job = Job(id=fax_id, receiver_isdn=number(to), sender_isdn=number(sender),
              sender_fax_id=csid, date_received=received, cost_center=cost_center,
              fax_resolution=resolution, fax_page_count=page_count)
    return Fax(job=job, topic="t", pages=[PageText(i, t) for i, t in enumerate(pages, 1)],
               labels=set(labels or ()))


def evaluate(app: App, fax: Fax) -> ruleset.Evaluation:
    return ruleset.evaluate(faxflow_rules.current(app), fax)


def matched(app: App, fax: Fax) -> list[str]:
    return [r.rule.name for r in evaluate(app, fax).results if r.matched]


def routes(app: App, fax: Fax) -> list[ruleset.Rendered]:
    rules = faxflow_rules.current(app)
    return ruleset.render(rules, ruleset.evaluate(rules, fax))


def rule_matches(when: str, fax: Fax, options: str = OPTIONS) -> bool:
    """Whether one rule with this `when` (TOML lines) matches the fax."""
    app = make_app(f"""
[[rule]]
name = "r"
{when}
[[rule.route]]
type = "folder"
path = "x"
""", options)
    return matched(app, fax) == ["r"]
