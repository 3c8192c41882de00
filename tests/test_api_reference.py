"""Meta-tests for docs/api.md (as tests/test_hooks_documented.py does for the hooks): it is
generated from the source as it stands, and every public name and member is documented.

A module's public API is its ``__all__``; every other top-level name a module defines must be
listed in INTERNAL below, so a new name is a decision (document it or call it internal), never
an accident.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from faxflow import apiref

ROOT = Path(__file__).parent.parent
DOC = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
REGENERATE = "docs/api.md is out of date: run `python -m faxflow.apiref > docs/api.md`"

# Names these modules define that plugins should not use (the core's, or the Retarus
# client's); anything else a module defines without a leading underscore must be in __all__.
INTERNAL = {
    "faxflow.types": {"Batch", "BatchMeta", "MAX_BARCODE_VALUE"},
    "faxflow.app": {"log"},
    "faxflow.config": {
        "REGIONS", "SECRET_WORDS", "is_secret_key", "format_path", "errors", "by_line",
        "RetarusSettings", "WorkerSettings", "JournalSettings", "HealthSettings",
        "CORE_SECTIONS", "locate", "build_section", "parse", "check_sections", "with_lines",
        "read", "redact", "reference_markdown",
    },
    "faxflow.delivery": {"log", "T", "TRANSIENT_STATUS", "fsync_dir", "sha256_file"},
    "faxflow.errors": set(),
    "faxflow.stash": {"T", "D"},
}

PUBLIC = [(m, n) for m in apiref.MODULES for n in importlib.import_module(m).__all__]
CLASSES = [(m, n) for m, n in PUBLIC if inspect.isclass(getattr(importlib.import_module(m), n))]
SHOWN = [(m, q) for _, names in apiref.entries() for m, q in names]


def test_docs_api_md_is_generated_from_the_source() -> None:
    assert apiref.reference_markdown() == DOC, REGENERATE


def test_internal_lists_cover_exactly_the_documented_modules() -> None:
    assert set(INTERNAL) == set(apiref.MODULES)


@pytest.mark.parametrize("module", apiref.MODULES)
def test_every_public_name_is_in_all_or_declared_internal(module: str) -> None:
    defined = {n for n in apiref.defined_names(module) if not n.startswith("_")}
    public = set(importlib.import_module(module).__all__)
    undecided = defined - public - INTERNAL[module]
    assert not undecided, (f"{module} defines {sorted(undecided)}: add them to its __all__ "
                           "(and document them) or to INTERNAL in this test")
    assert not public & INTERNAL[module], "a name cannot be public and internal"
    assert not INTERNAL[module] - defined, f"INTERNAL names no longer in {module}"


@pytest.mark.parametrize(("module", "name"), PUBLIC)
def test_public_name_is_documented(module: str, name: str) -> None:
    mod = importlib.import_module(module)
    assert hasattr(mod, name), f"{module}.__all__ names {name}, which does not exist"
    assert _source_docstring(module, name), f"{module}.{name} has no docstring"
    assert f"\n### {module}.{name}\n" in DOC, (
        f"{module}.{name} is not in docs/api.md: place it in faxflow/apiref.py GROUPS, then "
        "run `python -m faxflow.apiref > docs/api.md`")


@pytest.mark.parametrize(("module", "name"), CLASSES)
def test_public_members_are_documented(module: str, name: str) -> None:
    cls = getattr(importlib.import_module(module), name)
    members = _public_members(cls)
    for member, doc in members.items():
        assert doc and doc.strip(), f"{module}.{name}.{member} has no docstring"
        assert f"\n#### {name}.{member}\n" in DOC, f"{name}.{member} is not in docs/api.md"


@pytest.mark.parametrize(("module", "qualname"), SHOWN)
def test_every_shown_entry_is_documented(module: str, qualname: str) -> None:
    """Also the entries outside an __all__ (``Metrics.counter``)."""
    assert apiref.docstring(module, qualname), f"{module}.{qualname} has no docstring"


def test_nothing_is_shown_twice() -> None:
    assert len(SHOWN) == len(set(SHOWN))


def test_dataclass_generated_docstrings_do_not_count(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A dataclass without a docstring gets ``__doc__ = "Name(field: type, ...)"``: the checks
    read docstrings from the source instead, so that never passes for documentation."""
    (tmp_path / "apiref_probe.py").write_text(
        "from dataclasses import dataclass\n\n\n@dataclass\nclass Bare:\n    x: int\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    bare = importlib.import_module("apiref_probe").Bare
    assert bare.__doc__
    assert apiref.docstring("apiref_probe", "Bare") is None
    assert _source_docstring("apiref_probe", "Bare") is None


def _source_docstring(module: str, name: str) -> str | None:
    """A top-level name's docstring as written: a class's or function's own, or for an
    assignment the string literal right after it (an attribute docstring)."""
    body = ast.parse(inspect.getsource(importlib.import_module(module))).body
    for node, after in zip(body, [*body[1:], None], strict=True):
        if isinstance(node, ast.ClassDef | ast.FunctionDef) and node.name == name:
            return ast.get_docstring(node)
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
                return str(after.value.value)
            return None
    raise AssertionError(f"{module}.{name} is not defined at the top of its module")


def _public_members(cls: type) -> dict[str, str | None]:
    """The class's own public methods, properties, classmethods and staticmethods with their
    docstrings (found by `vars`, independently of the generator)."""
    out: dict[str, str | None] = {}
    for member, value in vars(cls).items():
        if member.startswith("_"):
            continue
        if isinstance(value, property):
            out[member] = value.__doc__
        elif isinstance(value, classmethod | staticmethod):
            out[member] = value.__func__.__doc__
        elif inspect.isfunction(value):
            out[member] = value.__doc__
    return out
