"""The webhook's connection step: resolve the host, judge every address, connect only to a
judged one.

The judgement happens inside httpcore's ``connect_tcp``, for every new connection (a retry
that reconnects resolves and judges again), and the socket connects to the numeric address
that was judged, so there is no window in which DNS could answer differently (rebinding).
The URL keeps its host name, so ``Host`` and TLS (SNI and the certificate check) use it.
Literal hosts (``[::127.0.0.1]``, ``2130706433``, ``0x7f.1``, ``127.1``) take the same path:
the resolver turns them into the address that is then judged and connected to.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable

import httpcore
import httpx

from . import guard


class Refused(Exception):
    """The host resolves to an address the guard refuses (permanent)."""


class Unresolved(Exception):
    """The host does not resolve (transient: DNS may be back later)."""


def resolve(host: str, port: int) -> list[str]:
    """The numeric addresses `host` resolves to, in the resolver's order, each with its zone
    (``fe80::1%2``) so that connecting to the text reaches the same address."""
    if ":" in host:  # an IPv6 literal; its zone comes URL-encoded: fe80::1%25eth0
        host = host.replace("%25", "%")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise Unresolved(f"webhook: cannot resolve {host}: {reason}") from None
    addresses: list[str] = []
    for info in infos:
        sockaddr = info[4]
        text = str(sockaddr[0])
        if len(sockaddr) == 4 and sockaddr[3] and "%" not in text:
            text = f"{text}%{sockaddr[3]}"
        if text not in addresses:
            addresses.append(text)
    return addresses


def judge(host: str, addresses: list[str]) -> None:
    """Raise `Refused` when any address is not public: a name that also resolves to an
    inside address is refused as a whole, whichever address a connection would try first."""
    for address in addresses:
        reason = guard.why_refused(address)
        if reason is None:
            continue
        what = (f"url: {address} ({reason}) is" if host in (address, address.split("%")[0])
                else f"url: {host} resolves to {address} ({reason}),")
        raise Refused(f"{what} a non-public address; set allow_private = true in "
                      "[plugins.webhook] to allow it")


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's network backend with the guard in its connect step."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                    ) -> httpcore.NetworkStream:
        addresses = resolve(host, port)
        if not self.allow_private:
            judge(host, addresses)
        error: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:  # numeric: connecting resolves nothing again
            try:
                return super().connect_tcp(address, port, timeout, local_address,
                                           socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None  # getaddrinfo never answers an empty list
        raise error


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport whose connections go through `GuardedBackend`, without a proxy."""

    def __init__(self, verify: ssl.SSLContext | bool, allow_private: bool) -> None:
        context = httpx.create_ssl_context(verify=verify)
        super().__init__(verify=context)
        # httpx takes no network backend, httpcore's pool does: replace the pool httpx built
        # (same TLS context). tests/test_webhook_guard.py fails if a connection bypasses it.
        self._pool = httpcore.ConnectionPool(
            ssl_context=context, network_backend=GuardedBackend(allow_private))
