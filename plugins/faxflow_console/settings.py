"""`[plugins.console]`: who may sign in to the web console, and how.

Parsed without the ``console`` extra, so `faxflow check` and the workers (which load this
plugin too) validate the table on machines without a web server installed. What only the
running console needs (a secret, someone able to sign in) is checked by `faxflow console`
when it starts (`startup_problems`), so one configuration file can serve the workers, which
never see the console's secrets, and the console.

    [plugins.console]
    listen = "127.0.0.1:8090"
    secret = "${FAXFLOW_CONSOLE_SECRET}"      # or secret_file = "/run/secrets/console_secret"
    session_minutes = 480
    base_url = "https://fax.example.org"      # https: the session cookie is Secure
    [plugins.console.users.alice]
    password_hash = "$argon2id$v=19$m=65536,t=3,p=4$..."   # faxflow console hash-password
    role = "operator"                         # or "viewer" (the default)
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

ROLES = ("viewer", "operator")
OPTIONS = ("listen", "secret", "session_minutes", "base_url", "users", "trusted_header",
           "trusted_proxies", "trusted_role")
USER_OPTIONS = ("password_hash", "role")
DEFAULT_LISTEN = "127.0.0.1:8090"
MIN_SECRET = 32
# What argon2-cffi writes (PHC string format); checked here without importing argon2.
ARGON2 = re.compile(r"^\$argon2(id|i|d)\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$")
HEADER = re.compile(r"^[A-Za-z0-9-]{1,64}$")
USER_NAME = re.compile(r"^[\w.@+-]{1,64}$")
LISTEN = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]*):(\d{1,5})$")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    password_hash: str | None  # None: only through the trusted header


@dataclass(frozen=True, slots=True)
class Settings:
    listen: str = DEFAULT_LISTEN
    secret: str = ""
    session_minutes: int = 480
    base_url: str = ""
    users: dict[str, User] = field(default_factory=dict)
    trusted_header: str | None = None
    trusted_proxies: tuple[Network, ...] = ()
    trusted_role: str | None = None

    @property
    def secure(self) -> bool:
        """Served over https (as people reach it): the session cookie gets Secure."""
        return self.base_url.lower().startswith("https://")

    @property
    def prefix(self) -> str:
        """The path the console lives under ("" or e.g. "/fax-console"), from base_url."""
        return urlsplit(self.base_url).path.rstrip("/") if self.base_url else ""

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)

    def trusts(self, address: str | None) -> bool:
        """Whether `address` (the TCP peer) is one of the trusted proxies."""
        if not address or not self.trusted_proxies:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.trusted_proxies)


def parse(table: dict[str, Any]) -> tuple[Settings, list[str]]:
    """Settings from a ``[plugins.console]`` table and its problems as "key: message"."""
    problems = [f"{k}: unknown option (known: {', '.join(OPTIONS)})" for k in table
                if k not in OPTIONS]
    values: dict[str, Any] = {}

    listen = table.get("listen", DEFAULT_LISTEN)
    match = LISTEN.match(listen) if isinstance(listen, str) else None
    if match is None or not 0 < int(match.group(2)) < 65536:
        problems.append("listen: must be host:port, e.g. 127.0.0.1:8090")
    else:
        values["listen"] = listen

    secret = table.get("secret", "")
    if not isinstance(secret, str):
        problems.append("secret: must be a string (use ${ENV_VAR} or secret_file)")
    elif secret and len(secret) < MIN_SECRET:
        problems.append(f"secret: too short: at least {MIN_SECRET} characters of random "
                        "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(48))')")
    else:
        values["secret"] = secret

    minutes = table.get("session_minutes", 480)
    if isinstance(minutes, str) and minutes.strip().isdigit():
        minutes = int(minutes)
    if not isinstance(minutes, int) or isinstance(minutes, bool) or not 5 <= minutes <= 10080:
        problems.append("session_minutes: must be a whole number from 5 to 10080 (a week)")
    else:
        values["session_minutes"] = minutes

    base_url = table.get("base_url", "")
    if not isinstance(base_url, str):
        problems.append("base_url: must be a string")
    elif base_url:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
                or parts.fragment or parts.username or parts.password:
            problems.append("base_url: must be the console's public address, e.g. "
                            "https://fax.example.org or https://example.org/fax-console")
        else:
            values["base_url"] = base_url

    users: dict[str, User] = {}
    raw_users = table.get("users", {})
    if not isinstance(raw_users, dict):
        problems.append("users: must be a table of users ([plugins.console.users.<name>])")
        raw_users = {}
    for name, user in raw_users.items():
        key = f"users.{name}"
        if not USER_NAME.match(name):
            problems.append(f"{key}: a user name is letters, digits and . _ @ + - "
                            "(at most 64)")
            continue
        if not isinstance(user, dict):
            problems.append(f"{key}: must be a table with password_hash and role")
            continue
        problems += [f"{key}.{k}: unknown option (known: {', '.join(USER_OPTIONS)})"
                     for k in user if k not in USER_OPTIONS]
        role = user.get("role", "viewer")
        if role not in ROLES:
            problems.append(f"{key}.role: must be viewer or operator")
            continue
        hashed = user.get("password_hash", "")
        if not isinstance(hashed, str) or (hashed and not ARGON2.match(hashed)):
            problems.append(f"{key}.password_hash: not an argon2 hash; make one with "
                            "`faxflow console hash-password`")
            continue
        users[name] = User(name, role, hashed or None)
    values["users"] = users

    header = table.get("trusted_header")
    if header is not None:
        if not isinstance(header, str) or not HEADER.match(header):
            problems.append("trusted_header: must be a header name, e.g. X-Forwarded-User")
        else:
            values["trusted_header"] = header
    proxies = table.get("trusted_proxies", [])
    networks: list[Network] = []
    if not isinstance(proxies, list) or not all(isinstance(p, str) for p in proxies):
        problems.append("trusted_proxies: must be a list of addresses or networks, "
                        "e.g. [\"127.0.0.1\", \"10.0.0.5/32\"]")
    else:
        for i, text in enumerate(proxies):
            try:
                networks.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                problems.append(f"trusted_proxies.{i}: {text!r} is not an address or network")
    values["trusted_proxies"] = tuple(networks)
    if header is not None and not proxies:
        problems.append("trusted_proxies: required with trusted_header: the addresses of "
                        "the reverse proxies allowed to name the user")
    if proxies and header is None:
        problems.append("trusted_header: trusted_proxies is set but no trusted_header")
    role = table.get("trusted_role")
    if role is not None:
        if role not in ROLES:
            problems.append("trusted_role: must be viewer or operator")
        elif header is None:
            problems.append("trusted_role: only used with trusted_header")
        else:
            values["trusted_role"] = role
    return Settings(**values), problems


def startup_problems(settings: Settings) -> list[str]:
    """What `faxflow console` needs beyond a valid table."""
    problems = []
    if not settings.secret:
        problems.append("secret: required to run the console: the key that signs sessions, "
                        "from ${ENV_VAR} or secret_file (at least 32 random characters)")
    if not any(u.password_hash for u in settings.users.values()) and not \
            settings.trusted_header:
        problems.append("users: nobody can sign in: add [plugins.console.users.<name>] with "
                        "a password_hash (faxflow console hash-password), or trusted_header")
    return problems
