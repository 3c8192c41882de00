"""The data that flows through faxflow: jobs from Retarus, the fax event, votes and outcomes.

Everything here is plain data. Plugins receive a `Fax` and return the small result types
below; the core owns every state change.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Number:
    """A phone number as Retarus sent it (`raw`) and normalized to E.164 (None if unparsable)."""

    raw: str
    e164: str | None

    def __str__(self) -> str:
        return self.e164 or self.raw


@dataclass(frozen=True, slots=True)
class DocumentRef:
    """One document of a job as listed by the API: its URL and the file name at its end."""

    url: str
    name: str  # last path segment, percent-decoded, e.g. "29.pdf"
    extension: str  # lower case, without dot: "pdf", "tif", "tiff"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Job:
    """One fax job as handed out by `POST /topics/{topic}`; every contract field in snake_case.

    Fields the API did not send are None; fields it sent that we do not know are in `extra`;
    `raw` is the job object exactly as received.
    """

    id: str
    call_id: str | None = None
    cost_center: str | None = None
    date_received: datetime | None = None
    total_duration: int | None = None
    sender_isdn: Number | None = None
    sender_fax_id: str | None = None  # free text from the sender's machine: untrusted
    receiver_isdn: Number | None = None
    receiver_fax_id: str | None = None
    fax_resolution: str | None = None
    fax_baud_rate: int | None = None
    fax_page_count: int | None = None
    fax_classic_status: str | None = None
    fax_numeric_status: str | None = None
    archiving_status: str | None = None
    archive_expiry: date | None = None
    documents: tuple[DocumentRef, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BatchMeta:
    version: int | None
    next: str | None
    exit: str | None
    topic: str | None
    result_size: int | None
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Batch:
    """The answer to one pull: its meta block and the jobs handed out (now locked)."""

    meta: BatchMeta
    jobs: tuple[Job, ...]


@dataclass(frozen=True, slots=True)
class Document:
    """A document downloaded to local disk (in the spool folder)."""

    ref: DocumentRef
    path: Path
    size: int
    sha256: str
    content_type: str | None


@dataclass(slots=True)
class PageText:
    """Text of one page as extracted by a text-extraction plugin.

    `error` is set (and `text` empty) when this page could not be read: a failure, which the
    core does not let pass as a blank page (``[worker] unreadable_pages``). `skipped` marks a
    page not read on purpose (e.g. beyond the OCR plugin's ``max_pages``): not a failure,
    but it is not counted as read either.
    """

    number: int  # 1-based page number within its document
    text: str
    confidence: float | None = None  # mean word confidence 0..100, if the engine gives one
    error: str | None = None
    document: str = ""  # DocumentRef.name this page belongs to
    skipped: bool = False

    @property
    def read(self) -> bool:
        """Whether this page's text was actually read."""
        return self.error is None and not self.skipped


@dataclass(frozen=True, slots=True)
class Classification:
    """What a classifier contributes: labels (merged as a set) and typed fields (merged)."""

    labels: frozenset[str] = frozenset()
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Route:
    """One destination a fax goes to.

    `key` identifies the route stably across attempts (e.g. "rule-name/0"); the journal uses
    it to never deliver the same fax to the same route twice. `options` are already rendered
    (templates filled in) for this fax.
    """

    key: str
    type: str  # destination type: "folder", "email", "redmine", ...
    options: dict[str, Any] = field(default_factory=dict)
    rule: str | None = None  # the rule that chose it, for logs and explain


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    TRANSIENT = "transient"  # try again later: the fax stays locked and comes back
    PERMANENT = "permanent"  # will never work: quarantine the fax


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What a destination reports for one route."""

    outcome: Outcome
    detail: str = ""  # human readable: where it went, or the server's message
    reference: str | None = None  # e.g. a ticket id, a message id, a file path

    @classmethod
    def delivered(cls, detail: str = "", reference: str | None = None) -> DeliveryResult:
        return cls(Outcome.DELIVERED, detail, reference)

    @classmethod
    def transient(cls, detail: str) -> DeliveryResult:
        return cls(Outcome.TRANSIENT, detail)

    @classmethod
    def permanent(cls, detail: str) -> DeliveryResult:
        return cls(Outcome.PERMANENT, detail)


class Verdict(enum.StrEnum):
    ACK = "ack"
    NOT_YET = "not-yet"  # leave it locked; it comes back after the lock timeout
    QUARANTINE = "quarantine"


@dataclass(frozen=True, slots=True)
class Vote:
    verdict: Verdict
    reason: str = ""

    @classmethod
    def ack(cls, reason: str = "") -> Vote:
        return cls(Verdict.ACK, reason)

    @classmethod
    def not_yet(cls, reason: str) -> Vote:
        return cls(Verdict.NOT_YET, reason)

    @classmethod
    def quarantine(cls, reason: str) -> Vote:
        return cls(Verdict.QUARANTINE, reason)


@dataclass(frozen=True, slots=True)
class Problem:
    """A stage that failed, turned into data (like pytest's CallInfo) for later hooks and votes."""

    stage: str  # "download", "extract_text", "classify", "route", "deliver:<key>", ...
    plugin: str | None
    message: str
    transient: bool = True  # True: an implicit not-yet vote; False: an implicit quarantine vote


@dataclass(slots=True)
class Fax:
    """The event that travels through the hooks: one job, its local documents, and what the
    plugins have found so far. Plugins read it; the core writes it from their results."""

    job: Job
    topic: str
    attempt: int = 1
    documents: list[Document] = field(default_factory=list)
    pages: list[PageText] = field(default_factory=list)
    labels: set[str] = field(default_factory=set)
    fields: dict[str, Any] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    results: dict[str, DeliveryResult] = field(default_factory=dict)  # route key -> result
    problems: list[Problem] = field(default_factory=list)
    # Extra files plugins produced for destinations (e.g. "searchable_pdf" -> Path).
    artifacts: dict[str, Path] = field(default_factory=dict)
    # Free space for plugins, namespaced by plugin name: fax.scratch["ocr"] = {...}.
    scratch: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def text(self) -> str:
        """All pages' text, pages separated by a form feed."""
        return "\f".join(p.text for p in self.pages)

    @property
    def pages_total(self) -> int | None:
        """Pages in the documents, as text extraction found them; None if nothing was read
        (no text-extraction plugin). The sender's own count is ``job.fax_page_count``."""
        return len(self.pages) if self.pages else None

    @property
    def pages_read(self) -> int | None:
        """Pages whose text was read (not failed, not skipped); None as for `pages_total`."""
        return sum(p.read for p in self.pages) if self.pages else None


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of the acknowledgement vote for one fax."""

    verdict: Verdict
    reasons: tuple[str, ...]
    votes: dict[str, Vote | None]


@dataclass(frozen=True, slots=True)
class DestinationType:
    """A kind of destination a plugin delivers to, declared by `faxflow_destination_types`.

    `check_options` validates one route's options as written in the config (string values may
    still be templates) and returns human-readable problems, each starting with the option
    name, e.g. ``"to: required"``.
    """

    name: str
    check_options: Callable[[Mapping[str, Any]], list[str]] | None = None
    description: str = ""
