"""When to try again and how long to wait: exponential backoff with full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

# 520 is Retarus' (and Cloudflare's) "unknown error"; 502/504 come from proxies in between.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 520})

# Network trouble worth another try: refused/reset connections, timeouts, a connection
# closed before the answer was complete, a body that could not be decoded.
RETRY_EXCEPTIONS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.DecodingError,
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5  # in total, the first try included
    base_delay: float = 0.5
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based).

        The server's Retry-After wins when it gave one (capped at max_delay); otherwise full
        jitter, so that several pollers that failed together do not retry together.
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as delta-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max((when - now).total_seconds(), 0.0)
