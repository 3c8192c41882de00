"""Route option templates: Jinja2 in its sandbox, bounded in size and time.

Templates see only plain data about one fax (see `VARIABLES`). The sandbox blocks Python
internals (``''.__class__``); on top of it we allow only a short list of filters and methods,
refuse loops, macros and ``set`` at load time (a loop over ``range`` is time without output),
check every operation that can grow a value before it runs, and cap the rendered size.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

MAX_SOURCE = 4096  # characters of one template
DEFAULT_MAX_OUTPUT = 16384  # characters of one rendered option

# Names a template may use; `fields.<name>` is checked against the fields rules extract.
VARIABLES = {
    "fax_id": "the Retarus job id",
    "topic": "the topic the fax came from",
    "attempt": "attempt number, 1 on the first",
    "receiver": "receiver number, E.164 when known",
    "sender": "sender number, E.164 when known (may be empty)",
    "csid": "sender fax id (CSID): untrusted free text, may be empty",
    "cost_center": "cost center (may be empty)",
    "pages": "pages in the documents (the sender's count if no text was extracted)",
    "resolution": "fax resolution as sent (may be empty)",
    "received": "time received, a datetime in the configured time zone",
    "labels": "sorted list of all labels",
    "fields": "extracted fields by name",
    "barcodes": "barcodes on the fax: list of {value, format, page}; values untrusted",
    "rule": "name of the rule whose route this is",
}

# Variables whose values the fax's sender writes, directly or through the page's text.
SENDER_CONTROLLED = frozenset({"csid", "sender", "cost_center", "fields", "barcodes"})

# Methods that never grow their value beyond the input size.
SAFE_METHODS = frozenset({
    "lower", "upper", "strip", "lstrip", "rstrip", "title", "capitalize", "startswith",
    "endswith", "split", "strftime", "isoformat", "get", "keys", "values", "items",
})
FORBIDDEN_NODES: dict[type[nodes.Node], str] = {
    nodes.For: "loops ({% for %})",
    nodes.Macro: "macros",
    nodes.CallBlock: "call blocks",
    nodes.Assign: "{% set %}",
    nodes.AssignBlock: "{% set %}",
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% import %}",
    nodes.Extends: "{% extends %}",
    nodes.Block: "{% block %}",
}


class TemplateError(ValueError):
    """A template that cannot be used or rendered; the message says why, without traceback."""


def _filename(value: Any) -> str:
    """Untrusted text made safe as one path segment (a CSID like ``../../etc``)."""
    text = re.sub(r"[^\w.\-]+", "_", str(value)).strip("._")
    return text[:100] or "_"


class _Env(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+"})

    def __init__(self, max_output: int) -> None:
        super().__init__(undefined=jinja2.StrictUndefined, autoescape=False,
                         keep_trailing_newline=False)
        self.max_output = max_output
        self.globals.clear()  # no range(), lipsum(), cycler(), namespace()
        builtin = self.filters
        allowed = ("default", "d", "lower", "upper", "title", "capitalize", "trim",
                   "truncate", "first", "last", "length", "count", "int", "float", "round",
                   "string", "join", "replace")
        self.filters = {name: self._bounded(builtin[name]) for name in allowed}
        self.filters["filename"] = self._bounded(_filename)
        self.filters["date"] = self._bounded(lambda value, fmt="%Y-%m-%d": value.strftime(fmt))
        self.filters["replace"] = self._bounded(self._replace)
        self.filters["join"] = self._bounded(self._join)
        self.tests = {name: self.tests[name] for name in
                      ("defined", "undefined", "none", "number", "string", "in", "eq", "ne")}

    def _check_size(self, value: Any) -> Any:
        if isinstance(value, str | list | tuple) and len(value) > self.max_output:
            raise SecurityError(f"value longer than {self.max_output} characters")
        return value

    def _bounded(self, func: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return self._check_size(func(*args, **kwargs))
        return call

    def _replace(self, value: Any, old: str, new: str, count: int = -1) -> str:
        text = str(value)
        hits = text.count(str(old)) if old else len(text) + 1
        if len(text) + hits * len(str(new)) > self.max_output:
            raise SecurityError(f"replace would exceed {self.max_output} characters")
        return text.replace(str(old), str(new), count)

    def _join(self, value: Iterable[Any], sep: str = "") -> str:
        items = [str(v) for v in value]
        if sum(map(len, items)) + len(sep) * len(items) > self.max_output:
            raise SecurityError(f"join would exceed {self.max_output} characters")
        return sep.join(items)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int) \
                        and len(seq) * n > self.max_output:
                    raise SecurityError(f"value longer than {self.max_output} characters")
        if operator == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise SecurityError("exponent too large")
        return self._check_size(super().call_binop(context, operator, left, right))

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        return not callable(value) or attr in SAFE_METHODS

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        return __self._check_size(super().call(__context, __obj, *args, **kwargs))


class Template:
    """A checked template; compiled to Python on first render (compiling is ~7x the cost of
    parsing and checking, and a large rule set has many templates that rarely render)."""

    def __init__(self, tree: nodes.Template) -> None:
        self._tree = tree
        self._compiled: jinja2.Template | None = None
        self.variables = frozenset(n.name for n in tree.find_all(nodes.Name) if n.ctx == "load")

    def compiled(self, env: SandboxedEnvironment) -> jinja2.Template:
        if self._compiled is None:  # two threads may both compile: harmless, same result
            try:
                self._compiled = env.from_string(self._tree)
            except jinja2.TemplateError as exc:
                raise TemplateError(f"template error: {exc.message}") from None
        return self._compiled


class Templates:
    """Checks and renders the templates of one rule set (one sandbox for all of them)."""

    def __init__(self, max_output: int = DEFAULT_MAX_OUTPUT) -> None:
        self.env = _Env(max_output)
        self.max_output = max_output
        self._cache: dict[str, tuple[list[str], set[str], Template | None]] = {}

    def compile(self, source: str, known_fields: set[str]) -> Template | None:
        """A checked template, or None for plain text; raises TemplateError if unusable."""
        if "{{" not in source and "{%" not in source and "{#" not in source:
            return None
        if source not in self._cache:  # rule sets repeat templates
            self._cache[source] = self._check(source)
        problems, fields, template = self._cache[source]
        problems = problems + [
            f"unknown field {name!r} (no rule extracts it; list fields of other plugins in "
            "[plugins.rules] external_fields)" for name in sorted(fields - known_fields)]
        if problems or template is None:
            raise TemplateError("; ".join(problems))
        return template

    def _check(self, source: str) -> tuple[list[str], set[str], Template | None]:
        if len(source) > MAX_SOURCE:
            return [f"template longer than {MAX_SOURCE} characters"], set(), None
        try:
            tree = self.env.parse(source)
        except jinja2.TemplateSyntaxError as exc:
            return [f"template syntax error: {exc.message}"], set(), None
        problems = list(_check_tree(tree))
        problems += [f"no filter named {f.name!r} (allowed: {', '.join(sorted(self.env.filters))})"
                     for f in tree.find_all(nodes.Filter) if f.name not in self.env.filters]
        problems += [f"no test named {t.name!r} (allowed: {', '.join(sorted(self.env.tests))})"
                     for t in tree.find_all(nodes.Test) if t.name not in self.env.tests]
        fields = {node.attr for node in tree.find_all(nodes.Getattr)
                  if isinstance(node.node, nodes.Name) and node.node.name == "fields"
                  and node.attr not in SAFE_METHODS}
        return problems, fields, None if problems else Template(tree)

    def render(self, template: Template, context: Mapping[str, Any]) -> str:
        compiled = template.compiled(self.env)
        out: list[str] = []
        size = 0
        try:
            for chunk in compiled.generate(context):
                size += len(chunk)
                if size > self.max_output:
                    raise TemplateError(f"rendered text longer than {self.max_output} characters")
                out.append(chunk)
        except SecurityError as exc:
            raise TemplateError(f"refused by the sandbox: {exc}") from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"undefined: {exc.message}") from None
        except (jinja2.TemplateError, ArithmeticError, TypeError, ValueError,
                AttributeError) as exc:
            if isinstance(exc, TemplateError):
                raise
            raise TemplateError(f"cannot render: {exc}") from None
        return "".join(out)


def _check_tree(tree: nodes.Template) -> Iterable[str]:
    for node_type, what in FORBIDDEN_NODES.items():
        if tree.find(node_type) is not None:
            yield f"{what} not allowed in route templates"
    for name in sorted({n.name for n in tree.find_all(nodes.Name) if n.ctx == "load"}):
        if name not in VARIABLES:
            yield f"unknown variable {name!r} (known: {', '.join(sorted(VARIABLES))})"
    for node in tree.find_all(nodes.Getattr):
        if node.attr.startswith("_"):
            yield f"attribute {node.attr!r} not allowed"
    for item in tree.find_all(nodes.Getitem):
        if isinstance(item.arg, nodes.Const) and isinstance(item.arg.value, str) \
                and item.arg.value.startswith("_"):
            yield f"item {item.arg.value!r} not allowed"
