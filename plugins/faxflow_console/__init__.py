"""Plugin ``console``: what operators use to see every fax's history and to work the
shared quarantine — `faxflow faxes`, `faxflow quarantine` (actions.py, cli.py) and, with the
``console`` extra, the web console `faxflow console` (serve.py, web.py). Reads and writes only
through the journal's records (faxflow.records) and the core's protocol; see docs/console.md.

Nothing here imports the web stack: a site without the extra loads this plugin (its
`[plugins.console]` table is still checked) and the CLI commands work.

It also declares the destination type ``queue``: a route that puts the fax into the shared
queue for a person to route (e.g. faxes a classifier labelled ``needs-review``)::

    [[rule.route]]
    type = "queue"
    reason = "needs review: the classifier was not sure"
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click

from faxflow import delivery
from faxflow.app import App
from faxflow.config import Config
from faxflow.hookspecs import hookimpl
from faxflow.paths import safe_extension
from faxflow.stash import StashKey
from faxflow.types import DeliveryResult, DestinationType, Fax, Route

from .settings import Settings, parse


@dataclass(frozen=True, slots=True)
class Loaded:
    """The console's settings from the configuration in use, and when it was taken in."""

    settings: Settings
    at: float


SETTINGS = StashKey[Loaded]()


def check_options(options: Mapping[str, Any]) -> list[str]:
    return delivery.check_types(options, {"reason": (str,)})


@hookimpl
def faxflow_destination_types() -> list[DestinationType]:
    return [DestinationType("queue", check_options,
                            "Keep the fax in the shared queue for a person to route.")]


@hookimpl
def faxflow_deliver(fax: Fax, route: Route, app: App) -> DeliveryResult | None:
    if route.type != "queue":
        return None
    if app.journal is None:
        return DeliveryResult.transient("queue: no journal is open")
    records = app.journal.records
    ident = records.fax_id(fax.topic, fax.id)
    item = records.quarantine_item(ident) if ident is not None else None
    if item is not None and item.state != "open":  # resolved meanwhile: do not reopen it
        return DeliveryResult.delivered(f"queue: #{item.id} {item.state} already",
                                        reference=f"#{item.id}")
    reason = delivery.one_line(str(route.options.get("reason") or "needs review"), 300)
    documents = [(d.ref.name or f"document-{i}", safe_extension(d.ref.extension),
                  d.path.read_bytes()) for i, d in enumerate(fax.documents, start=1)]
    metadata = {"job": fax.job.raw, "labels": sorted(fax.labels), "attempt": fax.attempt,
                "route": route.key}
    ident = records.quarantine(fax.topic, fax.id, documents, [reason], {}, metadata, [],
                               fax.text, str(fax.scratch.get("owner") or ""), event="queued")
    return DeliveryResult.delivered(f"queue: #{ident} waits for a person", reference=f"#{ident}")


@hookimpl
def faxflow_register_commands(cli: click.Group) -> None:
    from .cli import faxes, quarantine
    from .demo import demo
    from .serve import console

    console.add_command(demo)
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
