"""Destination ``jira``: create an issue, then attach the fax (Jira's REST API v2).

Config::

    [plugins.jira]
    url = "https://example.atlassian.net"
    email = "fax@example.com"          # Cloud: email + api_token (basic auth)
    api_token = "${JIRA_API_TOKEN}"
    # token = "${JIRA_PAT}"            # Server/Data Center: a personal access token instead
    deployment = "cloud"               # "cloud" or "server" (which search endpoint to use)
    timeout = 30

Route options: ``project`` (key, required), ``issue_type`` (default "Task"), ``summary``,
``description``, ``labels`` (list), ``fields`` (table of extra issue fields, as Jira's API
names them, e.g. ``customfield_10010``), ``content`` (original, searchable, both).

The issue carries the label ``faxflow-<32 hex>``, searched by JQL before every create.
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
    "project": (str,), "issue_type": (str,), "summary": (str,), "description": (str,),
    "labels": (list, str), "fields": (dict,), "content": (str,),
}
PLUGIN_OPTIONS: dict[str, tuple[type, ...]] = {
    "url": (str,), "email": (str,), "api_token": (str,), "token": (str,),
    "deployment": (str,), "timeout": (int, float), "ca_file": (str,),
    **delivery.RETRY_OPTIONS,
}


def check_options(options: Mapping[str, Any]) -> list[str]:
    problems = delivery.check_types(options, ROUTE_OPTIONS, required=("project",))
    return problems + delivery.check_choice(options, "content", delivery.CONTENT_CHOICES)


def _check_auth(opts: Mapping[str, Any]) -> list[str]:
    problems = delivery.check_choice(opts, "deployment", ("cloud", "server"))
    if "token" not in opts and not ("email" in opts and "api_token" in opts):
        problems.append("api_token: give email and api_token (Cloud) or token (Server)")
    return problems


@hookimpl
def faxflow_destination_types() -> list[DestinationType]:
    return [DestinationType("jira", check_options, "Open a Jira issue with the fax attached.")]


@hookimpl
def faxflow_check_config(config: Config) -> list[ConfigProblem]:
    return common.check_plugin(config, "jira", PLUGIN_OPTIONS, ("url",), _check_auth)


@hookimpl
def faxflow_deliver(fax: Fax, route: Route, uncertain: bool, app: App) -> DeliveryResult | None:
    if route.type != "jira":
        return None
    return common.deliver_with("jira", app.plugin_options("jira"), fax, route, uncertain,
                               client_for, Jira)


def client_for(settings: Mapping[str, Any]) -> httpx.Client:
    headers = {"Accept": "application/json"}
    auth: tuple[str, str] | None = None
    if settings.get("token"):
        headers["Authorization"] = f"Bearer {settings['token']}"
    else:
        auth = (str(settings.get("email", "")), str(settings.get("api_token", "")))
    return common.make_client(str(settings["url"]), settings, headers=headers, auth=auth)


class Jira:
    name = "jira"

    def __init__(self, client: httpx.Client, settings: Mapping[str, Any],
                 policy: delivery.RetryPolicy = delivery.DEFAULT_POLICY) -> None:
        self.client = client
        self.cloud = settings.get("deployment", "cloud") == "cloud"
        self.base = str(settings["url"]).rstrip("/")
        self.policy = policy

    def find(self, marker: str) -> common.Ticket | None:
        # Cloud retired /rest/api/2/search in favour of /rest/api/3/search/jql.
        path = "/rest/api/3/search/jql" if self.cloud else "/rest/api/2/search"
        params = {"jql": f'labels = "{marker}"', "fields": "attachment,labels",
                  "maxResults": "5"}
        answer = common.json_of(common.call(self.client, "GET", path, "jira search",
                                            self.policy, params=params), "jira search")
        issues = answer.get("issues") or [] if isinstance(answer, dict) else []
        mine = [i for i in issues if isinstance(i, dict)
                and marker in ((i.get("fields") or {}).get("labels") or [])]
        if not mine:
            return None
        issue = mine[0]
        names = {a.get("filename") for a in (issue.get("fields") or {}).get("attachment") or []}
        return self._ticket(issue, frozenset(n for n in names if isinstance(n, str)))

    def create(self, fax: Fax, route: Route, marker: str,
               files: list[delivery.OutFile]) -> common.Ticket:
        opts = route.options
        labels = opts.get("labels") or []
        labels = [labels] if isinstance(labels, str) else [str(x) for x in labels]
        fields: dict[str, Any] = dict(opts.get("fields") or {})
        fields.update({
            "project": {"key": str(opts["project"])},
            "issuetype": {"name": common.text_option(route, "issue_type", "Task")},
            "summary": delivery.one_line(common.text_option(route, "summary",
                                                            delivery.describe(fax))),
            "description": common.description(fax, route),
            # Jira labels cannot hold spaces.
            "labels": [*(x.replace(" ", "_") for x in labels), marker],
        })
        response = common.create_call(self.client, "/rest/api/2/issue", "jira create issue",
                                      json={"fields": fields})
        issue = common.json_of(response, "jira create issue")
        return self._ticket(issue, frozenset())  # attached next

    def attach(self, ticket: common.Ticket, files: list[delivery.OutFile]) -> None:
        for f in files:
            with f.path.open("rb") as content:
                common.call(self.client, "POST", f"/rest/api/2/issue/{ticket.id}/attachments",
                            "jira attach", self.policy, repeatable=False,
                            headers={"X-Atlassian-Token": "no-check"},
                            files={"file": (f.name, content.read(), f.content_type)})

    def _ticket(self, issue: Any, attachments: frozenset[str]) -> common.Ticket:
        if not isinstance(issue, dict) or not issue.get("key"):
            raise delivery.transient("jira: answer without an issue key")
        key = str(issue["key"])
        return common.Ticket(key, f"{self.base}/browse/{key}", attachments)
