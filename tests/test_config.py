"""Config parsing and validation: every error names the file, line and key; secrets stay
secret; hot reload swaps a valid file in and keeps the old one on a bad file."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from faxflow.app import load_app
from faxflow.config import locate, parse, redact
from faxflow.errors import ConfigError
from faxflow.reload import Reloader, reload_config

GOOD = """\
[retarus]
base_url = "http://127.0.0.1:9/faxin/rest/v1"
username = "99999"
password = "${FAX_PW}"
topics = ["abc123"]

[worker]
concurrency = 2
"""


def problems_of(text: str, **env: str) -> list[str]:
    config, problems = parse(text, Path("/etc/faxflow/f.toml"), env={"FAX_PW": "pw", **env})
    from faxflow.config import with_lines
    return [p.format("f.toml") for p in with_lines(config, problems)]


def test_good_config_parses_with_env_secret() -> None:
    config, problems = parse(GOOD, env={"FAX_PW": "s3cret"})
    assert problems == []
    assert config.retarus.password == "s3cret"
    assert config.worker.concurrency == 2
    assert config.worker.max_attempts == 5  # default


def test_wrong_type_names_line_and_key() -> None:
    text = GOOD.replace("concurrency = 2", 'concurrency = "two"')
    assert problems_of(text) == ["f.toml:8: worker.concurrency: must be an integer"]


def test_unknown_option_suggests_the_right_one() -> None:
    text = GOOD.replace("concurrency = 2", "concurency = 2")
    assert problems_of(text) == [
        "f.toml:8: worker.concurency: unknown option (did you mean concurrency?)"]


def test_toml_syntax_error_names_the_line() -> None:
    (line,) = problems_of(GOOD + "\n[worker\n")
    assert line.startswith("f.toml:10: invalid TOML")


def test_missing_env_var_is_reported_without_traceback() -> None:
    _, problems = parse(GOOD, env={})
    assert [p.message for p in problems] == ["environment variable FAX_PW is not set"]
    assert problems[0].path == ("retarus", "password")


def test_password_file(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    text = GOOD.replace('password = "${FAX_PW}"', 'password_file = "pw"')
    config, problems = parse(text, tmp_path / "f.toml", env={})
    assert problems == [] and config.retarus.password == "from-file"


def test_range_and_choice_checks() -> None:
    text = GOOD.replace("concurrency = 2", "concurrency = 0") + '\n[journal]\nbackend = "mysql"\n'
    assert problems_of(text) == [
        "f.toml:8: worker.concurrency: must be at least 1",
        "f.toml:11: journal.backend: must be one of sqlite, postgresql",
    ]


def test_region_or_base_url_required() -> None:
    text = GOOD.replace('base_url = "http://127.0.0.1:9/faxin/rest/v1"\n', "")
    assert problems_of(text) == ["f.toml:1: retarus: set region or base_url"]


def test_locate_arrays_of_tables() -> None:
    text = "[[rule]]\nname = 'a'\n\n[[rule]]\nname = 'b'\nmatch = 1\n"
    assert locate(text, ("rule", 1, "match")) == 6
    assert locate(text, ("rule", 0)) == 1
    assert locate(text, ("rule", 1, "nothing")) == 4


def test_redact_hides_secrets() -> None:
    assert redact({"retarus": {"password": "x", "username": "u"}, "plugins": {
        "email": {"smtp_password": "y", "api_token": "z"}}}) == {
        "retarus": {"password": "***", "username": "u"},
        "plugins": {"email": {"smtp_password": "***", "api_token": "***"}}}


def test_unknown_top_level_table_and_config_of_a_broken_plugin(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text(GOOD + "\n[retarsu]\nx = 1\n")
    with pytest.raises(ConfigError) as info:
        load_app(path, load=[], env={"FAX_PW": "pw"})
    assert str(info.value) == f"{path}:10: retarsu: unknown table (did you mean retarus?)"


def test_check_command_gives_one_line_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text(GOOD.replace("concurrency = 2", "concurrency = -1"))
    env = {**os.environ, "FAX_PW": "hunter2-secret", "FAXFLOW_LOAD_PLUGINS": ""}
    result = subprocess.run([sys.executable, "-m", "faxflow", "check", "-c", str(path)],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == \
        f"{path}:8: worker.concurrency: must be at least 1"
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr
    path.write_text(GOOD)
    ok = subprocess.run([sys.executable, "-m", "faxflow", "check", "-c", str(path)],
                        capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "FAXFLOW_LOAD_PLUGINS": ""}
    result = subprocess.run([sys.executable, "-m", "faxflow", "check", "-c",
                             str(tmp_path / "nope.toml")], capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert "nope.toml: no such file" in result.stderr and "Traceback" not in result.stderr


def test_hot_reload_swaps_valid_and_rejects_invalid(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("FAX_PW", "pw")
    path = tmp_path / "f.toml"
    path.write_text(GOOD)
    app = load_app(path, load=[])
    reloader = Reloader(app, path, settle=0.05)
    reloader.start()
    try:
        path.write_text(GOOD.replace("concurrency = 2", "concurrency = 3"))
        deadline = time.monotonic() + 10
        while app.config.worker.concurrency != 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.config.worker.concurrency == 3
        with caplog.at_level(logging.ERROR, logger="faxflow.reload"):
            path.write_text(GOOD.replace("concurrency = 2", "concurrency = 'x'"))
            deadline = time.monotonic() + 10
            # Wait for the rejection itself: the first reload's INFO line may already be
            # among the records (when an earlier test set the faxflow loggers to INFO).
            while ("config reload rejected" not in caplog.text
                   and time.monotonic() < deadline):
                time.sleep(0.05)
        assert app.config.worker.concurrency == 3  # the old config stays
        assert "config reload rejected" in caplog.text
        assert "worker.concurrency: must be an integer" in caplog.text
    finally:
        reloader.stop()


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_a_rotated_secret_file_is_reloaded(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "pw").write_text("first\n")
    path = tmp_path / "f.toml"
    path.write_text(GOOD.replace('password = "${FAX_PW}"', 'password_file = "secrets/pw"'))
    app = load_app(path, load=[])
    assert app.config.retarus.password == "first"
    reloader = Reloader(app, path, settle=0.05)
    reloader.start()
    try:
        replacement = secrets / ".pw.new"  # as orchestrators do: write aside, rename over
        replacement.write_text("second\n")
        replacement.replace(secrets / "pw")
        assert wait_until(lambda: app.config.retarus.password == "second")
    finally:
        reloader.stop()


def test_a_debug_log_next_to_the_config_does_not_feed_the_watcher(tmp_path: Path) -> None:
    """With the log written into the config's folder, file events about the log must not
    produce log lines (before: 7,790 lines in 10 s, watchdog logging its own events)."""
    from faxflow.simulator import Simulator, SimulatorServer

    sim = Simulator(users={"99999": "secret"}, topics={"abc123": "99999"}, seed=1)
    with SimulatorServer(sim, host="127.0.0.1", port=0) as server:
        path = tmp_path / "f.toml"
        path.write_text(GOOD.replace("http://127.0.0.1:9/faxin/rest/v1", server.api_url)
                        + "poll_interval_max = 0.5\n[journal]\npath = \"journal.sqlite\"\n")
        log = tmp_path / "worker.log"
        env = {**os.environ, "FAX_PW": "secret", "FAXFLOW_LOAD_PLUGINS": ""}
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "faxflow", "--log-level", "debug",
                                     "run", "-c", str(path)], env=env, stderr=out, cwd=tmp_path)
        try:
            assert wait_until(lambda: "pulling abc123" in log.read_text())
            time.sleep(3)
        finally:
            proc.terminate()
            proc.wait(30)
    lines = log.read_text().splitlines()
    assert not [line for line in lines if "watchdog" in line]
    assert len(lines) < 100, f"{len(lines)} lines in 3 s"


def test_reload_refused_by_a_plugin_keeps_old_config_in_every_plugin(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One plugin refuses the new file after others took it: app.config stays the old one
    and the others are configured with it again, whichever order pluggy calls them in."""
    from faxflow.hookspecs import hookimpl

    class Keeper:
        def __init__(self) -> None:
            self.concurrency = 0

        @hookimpl
        def faxflow_configure(self, config):  # type: ignore[no-untyped-def]
            self.concurrency = config.worker.concurrency

    class Picky:
        @hookimpl
        def faxflow_configure(self, config):  # type: ignore[no-untyped-def]
            if config.worker.concurrency > 5:
                raise ValueError("too many")

    monkeypatch.setenv("FAX_PW", "pw")
    path = tmp_path / "f.toml"
    path.write_text(GOOD)
    first, last = Keeper(), Keeper()
    app = load_app(path, load=[], extra=[("first", first), ("picky", Picky()), ("last", last)])
    assert (first.concurrency, last.concurrency) == (2, 2)
    path.write_text(GOOD.replace("concurrency = 2", "concurrency = 9"))
    assert reload_config(app, path) is False
    assert (first.concurrency, last.concurrency, app.config.worker.concurrency) == (2, 2, 2)
    path.write_text(GOOD.replace("concurrency = 2", "concurrency = 4"))
    assert reload_config(app, path) is True
    assert (first.concurrency, last.concurrency, app.config.worker.concurrency) == (4, 4, 4)


def test_configuration_reference_is_generated_from_the_schema() -> None:
    from faxflow.config import reference_markdown
    doc = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    assert doc == reference_markdown(), "run: python -m faxflow.config > docs/configuration.md"


def test_every_core_option_is_in_the_example_config() -> None:
    import dataclasses as dc

    from faxflow.config import CORE_SECTIONS
    example = (Path(__file__).parent.parent / "rules.example.toml").read_text()
    for section, cls in CORE_SECTIONS.items():
        assert f"[{section}]" in example
        for f in dc.fields(cls):
            assert re.search(rf"^#?\s*{f.name}(_file)? =", example, re.M), f"{section}.{f.name}"


def test_the_example_config_shows_the_defaults_it_claims_to() -> None:
    """rules.example.toml says every core option is shown with its default: check the values
    (required options and those without a default are examples, not defaults)."""
    import dataclasses as dc
    import tomllib

    from faxflow.config import CORE_SECTIONS
    example = tomllib.loads((Path(__file__).parent.parent / "rules.example.toml").read_text())
    for section, cls in CORE_SECTIONS.items():
        for f in dc.fields(cls):
            if f.name not in example.get(section, {}) or f.metadata.get("required") \
                    or f.default in (None, dc.MISSING):
                continue
            assert example[section][f.name] == f.default, f"{section}.{f.name}"


def test_locate_nested_arrays_of_tables() -> None:
    text = ("[[rule]]\nname = 'a'\n[[rule.route]]\ntype = 'x'\n[[rule.route]]\ntype = 'y'\n"
            "[[rule]]\nname = 'b'\n[[rule.route]]\ntype = 'z'\n[rule.when]\nto = 1\n")
    assert locate(text, ("rule", 0, "route", 1, "type")) == 6
    assert locate(text, ("rule", 1, "route", 0, "type")) == 10
    assert locate(text, ("rule", 1, "when", "to")) == 12
    assert locate(text, ("rule", 1, "route", 0, "missing")) == 9


@pytest.mark.parametrize(("base_url", "message"), [
    ("127.0.0.1:8080/faxin/rest/v1", "must be an http(s) URL with a host"),
    ("ftp://127.0.0.1/faxin", "must be an http(s) URL with a host"),
    ("http://user:pw@127.0.0.1:8080/x", "must not contain a user name or password"),
    ("http://api.example.test/faxin/rest/v1", "refusing to send credentials in clear text"),
])
def test_check_refuses_what_run_refuses(tmp_path: Path, base_url: str, message: str) -> None:
    path = tmp_path / "f.toml"
    path.write_text(GOOD.replace("http://127.0.0.1:9/faxin/rest/v1", base_url))
    env = {**os.environ, "FAX_PW": "pw", "FAXFLOW_LOAD_PLUGINS": ""}
    for command in ("check", "run"):
        result = subprocess.run([sys.executable, "-m", "faxflow", command, "-c", str(path)],
                                capture_output=True, text=True, env=env, timeout=60)
        assert result.returncode != 0, (command, result.stderr)
        assert f"{path}:2: retarus.base_url: " in result.stderr and message in result.stderr
        assert "Traceback" not in result.stderr and "pw@" not in result.stderr


def test_check_needs_a_retarus_table_and_writable_folders(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    path = tmp_path / "f.toml"
    env = {**os.environ, "FAX_PW": "pw", "FAXFLOW_LOAD_PLUGINS": ""}
    path.write_text("[worker]\nconcurrency = 1\n")
    result = subprocess.run([sys.executable, "-m", "faxflow", "check", "-c", str(path)],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2 and "a [retarus] table" in result.stderr
    path.write_text(GOOD + f'spool_dir = "{tmp_path / "f.toml" / "spool"}"\n')
    result = subprocess.run([sys.executable, "-m", "faxflow", "check", "-c", str(path)],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2
    assert "worker.spool_dir: cannot create or write" in result.stderr


def test_allow_http_lets_a_private_simulator_through(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text(GOOD.replace("http://127.0.0.1:9", "http://simulator:8080").replace(
        'username = "99999"', 'username = "99999"\nallow_http = "${ALLOW:-false}"'))
    env = {**os.environ, "FAX_PW": "pw", "FAXFLOW_LOAD_PLUGINS": ""}
    refused = subprocess.run([sys.executable, "-m", "faxflow", "check", "-c", str(path)],
                             capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode == 2 and "clear text" in refused.stderr
    allowed = subprocess.run([sys.executable, "-m", "faxflow", "check", "-c", str(path)],
                             capture_output=True, text=True, env={**env, "ALLOW": "true"},
                             timeout=60)
    assert allowed.returncode == 0, allowed.stderr


def test_environment_defaults_and_numbers_from_text() -> None:
    text = GOOD.replace("concurrency = 2", 'concurrency = "${N:-3}"\nreload = "${R}"')
    config, problems = parse(text, env={"FAX_PW": "pw", "R": "false"})
    assert problems == []
    assert config.worker.concurrency == 3 and config.worker.reload is False
    config, problems = parse(text, env={"FAX_PW": "pw", "R": "off", "N": "7"})
    assert config.worker.concurrency == 7
    assert [(p.path, p.message) for p in problems] == [(("worker", "reload"),
                                                        "must be true or false")]
