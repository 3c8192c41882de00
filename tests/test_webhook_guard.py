"""The webhook's SSRF guard: the pure judgement of an address (plugins/faxflow_webhook/
guard.py) and, end to end over real HTTP, that a hostile URL never reaches a receiver on
127.0.0.1 (plugins/faxflow_webhook/connect.py)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

import faxflow_webhook
import pytest
from faxflow_webhook import connect
from faxflow_webhook.guard import why_refused
from servers import faxes
from servers.faxes import make_fax
from servers.http import FakeService, Reply, Request
from servers.webhook import Receiver

from faxflow.app import App
from faxflow.types import DeliveryResult, Outcome, Route

LOOPBACK = "embeds 127.0.0.1, loopback"

# (address, why it is refused or None when a webhook may connect to it)
JUDGEMENTS: list[tuple[str, str | None]] = [
    # IPv4
    ("8.8.8.8", None), ("1.1.1.1", None), ("93.184.215.14", None),
    ("0.0.0.0", "unspecified"), ("0.1.2.3", "this network"), ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"), ("10.1.2.3", "private"), ("172.16.0.1", "private"),
    ("172.31.255.255", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"), ("100.64.0.1", "shared address space (CGNAT)"),
    ("100.127.255.255", "shared address space (CGNAT)"),
    # 192.0.0.9 and .10 are global to Python 3.11 (PCP and TURN anycast); not a receiver
    ("192.0.0.9", "IETF protocol assignments"), ("192.0.0.10", "IETF protocol assignments"),
    ("192.0.2.1", "documentation"), ("198.51.100.1", "documentation"),
    ("203.0.113.1", "documentation"), ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"), ("192.88.99.1", "6to4 relay anycast (deprecated)"),
    ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"), ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    # IPv6 itself
    ("2606:4700::1111", None), ("2a00:1450:4001:80b::200e", None),
    ("::", "unspecified"), ("::1", "loopback"), ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"), ("fe80::1%2", "link-local"),
    ("fc00::1", "unique local"), ("fd12:3456::1", "unique local"),
    ("fec0::1", "site-local (deprecated)"), ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"), ("100::1", "discard-only"), ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"), ("2001:10::1", "IETF protocol assignments"),
    ("4000::1", "reserved"), ("::1:0:0:0", "reserved"),
    # IPv4-mapped ::ffff:0:0/96: the socket connects to the IPv4 address itself
    ("::ffff:127.0.0.1", LOOPBACK), ("::ffff:7f00:1", LOOPBACK),
    ("::ffff:10.0.0.1", "embeds 10.0.0.1, private"),
    ("::ffff:169.254.169.254", "embeds 169.254.169.254, link-local"),
    ("::ffff:0.0.0.0", "embeds 0.0.0.0, unspecified"), ("::ffff:8.8.8.8", None),
    # IPv4-compatible ::/96 (deprecated): refused even around a public address
    ("::127.0.0.1", LOOPBACK), ("::7f00:1", LOOPBACK), ("::a00:1", "embeds 10.0.0.1, private"),
    ("::169.254.169.254", "embeds 169.254.169.254, link-local"),
    ("::8.8.8.8", "IPv4-compatible (deprecated)"),
    # IPv4-translated ::ffff:0:0:0/96 (obsolete SIIT): likewise
    ("::ffff:0:7f00:1", LOOPBACK), ("::ffff:0:127.0.0.1", LOOPBACK),
    ("::ffff:0:c0a8:101", "embeds 192.168.1.1, private"),
    ("::ffff:0:808:808", "IPv4-translated (obsolete)"),
    # NAT64, well-known prefix: a DNS64 answer for an IPv4-only receiver; the gateway
    # reaches the embedded address, so a public one is allowed (see guard.py)
    ("64:ff9b::7f00:1", LOOPBACK), ("64:ff9b::127.0.0.1", LOOPBACK),
    ("64:ff9b::a9fe:a9fe", "embeds 169.254.169.254, link-local"),
    ("64:ff9b::6440:1", "embeds 100.64.0.1, shared address space (CGNAT)"),
    ("64:ff9b::808:808", None),
    # NAT64, local-use prefix: the IPv4 address's place depends on the network, so refused
    ("64:ff9b:1::7f00:1", LOOPBACK), ("64:ff9b:1::808:808", "local-use NAT64 prefix"),
    ("64:ff9b:1:ffff::808:808", "local-use NAT64 prefix"),
    # 6to4 2002:AABB:CCDD::/48 and Teredo 2001:0:SERVER:flags:port:~CLIENT
    ("2002:7f00:1::", LOOPBACK), ("2002:7f00:1:ffff::1", LOOPBACK),
    ("2002:a9fe:a9fe::1", "embeds 169.254.169.254, link-local"),
    ("2002:808:808::1", "6to4"),
    ("2001:0:808:808:8000:63bf:80ff:fffe", LOOPBACK),  # client 127.0.0.1
    ("2001:0:a00:1:8000:63bf:f7f7:f7f7", "embeds 10.0.0.1, private"),  # server 10.0.0.1
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "embeds 192.0.2.45, documentation"),
    ("2001:0:808:808:8000:63bf:f7f7:f7f7", "Teredo"),
]


@pytest.mark.parametrize("address,reason", JUDGEMENTS)
def test_judgement(address: str, reason: str | None) -> None:
    assert why_refused(address) == reason


def test_judgement_of_an_address_object_with_a_zone() -> None:
    assert why_refused(IPv6Address("fe80::1%eth0")) == "link-local"
    assert why_refused(IPv6Address("64:ff9b::808:808")) is None


# --- end to end: a hostile URL and a real receiver on 127.0.0.1 ------------------------------

@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()


def app_for(allow_private: bool = False) -> App:
    toml = ('[plugins.webhook]\nsecret = "hook-secret"\n'
            f"allow_private = {str(allow_private).lower()}\nretry_delay = 0.01\ntimeout = 5\n")
    return faxes.make_app({"webhook": faxflow_webhook}, toml)


def post(app: App, url: str, tmp_path: Path) -> DeliveryResult:
    result = app.deliver(make_fax(tmp_path / "spool"), Route("h/0", "webhook", {"url": url}),
                         False)
    assert result is not None
    return result


# {port} is the receiver's. Those marked REACHES connect to 127.0.0.1 on this Linux host when
# allowed (test_the_sink_sees_what_gets_through); the rest would need a tunnel or a NAT64
# gateway, which is exactly what the guard must not rely on being absent.
REACHES = ["http://2130706433:{port}/", "http://0x7f.1:{port}/", "http://127.1:{port}/",
           "http://017700000001:{port}/", "http://127\u30020\u30020\u30021:{port}/",
           "http://[::ffff:127.0.0.1]:{port}/", "http://[::ffff:7f00:1]:{port}/",
           "http://localhost:{port}/", "http://127.0.0.1:{port}/"]
HOSTILE: list[tuple[str, str]] = [
    ("http://[::127.0.0.1]:{port}/", f"::127.0.0.1 ({LOOPBACK})"),
    ("http://[::7f00:1]:{port}/", f"resolves to ::127.0.0.1 ({LOOPBACK})"),
    ("http://[::ffff:0:7f00:1]:{port}/", f"::ffff:0:7f00:1 ({LOOPBACK})"),
    ("http://[64:ff9b::7f00:1]:{port}/", f"64:ff9b::7f00:1 ({LOOPBACK})"),
    ("http://[64:ff9b::a9fe:a9fe]:{port}/", "embeds 169.254.169.254, link-local"),
    ("http://[64:ff9b:1::7f00:1]:{port}/", LOOPBACK),
    ("http://[2002:7f00:1::1]:{port}/", LOOPBACK),
    ("http://[2001:0:808:808:8000:63bf:80ff:fffe]:{port}/", LOOPBACK),
    ("http://[2001:0:a00:1:8000:63bf:f7f7:f7f7]:{port}/", "embeds 10.0.0.1, private"),
    ("http://[fe80::1%25lo]:{port}/", "(link-local)"),
    ("http://[::1]:{port}/", "::1 (loopback)"),
    ("http://[::]:{port}/", ":: (unspecified)"),
    ("http://0:{port}/", "resolves to 0.0.0.0 (unspecified)"),
    ("http://localhost:{port}/", "(loopback), a non-public"),  # 127.0.0.1 or ::1 first
    *[(url, "127.0.0.1 (loopback)") for url in REACHES if "::ffff" not in url
      and "localhost" not in url],
    *[(url, f"::ffff:127.0.0.1 ({LOOPBACK})") for url in REACHES if "::ffff" in url],
]


@pytest.mark.parametrize("url,reason", HOSTILE)
def test_hostile_url_refused_and_nothing_reaches_the_sink(
        receiver: Receiver, tmp_path: Path, url: str, reason: str) -> None:
    port = receiver.url.rsplit(":", 1)[1]
    result = post(app_for(), url.format(port=port), tmp_path)
    assert result.outcome is Outcome.PERMANENT, result
    assert reason in result.detail and "allow_private = true" in result.detail, result.detail
    assert receiver.requests == []


@pytest.mark.parametrize("url", REACHES)
def test_the_sink_sees_what_gets_through(receiver: Receiver, tmp_path: Path,
                                         url: str) -> None:
    """The control for the test above: allowed, these forms do reach the receiver, so its
    empty request list there means refused, not lost."""
    port = receiver.url.rsplit(":", 1)[1]
    result = post(app_for(allow_private=True), url.format(port=port), tmp_path)
    assert result.outcome is Outcome.DELIVERED, result
    assert len(receiver.deliveries) == 1


def test_url_httpx_cannot_parse_is_permanent(tmp_path: Path) -> None:
    for url in ("http://0177.0.0.1/", "http://[::1/", "http://[64:ff9b::1.2.3]/"):
        result = post(app_for(), url, tmp_path)
        assert result.outcome is Outcome.PERMANENT, (url, result)


# --- name resolution: mocked, because no DNS server we control runs here ----------------------

PUBLIC = "1.2.3.4"  # stands for the receiver's public address; its connection is redirected


class Network:
    """`socket.getaddrinfo` answering scripted addresses for one name (the next answer on
    each lookup, the last one repeated), and `socket.create_connection` recording where
    connections go and sending those to PUBLIC to the real receiver on 127.0.0.1."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str, answers: list[list[str]],
                 receiver_port: int) -> None:
        self.name, self.answers, self.lookups = name, list(answers), 0
        self.connected: list[str] = []
        real_getaddrinfo, real_connect = socket.getaddrinfo, socket.create_connection

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host != self.name:
                return real_getaddrinfo(host, port, *args, **kwargs)
            self.lookups += 1
            answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0)) if ":" in ip
                    else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
                    for ip in answer]

        def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
            self.connected.append(address[0])
            if address[0] == PUBLIC:
                address = ("127.0.0.1", receiver_port)
            return real_connect(address, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket, "create_connection", create_connection)


def port_of(receiver: FakeService) -> int:
    return int(receiver.url.rsplit(":", 1)[1])


def test_mocked_network_delivers_to_the_public_address(
        receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mock's own check: a name with a public address is delivered through it."""
    net = Network(monkeypatch, "hooks.example", [[PUBLIC]], port_of(receiver))
    result = post(app_for(), "http://hooks.example/faxes", tmp_path)
    assert result.outcome is Outcome.DELIVERED, result
    assert net.connected == [PUBLIC] and len(receiver.deliveries) == 1
    assert receiver.only().headers["host"] == "hooks.example"


def test_dns_rebinding_after_the_check_does_not_redirect_the_connection(
        receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The name answers a public address first and 127.0.0.1 on every later lookup (a
    rebinding DNS server, mocked: no DNS server we control runs here): the connection goes
    to the address that was judged, never to a later answer."""
    net = Network(monkeypatch, "rebind.example", [[PUBLIC], ["127.0.0.1"]],
                  port_of(receiver))
    result = post(app_for(), "http://rebind.example/faxes", tmp_path)
    assert result.outcome is Outcome.DELIVERED, result
    assert net.connected == [PUBLIC] and net.lookups == 1


def test_dns_rebinding_a_new_connection_is_judged_again(
        receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As above (mocked resolver), but the receiver drops its first answer, so the retry
    opens a new connection: it resolves and is judged again, and 127.0.0.1 is refused."""
    net = Network(monkeypatch, "rebind.example", [[PUBLIC], ["::ffff:0:7f00:1"]],
                  port_of(receiver))
    receiver.fail("POST", "/faxes")  # received, then the connection is dropped
    result = post(app_for(), "http://rebind.example/faxes", tmp_path)
    assert result.outcome is Outcome.PERMANENT, result
    assert f"rebind.example resolves to ::ffff:0:7f00:1 ({LOOPBACK})" in result.detail
    assert net.connected == [PUBLIC] and net.lookups == 2
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("answer", [
    [PUBLIC, "::127.0.0.1"], [PUBLIC, "64:ff9b::7f00:1"], ["2002:a00:1::1", PUBLIC],
    [PUBLIC, "::ffff:0:a9fe:a9fe"], [PUBLIC, "2001:0:808:808:8000:63bf:80ff:fffe"],
])
def test_one_inside_address_among_several_refuses_the_name(
        receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        answer: list[str]) -> None:
    """A name resolving to several addresses (mocked resolver) is refused when any one is
    not public, even if the first one is: nothing is connected to."""
    net = Network(monkeypatch, "multi.example", [answer], port_of(receiver))
    result = post(app_for(), "http://multi.example/faxes", tmp_path)
    assert result.outcome is Outcome.PERMANENT, result
    inside = next(ip for ip in answer if ip != PUBLIC)
    assert f"multi.example resolves to {inside} (embeds " in result.detail, result.detail
    assert net.connected == [] and receiver.requests == []


class Proxy(FakeService):
    """Stands for a proxy named in the environment: records and answers 200."""

    def handle(self, request: Request) -> Reply:
        return Reply(200, {"ok": True})


def test_environment_proxy_is_not_used(receiver: Receiver, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy would resolve and connect where the guard cannot judge (here it even sits on
    loopback): webhooks ignore HTTP(S)_PROXY and ALL_PROXY and connect directly to the
    judged address (resolver mocked as above)."""
    proxy = Proxy().start()
    try:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy.url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        net = Network(monkeypatch, "hooks.example", [[PUBLIC]], port_of(receiver))
        result = post(app_for(), "http://hooks.example/faxes", tmp_path)
        assert result.outcome is Outcome.DELIVERED, result
        assert proxy.requests == [] and len(receiver.deliveries) == 1
        assert net.connected == [PUBLIC]
    finally:
        proxy.stop()


def test_resolve_keeps_the_zone_of_a_link_local_address() -> None:
    (address,) = connect.resolve("fe80::1%25lo", 80)
    assert address.startswith("fe80::1%") and why_refused(address) == "link-local"
