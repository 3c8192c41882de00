"""Plugin ``sender_block``: faxes from blocked numbers are stopped before any delivery.

    [plugins.sender_block]
    numbers = ["+4930123456"]       # E.164, as Retarus' sender number normalizes to

A hold vote (`faxflow_hold_vote`) runs after routing and before the first delivery, so a
blocked fax is quarantined with nothing delivered; an ack vote would come too late.
"""

from __future__ import annotations

import sys
from typing import Any

from faxflow.app import App
from faxflow.config import Config, ConfigProblem
from faxflow.hookspecs import hookimpl
from faxflow.stash import StashKey
from faxflow.types import Fax, Vote

BLOCKED = StashKey[frozenset[str]]()


def _table(config: Config, app: App) -> dict[str, Any]:
    return config.plugin_options(app.plugin_name(sys.modules[__name__]) or "sender_block")


@hookimpl
def faxflow_check_config(config: Config, app: App) -> list[ConfigProblem | str]:
    numbers = _table(config, app).get("numbers", [])
    if not isinstance(numbers, list) or not all(isinstance(n, str) for n in numbers):
        return ["numbers: must be a list of phone numbers"]
    return [f"numbers: {n!r} is not in international form (+49...)" for n in numbers
            if not n.startswith("+")]


@hookimpl
def faxflow_configure(config: Config, app: App) -> None:
    numbers = _table(config, app).get("numbers", [])
    app.stash[BLOCKED] = frozenset(str(n) for n in numbers)


@hookimpl
def faxflow_hold_vote(fax: Fax, app: App) -> Vote | None:
    sender = fax.job.sender_isdn.e164 if fax.job.sender_isdn else None
    if sender is not None and sender in app.stash.get(BLOCKED, frozenset()):
        return Vote.quarantine(f"sender {sender} is blocked")
    return None
