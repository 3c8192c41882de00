"""Routing reuses the classification's evaluation: each rule (and its regexes, with their time
limits) runs once per fax, unless a rule has a label condition that other plugins' labels may
change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faxflow_folder
import faxflow_rules
import pytest
from faxflow_rules import ruleset

from faxflow.types import PageText

CONFIG = """
[plugins.folder]
base = "{out}"
[plugins.rules.default]
[[plugins.rules.default.route]]
type = "folder"
[[rule]]
name = "invoices"
when.text = {{ regex = 'INV-\\d+' }}
[[rule.route]]
type = "folder"
path = "invoices"
"""


@pytest.mark.parametrize(("label_rule", "evaluations"), [(False, 1), (True, 2)])
def test_rules_evaluated_once_per_fax(faxflow_app_factory: Any, sample_fax: Any,
                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      label_rule: bool, evaluations: int) -> None:
    config = CONFIG.format(out=tmp_path)
    if label_rule:
        config += '[[rule]]\nname = "urgent"\nwhen.labels = ["urgent"]\n' \
                  '[[rule.route]]\ntype = "folder"\npath = "urgent"\n'
    app = faxflow_app_factory(plugins={"rules": faxflow_rules, "folder": faxflow_folder},
                              config=config)
    calls = []
    real = ruleset.evaluate
    monkeypatch.setattr(ruleset, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    fax = sample_fax()
    fax.pages = [PageText(1, "Invoice INV-2026 enclosed")]
    from faxflow import protocol
    protocol.classify(fax, app)
    protocol.route(fax, app)
    assert [r.key for r in fax.routes] == ["invoices/0"]
    assert len(calls) == evaluations
