"""The rules plugin: ordered ``[[rule]]`` tables that label, extract fields and route faxes.

Hooks only; the work is in `ruleset` (loading, evaluating, rendering), `when` (compiling
conditions), `conditions` (evaluating them), `templates`, `phone` and `fields`.
`faxflow explain` lives in `explain`. Reference: docs/rules.md.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from faxflow.config import errors
from faxflow.errors import ConfigError, PermanentError
from faxflow.hookspecs import hookimpl
from faxflow.types import Classification, Route, Target

from . import ruleset
from .ruleset import RuleSet

if TYPE_CHECKING:
    import click

    from faxflow.app import App
    from faxflow.config import Config, ConfigProblem
    from faxflow.types import Fax

log = logging.getLogger("faxflow.rules")

# Where the compiled rules of an app are kept, with the config they came from; and those of
# a config that was checked but is not (yet) the app's, e.g. during a hot reload.
STATE_KEY = "plugins.rules"
CHECKED_KEY = "plugins.rules.checked"


@hookimpl
def faxflow_config_sections() -> list[str]:
    return ["rule"]


@hookimpl
def faxflow_check_config(config: Config, app: App) -> list[ConfigProblem]:
    rules, problems = ruleset.load(config, app.destinations)
    if not errors(problems):  # configure comes next with the same config: compile once
        app.state[CHECKED_KEY] = (config, rules)
    return problems


@hookimpl
def faxflow_configure(config: Config, app: App) -> None:
    cached = app.state.get(STATE_KEY)
    if cached is not None and cached[0] is config:
        return
    checked = app.state.pop(CHECKED_KEY, None)
    if checked is not None and checked[0] is config:
        rules = checked[1]
    else:
        rules, problems = ruleset.load(config, app.destinations)
        if errors(problems):
            raise ConfigError("; ".join(p.message for p in errors(problems)))
    app.state[STATE_KEY] = (config, rules)


def current(app: App) -> RuleSet:
    """The rules of the app's config, compiled once (at configure time, or here on first use)."""
    cached = app.state.get(STATE_KEY)
    if cached is not None and cached[0] is app.config:
        rules: RuleSet = cached[1]
        return rules
    faxflow_configure(app.config, app)
    rules = app.state[STATE_KEY][1]
    return rules


def evaluate(rules: RuleSet, fax: Fax, app: App) -> ruleset.Evaluation:
    """Evaluate the rules for a fax; rules that failed closed on a regex timeout are logged
    and counted (a sender may be probing them with text made to backtrack)."""
    evaluation = ruleset.evaluate(rules, fax)
    for name in evaluation.timed_out:
        log.warning("fax %s: rule %s: a regex timed out; the rule does not match", fax.id, name)
        app.metrics.counter("faxflow_rule_regex_timeouts",
                            "Rules that failed closed because a regex ran out of time.",
                            ("rule",)).labels(name).inc()
    return evaluation


@hookimpl
def faxflow_classify(fax: Fax, app: App) -> Classification | None:
    # Labels of other classifiers are not merged yet: label conditions see them only when
    # routing. See docs/rules.md, "Labels from other plugins".
    rules = current(app)
    evaluation = evaluate(rules, fax, app)
    # Kept for routing, which would otherwise evaluate every rule (and regex) a second time;
    # only label conditions can see something new there (other plugins' labels).
    fax.scratch["rules"] = (rules, evaluation)
    labels = set(evaluation.labels)
    if evaluation.used_default and rules.uses_labels:
        # Routing may still match a label rule: do not call the fax unsorted yet.
        labels = {label for r in evaluation.results if r.matched for label in r.rule.labels}
    if not labels and not evaluation.fields:
        return None
    return Classification(frozenset(labels), dict(evaluation.fields))


@hookimpl
def faxflow_route(fax: Fax, app: App) -> list[Route]:
    rules = current(app)
    cached = fax.scratch.pop("rules", None)
    if cached is not None and cached[0] is rules and not rules.uses_labels:
        evaluation = cached[1]
    else:
        evaluation = evaluate(rules, fax, app)
    rendered = ruleset.render(rules, evaluation)
    # Why, as `faxflow explain` shows it: kept with the fax's record for the console.
    from .explain import report

    fax.scratch.setdefault("explain", {})["rules"] = report(fax, evaluation, rendered)
    errors = [r.error for r in rendered if r.error]
    if errors:  # the same fax renders the same way next time: retrying cannot help
        raise PermanentError("; ".join(errors))
    return [r.route for r in rendered if r.route is not None]


@hookimpl
def faxflow_route_targets(app: App) -> list[Target]:
    rules = current(app)
    return [Target(r.name, r.labels) for r in rules.rules if r.routes] + [
        Target(ruleset.DEFAULT_NAME, rules.default.labels)]


@hookimpl
def faxflow_route_to(fax: Fax, target: str, app: App) -> list[Route] | None:
    """The routes of rule `target` (or "default") for this fax, whatever its conditions say;
    fields its regexes captured are there if they matched."""
    rules = current(app)
    chosen = rules.default if target == ruleset.DEFAULT_NAME else next(
        (r for r in rules.rules if r.name == target and r.routes), None)
    if chosen is None:
        return None
    evaluation = evaluate(rules, fax, app)
    evaluation.routing = [chosen]
    rendered = ruleset.render(rules, evaluation)
    errors = [r.error for r in rendered if r.error]
    if errors:
        raise PermanentError("; ".join(errors))
    return [r.route for r in rendered if r.route is not None]


@hookimpl
def faxflow_register_commands(cli: click.Group) -> None:
    from .explain import explain

    cli.add_command(explain)
