"""The journal on PostgreSQL: one record of what was delivered, shared by several workers on
several machines. Same semantics as `faxflow.journal.SQLiteJournal`, plus hold renewal (below);
see docs/journal.md.

- One connection behind a lock: the worker's threads make a few short statements per fax
  (four, plus three per route), next to seconds of OCR and delivery. A pool is faster only
  far beyond what one worker can process, and costs the server more connections (figures
  in docs/journal.md).
- Times come from the database's clock (``now()``), so workers with skewed clocks agree on
  when a hold expires.
- A claim is one ``INSERT ... ON CONFLICT ... DO UPDATE ... WHERE`` statement: PostgreSQL
  locks the row, so of two workers claiming the same fax exactly one wins.
- A hold is renewed while its worker is still on the fax (a background thread), so a slow
  delivery is not taken over by a second worker; a worker that died stops renewing, and its
  faxes are free once the hold runs out. A fax handed out again to the same worker while
  one of its threads is on it is refused to the second thread (`Holds`).
- An operation that fails because the connection broke (server restart, network) is retried
  once on a fresh connection. Every statement is safe to repeat (at worst an attempt is
  counted twice), so a decision is never lost to a reconnect.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from faxflow import records
from faxflow.errors import FaxflowError
from faxflow.journal import FaxRecord, Hold, Holds, RouteRecord
from faxflow.records import RecordStore, Runner
from faxflow.types import DeliveryResult, Outcome

try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
except ImportError as exc:  # an optional dependency
    raise ImportError("the postgresql journal needs psycopg: "
                      "pip install 'faxflow[postgresql]'") from exc

log = logging.getLogger("faxflow.journal")

T = TypeVar("T")
Conn = psycopg.Connection[tuple[Any, ...]]

# Migrations, applied in order; a database records the last one it has in faxflow_schema.
MIGRATIONS: list[tuple[int, str]] = [
    (1, """
CREATE TABLE IF NOT EXISTS faxflow_fax (
    topic TEXT NOT NULL,
    fax_id TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    verdict TEXT,
    reason TEXT,
    owner TEXT,
    owner_until TIMESTAMPTZ,
    first_seen TIMESTAMPTZ NOT NULL,
    updated TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (topic, fax_id)
);
CREATE TABLE IF NOT EXISTS faxflow_delivery (
    topic TEXT NOT NULL,
    fax_id TEXT NOT NULL,
    route TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT,
    reference TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (topic, fax_id, route)
);
CREATE INDEX IF NOT EXISTS faxflow_fax_state ON faxflow_fax (state);
"""),
]
MIGRATIONS.append((2, records.schema("postgresql")
                   + "ALTER TABLE faxflow_delivery ADD COLUMN IF NOT EXISTS type TEXT;"))
MIGRATIONS.append((3, records.schema("postgresql")))  # alerts (its tables are new; the rest exists)
# 4: operators' decisions (new tables, likewise), and the console's failing destinations
# without reading every delivery.
MIGRATIONS.append((4, records.schema("postgresql")
                   + "CREATE INDEX IF NOT EXISTS faxflow_delivery_transient ON "
                     "faxflow_delivery (type, updated) WHERE state = 'transient';"))
SCHEMA_VERSION = MIGRATIONS[-1][0]
SCHEMA_LOCK = 7_446_230_911  # pg_advisory_xact_lock key: one worker migrates at a time

CLAIM = """
INSERT INTO faxflow_fax AS f (topic, fax_id, attempts, state, owner, owner_until,
                              first_seen, updated)
VALUES (%(topic)s, %(fax_id)s, 1, 'processing', %(owner)s,
        now() + %(hold)s * interval '1 second', now(), now())
ON CONFLICT (topic, fax_id) DO UPDATE
SET attempts = f.attempts + 1, state = 'processing', owner = excluded.owner,
    owner_until = excluded.owner_until, updated = excluded.updated
WHERE f.state NOT IN ('done', 'ack', 'quarantine')
  AND NOT (f.state = 'processing' AND f.owner IS DISTINCT FROM excluded.owner
           AND COALESCE(f.owner_until, '-infinity') > now())
RETURNING attempts, state, verdict, reason
"""


class JournalError(FaxflowError):
    """The PostgreSQL journal failed; the message names the server, never the password."""


class PostgresJournal:
    """The journal in a PostgreSQL database, for any number of workers and threads."""

    reconnect_wait = 10.0  # seconds a retry waits for the server to come back

    def __init__(self, url: str, connect_timeout: int = 10) -> None:
        self._url = url
        self._secrets, self.where, given = _describe(url)
        # Defaults for what the URL does not say itself.
        self._defaults = {k: v for k, v in (("application_name", "faxflow"),
                                             ("connect_timeout", connect_timeout))
                          if k not in given}
        self._lock = threading.Lock()
        self._conn: Conn | None = None
        self.holds = Holds()
        self._stop = threading.Event()
        self._run("open the journal", self._migrate, retry=False, transaction=True)
        self.records = RecordStore(_PgDb(self))
        self._renewer = threading.Thread(target=self.holds.renew_until,
                                         args=(self._stop, self._renew), daemon=True,
                                         name="journal-renew")
        self._renewer.start()

    def __repr__(self) -> str:
        return f"PostgresJournal({self.where})"

    # --- connection --------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _scrub_url(text)

    def _connect(self) -> Conn:
        try:
            return psycopg.connect(make_conninfo(self._url, **self._defaults), autocommit=True)
        except psycopg.Error as exc:
            raise JournalError(self._scrub(
                f"cannot connect to the PostgreSQL journal at {self.where}: "
                f"{str(exc).strip()}")) from None

    def _fresh(self, wait: float) -> Conn:
        """A new connection, trying for up to `wait` seconds (a restarting server)."""
        deadline = time.monotonic() + wait
        delay = 0.1
        while True:
            try:
                return self._connect()
            except JournalError:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _run(self, what: str, op: Callable[[Conn], T], retry: bool = True,
             transaction: bool = False) -> T:
        """Run `op` (autocommit: each statement commits, one round trip; or in one
        transaction); once more on a fresh connection if the connection broke."""
        with self._lock:
            for attempt in (1, 2):
                if self._conn is None or self._conn.closed:
                    self._conn = self._fresh(self.reconnect_wait if attempt == 2 else 0)
                conn = self._conn
                try:
                    if not transaction:
                        return op(conn)
                    with conn.transaction():
                        return op(conn)
                except psycopg.OperationalError as exc:
                    if not (conn.broken or conn.closed) or not retry or attempt == 2:
                        raise self._error(what, exc) from None
                    log.warning("journal connection to %s lost (%s); reconnecting", self.where,
                                self._scrub(str(exc).strip()))
                    conn.close()
                    self._conn = None
                except psycopg.Error as exc:
                    raise self._error(what, exc) from None
            raise AssertionError("unreachable")

    def _error(self, what: str, exc: BaseException) -> JournalError:
        return JournalError(self._scrub(
            f"PostgreSQL journal at {self.where}: {what} failed: {str(exc).strip()}"))

    def _migrate(self, conn: Conn) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS faxflow_schema (version INTEGER NOT NULL, "
                     "applied TIMESTAMPTZ NOT NULL DEFAULT now())")
        row = conn.execute("SELECT max(version) FROM faxflow_schema").fetchone()
        current = (row[0] if row else None) or 0
        if current > SCHEMA_VERSION:
            raise JournalError(f"the PostgreSQL journal at {self.where} has schema version "
                               f"{current}, newer than this faxflow knows ({SCHEMA_VERSION}): "
                               "upgrade faxflow")
        for version, sql in MIGRATIONS:
            if version > current:
                conn.execute(sql.encode())  # bytes: several statements, no parameters
                conn.execute("INSERT INTO faxflow_schema (version) VALUES (%s)", (version,))

    # --- holds -------------------------------------------------------------------------

    def _renew(self, due: list[tuple[tuple[str, str], Hold]]) -> None:
        rows = [(h.hold, t, f, h.owner) for (t, f), h in due]
        self._run("renew holds", partial(_renew, rows=rows))

    # --- the Journal interface ---------------------------------------------------------

    def claim(self, topic: str, fax_id: str, owner: str, hold: float) -> FaxRecord | None:
        key = (topic, fax_id)

        def op(conn: Conn) -> tuple[bool, tuple[Any, ...] | None]:
            row = conn.execute(CLAIM, {"topic": topic, "fax_id": fax_id, "owner": owner,
                                       "hold": float(hold)}).fetchone()
            if row is not None:
                return True, row
            # Not ours: a decided fax is returned for a re-ack, anything else is None. A
            # second statement is enough: a decided fax only ever moves on to done.
            return False, conn.execute(
                "SELECT attempts, state, verdict, reason FROM faxflow_fax "
                "WHERE topic = %s AND fax_id = %s", key).fetchone()

        def claimed() -> FaxRecord | None:
            ours, row = self._run("claim", op)
            if row is None:
                return None
            record = FaxRecord(topic, fax_id, *row)
            return record if ours or record.state in ("ack", "quarantine") else None

        return self.holds.claim(key, owner, hold, claimed)

    def get(self, topic: str, fax_id: str) -> FaxRecord | None:
        row = self._run("get", lambda c: c.execute(
            "SELECT attempts, state, verdict, reason FROM faxflow_fax "
            "WHERE topic = %s AND fax_id = %s", (topic, fax_id)).fetchone())
        return FaxRecord(topic, fax_id, *row) if row else None

    def owns(self, topic: str, fax_id: str, owner: str) -> bool:
        row = self._run("check ownership", lambda c: c.execute(
            "SELECT 1 FROM faxflow_fax WHERE topic = %s AND fax_id = %s AND owner = %s "
            "AND state = 'processing' AND owner_until > now()",
            (topic, fax_id, owner)).fetchone())
        return row is not None

    def held(self, topic: str, fax_id: str) -> bool:
        row = self._run("check hold", lambda c: c.execute(
            "SELECT 1 FROM faxflow_fax WHERE topic = %s AND fax_id = %s "
            "AND state = 'processing' AND owner_until > now()", (topic, fax_id)).fetchone())
        return row is not None

    def routes(self, topic: str, fax_id: str) -> dict[str, RouteRecord]:
        rows = self._run("read routes", lambda c: c.execute(
            "SELECT route, state, detail, reference, attempts FROM faxflow_delivery "
            "WHERE topic = %s AND fax_id = %s", (topic, fax_id)).fetchall())
        return {r[0]: RouteRecord(*r) for r in rows}

    def route_started(self, topic: str, fax_id: str, route: str, kind: str | None = None
                      ) -> None:
        self._run("record a route start", lambda c: c.execute(
            "INSERT INTO faxflow_delivery AS d (topic, fax_id, route, state, attempts, updated, "
            "type) VALUES (%s, %s, %s, 'started', 1, now(), %s) "
            "ON CONFLICT (topic, fax_id, route) DO UPDATE SET state = 'started', "
            "attempts = d.attempts + 1, updated = now(), type = COALESCE(excluded.type, d.type)",
            (topic, fax_id, route, kind)))

    def route_finished(self, topic: str, fax_id: str, route: str,
                       result: DeliveryResult) -> None:
        state = "delivered" if result.outcome is Outcome.DELIVERED else result.outcome.value
        self._run("record a route result", lambda c: c.execute(
            "UPDATE faxflow_delivery SET state = %s, detail = %s, reference = %s, "
            "updated = now() WHERE topic = %s AND fax_id = %s AND route = %s",
            (state, result.detail, result.reference, topic, fax_id, route)))

    def decide(self, topic: str, fax_id: str, state: str, reason: str) -> None:
        verdict = state if state in ("ack", "quarantine") else None
        try:
            self._run("record a decision", lambda c: c.execute(
                "UPDATE faxflow_fax SET state = %s, verdict = COALESCE(%s, verdict), "
                "reason = %s, owner = NULL, owner_until = NULL, updated = now() "
                "WHERE topic = %s AND fax_id = %s", (state, verdict, reason, topic, fax_id)))
        finally:  # the attempt is over either way: stop renewing its hold
            self.holds.released((topic, fax_id))

    def acknowledged(self, topic: str, ids: list[str]) -> None:
        if ids:
            self._run("record acknowledgements", lambda c: c.execute(
                "UPDATE faxflow_fax SET state = 'done', updated = now() WHERE topic = %s "
                "AND fax_id = ANY(%s) AND state IN ('ack', 'quarantine')", (topic, list(ids))))

    def prune(self, before: float) -> int:
        def op(conn: Conn) -> int:
            conn.execute("DELETE FROM faxflow_delivery d USING faxflow_fax f WHERE "
                         "d.topic = f.topic AND d.fax_id = f.fax_id AND f.state = 'done' "
                         "AND f.updated < to_timestamp(%s)", (before,))
            return conn.execute("DELETE FROM faxflow_fax WHERE state = 'done' AND "
                                "updated < to_timestamp(%s)", (before,)).rowcount

        gone = self._run("prune old faxes", op, transaction=True)
        self.records.prune(before)
        return int(gone)

    def pending_acks(self) -> dict[str, list[str]]:
        rows = self._run("read pending acknowledgements", lambda c: c.execute(
            "SELECT topic, fax_id FROM faxflow_fax WHERE state IN ('ack', 'quarantine') "
            "ORDER BY updated, topic, fax_id").fetchall())
        out: dict[str, list[str]] = {}
        for topic, fax_id in rows:
            out.setdefault(topic, []).append(fax_id)
        return out

    def counts(self) -> dict[str, int]:
        rows = self._run("count faxes", lambda c: c.execute(
            "SELECT state || COALESCE(':' || verdict, ''), COUNT(*) FROM faxflow_fax "
            "GROUP BY 1").fetchall())
        return {k: n for k, n in rows}

    def writable(self) -> bool:
        try:
            row = self._run("check writability", lambda c: c.execute(
                "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')"
            ).fetchone())
        except JournalError:
            return False
        return row is not None and not row[0] and row[1] == "off"

    def close(self) -> None:
        self._stop.set()
        if self._renewer.is_alive() and self._renewer is not threading.current_thread():
            self._renewer.join(5)
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class _PgRunner:
    """A connection speaking the record store's ``?`` placeholders."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(sql.replace("?", "%s").encode(), list(params))


class _PgDb:
    """The journal's connection, lock and reconnect logic, lent to its RecordStore."""

    dialect = "postgresql"

    def __init__(self, journal: PostgresJournal) -> None:
        self.journal = journal

    def run(self, what: str, op: Callable[[Runner], T], transaction: bool = False) -> T:
        return self.journal._run(what, lambda conn: op(_PgRunner(conn)),
                                 transaction=transaction)


def _renew(conn: Conn, rows: list[tuple[float, str, str, str]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE faxflow_fax SET owner_until = now() + %s * interval '1 second' "
            "WHERE topic = %s AND fax_id = %s AND owner = %s AND state = 'processing'", rows)


def _describe(url: str) -> tuple[list[str], str, set[str]]:
    """The password(s) to scrub from messages, "user@host:port/db" for them, and the keys
    the URL sets."""
    secrets: list[str] = []
    match = re.match(r"^[a-z]+://[^:/@]*:([^@]*)@", url)
    if match and match.group(1):
        secrets.append(match.group(1))
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:
        return secrets, "(an unreadable connection string)", set()
    password = params.get("password")
    if password:
        secrets.append(str(password))
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = params.get("port") or "5432"
    user = f"{params['user']}@" if params.get("user") else ""
    return secrets, f"{user}{host}:{port}/{params.get('dbname') or ''}", set(params)


def _scrub_url(text: str) -> str:
    """Blank a password in any URL or key=value conninfo the text quotes."""
    text = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", text)
