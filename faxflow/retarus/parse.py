"""Turn Fax2WSPull JSON into `faxflow.types` objects, tolerating whatever the server sends.

Only section A of the contract is relied on. A field of the wrong type becomes None (its raw
value stays in `Job.raw`), unknown fields go to `Job.extra`, a job without a usable id is
skipped with a warning because it could never be acknowledged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import phonenumbers

from faxflow.retarus.errors import ProtocolError
from faxflow.types import Batch, BatchMeta, DocumentRef, Job, Number

log = logging.getLogger("faxflow.retarus")

_DATE = re.compile(r"^\s*(\d{4})[.\-/](\d{1,2})[.\-/](\d{1,2})\s*$")


def as_str(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
    return None


def as_datetime(value: Any) -> datetime | None:
    """`2023-08-03T12:09:43+0200`, `...+02:00` or `...Z`; no offset is taken as UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def as_date(value: Any) -> date | None:
    """`2023.08.10` as published; `2023-08-10` is accepted too."""
    if not isinstance(value, str):
        return None
    match = _DATE.match(value)
    if not match:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def parse_number(value: Any) -> Number | None:
    """A phone number kept raw and as E.164; `00...` is the international prefix."""
    raw = as_str(value)
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    e164: str | None = None
    if text.startswith("+"):
        try:
            number = phonenumbers.parse(text, None)
        except phonenumbers.NumberParseException:
            number = None
        if number is not None and phonenumbers.is_possible_number(number):
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Number(raw=raw, e164=e164)


def file_name(url: str) -> str:
    """The last path segment of a document URL, percent-decoded ("" if there is none)."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return ""
    name = unquote(path.rsplit("/", 1)[-1])
    return "" if name in (".", "..") else name


def parse_document(value: Any) -> DocumentRef:
    """A document entry; one without a usable url keeps an empty name so that downloading it
    fails loudly instead of the document silently disappearing from the fax."""
    if not isinstance(value, Mapping):
        log.warning("document entry is not an object: %.80r", value)
        return DocumentRef(url="", name="", extension="", extra={"raw": value})
    url = value.get("url")
    url = url if isinstance(url, str) else ""
    name = file_name(url)
    if not name:
        log.warning("document without a usable url: %.200r", value.get("url"))
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    extra = {k: v for k, v in value.items() if k != "url"}
    return DocumentRef(url=url, name=name, extension=extension, extra=extra)


def _documents(value: Any) -> tuple[DocumentRef, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        log.warning("job documents is not a list: %.80r", value)
        return ()
    return tuple(parse_document(item) for item in value)


# Contract field -> (Job attribute, converter).
FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "callId": ("call_id", as_str),
    "costCenter": ("cost_center", as_str),
    "dateReceived": ("date_received", as_datetime),
    "totalDuration": ("total_duration", as_int),
    "senderIsdn": ("sender_isdn", parse_number),
    "senderFaxId": ("sender_fax_id", as_str),
    "receiverIsdn": ("receiver_isdn", parse_number),
    "receiverFaxId": ("receiver_fax_id", as_str),
    "faxResolution": ("fax_resolution", as_str),
    "faxBaudRate": ("fax_baud_rate", as_int),
    "faxPageCount": ("fax_page_count", as_int),
    "faxClassicStatus": ("fax_classic_status", as_str),
    "faxNumericStatus": ("fax_numeric_status", as_str),
    "archivingStatus": ("archiving_status", as_str),
    "archiveExpiry": ("archive_expiry", as_date),
    "documents": ("documents", _documents),
}


def parse_job(value: Any) -> Job | None:
    """One job object, or None (with a warning) when it has no id we could acknowledge."""
    if not isinstance(value, Mapping):
        log.warning("skipping a job that is not an object: %.80r", value)
        return None
    job_id = as_str(value.get("id"))
    if not job_id or "," in job_id:
        # Acks name jobs by id in a comma-separated list: without a clean id the job could
        # never be acknowledged. It stays locked and comes back until it expires.
        log.warning("skipping a job without a usable id: %.200r", value.get("id"))
        return None
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, item in value.items():
        if key == "id":
            continue
        if key in FIELDS:
            attr, convert = FIELDS[key]
            kwargs[attr] = convert(item)
        else:
            extra[key] = item
    return Job(id=job_id, **kwargs, extra=extra, raw=dict(value))


def parse_meta(value: Any) -> BatchMeta:
    meta = value if isinstance(value, Mapping) else {}
    parameters = meta.get("parameters")
    return BatchMeta(
        version=as_int(meta.get("version")),
        next=as_str(meta.get("next")),
        exit=as_str(meta.get("exit")),
        topic=as_str(meta.get("topic")),
        result_size=as_int(meta.get("resultSize")),
        parameters=dict(parameters) if isinstance(parameters, Mapping) else {},
    )


def parse_batch(data: Any) -> Batch:
    """A decoded 200 answer of `POST /topics/{topic}`; ProtocolError if it has no results list."""
    if not isinstance(data, Mapping):
        raise ProtocolError(f"expected a JSON object, got {type(data).__name__}")
    results = data.get("results")
    # A missing list is an error, not "no faxes": a renamed key must not look like silence.
    if not isinstance(results, list):
        raise ProtocolError(f"'results' is not a list but {type(results).__name__}")
    jobs = tuple(job for job in (parse_job(item) for item in results) if job is not None)
    return Batch(meta=parse_meta(data.get("meta")), jobs=jobs)
