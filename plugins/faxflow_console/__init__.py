"""Plugin ``console``: what operators use to see every fax's history and to work the
shared quarantine — `faxflow faxes`, `faxflow quarantine` (actions.py, cli.py) and, with the
``console`` extra, the web console `faxflow console` (serve.py, web.py). Reads and writes only
through the journal's records (faxflow.records) and the core's protocol; see docs/console.md.

Nothing here imports the web stack: a site without the extra loads this plugin (its
`[plugins.console]` table is still checked) and the CLI commands work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import click

from faxflow.app import App
from faxflow.config import Config
from faxflow.hookspecs import hookimpl
from faxflow.stash import StashKey

from .settings import Settings, parse


@dataclass(frozen=True, slots=True)
class Loaded:
    """The console's settings from the configuration in use, and when it was taken in."""

    settings: Settings
    at: float


SETTINGS = StashKey[Loaded]()


@hookimpl
def faxflow_register_commands(cli: click.Group) -> None:
    from .cli import faxes, quarantine
    from .serve import console

    cli.add_command(faxes)
    cli.add_command(quarantine)
    cli.add_command(console)


@hookimpl
def faxflow_check_config(config: Config) -> list[str]:
    table = config.data.get("plugins", {}).get("console")
    if table is None:
        return []
    if not isinstance(table, dict):
        return ["must be a table"]
    return parse(table)[1]


@hookimpl
def faxflow_configure(config: Config, app: App) -> None:
    # Also on every hot reload: users, roles and the trusted header apply to the next request.
    app.stash[SETTINGS] = Loaded(parse(config.plugin_options("console"))[0], time.time())
