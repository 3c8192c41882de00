"""The journal: what happened to every fax, so a crash never loses or doubles a delivery.

Per fax: attempts, state, owner (the worker processing it) and reason; per route: whether it
was started, delivered or failed. States of a fax:

- ``processing``: a worker holds it (``owner`` until ``owner_until``);
- ``retry``: an attempt ended not-yet; it comes back after its lock expires;
- ``ack`` / ``quarantine``: decided; the acknowledgement is not yet confirmed by Retarus;
- ``done``: acknowledged at Retarus (``verdict`` says whether after delivery or quarantine).

SQLite is the default; `faxflow.journal_pg` implements the same interface on PostgreSQL for
several workers on several machines.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from faxflow import records
from faxflow.paths import make_dirs, restrict
from faxflow.records import RecordStore, Runner
from faxflow.types import DeliveryResult, Outcome

log = logging.getLogger("faxflow.journal")
T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS fax (
    topic TEXT NOT NULL,
    fax_id TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    verdict TEXT,
    reason TEXT,
    owner TEXT,
    owner_until REAL,
    first_seen REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (topic, fax_id)
);
CREATE TABLE IF NOT EXISTS delivery (
    topic TEXT NOT NULL,
    fax_id TEXT NOT NULL,
    route TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT,
    reference TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL,
    PRIMARY KEY (topic, fax_id, route)
);
CREATE INDEX IF NOT EXISTS fax_state ON fax (state);
"""
# Schema versions in PRAGMA user_version: 1 the tables above, 2 fax records, timeline and the
# shared quarantine (faxflow.records) and each delivery's destination type, 3 alerts,
# 4 operators' decisions.
SCHEMA_VERSION = 4


@dataclass(frozen=True, slots=True)
class FaxRecord:
    topic: str
    fax_id: str
    attempts: int
    state: str
    verdict: str | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class RouteRecord:
    route: str
    state: str  # "started" | "delivered" | "transient" | "permanent"
    detail: str | None
    reference: str | None
    attempts: int


class Journal(Protocol):
    def claim(self, topic: str, fax_id: str, owner: str, hold: float) -> FaxRecord | None:
        """Start an attempt: count it and take ownership for `hold` seconds.

        Returns None when another owner holds the fax (it is being processed elsewhere) or
        when it is already ``done``. A decided fax (``ack``/``quarantine``) is returned as is
        so the caller can acknowledge it again without processing it.
        """

    def get(self, topic: str, fax_id: str) -> FaxRecord | None: ...

    def owns(self, topic: str, fax_id: str, owner: str) -> bool:
        """Whether `owner` still holds the fax (checked before each delivery: a worker that
        lost its hold, e.g. cut off from the journal, must not deliver)."""

    def held(self, topic: str, fax_id: str) -> bool:
        """Whether any worker holds the fax now (the spool cleaner keeps its files)."""

    def routes(self, topic: str, fax_id: str) -> dict[str, RouteRecord]: ...

    def route_started(self, topic: str, fax_id: str, route: str, kind: str | None = None
                      ) -> None:
        """A delivery to `route` (of destination type `kind`) starts."""

    def route_finished(self, topic: str, fax_id: str, route: str,
                       result: DeliveryResult) -> None: ...

    def decide(self, topic: str, fax_id: str, state: str, reason: str) -> None:
        """Record the end of an attempt: ``retry``, ``ack`` or ``quarantine``; drops ownership."""

    def acknowledged(self, topic: str, ids: list[str]) -> None:
        """Retarus confirmed the acknowledgement of these faxes: mark them ``done``."""

    def prune(self, before: float) -> int:
        """Forget acknowledged faxes last updated before `before` (epoch seconds), with their
        delivery records and their history (`RecordStore.prune`). Returns how many faxes."""

    def pending_acks(self) -> dict[str, list[str]]:
        """Decided faxes whose acknowledgement is not confirmed, by topic (after a crash)."""

    def counts(self) -> dict[str, int]: ...

    def writable(self) -> bool: ...

    def close(self) -> None: ...

    @property
    def records(self) -> RecordStore:
        """Fax records, timeline and the shared quarantine in this journal's database."""


@dataclass
class Hold:
    owner: str
    hold: float
    thread: threading.Thread
    since: float  # time.monotonic() of the claim


class Holds:
    """The faxes this process claimed and is still working on, by the claiming thread.

    The journal renews these holds, so a slow fax is not taken over by another worker, and
    refuses a second thread of this process the fax (the owner name is the same, so only the
    process can tell). A thread works on one fax at a time: its next claim, its end, or
    `max_renew` seconds let the previous one go. Both journals use it; they only bring the
    statements.
    """

    def __init__(self, max_renew: float = 3600.0) -> None:
        self.max_renew = max_renew
        self._lock = threading.Lock()
        self._claiming = threading.Lock()
        self._held: dict[tuple[str, str], Hold] = {}

    def claim(self, key: tuple[str, str], owner: str, hold: float,
              claim: Callable[[], FaxRecord | None]) -> FaxRecord | None:
        """Check, claim (`claim()`, the backend's statement) and record the hold as one step,
        so two threads of this process never both get a fax."""
        with self._claiming:
            if self.held_elsewhere(key):
                return None  # another thread of this process is still on it
            record = claim()
            if record is not None and record.state == "processing":
                self.taken(key, owner, hold)
            return record

    def renew_until(self, stop: threading.Event,
                    renew: Callable[[list[tuple[tuple[str, str], Hold]]], None]) -> None:
        """Until `stop`: renew the due holds (`renew`, the backend's statement), so a slow
        delivery is not taken over by another worker when its first hold runs out."""
        while not stop.wait(self.interval()):
            due = self.due()
            if not due:
                continue
            try:
                renew(due)
            except Exception as exc:  # the next round tries again; holds last a while
                log.warning("renewing fax holds failed: %s", exc)

    def held_elsewhere(self, key: tuple[str, str]) -> bool:
        with self._lock:
            h = self._held.get(key)
            return (h is not None and h.thread is not threading.current_thread()
                    and h.thread.is_alive())

    def taken(self, key: tuple[str, str], owner: str, hold: float) -> None:
        me = threading.current_thread()
        with self._lock:
            for k in [k for k, h in self._held.items() if h.thread is me]:
                del self._held[k]
            self._held[key] = Hold(owner, hold, me, time.monotonic())

    def released(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._held.pop(key, None)

    def due(self) -> list[tuple[tuple[str, str], Hold]]:
        """The holds to renew now (dropping those whose thread ended or took too long)."""
        now = time.monotonic()
        with self._lock:
            for key, h in list(self._held.items()):
                if not h.thread.is_alive() or now - h.since > self.max_renew:
                    del self._held[key]
            return [(k, h) for k, h in self._held.items() if h.hold > 0]

    def interval(self) -> float:
        """Renew three times per hold period (of the shortest hold)."""
        return max(0.2, min((h.hold for _, h in self.due()), default=3.0) / 3)


class SQLiteJournal:
    """The journal in one SQLite file (WAL), safe for threads and for processes on one host."""

    def __init__(self, path: Path | str, mode: int = 0o600) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            # The journal names every fax: owner-only. SQLite gives its -wal and -shm files
            # the main file's mode, so creating that one right is enough.
            file = Path(self.path)
            make_dirs(file.parent)
            os.close(os.open(file, os.O_RDWR | os.O_CREAT, mode & 0o600))
            for name in (file, Path(f"{file}-wal"), Path(f"{file}-shm")):
                restrict(name, mode)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a decision or delivery recorded must survive even a power cut.
        self._db.execute("PRAGMA synchronous=FULL")
        self._migrate()
        self.records = RecordStore(_SqliteDb(self))
        self.holds = Holds()
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self.holds.renew_until,
                                         args=(self._stop, self._renew), daemon=True,
                                         name="journal-renew")
        self._renewer.start()

    def _migrate(self) -> None:
        """Bring the file to SCHEMA_VERSION in one write transaction (processes opening it
        at once migrate one after the other); refuse a newer file."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"the journal {self.path} has schema version {version}, newer than this "
                    f"faxflow knows ({SCHEMA_VERSION}): upgrade faxflow")
            # 3 and 4 only added tables: the records script (all IF NOT EXISTS) brings them.
            steps = [(1, SCHEMA), *((n, records.schema("sqlite")) for n in (2, 3, 4))]
            for number, script in steps:
                if version < number:
                    for statement in filter(str.strip, script.split(";")):
                        db.execute(statement)
            columns = {row[1] for row in db.execute("PRAGMA table_info(delivery)")}
            if "type" not in columns:
                db.execute("ALTER TABLE delivery ADD COLUMN type TEXT")
            # The console's failing destinations, without reading every delivery ever made.
            db.execute("CREATE INDEX IF NOT EXISTS delivery_transient ON delivery "
                       "(type, updated) WHERE state = 'transient'")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _renew(self, due: list[tuple[tuple[str, str], Hold]]) -> None:
        now = time.time()
        with self._lock:
            self._db.executemany(
                "UPDATE fax SET owner_until=? WHERE topic=? AND fax_id=? AND owner=? "
                "AND state='processing'", [(now + h.hold, t, f, h.owner) for (t, f), h in due])

    def _write(self, sql: str, *args: object) -> None:
        with self._lock:
            self._db.execute(sql, args)

    def claim(self, topic: str, fax_id: str, owner: str, hold: float) -> FaxRecord | None:
        return self.holds.claim((topic, fax_id), owner, hold,
                                lambda: self._claim(topic, fax_id, owner, hold))

    def _claim(self, topic: str, fax_id: str, owner: str, hold: float) -> FaxRecord | None:
        now = time.time()
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")  # take the write lock: claims across processes are atomic
            try:
                row = db.execute(
                    "SELECT attempts, state, verdict, reason, owner, owner_until FROM fax "
                    "WHERE topic=? AND fax_id=?", (topic, fax_id)).fetchone()
                if row is None:
                    db.execute(
                        "INSERT INTO fax (topic, fax_id, attempts, state, owner, owner_until, "
                        "first_seen, updated) VALUES (?, ?, 1, 'processing', ?, ?, ?, ?)",
                        (topic, fax_id, owner, now + hold, now, now))
                    db.execute("COMMIT")
                    return FaxRecord(topic, fax_id, 1, "processing", None, None)
                attempts, state, verdict, reason, holder, until = row
                if state == "done":
                    db.execute("COMMIT")
                    return None
                if state in ("ack", "quarantine"):
                    db.execute("COMMIT")
                    return FaxRecord(topic, fax_id, attempts, state, verdict, reason)
                if state == "processing" and holder != owner and (until or 0) > now:
                    db.execute("COMMIT")
                    return None
                attempts += 1
                db.execute(
                    "UPDATE fax SET attempts=?, state='processing', owner=?, owner_until=?, "
                    "updated=? WHERE topic=? AND fax_id=?",
                    (attempts, owner, now + hold, now, topic, fax_id))
                db.execute("COMMIT")
                return FaxRecord(topic, fax_id, attempts, "processing", verdict, reason)
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def get(self, topic: str, fax_id: str) -> FaxRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT attempts, state, verdict, reason FROM fax WHERE topic=? AND fax_id=?",
                (topic, fax_id)).fetchone()
        return FaxRecord(topic, fax_id, *row) if row else None

    def owns(self, topic: str, fax_id: str, owner: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM fax WHERE topic=? AND fax_id=? AND owner=? AND "
                "state='processing' AND owner_until > ?",
                (topic, fax_id, owner, time.time())).fetchone()
        return row is not None

    def held(self, topic: str, fax_id: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM fax WHERE topic=? AND fax_id=? AND state='processing' AND "
                "owner_until > ?", (topic, fax_id, time.time())).fetchone()
        return row is not None

    def routes(self, topic: str, fax_id: str) -> dict[str, RouteRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT route, state, detail, reference, attempts FROM delivery "
                "WHERE topic=? AND fax_id=?", (topic, fax_id)).fetchall()
        return {r[0]: RouteRecord(*r) for r in rows}

    def route_started(self, topic: str, fax_id: str, route: str, kind: str | None = None
                      ) -> None:
        self._write(
            "INSERT INTO delivery (topic, fax_id, route, state, attempts, updated, type) "
            "VALUES (?, ?, ?, 'started', 1, ?, ?) ON CONFLICT (topic, fax_id, route) DO UPDATE "
            "SET state='started', attempts=attempts+1, updated=excluded.updated, "
            "type=COALESCE(excluded.type, type)",
            topic, fax_id, route, time.time(), kind)

    def route_finished(self, topic: str, fax_id: str, route: str,
                       result: DeliveryResult) -> None:
        state = "delivered" if result.outcome is Outcome.DELIVERED else result.outcome.value
        self._write(
            "UPDATE delivery SET state=?, detail=?, reference=?, updated=? "
            "WHERE topic=? AND fax_id=? AND route=?",
            state, result.detail, result.reference, time.time(), topic, fax_id, route)

    def decide(self, topic: str, fax_id: str, state: str, reason: str) -> None:
        verdict = state if state in ("ack", "quarantine") else None
        try:
            self._write(
                "UPDATE fax SET state=?, verdict=COALESCE(?, verdict), reason=?, owner=NULL, "
                "owner_until=NULL, updated=? WHERE topic=? AND fax_id=?",
                state, verdict, reason, time.time(), topic, fax_id)
        finally:  # the attempt is over either way: stop renewing its hold
            self.holds.released((topic, fax_id))

    def acknowledged(self, topic: str, ids: list[str]) -> None:
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "UPDATE fax SET state='done', updated=? WHERE topic=? AND fax_id=? "
                "AND state IN ('ack', 'quarantine')", [(now, topic, i) for i in ids])
            self._db.execute("COMMIT")

    def prune(self, before: float) -> int:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM delivery WHERE (topic, fax_id) IN (SELECT topic, fax_id "
                           "FROM fax WHERE state = 'done' AND updated < ?)", (before,))
                gone = db.execute("DELETE FROM fax WHERE state = 'done' AND updated < ?",
                                  (before,)).rowcount
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        self.records.prune(before)
        return int(gone)

    def pending_acks(self) -> dict[str, list[str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT topic, fax_id FROM fax WHERE state IN ('ack', 'quarantine') "
                "ORDER BY updated").fetchall()
        out: dict[str, list[str]] = {}
        for topic, fax_id in rows:
            out.setdefault(topic, []).append(fax_id)
        return out

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT state || COALESCE(':' || verdict, ''), COUNT(*) FROM fax GROUP BY 1"
            ).fetchall()
        return {k: n for k, n in rows}

    def writable(self) -> bool:
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("ROLLBACK")
            return True
        except sqlite3.Error:
            return False

    def close(self) -> None:
        self._stop.set()
        if self._renewer.is_alive() and self._renewer is not threading.current_thread():
            self._renewer.join(5)
        with self._lock:
            self._db.close()


class _SqliteDb:
    """The journal's connection and lock, lent to its RecordStore."""

    dialect = "sqlite"

    def __init__(self, journal: SQLiteJournal) -> None:
        self.journal = journal

    def run(self, what: str, op: Callable[[Runner], T], transaction: bool = False) -> T:
        with self.journal._lock:
            db = self.journal._db
            if not transaction:
                return op(db)
            db.execute("BEGIN IMMEDIATE")
            try:
                result = op(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result


def open_journal(backend: str, path: Path, url: str | None = None,
                 mode: int = 0o600) -> Journal:
    if backend == "postgresql":
        import importlib

        if not url:
            raise ValueError("journal.url is required for the postgresql backend")
        module = importlib.import_module("faxflow.journal_pg")  # needs psycopg, optional
        journal: Journal = module.PostgresJournal(url)
        return journal
    return SQLiteJournal(path, mode)
