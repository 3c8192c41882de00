"""Fax records, their timeline and the shared quarantine, kept in the journal's database.

What operators look at (the console, `faxflow faxes`, `faxflow quarantine`): per fax its
metadata, labels, rules, routes and a timeline of lifecycle events; per quarantined fax its
documents, reasons and resolution. Both journal backends hold these tables (`RecordStore`
speaks to either through `Db`), so N workers on PostgreSQL share one history and one
quarantine queue.

Lists are keyset-paginated on (seen, id): first-seen time, then the row id, newest first;
that stays fast at millions of rows where OFFSET does not. `seen` is the worker's clock, not
the sender's `dateReceived` (which may be missing or invented), so the order is ours.
Rows are addressed by `id`, an opaque number, so no fax id or number appears in a URL.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

# What a fax's record says it is, for people (the journal's own states are for workers).
STATUSES = ("processing", "retrying", "delivered", "quarantined", "released", "routed",
            "dismissed")
QUARANTINE_STATES = ("open", "released", "routed", "dismissed")
EVENTS = ("received", "text read", "routed", "delivered", "retried", "quarantined", "queued",
          "acknowledged", "released", "route chosen", "dismissed", "notified", "failed")
TAG_KINDS = ("label", "rule", "destination")


def schema(dialect: str) -> str:
    """The record tables (journal schema version 2) in `dialect` ("sqlite"/"postgresql")."""
    pg = dialect == "postgresql"
    serial = "BIGSERIAL PRIMARY KEY" if pg else "INTEGER PRIMARY KEY AUTOINCREMENT"
    real = "DOUBLE PRECISION" if pg else "REAL"
    blob = "BYTEA" if pg else "BLOB"
    big = "BIGINT" if pg else "INTEGER"
    return f"""
CREATE TABLE IF NOT EXISTS faxflow_record (
    id {serial},
    topic TEXT NOT NULL,
    fax_id TEXT NOT NULL,
    seen {real} NOT NULL,
    received {real},
    updated {real} NOT NULL,
    status TEXT NOT NULL,
    sender TEXT,
    receiver TEXT,
    csid TEXT,
    pages INTEGER,
    pages_total INTEGER,
    labels TEXT,
    fields TEXT,
    rules TEXT,
    routes TEXT,
    reason TEXT,
    text TEXT,
    explain TEXT,
    UNIQUE (topic, fax_id)
);
CREATE INDEX IF NOT EXISTS faxflow_record_seen ON faxflow_record (seen, id);
CREATE INDEX IF NOT EXISTS faxflow_record_status ON faxflow_record (status, seen, id);
CREATE INDEX IF NOT EXISTS faxflow_record_sender ON faxflow_record (sender, seen, id);
CREATE INDEX IF NOT EXISTS faxflow_record_receiver ON faxflow_record (receiver, seen, id);
CREATE TABLE IF NOT EXISTS faxflow_tag (
    record_id {big} NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    seen {real} NOT NULL,
    PRIMARY KEY (kind, value, record_id)
);
CREATE INDEX IF NOT EXISTS faxflow_tag_seen ON faxflow_tag (kind, value, seen, record_id);
CREATE INDEX IF NOT EXISTS faxflow_tag_record ON faxflow_tag (record_id);
CREATE TABLE IF NOT EXISTS faxflow_event (
    record_id {big} NOT NULL,
    time {real} NOT NULL,
    name TEXT NOT NULL,
    worker TEXT,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS faxflow_event_record ON faxflow_event (record_id, time);
CREATE TABLE IF NOT EXISTS faxflow_quarantine (
    record_id {big} PRIMARY KEY,
    at {real} NOT NULL,
    state TEXT NOT NULL,
    reasons TEXT,
    votes TEXT,
    metadata TEXT,
    delivered TEXT,
    claimed_by TEXT,
    claim_until {real},
    resolved_by TEXT,
    resolved_at {real},
    note TEXT
);
CREATE INDEX IF NOT EXISTS faxflow_quarantine_state ON faxflow_quarantine (state, at, record_id);
CREATE TABLE IF NOT EXISTS faxflow_qdoc (
    record_id {big} NOT NULL,
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    extension TEXT NOT NULL,
    size {big} NOT NULL,
    sha256 TEXT NOT NULL,
    content {blob} NOT NULL,
    PRIMARY KEY (record_id, idx)
);
CREATE TABLE IF NOT EXISTS faxflow_pull (
    topic TEXT NOT NULL,
    worker TEXT NOT NULL,
    at {real} NOT NULL,
    PRIMARY KEY (topic, worker)
);
CREATE TABLE IF NOT EXISTS faxflow_alert (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    record_id {big},
    detail TEXT NOT NULL,
    first {real} NOT NULL,
    sent {real}
);
CREATE TABLE IF NOT EXISTS faxflow_decision (
    record_id {big} NOT NULL,
    at {real} NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    labels TEXT
);
CREATE INDEX IF NOT EXISTS faxflow_decision_at ON faxflow_decision (at);
CREATE TABLE IF NOT EXISTS faxflow_lease (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until {real} NOT NULL
);
"""


class DbCursor(Protocol):
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    @property
    def rowcount(self) -> int: ...


class Runner(Protocol):
    """One connection in use: ``execute(sql, params)`` with ``?`` placeholders."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> DbCursor: ...


class Db(Protocol):
    """How a journal lends `RecordStore` its database (its connection and its lock)."""

    dialect: str

    def run(self, what: str, op: Callable[[Runner], T], transaction: bool = False) -> T: ...


# --- What the store gives back ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """One step of a fax's life: when, what, who (a worker id or an operator), details."""

    time: float
    name: str
    worker: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class FaxRow:
    """One fax in a list."""

    id: int
    topic: str
    fax_id: str
    seen: float
    received: float | None
    updated: float
    status: str
    sender: str | None
    receiver: str | None
    csid: str | None
    pages: int | None
    pages_total: int | None
    labels: tuple[str, ...]
    rules: tuple[str, ...]
    reason: str | None


@dataclass(frozen=True, slots=True)
class RouteView:
    """One route of a fax: where it was to go and what became of it."""

    key: str
    type: str
    rule: str | None
    state: str  # "planned" (not started), "started", "delivered", "transient", "permanent"
    detail: str | None
    reference: str | None
    attempts: int


@dataclass(frozen=True, slots=True)
class StoredDocument:
    index: int
    name: str
    extension: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class QuarantineItem:
    """A quarantined fax: why, what was already delivered, and what an operator did."""

    id: int  # the record's id
    topic: str
    fax_id: str
    at: float
    state: str  # "open", "released", "routed", "dismissed"
    reasons: tuple[str, ...]
    votes: dict[str, Any]
    metadata: dict[str, Any]
    delivered: tuple[str, ...]
    documents: tuple[StoredDocument, ...]
    claimed_by: str | None
    claim_until: float | None
    resolved_by: str | None
    resolved_at: float | None
    note: str | None


@dataclass(frozen=True, slots=True)
class Alert:
    """A condition operators hear about in the next digest."""

    key: str
    kind: str  # "quarantined", "destination", "pull"
    record_id: int | None
    detail: str
    first: float


@dataclass(frozen=True, slots=True)
class OperatorDecision:
    """An operator routed (or released, dismissed) a fax: who, when, to what, with which
    labels, and the fax's text as the worker read it (None where it is not kept)."""

    record_id: int
    at: float
    who: str
    action: str
    target: str | None
    labels: tuple[str, ...]
    text: str | None


@dataclass(slots=True)
class FaxDetail:
    row: FaxRow
    fields: dict[str, Any]
    routes: list[RouteView]
    events: list[Event]
    text: str | None
    explain: Any
    quarantine: QuarantineItem | None


@dataclass(frozen=True, slots=True)
class FaxFilter:
    """What a list shows; every part optional. Numbers are E.164 or a prefix of one."""

    status: str | None = None
    since: float | None = None
    until: float | None = None
    sender: str | None = None
    receiver: str | None = None
    label: str | None = None
    rule: str | None = None
    destination: str | None = None
    text: str | None = None  # only where the text is stored
    reason: str | None = None  # substring of the reason (quarantine lists)
    topic: str | None = None


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page of a list starts (keyset: the last row's seen and id)."""

    seen: float
    id: int

    def token(self) -> str:
        return f"{self.seen!r}_{self.id}"

    @classmethod
    def parse(cls, token: str | None) -> Cursor | None:
        if not token:
            return None
        try:
            seen, _, ident = token.partition("_")
            return cls(float(seen), int(ident))
        except ValueError:
            return None


@dataclass(slots=True)
class Info:
    """What a worker knows about a fax, to merge into its record (None: leave as is)."""

    received: float | None = None
    sender: str | None = None
    receiver: str | None = None
    csid: str | None = None
    pages: int | None = None
    pages_total: int | None = None
    labels: Sequence[str] | None = None
    fields: dict[str, Any] | None = None
    rules: Sequence[str] | None = None
    routes: Sequence[dict[str, Any]] | None = None  # {"key", "type", "rule"}
    text: str | None = None
    explain: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


_ROW = ("id, topic, fax_id, seen, received, updated, status, sender, receiver, csid, pages, "
        "pages_total, labels, rules, reason")
_QUARANTINE = ("q.record_id, r.topic, r.fax_id, q.at, q.state, q.reasons, q.votes, q.metadata, "
               "q.delivered, q.claimed_by, q.claim_until, q.resolved_by, q.resolved_at, q.note")


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str,
                                                 sort_keys=True)


def _load(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def _row(values: Sequence[Any]) -> FaxRow:
    (ident, topic, fax_id, seen, received, updated, status, sender, receiver, csid, pages,
     total, labels, rules, reason) = values
    return FaxRow(int(ident), topic, fax_id, float(seen), received, float(updated), status,
                  sender, receiver, csid, pages, total, tuple(_load(labels, [])),
                  tuple(_load(rules, [])), reason)


def prefix_range(prefix: str) -> tuple[str, str]:
    """Bounds for ``column >= low AND column < high``: every text starting with `prefix`
    (an index range, unlike LIKE, on both databases)."""
    return prefix, prefix + "\U0010ffff"


class RecordStore:
    """Records, events and the quarantine, on one journal's database."""

    def __init__(self, db: Db, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    # --- writing (workers) -----------------------------------------------------------

    def _ensure(self, c: Runner, topic: str, fax_id: str, now: float) -> int:
        """The record's id, creating the record ("processing") if it is new."""
        row = c.execute("SELECT id FROM faxflow_record WHERE topic = ? AND fax_id = ?",
                        (topic, fax_id)).fetchone()
        if row is not None:
            return int(row[0])
        c.execute("INSERT INTO faxflow_record (topic, fax_id, seen, updated, status) "
                  "VALUES (?, ?, ?, ?, 'processing') ON CONFLICT (topic, fax_id) DO NOTHING",
                  (topic, fax_id, now, now))
        row = c.execute("SELECT id FROM faxflow_record WHERE topic = ? AND fax_id = ?",
                        (topic, fax_id)).fetchone()
        return int(row[0])

    def event(self, topic: str, fax_id: str, name: str, worker: str, detail: str = "",
              status: str | None = None, reason: str | None = None) -> int:
        """Add one event to a fax's timeline (creating its record); `status` moves the
        record on. Returns the record's id."""
        now = self.clock()

        def op(c: Runner) -> int:
            ident = self._ensure(c, topic, fax_id, now)
            c.execute("INSERT INTO faxflow_event (record_id, time, name, worker, detail) "
                      "VALUES (?, ?, ?, ?, ?)", (ident, now, name, worker, detail))
            if status is not None:
                c.execute("UPDATE faxflow_record SET status = ?, reason = COALESCE(?, reason), "
                          "updated = ? WHERE id = ?", (status, reason, now, ident))
            return ident

        return self.db.run("record an event", op, transaction=True)

    def describe(self, topic: str, fax_id: str, info: Info) -> None:
        """Merge what is known about a fax into its record (and its label, rule and
        destination tags, which the list filters use)."""
        now = self.clock()
        values: dict[str, Any] = {
            "received": info.received, "sender": info.sender, "receiver": info.receiver,
            "csid": info.csid, "pages": info.pages, "pages_total": info.pages_total,
            "labels": _json(sorted(info.labels)) if info.labels is not None else None,
            "fields": _json(info.fields), "rules": _json(list(info.rules))
            if info.rules is not None else None,
            "routes": _json(list(info.routes)) if info.routes is not None else None,
            "text": info.text, "explain": _json(info.explain)}
        given = {k: v for k, v in values.items() if v is not None}

        def op(c: Runner) -> None:
            ident = self._ensure(c, topic, fax_id, now)
            if given:
                sets = ", ".join(f"{k} = ?" for k in given)
                c.execute(f"UPDATE faxflow_record SET {sets}, updated = ? WHERE id = ?",  # noqa: S608 - column names are ours
                          (*given.values(), now, ident))
            tags = {("label", v) for v in info.labels or ()} | \
                {("rule", v) for v in info.rules or ()} | \
                {("destination", str(r.get("type"))) for r in info.routes or ()}
            if tags:
                seen = c.execute("SELECT seen FROM faxflow_record WHERE id = ?",
                                 (ident,)).fetchone()[0]
                for kind, value in sorted(tags):
                    c.execute("INSERT INTO faxflow_tag (record_id, kind, value, seen) "
                              "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                              (ident, kind, value, seen))

        self.db.run("describe a fax", op, transaction=True)

    def pulled(self, topic: str, worker: str) -> None:
        """A worker pulled from a topic successfully (the overview's "last pull")."""
        now = self.clock()
        self.db.run("record a pull", lambda c: c.execute(
            "INSERT INTO faxflow_pull (topic, worker, at) VALUES (?, ?, ?) "
            "ON CONFLICT (topic, worker) DO UPDATE SET at = excluded.at", (topic, worker, now)))

    # --- the quarantine --------------------------------------------------------------

    def quarantine(self, topic: str, fax_id: str, documents: Iterable[tuple[str, str, bytes]],
                   reasons: Sequence[str], votes: dict[str, Any], metadata: dict[str, Any],
                   delivered: Sequence[str], text: str | None, worker: str,
                   event: str = "quarantined") -> int:
        """Keep a fax in the shared quarantine (documents as (name, extension, bytes)),
        replacing what an earlier attempt kept; it is open until an operator resolves it.
        `event` names it in the timeline ("queued" when a route put it there for review)."""
        import hashlib

        now = self.clock()
        docs = [(i, name, ext, len(data), hashlib.sha256(data).hexdigest(), data)
                for i, (name, ext, data) in enumerate(documents, start=1)]
        reason = "; ".join(reasons)

        def op(c: Runner) -> int:
            ident = self._ensure(c, topic, fax_id, now)
            c.execute("DELETE FROM faxflow_qdoc WHERE record_id = ?", (ident,))
            c.execute("DELETE FROM faxflow_quarantine WHERE record_id = ?", (ident,))
            c.execute("INSERT INTO faxflow_quarantine (record_id, at, state, reasons, votes, "
                      "metadata, delivered) VALUES (?, ?, 'open', ?, ?, ?, ?)",
                      (ident, now, _json(list(reasons)), _json(votes), _json(metadata),
                       _json(list(delivered))))
            for doc in docs:
                c.execute("INSERT INTO faxflow_qdoc (record_id, idx, name, extension, size, "
                          "sha256, content) VALUES (?, ?, ?, ?, ?, ?, ?)", (ident, *doc))
            if text is not None:
                c.execute("UPDATE faxflow_record SET text = ? WHERE id = ?", (text, ident))
            c.execute("UPDATE faxflow_record SET status = 'quarantined', reason = ?, "
                      "updated = ? WHERE id = ?", (reason, now, ident))
            c.execute("INSERT INTO faxflow_event (record_id, time, name, worker, detail) "
                      "VALUES (?, ?, ?, ?, ?)", (ident, now, event, worker, reason))
            return ident

        return self.db.run("keep a fax in the quarantine", op, transaction=True)

    def quarantine_item(self, ident: int) -> QuarantineItem | None:
        def op(c: Runner) -> QuarantineItem | None:
            row = c.execute(f"SELECT {_QUARANTINE} FROM faxflow_quarantine q JOIN faxflow_record "  # noqa: S608
                            "r ON r.id = q.record_id WHERE q.record_id = ?", (ident,)).fetchone()
            if row is None:
                return None
            docs = c.execute("SELECT idx, name, extension, size, sha256 FROM faxflow_qdoc "
                             "WHERE record_id = ? ORDER BY idx", (ident,)).fetchall()
            return _item(row, docs)

        return self.db.run("read a quarantined fax", op)

    def quarantine_documents(self, ident: int) -> list[tuple[StoredDocument, bytes]]:
        rows = self.db.run("read quarantined documents", lambda c: c.execute(
            "SELECT idx, name, extension, size, sha256, content FROM faxflow_qdoc "
            "WHERE record_id = ? ORDER BY idx", (ident,)).fetchall())
        return [(StoredDocument(int(r[0]), r[1], r[2], int(r[3]), r[4]), bytes(r[5]))
                for r in rows]

    def quarantine_list(self, flt: FaxFilter | None = None, after: Cursor | None = None,
                        limit: int = 50) -> tuple[list[tuple[FaxRow, QuarantineItem]],
                                                  Cursor | None]:
        """Quarantined faxes, newest quarantine first; `flt.status` is the item's state
        (default "open")."""
        flt = flt or FaxFilter()
        where = ["q.state = ?"]
        params: list[Any] = [flt.status or "open"]
        if flt.reason:
            where.append("LOWER(r.reason) LIKE ?")
            params.append("%" + flt.reason.lower().replace("%", "") + "%")
        if flt.since is not None:
            where.append("q.at >= ?")
            params.append(flt.since)
        if flt.until is not None:
            where.append("q.at < ?")
            params.append(flt.until)
        if flt.topic:
            where.append("r.topic = ?")
            params.append(flt.topic)
        if after is not None:
            where.append("(q.at < ? OR (q.at = ? AND q.record_id < ?))")
            params += [after.seen, after.seen, after.id]
        sql = (f"SELECT {_ROW.replace('id,', 'r.id,', 1)}, {_QUARANTINE} "  # noqa: S608 - ours
               "FROM faxflow_quarantine q JOIN faxflow_record r ON r.id = q.record_id "
               f"WHERE {' AND '.join(where)} ORDER BY q.at DESC, q.record_id DESC LIMIT ?")

        def op(c: Runner) -> list[tuple[FaxRow, QuarantineItem]]:
            rows = c.execute(sql, (*params, limit + 1)).fetchall()
            return [(_row(r[:15]), _item(r[15:], ())) for r in rows]

        found = self.db.run("list the quarantine", op)
        more = len(found) > limit
        found = found[:limit]
        cursor = Cursor(found[-1][1].at, found[-1][1].id) if more else None
        return found, cursor

    def claim_quarantined(self, ident: int, who: str, hold: float) -> QuarantineItem | None:
        """Take an open item for one action, so two operators acting at once act once; None
        if it is resolved or another claim holds it."""
        now = self.clock()

        def op(c: Runner) -> bool:
            cursor = c.execute(
                "UPDATE faxflow_quarantine SET claimed_by = ?, claim_until = ? "
                "WHERE record_id = ? AND state = 'open' AND (claim_until IS NULL OR "
                "claim_until < ? OR claimed_by = ?)", (who, now + hold, ident, now, who))
            return cursor.rowcount == 1

        if not self.db.run("claim a quarantined fax", op, transaction=True):
            return None
        return self.quarantine_item(ident)

    def unclaim_quarantined(self, ident: int, who: str) -> None:
        self.db.run("let a quarantined fax go", lambda c: c.execute(
            "UPDATE faxflow_quarantine SET claimed_by = NULL, claim_until = NULL "
            "WHERE record_id = ? AND claimed_by = ?", (ident, who)))

    def resolve_quarantined(self, ident: int, who: str, state: str, note: str = "",
                            detail: str = "") -> bool:
        """Close an item we claimed: "released", "routed" or "dismissed"; the record's
        status follows and the timeline says who did it. False if the claim was lost."""
        if state not in QUARANTINE_STATES[1:]:
            raise ValueError(f"not a resolution: {state!r}")
        now = self.clock()
        event = {"released": "released", "routed": "route chosen", "dismissed": "dismissed"}

        def op(c: Runner) -> bool:
            cursor = c.execute(
                "UPDATE faxflow_quarantine SET state = ?, resolved_by = ?, resolved_at = ?, "
                "note = ?, claimed_by = NULL, claim_until = NULL WHERE record_id = ? AND "
                "state = 'open' AND claimed_by = ?", (state, who, now, note, ident, who))
            if cursor.rowcount != 1:
                return False
            c.execute("UPDATE faxflow_record SET status = ?, updated = ? WHERE id = ?",
                      (state, now, ident))
            c.execute("INSERT INTO faxflow_event (record_id, time, name, worker, detail) "
                      "VALUES (?, ?, ?, ?, ?)",
                      (ident, now, event[state], who, "; ".join(x for x in (detail, note) if x)))
            return True

        return self.db.run("resolve a quarantined fax", op, transaction=True)

    # --- operators' decisions (what a learning classifier learns from) ----------------

    def decided(self, ident: int, who: str, action: str, target: str | None,
                labels: Iterable[str]) -> None:
        """Note an operator's decision on a fax: the action, the target picked and the
        labels that target gives (as the configuration said then)."""
        now = self.clock()
        self.db.run("record a decision", lambda c: c.execute(
            "INSERT INTO faxflow_decision (record_id, at, who, action, target, labels) "
            "VALUES (?, ?, ?, ?, ?, ?)", (ident, now, who, action, target,
                                          _json(sorted(labels)))))

    def decisions(self, since: float = 0.0) -> list[OperatorDecision]:
        """Decisions since `since`, oldest first, with the fax's text where it is kept."""
        rows = self.db.run("read decisions", lambda c: c.execute(
            "SELECT d.record_id, d.at, d.who, d.action, d.target, d.labels, r.text "
            "FROM faxflow_decision d JOIN faxflow_record r ON r.id = d.record_id "
            "WHERE d.at >= ? ORDER BY d.at", (since,)).fetchall())
        return [OperatorDecision(int(r[0]), float(r[1]), r[2], r[3], r[4],
                                 tuple(_load(r[5], [])), r[6]) for r in rows]

    # --- reading (the console) -------------------------------------------------------

    def faxes(self, flt: FaxFilter | None = None, after: Cursor | None = None,
              limit: int = 50) -> tuple[list[FaxRow], Cursor | None]:
        """Faxes matching `flt`, newest first, and the cursor of the next page (or None).

        The plan, for millions of rows on either database: each filter that has an index
        of its own (a sender or receiver prefix, a label, rule or destination) is first
        probed for at most PROBE matching ids. If one of them has fewer, those ids are all
        the candidates, checked against the other filters by primary key and sorted (a
        specific number, a rare label). Otherwise every filter matches many faxes, and the
        newest matching ones are found by walking the (status, seen) or (seen) index
        newest first, testing each row: about `limit` / share-of-matching rows are read.
        Text and reason searches are only ever tested row by row.
        """
        flt = flt or FaxFilter()
        candidates = self._candidates(flt)
        where: list[str] = []
        params: list[Any] = []
        if candidates is not None:
            if not candidates:
                return [], None
            where.append(f"r.id IN ({', '.join('?' * len(candidates))})")
            params += candidates
        for kind, value in (("label", flt.label), ("rule", flt.rule),
                            ("destination", flt.destination)):
            if value:
                where.append("EXISTS (SELECT 1 FROM faxflow_tag t WHERE t.kind = ? AND "
                             "t.value = ? AND t.record_id = r.id)")
                params += [kind, value]
        for column in ("status", "topic"):
            value = getattr(flt, column)
            if value:
                where.append(f"r.{column} = ?")
                params.append(value)
        for column in ("sender", "receiver"):
            value = getattr(flt, column)
            if value:
                low, high = prefix_range(value)
                # Many rows match (else they are the candidates): walking by time finds the
                # newest soon. SQLite, knowing nothing of how many rows a range holds, would
                # take the column's index and sort them all, so it is hidden from it there;
                # PostgreSQL estimates the range from its statistics and walks by time.
                expr = f"(r.{column} || '')" if candidates is None and \
                    self.db.dialect == "sqlite" else f"r.{column}"
                where.append(f"{expr} >= ? AND {expr} < ?")
                params += [low, high]
        if flt.since is not None:
            where.append("r.seen >= ?")
            params.append(flt.since)
        if flt.until is not None:
            where.append("r.seen < ?")
            params.append(flt.until)
        if flt.text:
            where.append("LOWER(r.text) LIKE ?")
            params.append("%" + flt.text.lower().replace("%", "") + "%")
        if flt.reason:
            where.append("LOWER(r.reason) LIKE ?")
            params.append("%" + flt.reason.lower().replace("%", "") + "%")
        if after is not None:
            where.append("(r.seen < ? OR (r.seen = ? AND r.id < ?))")
            params += [after.seen, after.seen, after.id]
            where.append("r.seen <= ?")  # the same, as a range an index can start from
            params.append(after.seen)
        columns = ", ".join(f"r.{c.strip()}" for c in _ROW.split(","))
        sql = (f"SELECT {columns} FROM faxflow_record r "  # noqa: S608 - names ours, values params
               f"{'WHERE ' + ' AND '.join(where) if where else ''} "
               "ORDER BY r.seen DESC, r.id DESC LIMIT ?")
        rows = self.db.run("list faxes", lambda c: c.execute(sql, (*params, limit + 1))
                           .fetchall())
        found = [_row(r) for r in rows[:limit]]
        cursor = Cursor(found[-1].seen, found[-1].id) if len(rows) > limit else None
        return found, cursor

    PROBE = 2000  # candidate ids fetched from one filter's index before walking by time

    def _candidates(self, flt: FaxFilter) -> list[int] | None:
        """The ids matching the most selective indexed filter, if it matches fewer than
        PROBE faxes; None when every indexed filter matches more (or there is none)."""
        probes: list[tuple[str, list[Any]]] = []
        for column in ("sender", "receiver"):
            value = getattr(flt, column)
            if value:
                low, high = prefix_range(value)
                probes.append((f"SELECT id FROM faxflow_record WHERE {column} >= ? AND "  # noqa: S608
                               f"{column} < ?", [low, high]))
        for kind, value in (("label", flt.label), ("rule", flt.rule),
                            ("destination", flt.destination)):
            if value:
                probes.append(("SELECT record_id FROM faxflow_tag WHERE kind = ? AND "
                               "value = ?", [kind, value]))
        if not probes:
            return None

        def op(c: Runner) -> list[int] | None:
            best: list[int] | None = None
            for sql, params in probes:
                ids = [int(r[0]) for r in c.execute(f"{sql} LIMIT ?",
                                                    (*params, self.PROBE + 1)).fetchall()]
                if len(ids) <= self.PROBE and (best is None or len(ids) < len(best)):
                    best = ids
                    if not ids:
                        break
            return best

        return self.db.run("probe a filter", op)

    def fax(self, ident: int) -> FaxDetail | None:
        """Everything about one fax: record, routes with their outcome, timeline,
        quarantine item."""
        def op(c: Runner) -> tuple[Any, list[Any], list[Any]] | None:
            row = c.execute(f"SELECT {_ROW}, fields, routes, text, explain FROM "  # noqa: S608
                            "faxflow_record WHERE id = ?", (ident,)).fetchone()
            if row is None:
                return None
            events = c.execute("SELECT time, name, worker, detail FROM faxflow_event WHERE "
                               "record_id = ? ORDER BY time", (ident,)).fetchall()
            deliveries = c.execute(
                f"SELECT route, state, detail, reference, attempts, type FROM {self.delivery} "  # noqa: S608
                "WHERE topic = ? AND fax_id = ?", (row[1], row[2])).fetchall()
            return row, events, deliveries

        found = self.db.run("read a fax", op)
        if found is None:
            return None
        row, events, deliveries = found
        done = {d[0]: d for d in deliveries}
        planned = _load(row[16], [])
        routes: list[RouteView] = []
        for route in planned:
            key = str(route.get("key"))
            d = done.pop(key, None)
            routes.append(RouteView(key, str(route.get("type")), route.get("rule"),
                                    d[1] if d else "planned", d[2] if d else None,
                                    d[3] if d else None, int(d[4]) if d else 0))
        for key, d in sorted(done.items()):  # delivered in an earlier attempt or by an action
            routes.append(RouteView(key, d[5] or "?", None, d[1], d[2], d[3], int(d[4])))
        return FaxDetail(_row(row[:15]), _load(row[15], {}), routes,
                         [Event(float(e[0]), e[1], e[2] or "", e[3] or "") for e in events],
                         row[17], _load(row[18], None), self.quarantine_item(ident))

    def fax_id(self, topic: str, fax_id: str) -> int | None:
        row = self.db.run("find a fax", lambda c: c.execute(
            "SELECT id FROM faxflow_record WHERE topic = ? AND fax_id = ?",
            (topic, fax_id)).fetchone())
        return int(row[0]) if row else None

    @property
    def delivery(self) -> str:
        """The journal's delivery table (named per backend)."""
        return "faxflow_delivery" if self.db.dialect == "postgresql" else "delivery"

    def overview(self, since: float) -> dict[str, Any]:
        """Counts by status since `since`, faxes per hour, last pull per topic, open
        quarantine, and destinations whose latest outcome is a failure."""
        def op(c: Runner) -> dict[str, Any]:
            by_status = dict(c.execute(
                "SELECT status, COUNT(*) FROM faxflow_record WHERE seen >= ? GROUP BY status",
                (since,)).fetchall())
            hour = "FLOOR(seen / 3600)" if self.db.dialect == "postgresql" else \
                "CAST(seen / 3600 AS INTEGER)"
            hours = c.execute(
                f"SELECT {hour}, COUNT(*) FROM faxflow_record "  # noqa: S608 - ours
                "WHERE seen >= ? GROUP BY 1 ORDER BY 1", (since,)).fetchall()
            pulls = c.execute("SELECT topic, MAX(at) FROM faxflow_pull GROUP BY topic "
                              "ORDER BY topic").fetchall()
            open_items = c.execute("SELECT COUNT(*) FROM faxflow_quarantine WHERE "
                                   "state = 'open'").fetchone()[0]
            failing = c.execute(
                f"SELECT type, COUNT(*), MIN(updated) FROM {self.delivery} "  # noqa: S608
                "WHERE state = 'transient' AND type IS NOT NULL GROUP BY type").fetchall()
            in_flight = c.execute("SELECT COUNT(*) FROM faxflow_record WHERE status IN "
                                  "('processing', 'retrying')").fetchone()[0]
            return {"by_status": {k: int(v) for k, v in by_status.items()},
                    "per_hour": [(int(h) * 3600, int(n)) for h, n in hours],
                    "last_pull": {t: float(a) for t, a in pulls},
                    "open_quarantine": int(open_items),
                    "in_flight": int(in_flight),
                    "failing": {t: (int(n), _epoch(u)) for t, n, u in failing}}

        return self.db.run("read the overview", op)

    # --- alerts (faxflow_alerts) --------------------------------------------------------

    def raise_alert(self, key: str, kind: str, detail: str,
                    record_id: int | None = None) -> None:
        """Note a condition operators must hear about; the same `key` stays one alert until
        it is cleared (one notice per episode, not one per check)."""
        now = self.clock()
        self.db.run("raise an alert", lambda c: c.execute(
            "INSERT INTO faxflow_alert (key, kind, record_id, detail, first) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
            (key, kind, record_id, detail, now)))

    def clear_alerts(self, kind: str, keep: Iterable[str]) -> None:
        """The condition is over for every `kind` alert not in `keep`: forget them, so the
        next episode is told again."""
        keys = list(keep)
        marks = ", ".join("?" for _ in keys) or "NULL"
        self.db.run("clear alerts", lambda c: c.execute(
            f"DELETE FROM faxflow_alert WHERE kind = ? AND key NOT IN ({marks})",  # noqa: S608
            (kind, *keys)))

    def pending_alerts(self) -> list[Alert]:
        rows = self.db.run("read alerts", lambda c: c.execute(
            "SELECT key, kind, record_id, detail, first FROM faxflow_alert WHERE sent IS NULL "
            "ORDER BY first, key").fetchall())
        return [Alert(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]

    def alerts_sent(self, keys: Sequence[str], who: str) -> None:
        """Mark alerts as told; quarantined faxes get a "notified" event."""
        now = self.clock()

        def op(c: Runner) -> None:
            for key in keys:
                row = c.execute("UPDATE faxflow_alert SET sent = ? WHERE key = ? AND sent IS "
                                "NULL RETURNING record_id", (now, key)).fetchone()
                if row is not None and row[0] is not None:
                    c.execute("INSERT INTO faxflow_event (record_id, time, name, worker, "
                              "detail) VALUES (?, ?, 'notified', ?, 'alert digest')",
                              (row[0], now, who))

        self.db.run("mark alerts sent", op, transaction=True)

    def take_lease(self, name: str, owner: str, seconds: float) -> bool:
        """Hold `name` for `seconds` unless someone else holds it: of several workers, one
        does a shared chore (sending a digest) per period."""
        now = self.clock()

        def op(c: Runner) -> bool:
            c.execute("INSERT INTO faxflow_lease (name, owner, until) VALUES (?, ?, 0) "
                      "ON CONFLICT (name) DO NOTHING", (name, owner))
            return c.execute("UPDATE faxflow_lease SET owner = ?, until = ? WHERE name = ? "
                             "AND until <= ?", (owner, now + seconds, name, now)).rowcount == 1

        return bool(self.db.run("take a lease", op, transaction=True))

    def status_counts(self, since: float) -> dict[str, int]:
        """Faxes first seen since `since`, by status (each status counted in its own
        (status, seen) index range: a week of a busy site is read from the index alone)."""
        def op(c: Runner) -> dict[str, int]:
            counts = {status: int(c.execute(
                "SELECT COUNT(*) FROM faxflow_record WHERE status = ? AND seen >= ?",
                (status, since)).fetchone()[0]) for status in STATUSES}
            return {k: v for k, v in counts.items() if v}

        return self.db.run("count faxes", op)

    def quarantine_reasons(self, limit: int = 10) -> list[tuple[str, int]]:
        """The commonest reasons of the open quarantine items, with how many have each."""
        rows = self.db.run("group the quarantine", lambda c: c.execute(
            "SELECT r.reason, COUNT(*) FROM faxflow_quarantine q JOIN faxflow_record r "
            "ON r.id = q.record_id WHERE q.state = 'open' GROUP BY r.reason "
            "ORDER BY COUNT(*) DESC, r.reason LIMIT ?", (limit,)).fetchall())
        return [(str(reason or ""), int(n)) for reason, n in rows]

    # --- retention -------------------------------------------------------------------

    def prune(self, before: float) -> int:
        """Delete records last updated before `before`, with their events and tags; open
        quarantine items are kept (a fax nobody resolved is never thrown away)."""
        def op(c: Runner) -> int:
            old = "SELECT id FROM faxflow_record WHERE updated < ? AND id NOT IN " \
                  "(SELECT record_id FROM faxflow_quarantine WHERE state = 'open')"
            for table in ("faxflow_event", "faxflow_tag", "faxflow_qdoc", "faxflow_quarantine",
                          "faxflow_alert", "faxflow_decision"):
                c.execute(f"DELETE FROM {table} WHERE record_id IN ({old})", (before,))  # noqa: S608
            return c.execute(f"DELETE FROM faxflow_record WHERE id IN ({old})",  # noqa: S608
                             (before,)).rowcount

        return int(self.db.run("prune old records", op, transaction=True))


def _epoch(value: Any) -> float:
    """A time from either backend as epoch seconds (PostgreSQL's delivery times are
    timestamps; everything else here is already a number)."""
    return float(value.timestamp()) if hasattr(value, "timestamp") else float(value)


def _item(row: Sequence[Any], docs: Sequence[Sequence[Any]]) -> QuarantineItem:
    (ident, topic, fax_id, at, state, reasons, votes, metadata, delivered, claimed_by,
     claim_until, resolved_by, resolved_at, note) = row
    return QuarantineItem(int(ident), topic, fax_id, float(at), state,
                          tuple(_load(reasons, [])), _load(votes, {}), _load(metadata, {}),
                          tuple(_load(delivered, [])),
                          tuple(StoredDocument(int(d[0]), d[1], d[2], int(d[3]), d[4])
                                for d in docs),
                          claimed_by, claim_until, resolved_by, resolved_at, note)
