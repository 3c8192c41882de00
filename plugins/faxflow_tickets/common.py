"""What the ticketing destinations share: one HTTP client per service, option checks, and the
delivery flow "look for our marker, else upload and create, then complete attachments".

Every ticket carries a marker derived from `delivery.stable_key` (a Jira label, a Zendesk
external_id, a line in a Redmine description). It is searched before every create, not only
when the core says `uncertain`: a create whose answer was lost ends the attempt as transient,
and the next attempt must not open a second ticket.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from faxflow import delivery
from faxflow.config import Config, ConfigProblem
from faxflow.types import DeliveryResult, Fax, Route

log = logging.getLogger("faxflow.tickets")


@dataclass(frozen=True, slots=True)
class Ticket:
    id: str
    url: str | None = None
    # Names of the files attached; None when attachments travel with the create call, so
    # a ticket that exists is complete.
    attachments: frozenset[str] | None = None


class TicketSystem(Protocol):
    name: str

    def find(self, marker: str) -> Ticket | None: ...

    def create(self, fax: Fax, route: Route, marker: str,
               files: list[delivery.OutFile]) -> Ticket: ...

    def attach(self, ticket: Ticket, files: list[delivery.OutFile]) -> None: ...


def deliver_with(name: str, settings: Mapping[str, Any], fax: Fax, route: Route,
                 uncertain: bool, open_client: Callable[[Mapping[str, Any]], httpx.Client],
                 system: Callable[[httpx.Client, Mapping[str, Any], delivery.RetryPolicy],
                                  TicketSystem]) -> DeliveryResult:
    """What every ticketing hook does: check the settings, open one client, deliver."""
    try:
        settings_or_error(settings, name)
    except delivery.DeliveryError as exc:
        return delivery.as_result(exc)
    policy = delivery.policy_from(settings)
    with open_client(settings) as client:
        return deliver(system(client, settings, policy), fax, route, uncertain, policy)


def deliver(system: TicketSystem, fax: Fax, route: Route, uncertain: bool,
            policy: delivery.RetryPolicy = delivery.DEFAULT_POLICY) -> DeliveryResult:
    try:
        key = delivery.stable_key(fax, route)
        marker = f"faxflow-{key[:32]}"
        files = delivery.files_to_send(fax, str(route.options.get("content", "original")))
        ticket = delivery.create_once(
            find=lambda: system.find(marker),
            create=lambda: system.create(fax, route, marker, files),
            uncertain=uncertain, always_check=True, policy=policy)
        # A ticket found from an earlier attempt may lack attachments (a crash between the
        # create and the attach calls of a two-step API).
        have = ticket.attachments
        missing = [] if have is None else [f for f in files if f.name not in have]
        if missing:
            delivery.retry(lambda: system.attach(ticket, missing), policy,
                           what=f"{system.name} attach")
    except delivery.DeliveryError as exc:
        return delivery.as_result(exc)
    where = ticket.url or f"{system.name} #{ticket.id}"
    return DeliveryResult.delivered(f"ticket {where}", reference=ticket.id)


# --- HTTP -----------------------------------------------------------------------------------


def make_client(base_url: str, settings: Mapping[str, Any], *,
                headers: Mapping[str, str] | None = None,
                auth: httpx.Auth | tuple[str, str] | None = None) -> httpx.Client:
    return httpx.Client(base_url=base_url.rstrip("/"), headers=dict(headers or {}), auth=auth,
                        timeout=float(settings.get("timeout", 30)), follow_redirects=False,
                        verify=delivery.tls_verify(settings))


def call(client: httpx.Client, method: str, url: str, what: str,
         policy: delivery.RetryPolicy = delivery.DEFAULT_POLICY, repeatable: bool = True,
         **kwargs: Any) -> httpx.Response:
    """A request retried on transient errors. `repeatable`: repeating it after a lost answer
    creates nothing a person sees twice (a lookup, an upload that only yields a token)."""
    def step() -> httpx.Response:
        request = client.build_request(method, url, **kwargs)
        try:
            return delivery.check_response(delivery.send(client, request, what), what)
        except delivery.DeliveryError as exc:
            exc.sent = exc.sent and not repeatable
            raise
    return delivery.retry(step, policy, what=what)


def create_call(client: httpx.Client, url: str, what: str, **kwargs: Any) -> httpx.Response:
    """A create request, sent once: create_once decides about repeating it."""
    request = client.build_request("POST", url, **kwargs)
    return delivery.check_response(delivery.send(client, request, what), what)


def json_of(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise delivery.transient(f"{what}: answer is not JSON "
                                 f"({response.headers.get('content-type')})") from None


# --- Options --------------------------------------------------------------------------------


def check_plugin(config: Config, name: str, spec: Mapping[str, tuple[type, ...]],
                 required: tuple[str, ...],
                 extra: Callable[[Mapping[str, Any]], list[str]] | None = None
                 ) -> list[ConfigProblem]:
    """Check ``[plugins.<name>]`` when present (an unused ticket system needs no table)."""
    opts = config.plugin_options(name)
    if not opts:
        return []
    found = delivery.check_types(opts, spec, required)
    if extra:
        found += extra(opts)
    url = opts.get("url")
    if isinstance(url, str) and not url.startswith(("https://", "http://")):
        found.append("url: must start with https://")
    return [ConfigProblem(("plugins", name, p.split(":")[0]), p.split(": ", 1)[1])
            for p in found]


def settings_or_error(settings: Mapping[str, Any], name: str) -> None:
    if not settings.get("url"):
        # The operator's to fix: the fax waits (transient) instead of being quarantined.
        raise delivery.transient(f"{name}: [plugins.{name}] url is not configured")


def text_option(route: Route, name: str, default: str) -> str:
    value = route.options.get(name)
    return str(value) if value not in (None, "") else default


def description(fax: Fax, route: Route, name: str = "description") -> str:
    """The ticket text: the route's (templated) text or a summary of the fax."""
    if route.options.get(name):
        return str(route.options[name])
    return delivery.summary(fax)
