"""The example third-party plugin in examples/faxflow-urgent, installed from its folder
(./dev test does it), is found through its entry point like any plugin and its hooks run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from faxflow.app import load_app
from faxflow.testing import SIM_TOPIC  # noqa: F401  (the fixtures module imports cleanly)
from faxflow.types import PageText


def test_installed_example_plugin_is_discovered_and_labels(tmp_path: Path) -> None:
    config = tmp_path / "f.toml"
    config.write_text('[plugins.urgent]\nwords = ["dringend"]\n')
    app = load_app(config, load=["urgent"])
    info = app.report.plugins["urgent"]
    assert (info.source, info.distribution, info.version) == ("entry point", "faxflow-urgent",
                                                               "1.0.0")
    from faxflow.types import Fax, Job
    fax = Fax(job=Job(id="1"), topic="t", pages=[PageText(1, "Bitte DRINGEND bearbeiten")])
    [result] = app.classify(fax)
    assert result.labels == {"urgent"}


def test_example_plugin_command_and_config_check(tmp_path: Path) -> None:
    config = tmp_path / "f.toml"
    config.write_text("[plugins.urgent]\nwords = [1]\n")
    env = {**os.environ, "FAXFLOW_LOAD_PLUGINS": "urgent"}
    bad = subprocess.run([sys.executable, "-m", "faxflow", "check", "-c", str(config)],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 2
    assert f"{config}:2: plugins.urgent.words: must be a list of non-empty strings" in bad.stderr
    out = subprocess.run([sys.executable, "-m", "faxflow", "urgent-words"],
                         capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "urgent, dringend, asap"
