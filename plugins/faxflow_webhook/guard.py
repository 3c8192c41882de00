"""Which addresses a webhook may connect to: the judgement alone, pure and without I/O.

A fax's text can end up in a webhook URL, so its host is hostile. `why_refused` tells why an
address is not a public one (or None when it is). It judges the address itself and every
IPv4 address embedded in it, because several IPv6 forms reach an IPv4 address: a dual-stack
socket connects ``::ffff:127.0.0.1`` to 127.0.0.1, a NAT64 gateway translates
``64:ff9b::7f00:1`` to 127.0.0.1, 6to4 and Teredo tunnel to the IPv4 they name, and stacks
that still know the deprecated IPv4-compatible ``::127.0.0.1`` send it to 127.0.0.1.

Python's ``is_global`` alone is not enough: on 3.11.7 it calls ``::127.0.0.1``,
``::ffff:0:7f00:1``, ``64:ff9b::7f00:1``, ``64:ff9b:1::/48``, ``2002:7f00:1::``,
``fec0::/10``, ``3fff::/20``, every multicast address and 192.0.0.9 global. So the refused
networks are listed here, each with the name a person reads in the reason, and
``is_global``/``is_reserved`` only catch what a newer Python knows besides.

Allowed wrappers: an IPv4-mapped address and the well-known NAT64 prefix ``64:ff9b::/96``
are judged by the IPv4 address they reach, so ``64:ff9b::808:808`` (8.8.8.8) passes: on an
IPv6-only host with DNS64 that is how every IPv4-only receiver resolves, and a NAT64 gateway
must not translate the well-known prefix to non-global IPv4 (RFC 6052 3.1), which we refuse
anyway. Every other embedding form is refused even around a public IPv4 address: the
IPv4-compatible (``::/96``) and IPv4-translated (``::ffff:0:0:0/96``) forms are deprecated
and not routable on the Internet, 6to4 and Teredo are not globally reachable (IANA
special-purpose registry; RFC 7526 deprecated 6to4 relays), and where the IPv4 address sits
in the local-use NAT64 prefix ``64:ff9b:1::/48`` depends on the local network (RFC 8215), so
it cannot be judged. The embedded address is still named in the reason when it is refused
itself.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

IPAddress = IPv4Address | IPv6Address

# First match wins: the more specific network goes first.
REFUSED_V4: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(net), why) for net, why in (
        ("0.0.0.0/32", "unspecified"),
        ("0.0.0.0/8", "this network"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared address space (CGNAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast (deprecated)"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
    ))

IPV4_MAPPED = IPv6Network("::ffff:0:0/96")
IPV4_TRANSLATED = IPv6Network("::ffff:0:0:0/96")
IPV4_COMPATIBLE = IPv6Network("::/96")
NAT64 = IPv6Network("64:ff9b::/96")
NAT64_LOCAL = IPv6Network("64:ff9b:1::/48")

REFUSED_V6: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(net), why) for net, why in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        (str(IPV4_COMPATIBLE), "IPv4-compatible (deprecated)"),
        (str(IPV4_TRANSLATED), "IPv4-translated (obsolete)"),
        (str(NAT64_LOCAL), "local-use NAT64 prefix"),
        ("100::/64", "discard-only"),
        ("2001::/32", "Teredo"),
        ("2001::/23", "IETF protocol assignments"),
        ("2001:db8::/32", "documentation"),
        ("2002::/16", "6to4"),
        ("3fff::/20", "documentation"),
        ("fc00::/7", "unique local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),
        ("ff00::/8", "multicast"),
    ))


def parse(address: str | IPAddress) -> IPAddress:
    """The address without its zone id (``fe80::1%eth0`` -> ``fe80::1``): the zone picks an
    interface, it does not change what kind of address it is. Raises ValueError."""
    if isinstance(address, IPv6Address) and address.scope_id:
        return IPv6Address(int(address))
    if isinstance(address, IPv4Address | IPv6Address):
        return address
    return ip_address(address.split("%", 1)[0])


def embedded_ipv4(ip: IPv6Address) -> list[IPv4Address]:
    """Every IPv4 address `ip` carries in a known place: IPv4-mapped, IPv4-translated,
    IPv4-compatible (but not ``::`` and ``::1``), NAT64 (the /96 place, also in the local-use
    prefix), 6to4, and both the Teredo server and client."""
    found: list[IPv4Address] = []
    low32 = IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    elif (any(ip in net for net in (IPV4_TRANSLATED, NAT64, NAT64_LOCAL))
          or (ip in IPV4_COMPATIBLE and int(ip) > 1)):  # :: and ::1 are not IPv4 addresses
        found.append(low32)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


def why_refused(address: str | IPAddress) -> str | None:
    """Why a webhook must not connect to `address`, or None when it is public.

    The reason is short and names the embedded address when that is the refused one, e.g.
    ``"loopback"`` or ``"embeds 127.0.0.1, loopback"``. Raises ValueError for a text that is
    not an IP address.
    """
    ip = parse(address)
    if isinstance(ip, IPv4Address):
        return _why_v4(ip)
    for inner in embedded_ipv4(ip):
        reason = _why_v4(inner)
        if reason is not None:
            return f"embeds {inner}, {reason}"
    if ip in IPV4_MAPPED or ip in NAT64:
        return None  # judged above by the IPv4 address it reaches
    for net, why in REFUSED_V6:
        if ip in net:
            return why
    return _fallback(ip)


def _why_v4(ip: IPv4Address) -> str | None:
    for net, why in REFUSED_V4:
        if ip in net:
            return why
    return _fallback(ip)


def _fallback(ip: IPAddress) -> str | None:
    """What Python knows beyond the lists (e.g. IPv6 outside 2000::/3 is reserved)."""
    if ip.is_reserved:
        return "reserved"
    if ip.is_multicast:
        return "multicast"
    if not ip.is_global:
        return "not globally reachable"
    return None
