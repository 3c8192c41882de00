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

# What plugins use (docs/api.md). Batch and BatchMeta are the Retarus client's.
__all__ = [
    "Barcode",
    "Classification",
    "Decision",
    "DeliveryResult",
    "DestinationType",
    "Document",
    "DocumentRef",
    "Fax",
    "Job",
    "Notice",
    "Number",
    "Outcome",
    "PageText",
    "Part",
    "Problem",
    "Route",
    "Target",
    "Verdict",
    "Vote",
]


@dataclass(frozen=True, slots=True)
class Number:
    """A phone number as Retarus sent it (`raw`) and normalized to E.164 (None if unparsable).

    ``str(number)`` is the E.164 form, or the raw text when it could not be parsed. A sender's
    number is what the sending line claims (caller ID): it proves nobody's identity.
    """

    raw: str
    e164: str | None

    def __str__(self) -> str:
        return self.e164 or self.raw


@dataclass(frozen=True, slots=True)
class DocumentRef:
    """One document of a job as listed by the API: its URL and the file name at its end.

    Part of the `Job`, so as untrusted as the rest of it: pass `name` through
    `faxflow.delivery.safe_component` before it goes into a path. `extra` holds what the API
    sent about the document that faxflow does not know.
    """

    url: str
    name: str  # last path segment, percent-decoded, e.g. "29.pdf"
    extension: str  # lower case, without dot: "pdf", "tif", "tiff"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Job:
    """One fax job as handed out by `POST /topics/{topic}`; every contract field in snake_case.

    Fields the API did not send are None; fields it sent that we do not know are in `extra`;
    `raw` is the job object exactly as received.

    Plugins read it as ``fax.job``. All of it is the sender's and Retarus' data, not
    faxflow's: treat it as untrusted input. `sender_fax_id` and `receiver_fax_id` are free
    text typed into fax machines and `sender_isdn` is caller ID; never build a path, a command
    or a mail header from them unchecked (`faxflow.delivery.safe_component`,
    `faxflow.delivery.one_line`).
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
    """A document downloaded to local disk (in the spool folder).

    The core downloads every document of the job into ``fax.documents`` before any hook sees
    the fax. `size` (bytes) and `sha256` describe the content as downloaded; `content_type` is
    the MIME type the download declared (lower case), None if it declared none. The fax's
    spool folder is removed when the attempt ends: read or copy `path` during the hooks, never
    keep it for later.
    """

    ref: DocumentRef
    path: Path
    size: int
    sha256: str
    content_type: str | None


# Longest barcode value kept (characters). A QR code holds at most 7,089 digits; a value is
# sender-controlled text that reaches logs, templates and paths, so it is bounded.
MAX_BARCODE_VALUE = 4096


@dataclass(frozen=True, slots=True)
class Barcode:
    """A barcode found on a page, as a text-extraction plugin decoded it.

    `value` is the decoded text: **untrusted** (whoever printed the page chose it), at most
    `MAX_BARCODE_VALUE` characters; pass it through `faxflow.delivery.safe_component`
    before it goes into a path and `faxflow.delivery.one_line` before a header or a log
    line. `format` is a lower-case name: ``qr``, ``datamatrix``, ``pdf417``, ``aztec``,
    ``code128``, ``code39``, ``ean13``, ``ean8``, ``upca``, ``upce`` (or what another
    extractor reports). `page` is the 1-based page within `document` (a
    ``DocumentRef.name``). `box` is where it is: left, top, right, bottom in millimetres
    from the page's top-left corner, as the page is stored (before any levelling);
    `orientation` the degrees it is turned.
    """

    value: str
    format: str
    page: int
    document: str = ""
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    orientation: int = 0


@dataclass(slots=True)
class PageText:
    """Text of one page as extracted by a text-extraction plugin.

    `error` is set (and `text` empty) when this page could not be read: a failure, which the
    core does not let pass as a blank page (``[worker] unreadable_pages``). `skipped` marks a
    page not read on purpose (e.g. beyond the OCR plugin's ``max_pages``): not a failure,
    but it is not counted as read either.

    What `faxflow_extract_text` returns, one per page; the core appends them to
    ``fax.pages``. `confidence` is None when the engine gives none. The core fills in
    `document` when the extractor leaves it empty. `barcodes` are the barcodes an extractor
    decoded on the page (the OCR plugin's, docs/barcodes.md); rules and the split hook
    read them.
    """

    number: int  # 1-based page number within its document
    text: str
    confidence: float | None = None  # mean word confidence 0..100, if the engine gives one
    error: str | None = None
    document: str = ""  # DocumentRef.name this page belongs to
    skipped: bool = False
    barcodes: tuple[Barcode, ...] = ()  # found on this page, in reading order

    @property
    def read(self) -> bool:
        """Whether this page's text was actually read."""
        return self.error is None and not self.skipped


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a fax that is split (`faxflow_split`): classified, routed and delivered
    on its own as a fax of its own.

    `pages` are the fax's pages that make up the part, as 1-based positions in
    ``fax.pages`` (across documents, in order); pages in no part (separator sheets) are
    dropped. `reason` says why it starts where it does, for the log and the history.
    """

    pages: tuple[int, ...]
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Classification:
    """What a classifier contributes: labels (merged as a set) and typed fields (merged).

    What `faxflow_classify` returns. The core adds `labels` to ``fax.labels`` (a union over
    all plugins) and `fields` to ``fax.fields`` (a later plugin's value for the same field
    wins; the conflict is logged); routing reads both.

    `explain` optionally says why, for people: lines under a heading, your plugin's name
    (``{"classifier": ("invoice 0.97", ...)}``). The core collects them in
    `Fax.explanations`; ``faxflow explain`` prints them.
    """

    labels: frozenset[str] = frozenset()
    fields: dict[str, Any] = field(default_factory=dict)
    explain: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Route:
    """One destination a fax goes to.

    `key` identifies the route stably across attempts (e.g. "rule-name/0"); the journal uses
    it to never deliver the same fax to the same route twice. `options` are already rendered
    (templates filled in) for this fax.

    So a key must be the same on every attempt for the same fax and target, and unique among
    the fax's routes: derive it from the configuration (a rule's name and the route's place in
    it), never from the time or a counter. A key that changes between attempts delivers
    again; a second route with a key already contributed is dropped. `type` names the
    destination type (`DestinationType.name`) whose plugin delivers it.
    """

    key: str
    type: str  # destination type: "folder", "email", "redmine", ...
    options: dict[str, Any] = field(default_factory=dict)
    rule: str | None = None  # the rule that chose it, for logs and explain


class Outcome(enum.StrEnum):
    """How a delivery ended (``DeliveryResult.outcome``).

    ``DELIVERED``: done; the journal records it and this route is never delivered again for
    this fax.
    """

    DELIVERED = "delivered"
    TRANSIENT = "transient"  # try again later: the fax stays locked and comes back
    PERMANENT = "permanent"  # will never work: quarantine the fax


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What a destination reports for one route.

    What `faxflow_deliver` returns; build it with `delivered`, `transient` or `permanent`.
    The core records it in the journal and in ``fax.results`` (by route key) and votes from
    it: a permanent result quarantines the fax, a transient one brings it back later (the
    routes already delivered are not delivered again).
    """

    outcome: Outcome
    detail: str = ""  # human readable: where it went, or the server's message
    reference: str | None = None  # e.g. a ticket id, a message id, a file path

    @classmethod
    def delivered(cls, detail: str = "", reference: str | None = None) -> DeliveryResult:
        """Delivered: `detail` says where it went, `reference` identifies it there (a ticket
        id, a Message-ID, a file path)."""
        return cls(Outcome.DELIVERED, detail, reference)

    @classmethod
    def transient(cls, detail: str) -> DeliveryResult:
        """Not delivered, but it may work later (a server down, a rate limit): the fax comes
        back after its lock timeout and this route is tried again with ``uncertain=True``."""
        return cls(Outcome.TRANSIENT, detail)

    @classmethod
    def permanent(cls, detail: str) -> DeliveryResult:
        """Not delivered and it never will be for this fax (refused, invalid): the fax is
        quarantined with `detail` among the reasons."""
        return cls(Outcome.PERMANENT, detail)


class Verdict(enum.StrEnum):
    """What a `Vote` or a `Decision` says about acknowledging a fax at Retarus.

    ``ACK``: acknowledge it; Retarus does not hand it out again. ``NOT_YET``: leave it locked
    so it comes back after the lock timeout. ``QUARANTINE``: keep it in the quarantine folder
    with the reasons, then acknowledge it.
    """

    ACK = "ack"
    NOT_YET = "not-yet"  # leave it locked; it comes back after the lock timeout
    QUARANTINE = "quarantine"


@dataclass(frozen=True, slots=True)
class Vote:
    """One plugin's opinion on acknowledging a fax: what `faxflow_ack_vote` returns.

    Build it with `ack`, `not_yet` or `quarantine`; return None to abstain. Any quarantine
    vote wins, then any not-yet, else the fax is acknowledged (`faxflow.ack.decide`); the core
    votes too, from ``fax.problems`` and ``fax.results``. `reason` goes to the log and to the
    quarantine record.
    """

    verdict: Verdict
    reason: str = ""

    @classmethod
    def ack(cls, reason: str = "") -> Vote:
        """Acknowledge, as far as this plugin is concerned."""
        return cls(Verdict.ACK, reason)

    @classmethod
    def not_yet(cls, reason: str) -> Vote:
        """Not yet: the fax stays locked and comes back after the lock timeout, until
        ``[worker] max_attempts`` quarantines it (``retry_for`` may extend that)."""
        return cls(Verdict.NOT_YET, reason)

    @classmethod
    def quarantine(cls, reason: str) -> Vote:
        """Quarantine: the fax is kept in the quarantine folder with `reason`, then
        acknowledged; it does not come back."""
        return cls(Verdict.QUARANTINE, reason)


@dataclass(frozen=True, slots=True)
class Problem:
    """A stage that failed, turned into data (like pytest's CallInfo) for later hooks and votes.

    The core appends one to ``fax.problems`` when a download fails or a stage hook raises;
    the stages after it are skipped and the core votes not-yet (`transient`) or quarantine.
    Plugins read them (in `faxflow_ack_vote`, the notifications); to report one, raise from
    the stage hook instead of appending. `plugin` is meant to name the plugin that failed;
    the core leaves it None for now, as a hook call does not say which implementation raised.
    """

    stage: str  # "download", "extract_text", "classify", "route", "deliver:<key>", ...
    plugin: str | None
    message: str
    transient: bool = True  # True: an implicit not-yet vote; False: an implicit quarantine vote


@dataclass(slots=True)
class Fax:
    """The event that travels through the hooks: one job, its local documents, and what the
    plugins have found so far. Plugins read it; the core writes it from their results.

    The core writes, plugins read: `job` (Retarus' data, untrusted), `topic`, `attempt` (1 on
    the first attempt, counted in the journal across workers and restarts), `parent` (on a
    part of a split fax, `faxflow_split`: the id of the whole fax), `documents`
    (downloaded before any hook runs), `pages` (from `faxflow_extract_text`), `labels` and
    `fields` (merged from `faxflow_classify`), `explanations` (the classifiers' `explain`
    lines by heading), `routes` (from `faxflow_route`), `results` (by
    route key, from `faxflow_deliver`, including routes delivered by an earlier attempt) and
    `problems`. Return results from the hooks rather than writing these fields yourself.

    Plugins write: `artifacts`, files made for destinations (the OCR plugin puts its
    searchable PDF at ``"searchable_pdf"``, next to the document in the fax's spool folder,
    which is removed when the attempt ends), and `scratch`, free space by plugin name
    (``fax.scratch["myplugin"]``); the core's own keys there are ``"owner"`` and
    ``"quarantine_dir"`` (set before `faxflow_fax_quarantined`). Every attempt starts from a
    new `Fax`: nothing carries over but what the journal keeps.
    """

    job: Job
    topic: str
    attempt: int = 1
    # Set on a part of a split fax (`faxflow_split`): the id of the fax it is a part of.
    # The part's own id is "<parent id>#<n>".
    parent: str | None = None
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
    # Why classifiers labelled it, by heading (Classification.explain): lines for people.
    explanations: dict[str, list[str]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The job id (``fax.job.id``), unique within its topic; Retarus' text, so pass it
        through `faxflow.delivery.safe_component` before it goes into a path."""
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
    """The outcome of the acknowledgement vote for one fax.

    Made by `faxflow.ack.decide` from every plugin's vote, or returned by a plugin that takes
    over `faxflow_process_fax`; `faxflow_fax_acknowledged`, `faxflow_fax_quarantined` and
    `faxflow_fax_failed` receive it. `votes` maps plugin names to their votes (None:
    abstained); `reasons` are the reasons of the votes that decided it, as
    ``"plugin: reason"`` (none for an acknowledgement), and the core may add its own
    (``"gave up after 5 attempts"``).
    """

    verdict: Verdict
    reasons: tuple[str, ...]
    votes: dict[str, Vote | None]


@dataclass(frozen=True, slots=True)
class Target:
    """Where an operator may send a fax by hand (`faxflow_route_targets`): its name and the
    labels it gives the fax (a rule's), which a learning classifier takes as the answer."""

    name: str
    labels: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Notice:
    """A message for people rather than a fax (an alert digest), sent through a destination
    that implements `faxflow_notify`. `subject` and `text` hold no header-unsafe text of
    their own making; destinations still treat them as untrusted (they quote fax data)."""

    key: str  # stable per notice: Message-ID, Idempotency-Key
    subject: str
    text: str
    items: tuple[dict[str, Any], ...] = ()  # the same, for machines
    link: str | None = None  # where operators look (the console)


@dataclass(frozen=True, slots=True)
class DestinationType:
    """A kind of destination a plugin delivers to, declared by `faxflow_destination_types`.

    `check_options` validates one route's options as written in the config (string values may
    still be templates) and returns its problems as ``"option: message"`` strings such as
    ``"to: required"`` (the form `faxflow_check_config` accepts too, see
    `faxflow.config.as_problems`); faxflow adds rule, file and line. It may be called with
    any table a user wrote, so it must not raise (if it does, the problem names its plugin).

    `address_options` names the options that say where a fax goes (recipients, URLs):
    ``faxflow check`` warns when a template fills one of them from what the fax's sender
    controls.

    A `Route` whose `type` is `name` goes to the declaring plugin's `faxflow_deliver`, which
    returns None for the types that are not its own. `description` is for people (one line).
    """

    name: str
    check_options: Callable[[Mapping[str, Any]], Any] | None = None
    description: str = ""
    address_options: frozenset[str] = frozenset()
    plugin: str = ""  # the plugin that declared it (set by the core)
