"""Meta-tests (the datasette way): every hook is documented with its exact signature in
docs/plugin_hooks.md, and every hook is implemented by some plugin in the test suite."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import faxflow.hookspecs as hookspecs

ROOT = Path(__file__).parent.parent
HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("faxflow_"))
DOC = (ROOT / "docs" / "plugin_hooks.md").read_text()
TESTS = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("*.py")
                  if p.name != Path(__file__).name)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_with_its_signature(hook: str) -> None:
    params = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert f"\n## {hook}({params})\n" in DOC


def test_no_documented_hook_is_missing_from_the_specs() -> None:
    documented = set(re.findall(r"^## (faxflow_\w+)\(", DOC, re.M))
    assert documented == set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_implemented_by_a_test_plugin(hook: str) -> None:
    assert re.search(rf"def {hook}\(", TESTS), f"no test implements {hook}"
