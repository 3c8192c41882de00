"""What every destination needs, written once: retries, error classification, the
check-before-create pattern, stable keys, the files to send and safe paths.

A destination (built-in or third-party) raises `DeliveryError` for what went wrong, lets
`retry` repeat the steps that may be repeated, uses `create_once` for the one call that
creates something remote, and turns the end into a `DeliveryResult` with `as_result`::

    from faxflow import delivery

    def faxflow_deliver(fax, route, uncertain, app):
        if route.type != "mything":
            return None
        key = delivery.stable_key(fax, route)
        try:
            ref = delivery.create_once(
                find=lambda: client.find(key), create=lambda: client.create(key, ...),
                uncertain=uncertain)
        except delivery.DeliveryError as exc:
            return delivery.as_result(exc)
        return DeliveryResult.delivered(f"created {ref}", reference=ref)
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import random
import re
import ssl
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from faxflow.types import DeliveryResult, Fax, Route

# What plugins use (docs/api.md).
__all__ = [
    "CONTENT_CHOICES",
    "DEFAULT_POLICY",
    "MAX_COMPONENT_BYTES",
    "RETRY_OPTIONS",
    "DeliveryError",
    "OutFile",
    "RetryPolicy",
    "as_int",
    "as_result",
    "atomic_write",
    "check_choice",
    "check_response",
    "check_types",
    "create_once",
    "describe",
    "files_to_send",
    "http_error",
    "inside",
    "metadata",
    "one_line",
    "pages_line",
    "permanent",
    "policy_from",
    "retry",
    "retry_after_seconds",
    "safe_component",
    "safe_relative",
    "same_content",
    "send",
    "server_message",
    "stable_key",
    "summary",
    "tls_verify",
    "transient",
]

log = logging.getLogger("faxflow.delivery")
T = TypeVar("T")


# --- Errors ---------------------------------------------------------------------------------


class DeliveryError(Exception):
    """A delivery step failed.

    `transient`: it may work later (network, 5xx, 429, 4xx SMTP); otherwise never for this fax.
    `sent`: the request may have reached the server (outcome unknown), so it must not simply
    be repeated: check the target first. `retry_after`: seconds the server asked us to wait.

    Make one with `transient` or `permanent`; `message` is the text that ends up in the log,
    the journal and the quarantine record.
    """

    def __init__(self, message: str, *, transient: bool, sent: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.sent = sent
        self.retry_after = retry_after


def transient(message: str, *, sent: bool = False,
              retry_after: float | None = None) -> DeliveryError:
    """A `DeliveryError` for what may work later (a network error, a server down, a rate
    limit). `sent`: the request may have reached the server; `retry_after`: seconds the
    server asked for."""
    return DeliveryError(message, transient=True, sent=sent, retry_after=retry_after)


def permanent(message: str) -> DeliveryError:
    """A `DeliveryError` for what will never work for this fax (refused, invalid, too
    large)."""
    return DeliveryError(message, transient=False)


def as_result(error: DeliveryError) -> DeliveryResult:
    """The `DeliveryResult` for the error that ended a delivery: transient or permanent,
    its message as the detail."""
    if error.transient:
        return DeliveryResult.transient(error.message)
    return DeliveryResult.permanent(error.message)


# --- Retries inside one attempt -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long one attempt retries a transient step before giving up (the fax
    then comes back after its lock timeout, so keep this well under the lock timeout).

    `attempts` counts the tries, the first one included; the back-off starts at `base_delay`
    seconds and doubles up to `max_delay`, each wait drawn at random below it (jitter). Build
    it from a plugin's options with `policy_from`.
    """

    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 10.0
    # Longest Retry-After we wait for inside an attempt; longer ones end the attempt.
    max_retry_after: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try number `attempt + 1` (full jitter, AWS style)."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


DEFAULT_POLICY = RetryPolicy()
"""3 tries per attempt, the first back-off 0.5 s, at most 10 s: the policy when a plugin's
options set none (`policy_from`)."""
# Plugin options every destination plugin accepts to tune its retries.
RETRY_OPTIONS: dict[str, tuple[type, ...]] = {"retries": (int,), "retry_delay": (int, float)}
"""The options `policy_from` reads, with their types, to add to a destination's option spec
for `check_types`: ``{"url": (str,), **delivery.RETRY_OPTIONS}``."""


def policy_from(settings: Mapping[str, Any]) -> RetryPolicy:
    """The retry policy from a plugin's ``retries`` (tries per attempt, default 3) and
    ``retry_delay`` (first back-off in seconds, default 0.5) options."""
    attempts = settings.get("retries", DEFAULT_POLICY.attempts)
    delay = settings.get("retry_delay", DEFAULT_POLICY.base_delay)
    return RetryPolicy(attempts=max(1, int(attempts)), base_delay=max(0.0, float(delay)))


def retry(step: Callable[[], T], policy: RetryPolicy = DEFAULT_POLICY, *,
          what: str = "request", sleep: Callable[[float], None] = time.sleep) -> T:
    """Run `step`, repeating it on transient errors that are safe to repeat.

    An error with ``sent=True`` is not repeated (the server may have acted on it): that is
    `create_once`'s job. Permanent errors and the last transient one are raised.
    """
    attempt = 1
    while True:
        try:
            return step()
        except DeliveryError as exc:
            too_long = exc.retry_after is not None and exc.retry_after > policy.max_retry_after
            if not exc.transient or exc.sent or attempt >= policy.attempts or too_long:
                raise
            wait = policy.delay(attempt, exc.retry_after)
            log.info("%s failed (%s); try %d of %d in %.1f s", what, exc.message,
                     attempt + 1, policy.attempts, wait)
            sleep(wait)
            attempt += 1


def create_once(find: Callable[[], T | None], create: Callable[[], T], *, uncertain: bool,
                policy: RetryPolicy = DEFAULT_POLICY, always_check: bool = False,
                sleep: Callable[[float], None] = time.sleep) -> T:
    """Create something remote at most once: never resend blindly when the outcome is unknown.

    `find` looks for an earlier creation (by a marker the create call stores) and returns it
    or None; `create` creates it. `find` runs first when `uncertain` (an earlier attempt
    crashed mid-way) or `always_check`, and again after every create whose outcome is unknown
    (``DeliveryError.sent``) before creating again.
    """
    if uncertain or always_check:
        found = retry(find, policy, what="lookup", sleep=sleep)
        if found is not None:
            return found
    attempt = 1
    while True:
        try:
            return create()
        except DeliveryError as exc:
            if not exc.transient or attempt >= policy.attempts:
                raise
            sleep(policy.delay(attempt, exc.retry_after))
            attempt += 1
            if exc.sent:
                found = retry(find, policy, what="lookup", sleep=sleep)
                if found is not None:
                    return found


# --- HTTP -----------------------------------------------------------------------------------

# Statuses that may work later. 401/403 are here on purpose: they mean our configuration
# (a key, a permission) is wrong, not the fax; the fax should wait for the fix, and
# max_attempts still quarantines it if nobody fixes it.
TRANSIENT_STATUS = frozenset({401, 403, 408, 425, 429, 500, 502, 503, 504})


def retry_after_seconds(value: str | None) -> float | None:
    """Parse a Retry-After header: seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def server_message(response: httpx.Response, limit: int = 300) -> str:
    """The server's own words from an error answer, shortened, for logs and quarantine."""
    text = response.text.strip()
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("errorMessages", "errors", "error", "message", "description", "details"):
            if data.get(key):
                value = data[key]
                text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) \
                    else value
                break
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")


def http_error(response: httpx.Response, what: str) -> DeliveryError:
    """Classify an unsuccessful HTTP answer.

    401, 403, 408, 425, 429 and 5xx are transient (401 and 403 mean a key or a permission is
    wrong: the fax waits for the fix, until ``max_attempts``), anything else permanent. A 5xx
    answer to a POST is marked ``sent``: it may have created the thing. The message has
    `what`, the status and `server_message`; ``retry_after`` comes from Retry-After.
    """
    status = response.status_code
    message = f"{what}: HTTP {status} {response.reason_phrase}"
    detail = server_message(response)
    if detail:
        message += f": {detail}"
    if status in TRANSIENT_STATUS or status >= 500:
        # A 5xx to a create call may still have created it: treat the outcome as unknown.
        return transient(message, sent=status >= 500 and response.request.method == "POST",
                         retry_after=retry_after_seconds(response.headers.get("Retry-After")))
    return permanent(message)


def check_response(response: httpx.Response, what: str) -> httpx.Response:
    """`response` if it succeeded (2xx), else raise its `http_error`."""
    if response.is_success:
        return response
    raise http_error(response, what)


def tls_verify(settings: Mapping[str, Any]) -> ssl.SSLContext | bool:
    """What httpx's `verify` gets: the system's CAs, or those in the plugin's ``ca_file``."""
    ca_file = settings.get("ca_file")
    return ssl.create_default_context(cafile=str(ca_file)) if ca_file else True


def send(client: httpx.Client, request: httpx.Request, what: str) -> httpx.Response:
    """Send one request; network errors become `DeliveryError`, marked ``sent`` when the
    request may have reached the server."""
    try:
        return client.send(request)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise transient(f"{what}: cannot connect: {exc or type(exc).__name__}") from None
    except httpx.TimeoutException as exc:
        raise transient(f"{what}: timed out ({type(exc).__name__})", sent=True) from None
    except httpx.UnsupportedProtocol as exc:
        raise permanent(f"{what}: {exc}") from None
    except httpx.HTTPError as exc:
        raise transient(f"{what}: {exc or type(exc).__name__}", sent=True) from None


# --- Keys, files, metadata ------------------------------------------------------------------


def stable_key(fax: Fax, route: Route) -> str:
    """A hex digest identifying this fax at this route, the same on every attempt: use it as
    Message-ID, idempotency key or search marker."""
    raw = f"{fax.topic}/{fax.id}/{route.key}".encode()
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True, slots=True)
class OutFile:
    """A file to deliver: its name at the destination, local path, size and MIME type."""

    name: str
    path: Path
    size: int
    content_type: str


CONTENT_CHOICES = ("original", "searchable", "both")
"""The values of a destination's ``content`` option, what `files_to_send` sends; check it with
``check_choice(options, "content", CONTENT_CHOICES)``."""
_TYPES = {"pdf": "application/pdf", "tif": "image/tiff", "tiff": "image/tiff"}


def files_to_send(fax: Fax, content: str = "original", stem: str | None = None) -> list[OutFile]:
    """The fax's documents ("original"), its searchable PDF ("searchable") or both.

    Names derive from `stem` (default: the fax id, made safe) so they are stable across
    attempts. Asking for a searchable PDF that no plugin made is a permanent error.
    """
    if content not in CONTENT_CHOICES:
        raise permanent(f"content: must be one of {', '.join(CONTENT_CHOICES)}")
    base = safe_component(stem or fax.id)
    out: list[OutFile] = []
    if content in ("original", "both"):
        many = len(fax.documents) > 1
        for i, doc in enumerate(fax.documents, start=1):
            ext = safe_component(doc.ref.extension.lower() or "bin")
            name = f"{base}-{i}.{ext}" if many else f"{base}.{ext}"
            out.append(OutFile(name, doc.path, doc.size,
                               doc.content_type or _TYPES.get(ext, "application/octet-stream")))
    if content in ("searchable", "both"):
        pdf = fax.artifacts.get("searchable_pdf")
        if pdf is None:
            raise permanent("content: no searchable PDF was made for this fax "
                            "(is the OCR plugin enabled with searchable_pdf?)")
        out.append(OutFile(f"{base}.searchable.pdf", pdf, pdf.stat().st_size,
                           "application/pdf"))
    if not out:
        raise permanent("the fax has no documents to deliver")
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def metadata(fax: Fax, *, text: bool = False) -> dict[str, Any]:
    """The fax as JSON-safe data: job metadata, fields, labels, optionally the OCR text.
    Sender fields are the sender's own words: receivers must treat them as untrusted."""
    job = fax.job
    data: dict[str, Any] = {
        "id": fax.id,
        "topic": fax.topic,
        "received": job.date_received.isoformat() if job.date_received else None,
        "sender": str(job.sender_isdn) if job.sender_isdn else None,
        "sender_fax_id": job.sender_fax_id,
        "receiver": str(job.receiver_isdn) if job.receiver_isdn else None,
        "receiver_fax_id": job.receiver_fax_id,
        # Pages read, pages in the documents, and the count the sender's machine claimed
        # (untrusted: it may be anything); None when no text was extracted.
        "pages": fax.pages_read,
        "pages_total": fax.pages_total,
        "pages_reported": job.fax_page_count,
        "page_errors": [{"document": p.document, "page": p.number, "error": p.error}
                        for p in fax.pages if p.error],
        "status": job.fax_classic_status,
        "cost_center": job.cost_center,
        "documents": [{"name": d.ref.name, "size": d.size, "sha256": d.sha256}
                      for d in fax.documents],
        "labels": sorted(fax.labels),
        "fields": _jsonable(fax.fields),
    }
    if text:
        data["text"] = fax.text
    return data


def describe(fax: Fax) -> str:
    """A one-line default title: "Fax from +49… (id)"; control characters removed."""
    sender = str(fax.job.sender_isdn) if fax.job.sender_isdn else "unknown sender"
    return one_line(f"Fax from {sender} ({fax.id})")


def summary(fax: Fax) -> str:
    """A few lines describing a fax (title, received, numbers, pages, labels): the default
    mail body and ticket text when a route gives none."""
    meta = metadata(fax)
    lines = [describe(fax), ""]
    for label, key in (("Received", "received"), ("From", "sender"),
                       ("Sender fax id", "sender_fax_id"), ("To", "receiver")):
        if meta.get(key) is not None:
            lines.append(f"{label}: {one_line(str(meta[key]))}")
    lines.append(f"Pages: {pages_line(fax)}")
    if fax.labels:
        lines.append(f"Labels: {', '.join(sorted(fax.labels))}")
    return "\n".join(lines)


def pages_line(fax: Fax) -> str:
    """How many pages a fax has, for people: "3", or "read 200 of 500" when not every page
    was read (naming the unreadable ones), or the sender's claim when nothing was read."""
    read, total = fax.pages_read, fax.pages_total
    if read is None or total is None:
        reported = fax.job.fax_page_count
        return f"{reported} (as the sender reported)" if reported is not None else "unknown"
    if read == total:
        return str(total)
    failed = [p for p in fax.pages if p.error]
    text = f"read {read} of {total}"
    if failed:
        where = ", ".join(f"{p.document} page {p.number}" for p in failed[:10])
        text += f"; unreadable: {where}" + (" and more" if len(failed) > 10 else "")
    return text


def one_line(text: str, limit: int = 250) -> str:
    """One line of plain text: control and format characters (CR, LF, NUL, bidi overrides)
    replaced, whitespace collapsed, at most `limit` characters. Not enough for a mail header
    on its own: RFC 2047 encoded words decode to line breaks there (see faxflow_email)."""
    cleaned = "".join(" " if unicodedata.category(c)[0] == "C" else c for c in text)
    cleaned = " ".join(cleaned.split())
    return cleaned[:limit]


# --- Safe paths -----------------------------------------------------------------------------

_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$",
                               re.IGNORECASE)
_BAD_CHARS = re.compile(r'[<>:"/\\|?*]')
MAX_COMPONENT_BYTES = 120
"""The longest name `safe_component` makes by default, in UTF-8 bytes (file systems allow
255; the rest is room for suffixes)."""


def safe_component(name: str, max_bytes: int = MAX_COMPONENT_BYTES) -> str:
    """One path component from untrusted text: no separators, `..`, control or format
    characters (e.g. bidi overrides), Windows-reserved names or characters, trailing dots and
    spaces; NFKC-normalized (so a fullwidth solidus cannot sneak in a slash) and cut to
    `max_bytes` UTF-8 bytes. Never empty."""
    text = unicodedata.normalize("NFKC", name)
    text = "".join("_" if unicodedata.category(c)[0] in "CZ" and c != " " else c for c in text)
    text = _BAD_CHARS.sub("_", text)
    text = text.strip(" .")
    if _WINDOWS_RESERVED.match(text):
        text = "_" + text
    encoded = text.encode("utf-8")[:max_bytes]
    text = encoded.decode("utf-8", errors="ignore").rstrip(" .")
    return text or "_"


def safe_relative(path: str) -> list[str]:
    """A relative folder path from untrusted text, as safe components (`/` and `\\` split;
    empty, `.` and `..` parts dropped, so nothing can climb out)."""
    parts = re.split(r"[/\\]", unicodedata.normalize("NFKC", path))
    return [safe_component(p) for p in parts if p.strip(" .") not in ("", ".", "..")]


def inside(base: Path, target: Path) -> Path:
    """`target` resolved (symlinks followed); a permanent error unless it is inside `base`."""
    real_base = base.resolve()
    real = target.resolve()
    if real != real_base and real_base not in real.parents:
        raise permanent(f"path escapes the base folder {base}")
    return real


def atomic_write(target: Path, data: bytes | Path, mode: int = 0o600) -> None:
    """Write a file so readers see the old or the new one, never half of it: a temporary file
    in the same folder, fsync, rename over the target, fsync the folder. The file gets exactly
    `mode` whatever the umask (owner-only by default: fax contents are personal data)."""
    folder = target.parent
    tmp = folder / f".{target.name}.{os.getpid()}.{random.getrandbits(32):08x}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, mode & 0o600)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            if isinstance(data, Path):
                with data.open("rb") as src:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
            else:
                out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)  # replaces a symlink at target itself, never follows it
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(folder)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def same_content(path: Path, data: bytes | Path) -> bool:
    """Whether the regular file at `path` already holds exactly `data`."""
    if path.is_symlink() or not path.is_file():
        return False
    if isinstance(data, Path):
        if path.stat().st_size != data.stat().st_size:
            return False
        return sha256_file(path) == sha256_file(data)
    return path.stat().st_size == len(data) and path.read_bytes() == data


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- Option checks shared by the destination types ------------------------------------------


def check_types(options: Mapping[str, Any], spec: Mapping[str, tuple[type, ...]],
                required: Sequence[str] = ()) -> list[str]:
    """Problems with one route's options: unknown names, missing required ones, wrong types.
    Values are not judged beyond their type: strings may still be templates."""
    problems = [f"{name}: required" for name in required if name not in options]
    for name, value in options.items():
        if name not in spec:
            problems.append(f"{name}: unknown option (known: {', '.join(sorted(spec))})")
        elif not isinstance(value, spec[name]) or (isinstance(value, bool)
                                                   and bool not in spec[name]):
            kinds = " or ".join(_KIND.get(t, t.__name__) for t in spec[name])
            problems.append(f"{name}: must be {kinds}")
    return problems


_KIND: dict[type, str] = {str: "a string", int: "an integer", bool: "true or false",
                          list: "a list", dict: "a table", float: "a number"}


def check_choice(options: Mapping[str, Any], name: str, choices: Sequence[str]) -> list[str]:
    """A choice option; a template (``{{``) is accepted here and checked at delivery."""
    value = options.get(name)
    if isinstance(value, str) and "{{" not in value and value not in choices:
        return [f"{name}: must be one of {', '.join(choices)}"]
    return []


def as_int(options: Mapping[str, Any], name: str) -> int | None:
    """An integer option that may arrive as a rendered string; None when unset."""
    value = options.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise permanent(f"{name}: not a number: {value!r}") from None
