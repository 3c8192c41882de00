"""Loading ``[[rule]]`` tables into a `RuleSet`, evaluating it for a fax, rendering routes.

`evaluate` and `render` are the one code path for classification, routing and explain:
their results (`Evaluation`, `Rendered`) are the trace explain prints.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import phonenumbers

from faxflow import cover
from faxflow.config import Config, ConfigProblem, KeyPath, as_problems
from faxflow.types import DestinationType, Fax, Route

from . import phone
from .conditions import Always, Check, Condition, RegexTimeout, Subject, subject_time
from .fields import FieldSpec, parse_spec
from .templates import DEFAULT_MAX_OUTPUT, SENDER_CONTROLLED, TemplateError, Templates
from .when import Context, compile_when, load_zone

PLUGIN = "rules"
DEFAULT_NAME = "default"
RULE_KEYS = ("name", "description", "when", "labels", "fields", "route", "continue")
OPTION_KEYS = ("default_country", "timezone", "regex_timeout_ms", "fuzzy_threshold",
               "max_output", "external_fields", "default")


@dataclass
class RouteSpec:
    index: int
    type: str
    options: dict[str, Any]  # as written; strings may be templates
    compiled: dict[str, Any]  # same shape, strings replaced by (source, Template | None)


@dataclass
class Rule:
    name: str
    index: int  # position in the file, 0-based
    condition: Condition
    labels: frozenset[str] = frozenset()
    fields: dict[str, FieldSpec] = field(default_factory=dict)
    routes: list[RouteSpec] = field(default_factory=list)
    cont: bool = False

    @property
    def catch_all(self) -> bool:
        return isinstance(self.condition, Always)


@dataclass
class RuleSet:
    rules: list[Rule]
    default: Rule  # the required default route: condition Always, used when nothing routed
    country: str = "DE"
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    regex_timeout: float = 0.25
    templates: Templates = field(default_factory=Templates)
    uses_labels: bool = False  # some rule has a `labels` condition


@dataclass
class RuleResult:
    rule: Rule
    check: Check | None  # None: not evaluated (an earlier rule matched without continue)
    fields: dict[str, Any] = field(default_factory=dict)
    field_errors: list[str] = field(default_factory=list)
    timed_out: bool = False  # a regex ran out of time: the rule failed closed

    @property
    def matched(self) -> bool:
        return self.check is not None and self.check.ok is True and not self.timed_out


@dataclass
class Evaluation:
    """The trace of one evaluation: every rule's check, and what the matched rules set."""

    results: list[RuleResult]
    labels: set[str]  # set by matched rules
    fields: dict[str, Any]  # extracted by matched rules
    routing: list[Rule]  # matched rules with routes, or [default]
    variables: dict[str, Any]  # the template context without `rule`

    @property
    def timed_out(self) -> list[str]:
        """Rules that failed closed because a regex ran out of time."""
        return [r.rule.name for r in self.results if r.timed_out]

    @property
    def used_default(self) -> bool:
        return bool(self.routing) and self.routing[0].name == DEFAULT_NAME


@dataclass
class Rendered:
    rule: str
    key: str
    type: str
    route: Route | None
    error: str | None = None


# --- Loading ----------------------------------------------------------------------------------


def load(config: Config, destinations: Mapping[str, DestinationType]
         ) -> tuple[RuleSet, list[ConfigProblem]]:
    """Compile the rules and the plugin's options; every problem names rule and key."""
    problems: list[ConfigProblem] = []
    options = config.plugin_options(PLUGIN)
    base: KeyPath = ("plugins", PLUGIN)

    def opt_problem(key: str, message: str) -> None:
        problems.append(ConfigProblem((*base, key), message))

    for key in options:
        if key not in OPTION_KEYS:
            close = difflib.get_close_matches(key, OPTION_KEYS, n=1)
            opt_problem(key, "unknown option" + (f" (did you mean {close[0]}?)" if close else ""))
    country = options.get("default_country", "DE")
    if not isinstance(country, str) or country.upper() not in phonenumbers.SUPPORTED_REGIONS:
        opt_problem("default_country", "must be a two-letter country code such as DE")
        country = "DE"
    country = country.upper()
    tz = load_zone(options.get("timezone", "UTC"))
    if tz is None:
        opt_problem("timezone", f"unknown time zone {options.get('timezone')!r}")
        tz = ZoneInfo("UTC")
    timeout_ms = options.get("regex_timeout_ms", 250)
    if not _int_between(timeout_ms, 1, 60_000):
        opt_problem("regex_timeout_ms", "must be an integer in 1..60000")
        timeout_ms = 250
    threshold = options.get("fuzzy_threshold", 85)
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) \
            or not 0 < threshold <= 100:
        opt_problem("fuzzy_threshold", "must be a number in 1..100")
        threshold = 85
    max_output = options.get("max_output", DEFAULT_MAX_OUTPUT)
    if not _int_between(max_output, 1, 1_000_000):
        opt_problem("max_output", "must be an integer in 1..1000000")
        max_output = DEFAULT_MAX_OUTPUT
    external = options.get("external_fields", [])
    if not (isinstance(external, list) and all(isinstance(x, str) for x in external)):
        opt_problem("external_fields", "must be a list of field names")
        external = []

    raw_rules = config.data.get("rule", [])
    if not isinstance(raw_rules, list):
        problems.append(ConfigProblem(("rule",), "write rules as [[rule]] tables"))
        raw_rules = []

    def context(name: str) -> Context:
        return Context(name, country, tz, float(threshold), problems)

    # Pass 1: conditions and fields, so templates can be checked against every field name.
    rules: list[Rule] = []
    contexts: list[Context] = []
    seen: dict[str, int] = {}
    for i, table in enumerate(raw_rules):
        path: KeyPath = ("rule", i)
        if not isinstance(table, dict):
            problems.append(ConfigProblem(path, f"rule #{i + 1}: must be a table"))
            continue
        name = table.get("name")
        label = name if isinstance(name, str) and name else f"#{i + 1}"
        ctx = context(label)
        if not isinstance(name, str) or not re.fullmatch(r"[\w.\-]+", name):
            ctx.problem((*path, "name"), "required: letters, digits, '.', '-', '_' (used in "
                        "route keys, so keep it stable)")
            name = label
        elif name == DEFAULT_NAME:
            ctx.problem((*path, "name"), f"{DEFAULT_NAME!r} is reserved for the default route")
        elif name in seen:
            ctx.problem((*path, "name"), f"duplicate rule name (also rule #{seen[name] + 1})")
        seen.setdefault(name, i)
        for key in table:
            if key not in RULE_KEYS:
                close = difflib.get_close_matches(key, RULE_KEYS, n=1)
                ctx.problem((*path, key), "unknown key" + (f" (did you mean {close[0]}?)"
                                                            if close else ""))
        condition = compile_when(table.get("when", {}), (*path, "when"), ctx)
        cont = table.get("continue", False)
        if not isinstance(cont, bool):
            ctx.problem((*path, "continue"), "must be true or false")
            cont = False
        rule = Rule(name, i, condition, _labels(table, path, ctx),
                    _fields(table, path, ctx), [], cont)
        rules.append(rule)
        contexts.append(ctx)

    known_fields = {f for c in contexts for f in c.groups} | set(external)
    known_fields |= {f for r in rules for f in r.fields}
    templates = Templates(max_output)
    for rule, ctx in zip(rules, contexts, strict=True):
        path = ("rule", rule.index)
        table = raw_rules[rule.index]
        rule.routes = _routes(table.get("route", []), (*path, "route"), ctx, destinations,
                              templates, known_fields)
        if not table.get("route") and not rule.cont:
            ctx.problem((*path, "route"), "a rule without routes must set continue = true "
                        "(it then only labels or extracts fields)")
    for rule in rules:
        if rule.catch_all and not rule.cont:
            for later in rules[rule.index + 1:]:
                problems.append(ConfigProblem(("rule", later.index), (
                    f"rule {later.name!r}: unreachable: rule {rule.name!r} before it has no "
                    "conditions and no continue = true, so it matches every fax first")))
            break

    default = _default(options.get("default"), base, context(DEFAULT_NAME), destinations,
                       templates, known_fields)
    ruleset = RuleSet(rules, default, country, tz, timeout_ms / 1000, templates,
                      any(c.uses_labels for c in contexts))
    return ruleset, problems


def _int_between(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _labels(table: dict[str, Any], path: KeyPath, ctx: Context) -> frozenset[str]:
    labels = table.get("labels", [])
    if isinstance(labels, str):
        labels = [labels]
    if not (isinstance(labels, list) and all(isinstance(x, str) and x for x in labels)):
        ctx.problem((*path, "labels"), "must be a list of label names")
        return frozenset()
    return frozenset(labels)


def _fields(table: dict[str, Any], path: KeyPath, ctx: Context) -> dict[str, FieldSpec]:
    raw = table.get("fields", {})
    if not isinstance(raw, dict):
        ctx.problem((*path, "fields"), "must be a table: field name = type")
        return {}
    out: dict[str, FieldSpec] = {}
    for name, value in raw.items():
        spec, error = parse_spec(name, value)
        if error:
            ctx.problem((*path, "fields", name), error)
        elif name not in ctx.groups:
            ctx.problem((*path, "fields", name), f"no regex of this rule has a group "
                        f"(?P<{name}>...) to fill it")
        elif spec is not None:
            out[name] = spec
    return out


def _routes(raw: Any, path: KeyPath, ctx: Context, destinations: Mapping[str, DestinationType],
            templates: Templates, known_fields: set[str]) -> list[RouteSpec]:
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        ctx.problem(path, "must be [[...route]] tables")
        return []
    routes: list[RouteSpec] = []
    for j, table in enumerate(raw):
        here = (*path, j)
        if not isinstance(table, dict):
            ctx.problem(here, "must be a table with type and options")
            continue
        kind = table.get("type")
        options = {k: v for k, v in table.items() if k != "type"}
        if not isinstance(kind, str) or not kind:
            ctx.problem((*here, "type"), "required: a destination type such as folder or email")
            continue
        dest = destinations.get(kind)
        if dest is None:
            known = ", ".join(sorted(destinations)) or "none: no destination plugin is loaded"
            ctx.problem((*here, "type"), f"unknown destination type {kind!r} (known: {known})")
        for message in cover.check(options):  # the core's own route options (drop_cover)
            ctx.problem((*here, cover.OPTION), message.removeprefix(f"{cover.OPTION}: "))
        if dest is not None and dest.check_options is not None:
            who = f"plugin {dest.plugin or '?'}"
            try:
                found = dest.check_options(cover.destination_options(options))
            except Exception as exc:  # the destination's bug, not the rule's: say whose
                ctx.problem(here, f"{kind}: the option check of {who} raised {exc!r}")
            else:
                for problem in as_problems(found, here, f"the option check of {who}"):
                    option = ".".join(str(k) for k in problem.path[len(here):])
                    ctx.problem(problem.path, f"{kind}: {option + ': ' if option else ''}"
                                f"{problem.message}", problem.warning)
        compiled = _compile_value(options, here, ctx, templates, known_fields)
        for name in sorted(dest.address_options if dest else ()):
            tainted = _sender_variables(compiled.get(name))
            if tainted:
                ctx.problem((*here, name), (
                    f"{kind}: filled from {', '.join(sorted(tainted))}, which the fax's sender "
                    "controls: a sender could choose where this fax goes (route by conditions "
                    "on those values instead)"), warning=True)
        routes.append(RouteSpec(j, kind, options, compiled))
    return routes


def _sender_variables(compiled: Any) -> set[str]:
    """Sender-controlled variables used by the templates of one compiled option value."""
    if isinstance(compiled, tuple):
        template = compiled[1]
        return set(template.variables & SENDER_CONTROLLED) if template is not None else set()
    values = compiled.values() if isinstance(compiled, dict) else \
        compiled if isinstance(compiled, list) else ()
    return {name for value in values for name in _sender_variables(value)}


def _compile_value(value: Any, path: KeyPath, ctx: Context, templates: Templates,
                   known_fields: set[str]) -> Any:
    if isinstance(value, str):
        try:
            return (value, templates.compile(value, known_fields))
        except TemplateError as exc:
            ctx.problem(path, str(exc))
            return (value, None)
    if isinstance(value, list):
        return [_compile_value(v, (*path, i), ctx, templates, known_fields)
                for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _compile_value(v, (*path, k), ctx, templates, known_fields)
                for k, v in value.items()}
    return value


def _default(raw: Any, base: KeyPath, ctx: Context, destinations: Mapping[str, DestinationType],
             templates: Templates, known_fields: set[str]) -> Rule:
    path = (*base, "default")
    rule = Rule(DEFAULT_NAME, -1, Always())

    def problem(where: KeyPath, message: str) -> None:
        ctx.problems.append(ConfigProblem(where, f"default route: {message}"))

    if not isinstance(raw, dict):
        problem(path, "required: [plugins.rules.default] with at least one "
                "[[plugins.rules.default.route]] (where faxes no rule routes go)")
        return rule
    for key in raw:
        if key not in ("labels", "route"):
            problem((*path, key), "unknown key; use labels and route")
    labels = raw.get("labels", [])
    if isinstance(labels, list) and all(isinstance(x, str) for x in labels):
        rule.labels = frozenset(labels)
    else:
        problem((*path, "labels"), "must be a list of label names")
    # Reuse the rule checks; their messages name the default route by its reserved name.
    rule.routes = _routes(raw.get("route", []), (*path, "route"), _DefaultContext(ctx),
                          destinations, templates, known_fields)
    if not rule.routes:
        problem((*path, "route"), "required: at least one [[plugins.rules.default.route]]")
    return rule


class _DefaultContext(Context):
    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx.rule, ctx.country, ctx.tz, ctx.fuzzy_threshold, ctx.problems)

    def problem(self, path: KeyPath, message: str, warning: bool = False) -> None:
        key = ".".join(str(p) for p in path[3:])
        self.problems.append(ConfigProblem(path, f"default route: {key}: {message}",
                                           warning=warning))


# --- Evaluating -------------------------------------------------------------------------------


def subject(ruleset: RuleSet, fax: Fax) -> Subject:
    job = fax.job
    received = subject_time(job.date_received)
    return Subject(
        receiver=phone.of(job.receiver_isdn, ruleset.country),
        sender=phone.of(job.sender_isdn, ruleset.country),
        csid=(job.sender_fax_id or "").strip(),
        cost_center=(job.cost_center or "").strip(),
        # The pages in the documents once text extraction found them; the sender's own count
        # (untrusted, may be anything) only when no text was extracted.
        page_count=fax.pages_total or job.fax_page_count or 0,
        resolution=job.fax_resolution or "",
        received=received,
        pages=[p.text for p in fax.pages],
        labels=set(fax.labels),
        regex_timeout=ruleset.regex_timeout,
        # Page numbers as positions in the fax (across documents), as for text conditions.
        barcodes=[replace(b, page=i) for i, p in enumerate(fax.pages, 1) for b in p.barcodes],
    )


def evaluate(ruleset: RuleSet, fax: Fax) -> Evaluation:
    """Run the rules in order; first match wins, unless it says continue (fan-out).

    Labels set by a matched rule are visible to the rules after it.
    """
    s = subject(ruleset, fax)
    results: list[RuleResult] = []
    labels: set[str] = set()
    fields: dict[str, Any] = {}
    routing: list[Rule] = []
    stopped = False
    for rule in ruleset.rules:
        if stopped:
            results.append(RuleResult(rule, None))
            continue
        try:
            result = RuleResult(rule, rule.condition.evaluate(s))
        except RegexTimeout as exc:
            result = RuleResult(rule, Check(rule.condition.what or "when", False,
                                            f"{exc}: the rule fails closed (does not match)"),
                                timed_out=True)
        results.append(result)
        if not result.matched:
            continue
        assert result.check is not None
        for name, raw in result.check.captured().items():
            spec = rule.fields.get(name, FieldSpec(name))
            try:
                result.fields[name] = spec.convert(raw)
            except ValueError as exc:
                result.field_errors.append(f"{name}: {exc}")
        fields.update(result.fields)
        labels |= rule.labels
        s.labels |= rule.labels
        if rule.routes:
            routing.append(rule)
        stopped = not rule.cont
    if not routing:
        routing = [ruleset.default]
        labels |= ruleset.default.labels
    variables = _variables(ruleset, fax, s, labels, fields)
    return Evaluation(results, labels, fields, routing, variables)


def _variables(ruleset: RuleSet, fax: Fax, s: Subject, labels: set[str],
               fields: dict[str, Any]) -> dict[str, Any]:
    received: datetime | None = s.received.astimezone(ruleset.tz) if s.received else None
    return {
        "fax_id": fax.id,
        "topic": fax.topic,
        "attempt": fax.attempt,
        "receiver": s.receiver or (fax.job.receiver_isdn.raw if fax.job.receiver_isdn else ""),
        "sender": s.sender or (fax.job.sender_isdn.raw if fax.job.sender_isdn else ""),
        "csid": s.csid,
        "cost_center": s.cost_center,
        "pages": s.page_count,
        "resolution": s.resolution,
        "received": received,
        "labels": sorted(set(fax.labels) | labels),
        "fields": {**fax.fields, **fields},
        "barcodes": [{"value": b.value, "format": b.format, "page": b.page}
                     for b in s.barcodes],
    }


def render(ruleset: RuleSet, evaluation: Evaluation) -> list[Rendered]:
    """Every route of the routing rules with its options filled in (or why it could not be)."""
    out: list[Rendered] = []
    for rule in evaluation.routing:
        context = {**evaluation.variables, "rule": rule.name}
        for spec in rule.routes:
            key = f"{rule.name}/{spec.index}"
            try:
                options = _render_value(spec.compiled, ruleset.templates, context)
                out.append(Rendered(rule.name, key, spec.type,
                                    Route(key, spec.type, options, rule.name)))
            except _OptionError as exc:
                out.append(Rendered(rule.name, key, spec.type, None,
                                    f"rule {rule.name!r}: route {spec.index} option "
                                    f"{exc.option!r}: {exc.message}"))
    return out


class _OptionError(Exception):
    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option, self.message = option, message


def _render_value(value: Any, templates: Templates, context: Mapping[str, Any],
                  name: str = "") -> Any:
    if isinstance(value, tuple):
        source, template = value
        if template is None:
            return source
        try:
            return templates.render(template, context)
        except TemplateError as exc:
            raise _OptionError(name, str(exc)) from None
        except jinja2.TemplateError as exc:  # pragma: no cover - render() converts these
            raise _OptionError(name, exc.message or "template error") from None
    if isinstance(value, list):
        return [_render_value(v, templates, context, f"{name}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _render_value(v, templates, context, f"{name}.{k}" if name else k)
                for k, v in value.items()}
    return value
