"""The API reference for plugin authors (docs/api.md), generated from the source.

``python -m faxflow.apiref > docs/api.md`` writes it; tests/test_api_reference.py keeps it in
step and checks that every public name (a module's ``__all__``) is documented. Signatures come
from `inspect.signature` with annotations and defaults as written in the source (the modules
use ``from __future__ import annotations``, so annotations are never evaluated); dataclass
fields, enum members and constants are shown as written, with their comments; docstrings are
read from the source, so a dataclass's generated ``__doc__`` never passes for documentation.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import io
import re
import textwrap
import tokenize
from dataclasses import dataclass, is_dataclass
from typing import Any


@dataclass(frozen=True)
class Group:
    """One section of the page: `names` are ``"module:Name"``, ``"module:Class.member"`` (that
    member alone) or ``"module:*"`` (the rest of the module's ``__all__``, in source order)."""

    title: str
    intro: str
    names: tuple[str, ...]
    module_doc: str | None = None  # a module whose docstring follows the intro


GROUPS = (
    Group("What a fax is", "The event every hook receives and what it carries.", (
        "faxflow.types:Fax", "faxflow.types:Job", "faxflow.types:Number",
        "faxflow.types:DocumentRef", "faxflow.types:Document", "faxflow.types:PageText",
        "faxflow.types:Barcode", "faxflow.types:Part", "faxflow.types:Classification",
        "faxflow.types:Route"), module_doc="faxflow.types"),
    Group("Results", "What hooks return and what the core decides from it.", (
        "faxflow.types:DeliveryResult", "faxflow.types:Outcome", "faxflow.types:Vote",
        "faxflow.types:Verdict", "faxflow.types:Decision", "faxflow.types:Problem")),
    Group("The app", "What every hook's ``app`` argument holds, its configuration and the "
          "destination types plugins declare.", (
              "faxflow.app:App", "faxflow.metrics:Metrics.counter",
              "faxflow.metrics:Metrics.total", "faxflow.app:load_app", "faxflow.config:Config",
              "faxflow.config:ConfigProblem", "faxflow.config:KeyPath",
              "faxflow.config:as_problems", "faxflow.types:DestinationType",
              "faxflow.types:Notice", "faxflow.types:Target")),
    Group("Per-app state", "``from faxflow.stash import StashKey``: plugin state kept in the "
          "app (``app.stash``), never in module globals.", ("faxflow.stash:*",),
          module_doc="faxflow.stash"),
    Group("Delivery helpers", "``from faxflow import delivery``", ("faxflow.delivery:*",),
          module_doc="faxflow.delivery"),
    Group("Errors", "``from faxflow.errors import PermanentError``", ("faxflow.errors:*",),
          module_doc="faxflow.errors"),
)

# The modules whose ``__all__`` is the public API this page documents.
MODULES = ("faxflow.types", "faxflow.app", "faxflow.config", "faxflow.delivery",
           "faxflow.errors", "faxflow.stash")

MAX_LINE = 88  # longer signatures are written one parameter per line


@dataclass(frozen=True)
class _Source:
    module: Any
    text: str
    tree: ast.Module
    comments: dict[int, str]  # line number -> comment text


@functools.cache
def _source(module_name: str) -> _Source:
    module = importlib.import_module(module_name)
    text = inspect.getsource(module)
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    comments = {t.start[0]: t.string for t in tokens if t.type == tokenize.COMMENT}
    return _Source(module, text, ast.parse(text), comments)


def _segment(src: _Source, node: ast.AST) -> str:
    return ast.get_source_segment(src.text, node) or ast.unparse(node)


def _definition(src: _Source, name: str) -> tuple[ast.stmt, str | None]:
    """The top-level statement defining `name` and its docstring (for an assignment: the
    string right after it, as PEP 257 and Sphinx read attribute docstrings)."""
    body = src.tree.body
    for i, node in enumerate(body):
        if isinstance(node, ast.ClassDef | ast.FunctionDef) and node.name == name:
            return node, ast.get_docstring(node)
        if name in _targets(node):
            after = body[i + 1] if i + 1 < len(body) else None
            doc = None
            if (isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                doc = inspect.cleandoc(after.value.value)
            return node, doc
    raise LookupError(f"{src.module.__name__}.{name} is not defined in its module")


def _targets(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    return []


def defined_names(module_name: str) -> list[str]:
    """Every name a module defines at top level (classes, functions, assignments), not the
    names it imports."""
    names: list[str] = []
    for node in _source(module_name).tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef):
            names.append(node.name)
        names += _targets(node)
    return names


def docstring(module_name: str, qualname: str) -> str | None:
    """The docstring of a module-level name or a class member, as written in the source."""
    src = _source(module_name)
    name, _, member = qualname.partition(".")
    node, doc = _definition(src, name)
    if not member:
        return doc
    assert isinstance(node, ast.ClassDef)
    return ast.get_docstring(_member_node(node, member))


def _member_node(node: ast.ClassDef, name: str) -> ast.FunctionDef:
    for item in node.body:
        if isinstance(item, ast.FunctionDef) and item.name == name:
            return item
    raise LookupError(f"{node.name}.{name} is not defined in its class")


# --- Rendering --------------------------------------------------------------------------------


class _AsWritten:
    """Shows source text where `inspect` would show a repr (annotations, defaults)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _signature(src: _Source, func: Any, node: ast.FunctionDef, prefix: str = "def ") -> str:
    """``def name(params) -> return``, parameters from `inspect.signature`, annotations and
    defaults as written (no reprs, so no memory addresses)."""
    sig = inspect.signature(func)
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    pairs = [*zip(positional[len(positional) - len(args.defaults):], args.defaults, strict=True),
             *((a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d)]
    defaults = {a.arg: _AsWritten(_segment(src, d)) for a, d in pairs}
    params = list(sig.parameters.values())
    parts: list[str] = []
    star = False
    for i, p in enumerate(params):
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
        star = star or p.kind in (p.VAR_POSITIONAL, p.KEYWORD_ONLY)
        p = p.replace(annotation=_annotation(p.annotation),
                      default=defaults.get(p.name, p.default))
        parts.append(str(p))
        if p.kind is p.POSITIONAL_ONLY and (i + 1 == len(params)
                                            or params[i + 1].kind is not p.POSITIONAL_ONLY):
            parts.append("/")
    returns = sig.return_annotation
    tail = "" if returns is sig.empty else f" -> {_annotation(returns)!r}"
    line = f"{prefix}{node.name}({', '.join(parts)}){tail}"
    if len(line) <= MAX_LINE:
        return line
    return f"{prefix}{node.name}(\n" + "".join(f"    {p},\n" for p in parts) + f"){tail}"


def _annotation(value: Any) -> Any:
    if value is inspect.Parameter.empty:
        return value
    return _AsWritten(value if isinstance(value, str) else inspect.formatannotation(value))


def _default(src: _Source, value: ast.expr) -> str | None:
    """A dataclass field's default as a reader wants it: ``field(default_factory=dict)``
    becomes ``{}``, a factory ``Metrics`` becomes ``Metrics()``."""
    if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
            and value.func.id == "field"):
        return _segment(src, value)
    keywords = {k.arg: k.value for k in value.keywords}
    if "default" in keywords:
        return _segment(src, keywords["default"])
    factory = keywords.get("default_factory")
    if isinstance(factory, ast.Lambda):
        return _segment(src, factory.body)
    if isinstance(factory, ast.Name):
        return {"dict": "{}", "list": "[]"}.get(factory.id, f"{factory.id}()")
    return None


def _comment_lines(src: _Source, node: ast.stmt, indent: str) -> list[str]:
    """The comment lines right above a statement (not separated by a blank line)."""
    lines = src.text.splitlines()
    above: list[str] = []
    number = node.lineno - 1
    while number in src.comments and lines[number - 1].lstrip().startswith("#"):
        above.insert(0, indent + src.comments[number])
        number -= 1
    return above


def _trailing(src: _Source, node: ast.stmt) -> str:
    assert node.end_lineno is not None
    comment = src.comments.get(node.end_lineno)
    line = src.text.splitlines()[node.end_lineno - 1]
    return f"  {comment}" if comment and not line.lstrip().startswith("#") else ""


def _class_stub(src: _Source, cls: type, node: ast.ClassDef) -> str:
    """The class as a stub: decorator, bases, fields or members with defaults and comments,
    ``__init__`` when the class writes its own."""
    lines: list[str] = []
    if is_dataclass(cls):
        frozen = getattr(cls, "__dataclass_params__").frozen  # noqa: B009 (not typed)
        lines.append("@dataclass(frozen=True)" if frozen else "@dataclass")
    bases = ", ".join(_segment(src, b) for b in node.bases)
    head = f"class {node.name}({bases}):" if bases else f"class {node.name}:"
    body: list[str] = []
    for item in node.body:
        names = _targets(item)
        if names and not names[0].startswith("_"):
            assert isinstance(item, ast.AnnAssign | ast.Assign)
            text = names[0]
            if isinstance(item, ast.AnnAssign):
                text += f": {_segment(src, item.annotation)}"
            value = _default(src, item.value) if item.value is not None else None
            if value is not None:
                text += f" = {value}"
            body += [*_comment_lines(src, item, "    "), f"    {text}{_trailing(src, item)}"]
        elif (isinstance(item, ast.FunctionDef) and item.name == "__init__"
              and not is_dataclass(cls)):
            body.append(_indent(_signature(src, cls.__dict__["__init__"], item)))
    if not body:
        return "\n".join([*lines, f"{head} ..."])
    return "\n".join([*lines, head, *body])


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())


def _member(src: _Source, cls: type, node: ast.FunctionDef) -> tuple[str, str]:
    """A method, property, classmethod or staticmethod: its stub and its docstring."""
    raw = inspect.getattr_static(cls, node.name)
    decorators = [_segment(src, d) for d in node.decorator_list]
    func = raw.fget if isinstance(raw, property) else getattr(raw, "__func__", raw)
    stub = "\n".join([*(f"@{d}" for d in decorators), _signature(src, func, node)])
    return stub, ast.get_docstring(node) or ""


def _public_members(node: ast.ClassDef) -> list[ast.FunctionDef]:
    """A class's public methods and properties, in source order (a setter counts once)."""
    seen: dict[str, ast.FunctionDef] = {}
    for item in node.body:
        if isinstance(item, ast.FunctionDef) and not item.name.startswith("_"):
            seen.setdefault(item.name, item)
    return list(seen.values())


def _markdown(doc: str) -> str:
    """A docstring as Markdown: reST's ``text::`` and the indented block after it become
    ``text:`` and a Python code block."""
    def fence(match: re.Match[str]) -> str:
        code = textwrap.dedent(match.group(1)).strip("\n")
        return f":\n\n```python\n{code}\n```\n\n"

    return re.sub(r"::\n\n((?:(?: {4}.*)?\n)+)", fence, doc + "\n").strip("\n")


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def entries() -> list[tuple[Group, list[tuple[str, str]]]]:
    """Each group with its (module, qualname) entries, ``*`` expanded."""
    placed = {tuple(n.split(":", 1)) for g in GROUPS for n in g.names if not n.endswith(":*")}
    out: list[tuple[Group, list[tuple[str, str]]]] = []
    for group in GROUPS:
        names: list[tuple[str, str]] = []
        for spec in group.names:
            module_name, qualname = spec.split(":", 1)
            if qualname == "*":
                public = set(_source(module_name).module.__all__)  # in source order:
                names += [(module_name, n) for n in defined_names(module_name)
                          if n in public and (module_name, n) not in placed]
            else:
                names.append((module_name, qualname))
        out.append((group, names))
    return out


def _entry(module_name: str, qualname: str) -> list[str]:
    src = _source(module_name)
    name, _, member = qualname.partition(".")
    node, doc = _definition(src, name)
    obj = getattr(src.module, name)
    heading = f"### {module_name}.{qualname}"
    if member:
        assert isinstance(node, ast.ClassDef)
        stub, doc = _member(src, obj, _member_node(node, member))
        return _block(heading, stub, doc)
    if isinstance(node, ast.ClassDef):
        stub = _class_stub(src, obj, node)
    elif isinstance(node, ast.FunctionDef):
        stub = _signature(src, obj, node)
    else:
        stub = "\n".join([*_comment_lines(src, node, ""), _segment(src, node)])
    out = _block(heading, stub, doc)
    if isinstance(node, ast.ClassDef):
        for item in _public_members(node):
            out += _block(f"#### {name}.{item.name}", *_member(src, obj, item))
    return out


def _block(heading: str, stub: str, doc: str | None) -> list[str]:
    out = [heading, "", "```python", stub, "```", ""]
    return [*out, _markdown(doc), ""] if doc else out


def reference_markdown() -> str:
    """The whole page (docs/api.md)."""
    grouped = entries()
    lines = [
        "# API reference", "",
        "What plugins touch besides the hooks: the data a fax carries, the results hooks",
        "return, the app and its configuration, the delivery helpers and the errors. The hooks",
        "themselves are in [plugin_hooks.md](plugin_hooks.md), writing and testing a plugin in",
        "[plugins.md](plugins.md).", "",
        "Generated from the docstrings and type hints by `python -m faxflow.apiref >",
        "docs/api.md`; a test keeps it in step and fails for a public name (a module's",
        "`__all__`) without documentation. Annotations and defaults are shown as written in",
        "the source; a dataclass is shown with its fields (`frozen=True`: read-only).", "",
    ]
    for group, names in grouped:
        links = ", ".join(f"[`{q}`](#{_anchor(f'{m}.{q}')})" for m, q in names)
        lines.append(f"- [{group.title}](#{_anchor(group.title)}): {links}")
    lines.append("")
    for group, names in grouped:
        lines += [f"## {group.title}", "", group.intro, ""]
        if group.module_doc:
            lines += [_markdown(inspect.cleandoc(_source(group.module_doc).module.__doc__)), ""]
        for module_name, qualname in names:
            lines += _entry(module_name, qualname)
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
