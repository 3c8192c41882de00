"""The plugin manager: entry points, allowlist, disable, plugins dir, import failures,
misspelt hooks, tracing, and `faxflow plugins`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from faxflow.app import load_app
from faxflow.errors import ConfigError
from faxflow.plugins import hooks_of, make_manager

BUILTINS = {"ocr", "rules", "folder", "email", "jira", "zendesk", "redmine", "webhook"}


def test_builtins_load_through_entry_points() -> None:
    pm, report = make_manager(load=None)
    assert set(report.plugins) >= BUILTINS
    assert all(report.plugins[n].source == "entry point" for n in BUILTINS)
    assert report.plugins["core"].source == "core"
    assert "faxflow_process_fax" in hooks_of(pm, "core")


def test_allowlist_and_disable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAXFLOW_LOAD_PLUGINS", "folder,email")
    _, report = make_manager(disable=["email"])
    assert set(report.plugins) == {"core", "folder"}


def test_plugins_dir_and_failures(tmp_path: Path) -> None:
    (tmp_path / "hello.py").write_text(
        "from faxflow.hookspecs import hookimpl\n"
        "@hookimpl\ndef faxflow_fax_received(fax):\n    pass\n")
    (tmp_path / "broken.py").write_text("import does_not_exist\n")
    (tmp_path / "typo.py").write_text(
        "from faxflow.hookspecs import hookimpl\n"
        "@hookimpl\ndef faxflow_fax_recieved(fax):\n    pass\n")
    pm, report = make_manager(load=[], plugins_dir=tmp_path)
    assert hooks_of(pm, "hello") == ["faxflow_fax_received"]
    assert "No module named 'does_not_exist'" in (report.failed["broken"])
    assert "faxflow_fax_recieved" in report.failed["typo"]  # check_pending caught it
    assert pm.get_plugin("typo") is None


def test_failed_plugin_blocks_start_only_when_configured(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "broken.py").write_text("raise RuntimeError('boom')\n")
    config = tmp_path / "f.toml"
    config.write_text("[worker]\nconcurrency = 1\n")
    app = load_app(config, load=[], plugins_dir=plugins)  # not used: a warning only
    assert "broken" in app.report.failed
    config.write_text("[plugins.broken]\nx = 1\n")
    with pytest.raises(ConfigError, match=r"plugins.broken: plugin broken is configured but "
                                          r"failed to load: RuntimeError: boom"):
        load_app(config, load=[], plugins_dir=plugins)


def test_tracing_prints_hook_calls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pm, _ = make_manager(load=[], trace=True)
    pm.hook.faxflow_config_sections()
    assert "[trace] faxflow_config_sections" in capsys.readouterr().err


def test_plugins_command_lists_versions_and_hooks(tmp_path: Path) -> None:
    (tmp_path / "hello.py").write_text(
        "from faxflow.hookspecs import hookimpl\n"
        "@hookimpl\ndef faxflow_fax_received(fax):\n    pass\n")
    env = {**os.environ, "FAXFLOW_LOAD_PLUGINS": "folder"}
    out = subprocess.run([sys.executable, "-m", "faxflow", "plugins", "--plugins-dir",
                          str(tmp_path), "--json"], capture_output=True, text=True, env=env,
                         check=True).stdout
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == {"core", "folder", "hello"}
    assert rows["folder"]["distribution"] == "faxflow" and rows["folder"]["version"]
    assert "faxflow_deliver" in rows["folder"]["hooks"]
    assert rows["hello"]["hooks"] == ["faxflow_fax_received"]


def test_plugin_commands_are_registered(tmp_path: Path) -> None:
    (tmp_path / "hello.py").write_text(
        "import click\nfrom faxflow.hookspecs import hookimpl\n"
        "@hookimpl\ndef faxflow_register_commands(cli):\n"
        "    @cli.command()\n    def hello():\n        click.echo('hello from a plugin')\n")
    env = {**os.environ, "FAXFLOW_LOAD_PLUGINS": "", "FAXFLOW_PLUGINS_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "faxflow", "hello"], capture_output=True,
                         text=True, env=env)
    assert out.stdout.strip() == "hello from a plugin", out.stderr
