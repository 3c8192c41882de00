"""The simulator's state: users, topics, jobs, locks, acknowledgements, expiry, clock, faults.

Pure state, no I/O. Every public method takes one lock, so the HTTP loop thread and a test
thread calling `add_fax` can share one `Simulator`. See /work/shared/fax2wspull.md (the
contract) and docs/simulator.md.
"""

from __future__ import annotations

import hmac
import math
import random
import re
import string
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from faxflow.simulator.minipdf import one_page_pdf

RETENTION_SECONDS = 7 * 86400
MAX_FETCH = 100
DEFAULT_FETCH = 10
DEFAULT_TIMEOUT = 60
CONTENT_TYPES = {"pdf": "application/pdf", "tif": "image/tiff", "tiff": "image/tiff"}
DEFAULT_FAULT_STATUSES = (429, 500, 503, 520)
# Retarus publishes local times with an offset; a fixed CEST-like offset shows clients
# that dateReceived is not UTC.
RECEIPT_TZ = timezone(timedelta(hours=2))
DATE_RECEIVED_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
ARCHIVE_EXPIRY_FORMAT = "%Y.%m.%d"

_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")


class SimulatorError(Exception):
    """A request the simulator refuses; `status` is the HTTP status it maps to."""

    status = 500


class BadRequest(SimulatorError):
    status = 400


class NotFound(SimulatorError):
    status = 404


class Conflict(SimulatorError):
    status = 409


def file_name(job_id: str, extension: str) -> str:
    """The last path segment of a document URL: the percent-encoded id, a dot, the extension.

    Everything but letters, digits, `_.-~` and `@` is percent-encoded, so an id holding `/`,
    `%`, `+` or a space stays one path segment; the server percent-decodes the segment.
    """
    return f"{quote(job_id, safe='@')}.{extension}"


@dataclass
class Document:
    extension: str
    content: bytes


@dataclass
class Job:
    id: str
    topic: str
    fields: dict[str, Any]  # every field a poll shows, except documents
    documents: list[Document]
    received: float  # epoch seconds of dateReceived
    locked_until: float = 0.0
    acknowledged: bool = False

    def expired(self, now: float) -> bool:
        return now >= self.received + RETENTION_SECONDS


@dataclass
class Topic:
    name: str
    owner: str
    jobs: dict[str, Job] = field(default_factory=dict)  # every job, in order of receipt
    pending: dict[str, Job] = field(default_factory=dict)  # jobs not acknowledged
    acks: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Faults:
    """Fault injection settings, as POSTed to /_sim/faults."""

    rate: float = 0.0
    statuses: tuple[int, ...] = DEFAULT_FAULT_STATUSES
    latency_ms: float = 0.0
    drop_rate: float = 0.0
    malformed_rate: float = 0.0

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Faults:
        def number(name: str, default: float, upper: float | None) -> float:
            value = body.get(name, default)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise BadRequest(f"{name} must be a number")
            if not math.isfinite(value) or value < 0 or (upper is not None and value > upper):
                raise BadRequest(f"{name} out of range")
            return float(value)

        statuses = body.get("statuses", list(DEFAULT_FAULT_STATUSES))
        if (
            not isinstance(statuses, list)
            or not statuses
            or not all(type(s) is int and 400 <= s <= 599 for s in statuses)
        ):
            raise BadRequest("statuses must be a non-empty list of 4xx/5xx integers")
        return cls(
            rate=number("rate", 0.0, 1.0),
            statuses=tuple(statuses),
            latency_ms=number("latency_ms", 0.0, 60_000.0),
            drop_rate=number("drop_rate", 0.0, 1.0),
            malformed_rate=number("malformed_rate", 0.0, 1.0),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "statuses": list(self.statuses),
            "latency_ms": self.latency_ms,
            "drop_rate": self.drop_rate,
            "malformed_rate": self.malformed_rate,
        }


@dataclass(frozen=True)
class FaultPlan:
    """What happens to one /faxin/ request."""

    status: int | None = None  # answer this status without processing
    latency: float = 0.0  # seconds to delay the response
    drop: bool = False  # process, then close the connection without a reply
    malformed: bool = False  # process, then truncate the JSON reply


NO_FAULTS = FaultPlan()
NO_FAULT_SETTINGS = Faults()


def _parse_date_received(value: Any) -> datetime:
    if not isinstance(value, str):
        raise BadRequest("dateReceived must be a string")
    try:
        return datetime.strptime(value, DATE_RECEIVED_FORMAT)
    except ValueError:
        raise BadRequest("dateReceived must look like 2023-08-03T12:09:43+0200") from None


def _page_count(documents: Iterable[Document]) -> int:
    pages = [len(_PDF_PAGE.findall(d.content)) for d in documents if d.extension == "pdf"]
    return max([1, *pages])


class Simulator:
    """All state of a simulated Fax2WSPull service.

    users: customer number -> password. topics: topic -> owning customer number.
    clock: callable returning epoch seconds (default time.time); `advance` adds to it.
    seed: seeds the random generators for ids, job fields and faults.
    """

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        topics: Mapping[str, str] | None = None,
        clock: Callable[[], float] | None = None,
        seed: int | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock or time.time
        self._offset = 0.0
        self._users: dict[str, str] = {}
        self._topics: dict[str, Topic] = {}
        self._by_id: dict[str, list[Job]] = {}  # for /files lookups across topics
        self._rng = random.Random(seed)
        self._fault_rng = random.Random(seed)
        self._faults = NO_FAULT_SETTINGS
        self._generated = 0
        # Document URLs of jobs added through the Python API (no request Host to copy);
        # SimulatorServer sets it to its own API URL when it starts.
        self.default_api_url = "http://127.0.0.1/faxin/rest/v1"
        for user, password in (users or {}).items():
            self.add_user(user, password)
        for topic, owner in (topics or {}).items():
            self.add_topic(topic, owner)

    # -- configuration -------------------------------------------------------------------

    def add_user(self, user: str, password: str) -> None:
        with self._lock:
            self._users[user] = password

    def add_topic(self, topic: str, owner: str) -> None:
        with self._lock:
            if owner not in self._users:
                raise ValueError(f"topic {topic!r}: unknown owner {owner!r}")
            if topic in self._topics:
                raise ValueError(f"topic {topic!r} defined twice")
            self._topics[topic] = Topic(topic, owner)

    def topic_names(self) -> list[str]:
        with self._lock:
            return list(self._topics)

    # -- clock ---------------------------------------------------------------------------

    def now(self) -> float:
        return self._clock() + self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward; returns the new now."""
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not math.isfinite(seconds)
            or seconds < 0
        ):
            raise BadRequest("advance must be a number >= 0")
        with self._lock:
            self._offset += seconds
        return self.now()

    # -- auth ----------------------------------------------------------------------------

    def authenticate(self, user: str, password: str) -> bool:
        with self._lock:
            expected = self._users.get(user)
        return expected is not None and hmac.compare_digest(
            expected.encode("utf-8"), password.encode("utf-8")
        )

    def owns(self, user: str, topic: str) -> bool:
        with self._lock:
            found = self._topics.get(topic)
            return found is not None and found.owner == user

    # -- jobs ----------------------------------------------------------------------------

    def add_fax(
        self,
        topic: str,
        /,
        documents: Sequence[Mapping[str, Any]] | None = None,
        **job_fields: Any,
    ) -> dict[str, Any]:
        """Store a received fax; returns the job as a poll shows it.

        documents: [{"extension": "pdf", "content": b"..."}]; none -> a generated 1-page PDF.
        job_fields: any job field (id, dateReceived, senderIsdn, ...); the rest is filled in.
        """
        return self.create_fax(topic, documents, job_fields, self.default_api_url)

    def create_fax(
        self,
        topic: str,
        documents: Sequence[Mapping[str, Any]] | None,
        job_fields: Mapping[str, Any],
        api_url: str,
    ) -> dict[str, Any]:
        docs = self._documents(documents)
        with self._lock:
            found = self._topics.get(topic)
            if found is None:
                raise NotFound(f"unknown topic {topic!r}")
            job = self._new_job(found, docs, dict(job_fields))
            found.jobs[job.id] = job
            found.pending[job.id] = job
            self._by_id.setdefault(job.id, []).append(job)
            return self._view(job, api_url)

    def pull(
        self, topic: str, ids: list[str], fetch: int, timeout: int, api_url: str
    ) -> list[dict[str, Any]]:
        """One POST /topics/{topic}: acknowledge `ids`, then hand out and lock jobs."""
        with self._lock:
            now = self.now()
            found = self._topics.get(topic)
            if found is None:
                raise NotFound(f"unknown topic {topic!r}")
            for job_id in ids:
                job = found.jobs.get(job_id)
                if job is None:
                    continue  # unknown ids are ignored and not recorded
                found.acks.append(job_id)
                if not job.acknowledged and not job.expired(now):
                    job.acknowledged = True
                    del found.pending[job_id]
            wanted = min(fetch, MAX_FETCH)
            handed: list[dict[str, Any]] = []
            for job in found.pending.values():
                if len(handed) >= wanted:
                    break
                if job.expired(now) or job.locked_until > now:
                    continue
                job.locked_until = now + timeout  # timeout=0: available again at once
                handed.append(self._view(job, api_url))
            return handed

    def get_file(self, user: str, name: str) -> tuple[bytes, str] | None:
        """The bytes and content type of `{id}.{extension}` (decoded), if `user` may read it."""
        job_id, dot, extension = name.rpartition(".")
        if not dot:
            return None
        with self._lock:
            now = self.now()
            for job in self._by_id.get(job_id, []):
                if self._topics[job.topic].owner != user or job.expired(now):
                    continue
                for doc in job.documents:
                    if doc.extension == extension:
                        return doc.content, CONTENT_TYPES[extension]
            return None

    def topic_state(self, topic: str) -> dict[str, Any]:
        """Counts (acknowledged > expired > locked > available) and the acks list."""
        with self._lock:
            found = self._topics.get(topic)
            if found is None:
                raise NotFound(f"unknown topic {topic!r}")
            now = self.now()
            counts = {"available": 0, "locked": 0, "acknowledged": 0, "expired": 0}
            for job in found.jobs.values():
                if job.acknowledged:
                    counts["acknowledged"] += 1
                elif job.expired(now):
                    counts["expired"] += 1
                elif job.locked_until > now:
                    counts["locked"] += 1
                else:
                    counts["available"] += 1
            return {**counts, "acks": list(found.acks)}

    # -- faults --------------------------------------------------------------------------

    def set_faults(self, body: Mapping[str, Any]) -> Faults:
        faults = Faults.from_json(body)
        if faults == NO_FAULT_SETTINGS:
            faults = NO_FAULT_SETTINGS
        with self._lock:
            self._faults = faults
        return faults

    def plan_faults(self) -> FaultPlan:
        faults = self._faults
        if faults is NO_FAULT_SETTINGS:  # the common case, without taking the lock
            return NO_FAULTS
        with self._lock:
            rng = self._fault_rng
            status = rng.choice(faults.statuses) if rng.random() < faults.rate else None
            return FaultPlan(
                status=status,
                latency=faults.latency_ms / 1000.0,
                drop=status is None and rng.random() < faults.drop_rate,
                malformed=status is None and rng.random() < faults.malformed_rate,
            )

    # -- helpers (called with the lock held, except _documents) --------------------------

    @staticmethod
    def _documents(documents: Sequence[Mapping[str, Any]] | None) -> list[Document]:
        if documents is None or len(documents) == 0:
            return [Document("pdf", one_page_pdf())]
        if not isinstance(documents, list | tuple):
            raise BadRequest("documents must be a list")
        docs: list[Document] = []
        for doc in documents:
            if not isinstance(doc, Mapping):
                raise BadRequest("each document must be an object")
            extension = doc.get("extension")
            content = doc.get("content")
            if not isinstance(extension, str) or extension.lower() not in CONTENT_TYPES:
                raise BadRequest("document extension must be pdf, tif or tiff")
            if not isinstance(content, bytes):
                raise BadRequest("document content must be bytes")
            extension = extension.lower()
            # The URL names a document by id and extension only, so they must be unique.
            if any(d.extension == extension for d in docs):
                raise BadRequest(f"two documents with extension {extension!r}")
            docs.append(Document(extension, content))
        return docs

    def _new_job(self, topic: Topic, docs: list[Document], given: dict[str, Any]) -> Job:
        given.pop("documents", None)
        if "id" in given:
            job_id = given["id"]
            if not isinstance(job_id, str) or not job_id:
                raise BadRequest("id must be a non-empty string")
            if "," in job_id:
                raise BadRequest("id must not contain a comma")
            if job_id in topic.jobs:
                raise Conflict(f"duplicate id {job_id!r} in topic {topic.name!r}")
        else:
            job_id = self._new_id(topic)

        if "dateReceived" in given:
            received_at = _parse_date_received(given["dateReceived"])
        else:
            # Whole seconds, so expiry matches the dateReceived a client sees.
            received_at = datetime.fromtimestamp(int(self.now()), RECEIPT_TZ)
        rng = self._rng
        fields: dict[str, Any] = {
            "id": job_id,
            "callId": self._retarus_id("DC2"),
            "costCenter": "",
            "dateReceived": received_at.strftime(DATE_RECEIVED_FORMAT),
            "totalDuration": rng.randint(20, 180),
            "senderIsdn": "0049" + "".join(rng.choices(string.digits, k=10)),
            "senderFaxId": "Retarus/Doe",
            "receiverIsdn": "+4989262080440",
            "receiverFaxId": "Retarus Faxolution",
            "faxResolution": "HIGH",
            "faxBaudRate": 14400,
            "faxPageCount": _page_count(docs),
            "faxClassicStatus": "OK",
            "faxNumericStatus": "2.0.0",
            "archivingStatus": "SUCCEEDED",
            "archiveExpiry": (received_at + timedelta(days=7)).strftime(ARCHIVE_EXPIRY_FORMAT),
        }
        fields.update(given)
        return Job(job_id, topic.name, fields, docs, received_at.timestamp())

    def _new_id(self, topic: Topic) -> str:
        # Every other generated id holds `/`, `+`, a space and a literal `%2F`, so clients
        # that forget to encode, or decode twice, fail visibly.
        while True:
            self._generated += 1
            if self._generated % 2:
                job_id = self._retarus_id("QA1")
            else:
                rng = self._rng
                head = "".join(rng.choices(string.ascii_uppercase + string.digits, k=8))
                job_id = f"{head[:3]}/{head[3:5]}+{head[5:]} %2F{self._retarus_id('QA1')}"
            if job_id not in topic.jobs:
                return job_id

    def _retarus_id(self, suffix: str) -> str:
        # Shaped like K34A3QX3@J78AO6W.glaqsmucre101.QA1
        rng = self._rng
        upper = string.ascii_uppercase + string.digits
        return (
            "".join(rng.choices(upper, k=8))
            + "@"
            + "".join(rng.choices(upper, k=7))
            + "."
            + "".join(rng.choices(string.ascii_lowercase, k=10))
            + "".join(rng.choices(string.digits, k=3))
            + "."
            + suffix
        )

    @staticmethod
    def _view(job: Job, api_url: str) -> dict[str, Any]:
        view = dict(job.fields)
        view["documents"] = [
            {"url": f"{api_url}/files/{file_name(job.id, doc.extension)}"}
            for doc in job.documents
        ]
        return view
