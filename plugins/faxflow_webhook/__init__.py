"""Destination ``webhook``: POST the fax's metadata and documents (or links) to a URL.

Config::

    [plugins.webhook]
    secret = "${WEBHOOK_SECRET}"       # signs every body: X-Faxflow-Signature: sha256=<hex>
    allow_private = false              # true: allow loopback/private/link-local targets
    link_template = "https://files.example.com/{topic}/{fax_id}/{file}"   # for mode "link"
    max_body_bytes = 50000000
    timeout = 30

Route options: ``url`` (required), ``mode`` ("multipart": a ``metadata`` JSON part and one
``file`` part per document; "link": a JSON body with download links), ``content``
(original, searchable, both), ``link`` (the download URL in mode "link"; overrides
``link_template``).

Every request carries ``Idempotency-Key`` (the same for a fax and route on every attempt):
a receiver that already took it answers 2xx or 409, both count as delivered.

The URL may come from a template over sender text, so its host is hostile. Every connection
resolves the host and judges *every* address (and every IPv4 address embedded in an IPv6
one, `guard.why_refused`) before connecting to a judged address (`connect.GuardedBackend`);
a non-public address is refused (permanent) unless ``allow_private = true``. Redirects are
not followed. Proxies from the environment (``HTTP(S)_PROXY``, ``ALL_PROXY``) are not used:
a proxy resolves the name itself, out of the guard's reach, so webhooks always connect
directly (``trust_env=False``; the CA variables ``SSL_CERT_FILE``/``SSL_CERT_DIR`` still
apply).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from faxflow import delivery
from faxflow.app import App
from faxflow.config import Config, ConfigProblem
from faxflow.hookspecs import hookimpl
from faxflow.types import DeliveryResult, DestinationType, Fax, Notice, Route

from . import connect

ROUTE_OPTIONS: dict[str, tuple[type, ...]] = {
    "url": (str,), "mode": (str,), "content": (str,), "link": (str,),
}
PLUGIN_OPTIONS: dict[str, tuple[type, ...]] = {
    "secret": (str,), "allow_private": (bool,), "link_template": (str,),
    "max_body_bytes": (int,), "timeout": (int, float), "ca_file": (str,),
    **delivery.RETRY_OPTIONS,
}
MODES = ("multipart", "link")


def check_options(options: Mapping[str, Any]) -> list[str]:
    problems = delivery.check_types(options, ROUTE_OPTIONS, required=("url",))
    problems += delivery.check_choice(options, "mode", MODES)
    problems += delivery.check_choice(options, "content", delivery.CONTENT_CHOICES)
    url = options.get("url")
    if isinstance(url, str) and "{{" not in url and not url.startswith(("https://", "http://")):
        problems.append("url: must start with https:// or http://")
    return problems


@hookimpl
def faxflow_destination_types() -> list[DestinationType]:
    return [DestinationType("webhook", check_options,
                            "POST the fax (signed JSON and documents) to a URL.",
                            address_options=frozenset({"url"}))]


@hookimpl
def faxflow_check_config(config: Config) -> list[ConfigProblem]:
    opts = config.plugin_options("webhook")
    return [ConfigProblem(("plugins", "webhook", p.split(":")[0]), p.split(": ", 1)[1])
            for p in delivery.check_types(opts, PLUGIN_OPTIONS)]


@hookimpl
def faxflow_deliver(fax: Fax, route: Route, app: App) -> DeliveryResult | None:
    if route.type != "webhook":
        return None
    settings = app.plugin_options("webhook")
    try:
        return deliver(fax, route, settings)
    except delivery.DeliveryError as exc:
        return delivery.as_result(exc)


def deliver(fax: Fax, route: Route, settings: Mapping[str, Any]) -> DeliveryResult:
    key = delivery.stable_key(fax, route)
    return post(route, settings, key,
                lambda client: build_request(client, fax, route, settings, key))


@hookimpl
def faxflow_notify(notice: Notice, route: Route, app: App) -> DeliveryResult | None:
    """An alert digest as a signed JSON POST: {"event": "alert", "key", "subject", "text",
    "items", "link"}."""
    if route.type != "webhook":
        return None
    settings = app.plugin_options("webhook")
    body = json.dumps({"event": "alert", "key": notice.key, "subject": notice.subject,
                       "text": notice.text, "items": list(notice.items), "link": notice.link},
                      ensure_ascii=False, sort_keys=True, default=str).encode()

    def build(client: httpx.Client) -> httpx.Request:
        request = client.build_request("POST", str(route.options["url"]), content=body,
                                       headers={"Idempotency-Key": notice.key,
                                                "User-Agent": "faxflow",
                                                "Content-Type": "application/json"})
        sign(request, body, settings)
        return request

    try:
        return post(route, settings, notice.key, build)
    except delivery.DeliveryError as exc:
        return delivery.as_result(exc)


def post(route: Route, settings: Mapping[str, Any], key: str,
         build: Callable[[httpx.Client], httpx.Request]) -> DeliveryResult:
    """POST what `build` makes to the route's URL through the guard, retrying what may be
    retried (the receiver recognizes the Idempotency-Key)."""
    opts = route.options
    try:
        url = httpx.URL(str(opts.get("url", "")))
    except httpx.InvalidURL as exc:  # e.g. http://0177.0.0.1/ (httpx refuses octal IPv4)
        raise delivery.permanent(f"url: not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise delivery.permanent(f"url: not an http(s) URL: {opts.get('url')!r}")
    # The guard sits in the transport's connect step (see connect.py); trust_env=False keeps
    # environment proxies out, which would resolve and connect where we cannot judge.
    transport = connect.GuardedTransport(delivery.tls_verify(settings),
                                         bool(settings.get("allow_private", False)))
    with httpx.Client(transport=transport, trust_env=False, follow_redirects=False,
                      timeout=float(settings.get("timeout", 30))) as client:
        request = build(client)

        def post() -> httpx.Response:
            try:
                response = delivery.send(client, request, "webhook")
            except connect.Refused as exc:
                raise delivery.permanent(str(exc)) from None
            except connect.Unresolved as exc:
                raise delivery.transient(str(exc)) from None
            except delivery.DeliveryError as exc:
                # Resending is safe: the receiver recognizes the Idempotency-Key.
                exc.sent = False
                raise
            if response.status_code == 409:
                return response
            if response.is_redirect:
                raise delivery.permanent(f"webhook: HTTP {response.status_code} redirect to "
                                         f"{response.headers.get('location')!r} (not followed)")
            if not response.is_success:
                error = delivery.http_error(response, "webhook")
                error.sent = False
                raise error
            return response

        response = delivery.retry(post, delivery.policy_from(settings), what="webhook")
    if response.status_code == 409:
        return DeliveryResult.delivered(f"{url}: already delivered (409)", reference=key)
    return DeliveryResult.delivered(f"{url}: HTTP {response.status_code}", reference=key)


def build_request(client: httpx.Client, fax: Fax, route: Route, settings: Mapping[str, Any],
                  key: str) -> httpx.Request:
    opts = route.options
    mode = str(opts.get("mode", "multipart"))
    if mode not in MODES:
        raise delivery.permanent(f"mode: must be one of {', '.join(MODES)}")
    files = delivery.files_to_send(fax, str(opts.get("content", "original")))
    meta: dict[str, Any] = {"event": "fax", "delivery_id": key, "route": route.key,
            "fax": delivery.metadata(fax, text=True)}
    limit = int(settings.get("max_body_bytes", 50_000_000))
    if mode == "multipart" and sum(f.size for f in files) > limit:
        if not (opts.get("link") or settings.get("link_template")):
            raise delivery.permanent(f"webhook: documents exceed max_body_bytes ({limit}) and "
                                     "no link or link_template is configured")
        mode = "link"
    headers = {"Idempotency-Key": key, "User-Agent": "faxflow"}
    if mode == "link":
        meta["documents"] = [{"name": f.name, "size": f.size, "content_type": f.content_type,
                              "url": link_for(fax, route, settings, f.name, key)}
                             for f in files]
        body = json.dumps(meta, ensure_ascii=False, sort_keys=True).encode()
        request = client.build_request("POST", str(opts["url"]), content=body,
                                       headers={**headers,
                                                "Content-Type": "application/json"})
    else:
        parts: list[tuple[str, tuple[str | None, bytes, str]]] = [
            ("metadata", (None, json.dumps(meta, ensure_ascii=False, sort_keys=True).encode(),
                          "application/json"))]
        parts += [("file", (f.name, f.path.read_bytes(), f.content_type)) for f in files]
        request = client.build_request("POST", str(opts["url"]), files=parts, headers=headers)
    sign(request, request.read(), settings)
    return request


def sign(request: httpx.Request, body: bytes, settings: Mapping[str, Any]) -> None:
    secret = settings.get("secret")
    if secret:
        digest = hmac.new(str(secret).encode(), body, hashlib.sha256).hexdigest()
        request.headers["X-Faxflow-Signature"] = f"sha256={digest}"


def link_for(fax: Fax, route: Route, settings: Mapping[str, Any], file: str, key: str) -> str:
    if route.options.get("link"):
        return str(route.options["link"])
    template = settings.get("link_template")
    if not template:
        raise delivery.permanent("link: mode link needs a link option or link_template")
    return str(template).format(topic=fax.topic, fax_id=fax.id, file=file, key=key)
