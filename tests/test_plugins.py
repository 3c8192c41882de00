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

BUILTINS = {"ocr", "rules", "folder", "email", "jira", "zendesk", "redmine", "webhook",
            "classifier"}


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
    (tmp_path / "wrapped.py").write_text(
        "from faxflow.hookspecs import hookimpl\n"
        "@hookimpl(wrapper=True)\ndef faxflow_ack_vote(fax):\n    return (yield)\n")
    (tmp_path / "badarg.py").write_text(
        "from faxflow.hookspecs import hookimpl\n"
        "@hookimpl\ndef faxflow_deliver(fax, route, destination):\n    pass\n")
    pm, report = make_manager(load=[], plugins_dir=tmp_path)
    assert hooks_of(pm, "hello") == ["faxflow_fax_received"]
    assert "No module named 'does_not_exist'" in (report.failed["broken"])
    assert report.failed["typo"] == ("'faxflow_fax_recieved' is marked as a hook implementation "
                                     "but is not a faxflow hook; did you mean "
                                     "faxflow_fax_received?")
    assert "destination" in report.failed["badarg"] and "faxflow_deliver" in report.failed["badarg"]
    assert pm.get_plugin("typo") is None and pm.get_plugin("badarg") is None
    assert "'faxflow_ack_vote' is a wrapper" in report.failed["wrapped"]
    assert sorted(report.loaded) == ["core", "hello"]


def test_a_plugin_that_failed_to_load_blocks_start(tmp_path: Path) -> None:
    """A broken voter or classifier left out silently would change what is acknowledged and
    where faxes go: fix it, uninstall it or disable it by name."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "broken.py").write_text("raise RuntimeError('boom')\n")
    config = tmp_path / "f.toml"
    config.write_text("[worker]\nconcurrency = 1\n")
    with pytest.raises(ConfigError, match=r"plugin broken \(plugins dir .*\) failed to load: "
                                          r"RuntimeError: boom; fix or uninstall it, or add it "
                                          r"to \[plugins\] disable"):
        load_app(config, load=[], plugins_dir=plugins)
    config.write_text("[plugins.broken]\nx = 1\n")
    with pytest.raises(ConfigError, match=r"plugins.broken: plugin broken .* failed to load"):
        load_app(config, load=[], plugins_dir=plugins)
    config.write_text('[plugins]\ndisable = ["broken"]\n')
    assert "broken" not in load_app(config, load=[], plugins_dir=plugins).report.plugins


def check(config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "faxflow", "check", "-c", str(config)],
                          capture_output=True, text=True, env={**os.environ, **env}, timeout=60)


def test_misspelt_plugin_names_are_errors_with_a_suggestion(tmp_path: Path) -> None:
    config = tmp_path / "f.toml"
    config.write_text('[plugins]\ndisable = ["jria"]\n\n[plugins.emial]\nhost = "x"\n')
    result = check(config)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert f"{config}:2: plugins.disable[0]: no plugin named 'jria' (did you mean jira?)" in lines
    assert f"{config}:4: plugins.emial: no plugin named 'emial' (did you mean email?)" in lines
    assert "try `faxflow check" not in result.stderr  # we are running check already


def test_misspelt_load_plugins_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "f.toml"
    config.write_text("[worker]\nconcurrency = 1\n")
    result = check(config, FAXFLOW_LOAD_PLUGINS="folder,foldr")
    assert result.returncode == 2
    assert (f"{config}: FAXFLOW_LOAD_PLUGINS names 'foldr', which is not an installed plugin "
            "(did you mean folder?)") in result.stderr.splitlines()
    listed = subprocess.run([sys.executable, "-m", "faxflow", "plugins"], capture_output=True,
                            text=True, env={**os.environ, "FAXFLOW_LOAD_PLUGINS": "foldr"})
    assert "warning: FAXFLOW_LOAD_PLUGINS names 'foldr'" in listed.stderr


def test_options_of_a_plugin_that_is_not_loaded_are_a_warning(tmp_path: Path) -> None:
    config = tmp_path / "f.toml"
    config.write_text('[plugins]\ndisable = ["webhook"]\n\n[plugins.webhook]\nsecret = "x"\n'
                      '\n[retarus]\nbase_url = "http://127.0.0.1:9/x"\nusername = "1"\n'
                      'password = "x"\ntopics = ["t"]\n')
    result = check(config, FAXFLOW_LOAD_PLUGINS="folder,webhook")
    assert result.returncode == 0, result.stderr
    assert (f"{config}:4: warning: plugins.webhook: plugin webhook is not loaded (disabled, or "
            "not in FAXFLOW_LOAD_PLUGINS): these options have no effect") in result.stderr


def test_a_misspelt_hook_fails_check_naming_plugin_hook_and_fix(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(
        "from faxflow.hookspecs import hookimpl\n"
        "@hookimpl\ndef faxflow_ack_votes(fax):\n    return None\n")
    config = tmp_path / "f.toml"
    config.write_text("[worker]\nconcurrency = 1\n")
    result = check(config, FAXFLOW_PLUGINS_DIR=str(tmp_path), FAXFLOW_LOAD_PLUGINS="")
    assert result.returncode == 2, result.stdout
    assert ("plugin mine (plugins dir " in result.stderr
            and "'faxflow_ack_votes' is marked as a hook implementation but is not a faxflow "
                "hook; did you mean faxflow_ack_vote?" in result.stderr), result.stderr


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
