"""Mail headers from hostile text: what a fax sender writes must never become a header.

Removing line breaks is not enough. Python's email package parses every header value it is
given and *decodes* RFC 2047 encoded words (``=?utf-8?q?a=0D=0ABcc:...?=``), then writes the
decoded text, line breaks included, into the message. So header text is decoded the way the
email package would decode it, then cleaned, until nothing changes (`header_text`); addresses
must parse as exactly one mailbox each (`mailbox`); and the serialized message is parsed back
and compared with what was meant before a byte goes to the server (`verify`).
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage

from faxflow import delivery

# An addr-spec we can hand to any server without SMTPUTF8: dot-atom local part, host name.
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDR_SPEC = re.compile(rf"({_LOCAL})@({_LABEL}(?:\.{_LABEL})*)")
_NAME_ADDR = re.compile(r"(.*?)<([^<>]*)>")
_ROUNDS = 8  # each round removes one layer of encoding; deeper nesting is refused below


class AddressError(ValueError):
    """Text that is not exactly one acceptable mailbox; the message says why."""


def header_text(text: str, limit: int = 250) -> str:
    """Text that stays one line in a header however the mail is parsed: encoded words
    decoded as the email package decodes them, control and format characters (CR, LF, NUL,
    bidi overrides) replaced, repeated until stable, at most `limit` characters."""
    value = delivery.one_line(text, limit)
    for _ in range(_ROUNDS):
        decoded = delivery.one_line(str(email.policy.default.header_factory("subject", value)),
                                    limit)
        if decoded == value:
            return value
        value = decoded
    # Still decoding after many rounds: a deliberate nest. Break the encoded-word markers.
    return delivery.one_line(value.replace("=?", "= ?"), limit)


@dataclass(frozen=True, slots=True)
class Mailbox:
    name: str  # display name, header-safe ("" for none)
    address: str  # addr-spec, ASCII

    def header(self) -> Address:
        local, _, domain = self.address.rpartition("@")
        return Address(display_name=self.name, username=local, domain=domain)


def mailbox(item: str) -> Mailbox:
    """Exactly one mailbox, ``addr@host`` or ``Name <addr@host>``; AddressError otherwise.

    Commas, semicolons, angle brackets beyond the one pair, control characters and NUL are
    refused rather than cleaned: a recipient that a sender's text could change must fail.
    """
    if any(ord(c) < 32 or ord(c) == 127 for c in item):
        raise AddressError(f"{item!r}: control characters in an address")
    if "," in item or ";" in item:
        raise AddressError(f"{item!r}: one address per item (use a list for several)")
    text = item.strip()
    match = _NAME_ADDR.fullmatch(text)
    name, spec = (match.group(1).strip(), match.group(2).strip()) if match else ("", text)
    if any(c in name for c in "<>") or (match is None and any(c in text for c in "<>")):
        raise AddressError(f"{item!r}: not one address")
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1]
    if '"' in name or "\\" in name:
        raise AddressError(f"{item!r}: quotes in the display name")
    parsed = _ADDR_SPEC.fullmatch(spec)
    if parsed is None:
        raise AddressError(f"{item!r}: not an address of the form name@host")
    return Mailbox(header_text(name, 100), spec)


def mailboxes(value: str | Sequence[str]) -> list[Mailbox]:
    """One mailbox per item of a string or list; AddressError names the first bad one."""
    items = [value] if isinstance(value, str) else list(value)
    if not items:
        raise AddressError("no address")
    return [mailbox(str(item)) for item in items]


def verify(data: bytes, message: EmailMessage, recipients: Sequence[Mailbox]) -> None:
    """Parse the serialized message back and check that its header block is exactly the one
    built: the same headers in the same order, the same decoded values, one line each, and
    To/Cc naming exactly `recipients`. Raises AddressError on any difference, so a mail that
    a receiver would read differently is never sent."""
    parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(
        data, headersonly=True)
    built = [(k.lower(), str(v)) for k, v in message.items()]
    got = [(k.lower(), str(v)) for k, v in parsed.items()]
    if [k for k, _ in got] != [k for k, _ in built]:
        raise AddressError(f"headers would arrive as {[k for k, _ in got]}, "
                           f"not {[k for k, _ in built]}")
    for (name, want), (_, have) in zip(built, got, strict=True):
        # Folding may move whitespace; a line break or NUL in the unfolded value may not be.
        if any(c in have for c in "\r\n\0") or have.split() != want.split():
            raise AddressError(f"header {name} would arrive changed")
    addresses = [a.addr_spec for h in ("to", "cc") for v in parsed.get_all(h, [])
                 for a in getattr(v, "addresses", ())]
    if addresses != [r.address for r in recipients]:
        raise AddressError(f"recipients would parse as {addresses}")
