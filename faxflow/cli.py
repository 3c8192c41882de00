"""The `faxflow` command line. Plugins add commands through `faxflow_register_commands`."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click

from faxflow import __version__, logs
from faxflow.app import App, load_app
from faxflow.config import with_lines
from faxflow.errors import ConfigError, FaxflowError
from faxflow.plugins import hooks_of, make_manager

log = logging.getLogger("faxflow")

config_option = click.option(
    "-c", "--config", "config_path", required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="FAXFLOW_CONFIG", help="The TOML configuration file [env FAXFLOW_CONFIG].")
plugins_dir_option = click.option(
    "--plugins-dir", type=click.Path(path_type=Path, file_okay=False, exists=True),
    envvar="FAXFLOW_PLUGINS_DIR", help="Also load every *.py file in DIR as a plugin.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="faxflow")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--log-format", default="text", show_default=True,
              type=click.Choice(["text", "json"]), help="json: one object per line.")
def cli(log_level: str, log_format: str) -> None:
    """faxflow: pull inbound faxes from Retarus, OCR, route, deliver, acknowledge."""
    logs.setup(log_level, log_format)


def load_or_exit(config_path: Path, plugins_dir: Path | None, checking: bool = False) -> App:
    try:
        app = load_app(config_path, plugins_dir=plugins_dir)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        hint = "" if checking else f"; fix it and try `faxflow check -c {config_path}`"
        click.echo(f"faxflow: the configuration is invalid{hint}", err=True)
        sys.exit(2)
    for warning in app.warnings:  # check prints them; the worker logs them
        if checking:
            click.echo(warning, err=True)
        else:
            log.warning("%s", warning)
    return app


@cli.command()
@config_option
@plugins_dir_option
def check(config_path: Path, plugins_dir: Path | None) -> None:
    """Validate a configuration file (and its plugins' parts) without running."""
    from faxflow.runner import preflight

    app = load_or_exit(config_path, plugins_dir, checking=True)
    problems = with_lines(app.config, preflight(app))  # what `run` would refuse
    if problems:
        for problem in problems:
            click.echo(problem.format(str(config_path)), err=True)
        click.echo("faxflow: the configuration is invalid", err=True)
        sys.exit(2)
    click.echo(f"{config_path}: OK ({len(app.destinations)} destination types, "
               f"{len(app.report.loaded)} plugins)")


@cli.command()
@config_option
@plugins_dir_option
def run(config_path: Path, plugins_dir: Path | None) -> None:
    """Run the worker until SIGTERM or SIGINT."""
    from faxflow.runner import run_worker

    app = load_or_exit(config_path, plugins_dir)
    # What faxflow writes gets its modes explicitly; the umask catches what others write for
    # it (tesseract, SQLite's temporary files) with the same owner-only default.
    os.umask(0o777 & ~app.config.dir_mode)
    try:
        run_worker(app, install_signals=True)
    except FaxflowError as exc:
        click.echo(f"faxflow: {exc}", err=True)
        sys.exit(1)


@cli.command("plugins")
@plugins_dir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins_command(plugins_dir: Path | None, as_json: bool) -> None:
    """List plugins, their versions and the hooks each implements."""
    pm, report = make_manager(plugins_dir=plugins_dir)
    for message in report.unknown_asked():
        click.echo(f"warning: {message}", err=True)
    rows: list[dict[str, Any]] = [
        {"name": info.name, "source": info.source, "distribution": info.distribution,
         "version": info.version, "hooks": hooks_of(pm, info.name), "error": info.error}
        for info in report.plugins.values()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        version = f" {row['distribution']} {row['version']}" if row["version"] else ""
        click.echo(f"{row['name']}{version} ({row['source']})")
        if row["error"]:
            click.echo(f"    FAILED TO LOAD: {row['error']}")
        for hook in row["hooks"]:
            click.echo(f"    {hook}")


def _add_builtin_commands() -> None:
    from faxflow.demo import demo_command
    from faxflow.simulator import simulator_command

    cli.add_command(simulator_command)
    cli.add_command(demo_command)


def build_cli() -> click.Group:
    """The CLI with the plugins' commands (FAXFLOW_LOAD_PLUGINS / FAXFLOW_PLUGINS_DIR apply)."""
    _add_builtin_commands()
    plugins_dir = os.environ.get("FAXFLOW_PLUGINS_DIR")
    pm, _ = make_manager(plugins_dir=Path(plugins_dir) if plugins_dir else None)
    pm.hook.faxflow_register_commands(cli=cli)
    return cli


def main() -> None:
    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)  # until `run` installs its graceful handler
    try:
        build_cli().main(prog_name="faxflow")
    except KeyboardInterrupt:
        sys.exit(130)
