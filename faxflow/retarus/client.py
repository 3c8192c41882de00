"""The Fax2WSPull client: pull (fetch + acknowledge), acknowledge, download.

One `RetarusClient` holds one pooled, thread-safe `httpx.Client` (HTTP/1.1 keep-alive), so
the worker's download threads share connections instead of opening one per call.

Why retrying is safe here:
- An acknowledgement is idempotent: acking an id twice, or one that is gone, is ignored.
- A pull whose answer was lost (dropped connection, truncated JSON) did lock its jobs, but
  nobody acknowledges them, so they only stay locked until their lock timeout and then come
  back; acks sent with it were applied and are sent again harmlessly.
- A download is a plain GET written to a temp file that is only renamed when complete.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import logging
import os
import ssl
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx

from faxflow.retarus import parse
from faxflow.retarus.errors import (
    AuthError,
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    ProtocolError,
    RetarusError,
    TooLargeError,
    UnavailableError,
)
from faxflow.retarus.retry import (
    RETRY_EXCEPTIONS,
    RETRY_STATUSES,
    RetryPolicy,
    parse_retry_after,
)
from faxflow.types import Batch, Document, DocumentRef

log = logging.getLogger("faxflow.retarus")

T = TypeVar("T")

REGIONS = ("de1", "de2", "us1", "us2", "ch1", "sg1")
MAX_URL_LENGTH = 6000  # stay well below common 8 KiB request-line limits
MAX_FETCH = 100
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
_ERROR_BODY_LIMIT = 64 * 1024


def region_url(region: str) -> str:
    if region not in REGIONS:
        expected = ", ".join(REGIONS)
        raise RetarusError(f"unknown Retarus region {region!r}; expected one of {expected}")
    return f"https://api.{region}.retarus.com/faxin/rest/v1"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_base_url(url: str, allow_http: bool) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        has_userinfo = "@" in parts.netloc
    except ValueError:
        raise RetarusError("the API base URL is not a valid URL") from None
    if has_userinfo:
        # Never echo it: the part before '@' may be a password.
        raise RetarusError("the API base URL must not contain a user name or password")
    if parts.scheme not in ("http", "https") or not host:
        raise RetarusError(f"the API base URL must be an http(s) URL with a host, not {url!r}")
    if parts.query or parts.fragment:
        raise RetarusError(f"the API base URL must not have a query or fragment: {url!r}")
    if parts.scheme == "http" and not (allow_http or _is_loopback(host)):
        raise RetarusError(
            f"refusing to send credentials in clear text to {host}: use https "
            "(plain http is only for loopback or with allow_http=True)"
        )
    return url.rstrip("/")


class _Malformed(Exception):
    """A 200 answer that could not be read; retried like a lost connection."""


class RetarusClient:
    """Talks Fax2WSPull to one Retarus data centre (or a simulator) with one set of credentials.

    `region` is one of `REGIONS`, or pass `base_url` (e.g. a simulator's API base). TLS
    certificates are always verified; `verify` may name a CA bundle file or give an
    `ssl.SSLContext` for a private CA. Thread-safe.
    """

    def __init__(
        self,
        username: str,
        password: str,
        *,
        region: str | None = None,
        base_url: str | None = None,
        verify: str | os.PathLike[str] | ssl.SSLContext | None = None,
        max_connections: int = 32,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        allow_http: bool = False,
        user_agent: str = "faxflow",
    ) -> None:
        if (region is None) == (base_url is None):
            raise RetarusError("give exactly one of region or base_url")
        if not username:
            raise RetarusError("the username (Retarus customer number) is empty")
        self.base_url = _check_base_url(
            region_url(region) if region is not None else str(base_url), allow_http
        )
        self.username = username
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        auth = httpx.BasicAuth(username, password)  # standard base64, unlike the SDK
        # Kept only to scrub them from server-provided text we put into messages.
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._secrets = tuple(s for s in (password, token) if len(s) >= 3)
        # Certificates are always checked: httpx's default (certifi) unless a CA bundle file or
        # a ready SSLContext is given. There is deliberately no way to pass False.
        if isinstance(verify, bool):
            raise RetarusError(
                "verify takes a CA bundle file or an ssl.SSLContext; TLS certificate checks "
                "cannot be switched off"
            )
        context: ssl.SSLContext | bool = True
        if isinstance(verify, ssl.SSLContext):
            context = verify
        elif verify is not None:
            try:
                context = ssl.create_default_context(cafile=os.fspath(verify))
            except (OSError, ssl.SSLError) as exc:
                raise RetarusError(f"cannot use CA bundle {os.fspath(verify)!r}: {exc}") from None
        self._http = httpx.Client(
            auth=auth,
            verify=context,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            timeout=httpx.Timeout(timeout, connect=connect_timeout, pool=timeout),
            follow_redirects=False,  # a redirect could lead our credentials elsewhere
            headers={"User-Agent": user_agent, "Accept": "application/json"},
        )

    def __repr__(self) -> str:
        return f"RetarusClient(base_url={self.base_url!r}, username={self.username!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RetarusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the API ---------------------------------------------------------------------------

    def pull(
        self, topic: str, fetch: int = 10, timeout: int = 60, ack_ids: Iterable[str] = ()
    ) -> Batch:
        """Acknowledge `ack_ids` and fetch up to `fetch` jobs, locked for `timeout` seconds.

        Acks that do not fit into one URL go first in ack-only calls.
        """
        if not topic:
            raise RetarusError("the topic is empty")
        for name, value in (("fetch", fetch), ("timeout", timeout)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise RetarusError(f"{name} must be a whole number >= 0, not {value!r}")
        chunks = self._id_chunks(topic, _clean_ids(ack_ids))
        for chunk in chunks[:-1]:
            self._post_topic(topic, 0, None, chunk)
        return self._post_topic(topic, fetch, timeout, chunks[-1] if chunks else [])

    def ack(self, topic: str, ids: Iterable[str]) -> None:
        """Acknowledge jobs without fetching (the `exit` call). Nothing to do for no ids."""
        if not topic:
            raise RetarusError("the topic is empty")
        for chunk in self._id_chunks(topic, _clean_ids(ids)):
            self._post_topic(topic, 0, None, chunk)

    def follow(self, url: str | None) -> Batch:
        """Do what a batch's `meta.next` or `meta.exit` URL says, but against our own base URL.

        Only the topic, fetch, timeout and ids are taken from the URL; its host is never
        contacted, so a hostile URL cannot receive our credentials.
        """
        if not url:
            raise ProtocolError("the answer has no next/exit URL to follow")
        parts = urlsplit(url)
        _, sep, segment = parts.path.rpartition("/topics/")
        if not sep or not segment or "/" in segment:
            raise ProtocolError(f"not a topic URL: {url[:200]!r}")
        # parse_qs decodes '+' as space, as form encoding does; ids with '+' arrive as %2B.
        query = parse_qs(parts.query, keep_blank_values=True)
        fetch = parse.as_int(query.get("fetch", ["10"])[0])
        timeout = parse.as_int(query.get("timeout", ["60"])[0])
        if fetch is None or fetch < 0 or timeout is None or timeout < 0:
            raise ProtocolError(f"bad fetch/timeout in {url[:200]!r}")
        ids = [i for i in query.get("ids", [""])[0].split(",") if i]
        return self.pull(unquote(segment), fetch=fetch, timeout=timeout, ack_ids=ids)

    def download(
        self, document: DocumentRef, dest: Path, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> Document:
        """Stream one document to `dest` (written to a temp file beside it, then renamed).

        The request always goes to `{base_url}/files/{name}`, `name` being the last path
        segment of the document's URL: the URL's host is never contacted. `dest` is chosen by
        the caller; the server's file name never picks a local path.
        """
        name = document.name or parse.file_name(document.url)
        if not name or name in (".", ".."):
            raise ProtocolError(f"document has no file name in its url: {document.url[:200]!r}")
        dest = Path(dest)
        url = f"{self.base_url}/files/{quote(name, safe='')}"

        def save(response: httpx.Response) -> Document:
            return self._save(response, document, dest, max_bytes, name)

        return self._call("GET", url, f"download {name!r}", save, file=name)

    # -- internals -------------------------------------------------------------------------

    def _topic_url(self, topic: str, fetch: int, timeout: int | None, ids: Sequence[str]) -> str:
        url = f"{self.base_url}/topics/{quote(topic, safe='')}?fetch={fetch}"
        if timeout is not None:
            url += f"&timeout={timeout}"
        if ids:
            # The whole comma-joined list is ONE query value: commas become %2C too.
            url += "&ids=" + quote(",".join(ids), safe="")
        return url

    def _id_chunks(self, topic: str, ids: list[str]) -> list[list[str]]:
        """Split ids so that every URL stays under MAX_URL_LENGTH."""
        budget = MAX_URL_LENGTH - len(self._topic_url(topic, MAX_FETCH, 86400, ["x"]))
        chunks: list[list[str]] = []
        current: list[str] = []
        used = 0
        for job_id in ids:
            cost = len(quote(job_id, safe="")) + 3  # + "%2C"
            if current and used + cost > budget:
                chunks.append(current)
                current, used = [], 0
            current.append(job_id)
            used += cost
        if current:
            chunks.append(current)
        return chunks

    def _post_topic(self, topic: str, fetch: int, timeout: int | None, ids: list[str]) -> Batch:
        url = self._topic_url(topic, fetch, timeout, ids)
        what = f"pull {topic!r}" if fetch else f"ack {len(ids)} job(s) on {topic!r}"
        return parse.parse_batch(self._call("POST", url, what, _read_json, topic=topic))

    def _call(
        self,
        method: str,
        url: str,
        what: str,
        handle: Callable[[httpx.Response], T],
        *,
        topic: str | None = None,
        file: str | None = None,
    ) -> T:
        """Send one request, retrying transient failures; `handle` reads a 200 answer."""
        attempts = self.retry.attempts
        last = ""
        malformed = False
        status: int | None = None
        for attempt in range(1, attempts + 1):
            retry_after: float | None = None
            try:
                with self._http.stream(method, url) as response:
                    status = response.status_code
                    if status == 200:
                        return handle(response)
                    body = _drain(response)
                    if status not in RETRY_STATUSES:
                        raise self._status_error(status, body, what, topic, file)
                    if status == 429:
                        retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    last, malformed = f"HTTP {status}", False
            except _Malformed as exc:
                last, malformed, status = str(exc), True, 200
            except RETRY_EXCEPTIONS as exc:
                last, malformed, status = _describe(exc), False, None
                if "CERTIFICATE_VERIFY_FAILED" in last:  # retrying will not fix trust
                    raise RetarusError(f"{what}: TLS certificate not trusted; {last}") from None
            if attempt == attempts:
                break
            delay = self.retry.delay(attempt, retry_after)
            log.warning(
                "%s: %s (attempt %d of %d), retrying in %.2f s",
                what,
                last,
                attempt,
                attempts,
                delay,
            )
            self._sleep(delay)
        message = f"{what}: gave up after {attempts} attempt(s) at {self.base_url}; last: {last}"
        if malformed:
            raise ProtocolError(message, status)
        raise UnavailableError(message, status)

    def _status_error(
        self, status: int, body: bytes, what: str, topic: str | None, file: str | None
    ) -> RetarusError:
        if status == 401:
            return AuthError(
                f"wrong username or password for {self.base_url} (user {self.username!r})", status
            )
        if status == 403:
            if topic is not None:
                return ForbiddenError(
                    f"topic {topic!r} is unknown or not owned by user {self.username!r} "
                    f"at {self.base_url} (HTTP 403)",
                    status,
                )
            return ForbiddenError(f"{what}: access denied (HTTP 403)", status)
        if status == 404:
            if file is not None:
                return NotFoundError(
                    f"file {file!r} not found (HTTP 404): documents are deleted 7 days after "
                    "receipt, or it never existed",
                    status,
                )
            return NotFoundError(f"{what}: HTTP 404 from {self.base_url}; wrong URL?", status)
        detail = self._body_snippet(body)
        if status == 400:
            return BadRequestError(f"{what}: refused by the server (HTTP 400){detail}", status)
        if 300 <= status < 400:
            return RetarusError(f"{what}: redirect (HTTP {status}) not followed", status)
        return RetarusError(f"{what}: unexpected HTTP {status}{detail}", status)

    def _body_snippet(self, body: bytes) -> str:
        """The start of an error body, printable, with our secrets blotted out."""
        text = body[:200].decode("utf-8", "replace")
        text = "".join(c if c.isprintable() else " " for c in text).strip()
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return f": {text}" if text else ""

    def _save(
        self, response: httpx.Response, ref: DocumentRef, dest: Path, max_bytes: int, name: str
    ) -> Document:
        declared = parse.as_int(response.headers.get("Content-Length"))
        if declared is not None and declared > max_bytes:
            raise TooLargeError(f"file {name!r} is {declared} bytes, over the cap of {max_bytes}")
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise TooLargeError(
                            f"file {name!r} is over the cap of {max_bytes} bytes; download aborted"
                        )
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())  # the spool must survive a crash once we report success
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        content_type = response.headers.get("Content-Type")
        if content_type:
            content_type = content_type.split(";", 1)[0].strip().lower() or None
        return Document(
            ref=ref, path=dest, size=size, sha256=digest.hexdigest(), content_type=content_type
        )


def _clean_ids(ids: Iterable[str]) -> list[str]:
    result: list[str] = []
    for job_id in dict.fromkeys(ids):
        if not isinstance(job_id, str) or not job_id:
            raise RetarusError(f"a job id must be a non-empty string, not {job_id!r}")
        if "," in job_id:
            raise RetarusError(f"a job id with a comma cannot be acknowledged: {job_id!r}")
        result.append(job_id)
    return result


def _read_json(response: httpx.Response) -> Any:
    body = response.read()
    try:
        return json.loads(body)
    except ValueError:
        raise _Malformed(f"the answer is not valid JSON ({len(body)} bytes)") from None


def _drain(response: httpx.Response) -> bytes:
    """Read a small error body so the connection can be reused; close it if it is big."""
    body = b""
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > _ERROR_BODY_LIMIT:
            break
    return body


def _describe(exc: Exception) -> str:
    # httpx messages name the error, not the URL or headers; keep only the first line.
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
