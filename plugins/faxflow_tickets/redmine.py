"""Destination ``redmine``: upload the fax, then create an issue with the upload tokens
(Redmine's REST API, enabled under Administration > Settings > API).

Config::

    [plugins.redmine]
    url = "https://redmine.example.com"
    api_key = "${REDMINE_API_KEY}"
    timeout = 30

Route options: ``project`` (id or identifier, required), ``subject``, ``description``,
``tracker_id``, ``priority_id``, ``assigned_to_id``, ``content`` (original, searchable,
both).

The description ends with a line ``faxflow-<32 hex>``, searched (description contains,
any status) before every create.
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
    "project": (str, int), "subject": (str,), "description": (str,),
    "tracker_id": (int, str), "priority_id": (int, str), "assigned_to_id": (int, str),
    "content": (str,),
}
PLUGIN_OPTIONS: dict[str, tuple[type, ...]] = {
    "url": (str,), "api_key": (str,), "timeout": (int, float), "ca_file": (str,),
    **delivery.RETRY_OPTIONS,
}
ID_OPTIONS = ("tracker_id", "priority_id", "assigned_to_id")


def check_options(options: Mapping[str, Any]) -> list[str]:
    problems = delivery.check_types(options, ROUTE_OPTIONS, required=("project",))
    return problems + delivery.check_choice(options, "content", delivery.CONTENT_CHOICES)


@hookimpl
def faxflow_destination_types() -> list[DestinationType]:
    return [DestinationType("redmine", check_options,
                            "Create a Redmine issue with the fax attached.")]


@hookimpl
def faxflow_check_config(config: Config) -> list[ConfigProblem]:
    return common.check_plugin(config, "redmine", PLUGIN_OPTIONS, ("url", "api_key"))


@hookimpl
def faxflow_deliver(fax: Fax, route: Route, uncertain: bool, app: App) -> DeliveryResult | None:
    if route.type != "redmine":
        return None
    return common.deliver_with("redmine", app.plugin_options("redmine"), fax, route, uncertain,
                               client_for, Redmine)


def client_for(settings: Mapping[str, Any]) -> httpx.Client:
    headers = {"X-Redmine-API-Key": str(settings.get("api_key", "")),
               "Accept": "application/json"}
    return common.make_client(str(settings["url"]), settings, headers=headers)


class Redmine:
    name = "redmine"

    def __init__(self, client: httpx.Client, settings: Mapping[str, Any],
                 policy: delivery.RetryPolicy = delivery.DEFAULT_POLICY) -> None:
        self.client = client
        self.base = str(settings["url"]).rstrip("/")
        self.policy = policy

    def find(self, marker: str) -> common.Ticket | None:
        # The long filter form: with f[] Redmine ignores short filters such as status_id=*.
        params = [("set_filter", "1"), ("f[]", "status_id"), ("op[status_id]", "*"),
                  ("f[]", "description"), ("op[description]", "~"),
                  ("v[description][]", marker), ("limit", "5")]
        response = common.call(self.client, "GET", "/issues.json", "redmine lookup",
                               self.policy, params=params)
        answer = common.json_of(response, "redmine lookup")
        issues = answer.get("issues") if isinstance(answer, dict) else None
        # Trust only a real match: a server that ignored the filter must not make us skip.
        mine = [i for i in issues or () if isinstance(i, dict)
                and marker in str(i.get("description") or "")]
        return self._ticket(mine[0]) if mine else None

    def create(self, fax: Fax, route: Route, marker: str,
               files: list[delivery.OutFile]) -> common.Ticket:
        uploads = [{"token": self.upload(f), "filename": f.name, "content_type": f.content_type}
                   for f in files]
        opts = route.options
        issue: dict[str, Any] = {
            "project_id": opts["project"],
            "subject": delivery.one_line(common.text_option(route, "subject",
                                                            delivery.describe(fax)), 255),
            "description": f"{common.description(fax, route)}\n\n{marker}",
            "uploads": uploads,
        }
        for name in ID_OPTIONS:
            number = delivery.as_int(opts, name)
            if number is not None:
                issue[name] = number
        response = common.create_call(self.client, "/issues.json", "redmine create issue",
                                      json={"issue": issue})
        answer = common.json_of(response, "redmine create issue")
        return self._ticket(answer.get("issue") if isinstance(answer, dict) else None)

    def upload(self, f: delivery.OutFile) -> str:
        response = common.call(self.client, "POST", "/uploads.json", "redmine upload",
                               self.policy, params={"filename": f.name},
                               content=f.path.read_bytes(),
                               headers={"Content-Type": "application/octet-stream"})
        answer = common.json_of(response, "redmine upload")
        token = (answer.get("upload") or {}).get("token") if isinstance(answer, dict) else None
        if not isinstance(token, str):
            raise delivery.transient("redmine upload: answer without a token")
        return token

    def attach(self, ticket: common.Ticket, files: list[delivery.OutFile]) -> None:
        return None  # attachments travel with the create call

    def _ticket(self, data: Any) -> common.Ticket:
        if not isinstance(data, dict) or data.get("id") is None:
            raise delivery.transient("redmine: answer without an issue id")
        number = str(data["id"])
        return common.Ticket(number, f"{self.base}/issues/{number}")
