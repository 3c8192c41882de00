"""The core imports nothing from plugins/: built-in plugins are plain plugins, found
through the entry-point group like a third-party one, and the core works without any."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_core_imports_no_plugin() -> None:
    plugins = {p.name for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").exists()}
    assert "faxflow_console" in plugins and "faxflow_ocr" in plugins  # the walk sees them
    offenders = {f"{path.relative_to(ROOT)}: {name}"
                 for path in (ROOT / "faxflow").rglob("*.py")
                 for name in imported(path) & plugins}
    assert not offenders, sorted(offenders)
