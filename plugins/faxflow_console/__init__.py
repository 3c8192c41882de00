"""Plugin ``console``: what operators use to see every fax's history and to work the
shared quarantine — `faxflow faxes`, `faxflow quarantine` (actions.py, cli.py) and, with the
``console`` extra, the web console `faxflow console`. Reads and writes only through the
journal's records (faxflow.records) and the core's protocol; see docs/console.md.
"""

from __future__ import annotations

import click

from faxflow.hookspecs import hookimpl


@hookimpl
def faxflow_register_commands(cli: click.Group) -> None:
    from .cli import faxes, quarantine

    cli.add_command(faxes)
    cli.add_command(quarantine)
