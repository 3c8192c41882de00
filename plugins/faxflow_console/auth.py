"""Who is asking: passwords (argon2), sign-in limits, signed session cookies, CSRF tokens and
the trusted reverse-proxy header. Needs the ``console`` extra (argon2-cffi, itsdangerous).

Sessions are cookies signed with `[plugins.console] secret` (itsdangerous); the signature's
timestamp is the sign-in time, so a session ends `session_minutes` after sign-in whatever
happens meanwhile. Each session carries a random id (logout revokes it in this process), a
CSRF token, and a fingerprint of the user's password hash: changing or removing a user's
password in the configuration ends that user's sessions at the next request after the
reload. Roles are read from the configuration at every request.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from .settings import Settings, User

COOKIE = "faxflow_console"
HASHER = PasswordHasher()  # argon2id with argon2-cffi's current recommended parameters
# Verified when the user name is unknown, so an unknown name costs the same as a wrong
# password (an attacker cannot tell from the time which names exist).
_DUMMY = HASHER.hash(secrets.token_urlsafe(16))
# argon2 takes ~64 MiB and tens of ms per check: at most two at once.
_VERIFYING = threading.BoundedSemaphore(2)


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify(user: User | None, password: str) -> bool:
    """Whether `password` is `user`'s; the same work whether or not the user exists."""
    hashed = user.password_hash if user is not None and user.password_hash else _DUMMY
    with _VERIFYING:
        try:
            ok: bool = HASHER.verify(hashed, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
    return ok and user is not None and user.password_hash is not None


def fingerprint(user: User) -> str:
    """Changes when the user's password hash changes (ends their sessions)."""
    source = user.password_hash or "trusted-header"
    return hashlib.sha256(source.encode()).hexdigest()[:16]


class Limiter:
    """Failed sign-ins per key (a user name as typed, a client address) in a sliding
    window; a key at its limit is refused without checking the password."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def blocked(self, key: str) -> bool:
        with self._lock:
            return len(self._recent(key, self.clock())) >= self.limit

    def failed(self, key: str) -> None:
        with self._lock:
            now = self.clock()
            if key not in self._failures and len(self._failures) >= self.max_keys:
                self._forget_old(now)
            times = self._recent(key, now)
            times.append(now)
            self._failures[key] = times

    def clear(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def _forget_old(self, now: float) -> None:
        for key in [k for k, t in self._failures.items()
                    if not t or t[-1] <= now - self.window]:
            del self._failures[key]
        while len(self._failures) >= self.max_keys:  # still full: drop the oldest
            del self._failures[next(iter(self._failures))]


@dataclass(frozen=True, slots=True)
class Session:
    """What the cookie holds. `user` None: not signed in (the sign-in form's CSRF token)."""

    sid: str
    csrf: str
    user: str | None = None
    fingerprint: str = ""
    via: str = "password"  # or "header"

    @classmethod
    def new(cls, user: User | None = None, via: str = "password") -> Session:
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(32),
                   user.name if user else None, fingerprint(user) if user else "", via)


class Sessions:
    """Encode and check session cookies; remember logouts (in this process)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._revoked: dict[str, float] = {}
        self._lock = threading.Lock()

        class Signer(TimestampSigner):  # signs and checks ages with our clock
            def get_timestamp(self) -> int:
                return int(clock())

        self._signer = Signer

    def _serializer(self, settings: Settings) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(settings.secret, salt="faxflow-console-session",
                                      signer=self._signer)

    def encode(self, settings: Settings, session: Session) -> str:
        return self._serializer(settings).dumps(
            [session.sid, session.csrf, session.user, session.fingerprint, session.via])

    def decode(self, settings: Settings, cookie: str | None) -> Session | None:
        """The session in a cookie, None if absent, forged, expired or logged out."""
        if not cookie or not settings.secret:
            return None
        serializer = self._serializer(settings)
        try:  # an expired signature (SignatureExpired) is a BadSignature
            data = serializer.loads(cookie, max_age=settings.session_minutes * 60)
        except (BadSignature, ValueError, TypeError):
            return None
        if not isinstance(data, list) or len(data) != 5 or not all(
                isinstance(x, str) or x is None for x in data):
            return None
        session = Session(*data)
        with self._lock:
            if session.sid in self._revoked:
                return None
        return session

    def revoke(self, settings: Settings, session: Session) -> None:
        now = self.clock()
        with self._lock:
            self._revoked[session.sid] = now + settings.session_minutes * 60
            for sid in [s for s, until in self._revoked.items() if until < now]:
                del self._revoked[sid]


def current_user(settings: Settings, session: Session | None) -> User | None:
    """The signed-in user of a password session, if the configuration still has them with
    the same password."""
    if session is None or session.user is None or session.via != "password":
        return None
    user = settings.users.get(session.user)
    if user is None or user.password_hash is None or fingerprint(user) != session.fingerprint:
        return None
    return user


def header_user(settings: Settings, peer: str | None, value: str | None) -> User | None:
    """The user a trusted proxy names, if this request came from one of them. The header is
    ignored from any other address: anyone can send it, only the proxy is believed."""
    if not settings.trusted_header or not value or not settings.trusts(peer):
        return None
    name = value.strip()
    user = settings.users.get(name)
    if user is not None:
        return User(user.name, user.role, None)
    if settings.trusted_role and 0 < len(name) <= 64 and name.isprintable():
        return User(name, settings.trusted_role, None)
    return None
