"""Destination ``zendesk``: upload the fax, then open a ticket with the upload tokens.

Config::

    [plugins.zendesk]
    url = "https://example.zendesk.com"
    email = "fax@example.com"          # the agent the API token belongs to
    api_token = "${ZENDESK_API_TOKEN}"
    timeout = 30

Route options: ``subject``, ``body``, ``tags`` (list), ``group_id``, ``priority`` (low,
normal, high, urgent), ``requester_email``, ``content`` (original, searchable, both).

The ticket's ``external_id`` is ``faxflow-<32 hex>``, looked up before every create; the
create also sends Zendesk's ``Idempotency-Key`` header.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from faxflow import delivery
from faxflow.app import App
from faxflow.config import Config, ConfigProblem
from faxflow.hookspecs import hookimpl
from faxflow.types import DeliveryResult, DestinationType, Fax, Route

from . import common

ROUTE_OPTIONS: dict[str, tuple[type, ...]] = {
    "subject": (str,), "body": (str,), "tags": (list, str), "group_id": (int, str),
    "priority": (str,), "requester_email": (str,), "content": (str,),
}
PLUGIN_OPTIONS: dict[str, tuple[type, ...]] = {
    "url": (str,), "email": (str,), "api_token": (str,), "timeout": (int, float),
    "ca_file": (str,), **delivery.RETRY_OPTIONS,
}


def check_options(options: Mapping[str, Any]) -> list[str]:
    problems = delivery.check_types(options, ROUTE_OPTIONS)
    problems += delivery.check_choice(options, "priority", ("low", "normal", "high", "urgent"))
    return problems + delivery.check_choice(options, "content", delivery.CONTENT_CHOICES)


@hookimpl
def faxflow_destination_types() -> list[DestinationType]:
    return [DestinationType("zendesk", check_options,
                            "Open a Zendesk ticket with the fax attached.")]


@hookimpl
def faxflow_check_config(config: Config) -> list[ConfigProblem]:
    return common.check_plugin(config, "zendesk", PLUGIN_OPTIONS, ("url", "email", "api_token"))


@hookimpl
def faxflow_deliver(fax: Fax, route: Route, uncertain: bool, app: App) -> DeliveryResult | None:
    if route.type != "zendesk":
        return None
    return common.deliver_with("zendesk", app.plugin_options("zendesk"), fax, route, uncertain,
                               client_for, Zendesk)


def client_for(settings: Mapping[str, Any]) -> httpx.Client:
    auth = (f"{settings.get('email', '')}/token", str(settings.get("api_token", "")))
    return common.make_client(str(settings["url"]), settings, auth=auth,
                              headers={"Accept": "application/json"})


class Zendesk:
    name = "zendesk"

    def __init__(self, client: httpx.Client, settings: Mapping[str, Any],
                 policy: delivery.RetryPolicy = delivery.DEFAULT_POLICY) -> None:
        self.client = client
        self.base = str(settings["url"]).rstrip("/")
        self.policy = policy

    def find(self, marker: str) -> common.Ticket | None:
        response = common.call(self.client, "GET", "/api/v2/tickets.json", "zendesk lookup",
                               self.policy, params={"external_id": marker})
        answer = common.json_of(response, "zendesk lookup")
        tickets = answer.get("tickets") if isinstance(answer, dict) else None
        mine = [t for t in tickets or () if isinstance(t, dict) and t.get("external_id") == marker]
        return self._ticket(mine[0]) if mine else None

    def create(self, fax: Fax, route: Route, marker: str,
               files: list[delivery.OutFile]) -> common.Ticket:
        tokens = [self.upload(f) for f in files]
        opts = route.options
        tags = opts.get("tags") or []
        tags = [tags] if isinstance(tags, str) else [str(t) for t in tags]
        ticket: dict[str, Any] = {
            "subject": delivery.one_line(common.text_option(route, "subject",
                                                            delivery.describe(fax))),
            "comment": {"body": common.description(fax, route, "body"), "uploads": tokens},
            "external_id": marker,
            "tags": [*tags, "faxflow"],
        }
        group = delivery.as_int(opts, "group_id")
        if group is not None:
            ticket["group_id"] = group
        if opts.get("priority"):
            ticket["priority"] = str(opts["priority"])
        if opts.get("requester_email"):
            ticket["requester"] = {"email": str(opts["requester_email"])}
        response = common.create_call(self.client, "/api/v2/tickets.json",
                                      "zendesk create ticket", json={"ticket": ticket},
                                      headers={"Idempotency-Key": marker})
        answer = common.json_of(response, "zendesk create ticket")
        return self._ticket(answer.get("ticket") if isinstance(answer, dict) else None)

    def upload(self, f: delivery.OutFile) -> str:
        response = common.call(self.client, "POST", "/api/v2/uploads.json", "zendesk upload",
                               self.policy, params={"filename": f.name},
                               content=f.path.read_bytes(),
                               headers={"Content-Type": f.content_type})
        answer = common.json_of(response, "zendesk upload")
        token = (answer.get("upload") or {}).get("token") if isinstance(answer, dict) else None
        if not isinstance(token, str):
            raise delivery.transient("zendesk upload: answer without a token")
        return token

    def attach(self, ticket: common.Ticket, files: list[delivery.OutFile]) -> None:
        # Attachments travel with the create call; a found ticket already has them.
        return None

    def _ticket(self, data: Any) -> common.Ticket:
        if not isinstance(data, dict) or data.get("id") is None:
            raise delivery.transient("zendesk: answer without a ticket id")
        number = str(data["id"])
        return common.Ticket(number, f"{self.base}/agent/tickets/{number}")
