"""Plugin ``pager``: destination type ``pager``, one line per fax in an outbox file that a
paging (SMS) gateway picks up.

    [plugins.pager]
    outbox = "/var/spool/pager/outbox.txt"

    [[rule.route]]                  # in a rule
    type = "pager"
    to = "+4917012345678"
    text = "Urgent fax from {{ sender }}"

Delivered once: each line carries the delivery's stable key, and an uncertain retry (a crash
mid-write) looks for that key before writing again (`faxflow.delivery.create_once`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from faxflow import delivery
from faxflow.app import App
from faxflow.config import Config
from faxflow.hookspecs import hookimpl
from faxflow.types import DeliveryResult, DestinationType, Fax, Route

NUMBER = re.compile(r"\+[1-9][0-9]{6,14}")


def check_options(options: Mapping[str, Any]) -> list[str]:
    problems = delivery.check_types(options, {"to": (str,), "text": (str,)}, required=("to",))
    to = options.get("to")
    if isinstance(to, str) and "{{" not in to and not NUMBER.fullmatch(to):
        problems.append("to: must be a number in international form, e.g. +4917012345678")
    return problems


@hookimpl
def faxflow_destination_types() -> list[DestinationType]:
    return [DestinationType("pager", check_options, "A line in a paging gateway's outbox.",
                            address_options=frozenset({"to"}))]


@hookimpl
def faxflow_check_config(config: Config) -> list[str]:
    outbox = config.plugin_options("pager").get("outbox")
    if "pager" in config.data.get("plugins", {}) and not isinstance(outbox, str):
        return ["outbox: required, the file the paging gateway reads"]
    return []


@hookimpl
def faxflow_deliver(fax: Fax, route: Route, uncertain: bool, app: App) -> DeliveryResult | None:
    if route.type != "pager":
        return None
    outbox = app.config.resolve(str(app.plugin_options("pager").get("outbox", "pager.txt")))
    to = str(route.options.get("to", ""))
    if not NUMBER.fullmatch(to):  # a template may have rendered anything
        return DeliveryResult.permanent(f"pager: to: not a phone number: {to!r}")
    key = delivery.stable_key(fax, route)
    text = delivery.one_line(str(route.options.get("text") or delivery.describe(fax)), 160)
    line = f"{key}\t{to}\t{text}\n"

    def find() -> str | None:
        return key if outbox.exists() and key in outbox.read_text(encoding="utf-8") else None

    def create() -> str:
        try:
            with outbox.open("a", encoding="utf-8") as out:
                out.write(line)
        except OSError as exc:
            raise delivery.transient(f"pager: {exc.strerror}", sent=True) from None
        return key

    try:
        delivery.create_once(find, create, uncertain=uncertain)
    except delivery.DeliveryError as exc:
        return delivery.as_result(exc)
    return DeliveryResult.delivered(f"paged {to}", reference=f"{Path(outbox).name}:{key[:12]}")
