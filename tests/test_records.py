"""Fax records, timeline and the shared quarantine (faxflow.records) on both journal backends:
SQLite and a real PostgreSQL server (tests/pg_server.py)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pg_server as pg
import pytest

from faxflow.journal import SCHEMA, Journal, SQLiteJournal, open_journal
from faxflow.records import Cursor, FaxFilter, Info
from faxflow.types import DeliveryResult

pg_server = pg.pg_server  # the fixtures, used by name
pg_url = pg.pg_url

Opener = Callable[[], Journal]


@pytest.fixture(params=["sqlite", "postgresql"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    opened: list[Journal] = []
    if request.param == "sqlite":
        def make() -> Journal:
            return SQLiteJournal(tmp_path / "j.sqlite")
    else:
        url = request.getfixturevalue("pg_url")

        def make() -> Journal:
            journal = open_journal("postgresql", tmp_path / "unused", url)
            return journal

    def tracked() -> Journal:
        opened.append(make())
        return opened[-1]

    yield tracked
    for j in opened:
        j.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def store(opener: Opener) -> tuple[Journal, Clock]:
    journal = opener()
    clock = Clock()
    journal.records.clock = clock
    if isinstance(journal, SQLiteJournal):
        return journal, clock
    # PostgreSQL: the database outlives the test; start from empty tables.
    journal.records.db.run("clean", lambda c: c.execute(
        "TRUNCATE faxflow_record, faxflow_event, faxflow_tag, faxflow_quarantine, faxflow_qdoc, "
        "faxflow_pull, faxflow_delivery, faxflow_fax"))
    return journal, clock


def test_timeline_and_details_of_a_fax(opener: Opener) -> None:
    journal, _ = store(opener)
    records = journal.records
    ident = records.event("t", "fax/1", "received", "w1", "attempt 1")
    records.describe("t", "fax/1", Info(sender="+4940123", receiver="+4989262080440",
                                        csid="ACME", pages=2, pages_total=2,
                                        labels=["invoice"], fields={"total": 12.5},
                                        rules=["invoices"],
                                        routes=[{"key": "invoices/0", "type": "email",
                                                 "rule": "invoices"},
                                                {"key": "invoices/1", "type": "folder",
                                                 "rule": "invoices"}]))
    journal.route_started("t", "fax/1", "invoices/0", "email")
    journal.route_finished("t", "fax/1", "invoices/0",
                           DeliveryResult.delivered("mailed", "<k@faxflow>"))
    records.event("t", "fax/1", "delivered", "w1", "invoices/0", status="delivered")
    detail = records.fax(ident)
    assert detail is not None
    assert detail.row.status == "delivered" and detail.row.labels == ("invoice",)
    assert detail.fields == {"total": 12.5}
    assert [(r.key, r.type, r.state, r.reference) for r in detail.routes] == [
        ("invoices/0", "email", "delivered", "<k@faxflow>"),
        ("invoices/1", "folder", "planned", None)]
    assert [e.name for e in detail.events] == ["received", "delivered"]
    assert detail.text is None and detail.quarantine is None
    assert records.fax_id("t", "fax/1") == ident


def test_lists_filter_and_page_by_keyset(opener: Opener) -> None:
    journal, clock = store(opener)
    records = journal.records
    for i in range(25):
        records.event("t", f"f{i}", "received", "w1")
        records.describe("t", f"f{i}", Info(sender=f"+49401{i % 3}", labels=["lab"] if i % 2
                                            else ["invoice"], rules=["r"]))
    rows, cursor = records.faxes(limit=10)
    assert [r.fax_id for r in rows] == [f"f{i}" for i in range(24, 14, -1)]
    assert cursor is not None
    more, cursor = records.faxes(after=Cursor.parse(cursor.token()), limit=10)
    assert [r.fax_id for r in more] == [f"f{i}" for i in range(14, 4, -1)]
    last, cursor = records.faxes(after=cursor, limit=10)
    assert len(last) == 5 and cursor is None
    labs, _ = records.faxes(FaxFilter(label="lab", sender="+494012"), limit=100)
    assert [r.fax_id for r in labs] == [f"f{i}" for i in range(23, 0, -1) if i % 2 and i % 3 == 2]
    prefix, _ = records.faxes(FaxFilter(sender="+49401"), limit=100)
    assert len(prefix) == 25
    recent, _ = records.faxes(FaxFilter(since=clock.now - 5), limit=100)
    assert recent and all(r.seen >= clock.now - 5 for r in recent)


def test_both_list_plans_find_the_same_faxes(opener: Opener) -> None:
    """A filter with few matches is answered from its index's candidates; with many, by
    walking newest first. Forcing one plan or the other must not change any answer."""
    journal, clock = store(opener)
    records = journal.records
    for i in range(40):
        records.event("t", f"f{i}", "received", "w1",
                      status="quarantined" if i % 4 == 0 else "delivered")
        records.describe("t", f"f{i}", Info(
            sender=f"+4989{i % 5}{i}", receiver=f"+4930{i % 2}",
            labels=["lab"] + (["urgent"] if i % 7 == 0 else []), rules=[f"r{i % 3}"],
            routes=[{"key": "a/0", "type": "email" if i % 2 else "folder"}]))
    filters = [FaxFilter(sender="+49891"), FaxFilter(sender="+4989", label="urgent"),
               FaxFilter(label="lab", rule="r1", status="quarantined"),
               FaxFilter(destination="folder", receiver="+49300"),
               FaxFilter(sender="+4989", since=clock.now - 30, until=clock.now - 10),
               FaxFilter(label="nobody"), FaxFilter(sender="+4989", label="lab")]
    for flt in filters:
        answers = []
        for probe in (2000, 0):  # candidates from an index / walking by time
            records.PROBE = probe
            pages, cursor = [], None
            while True:
                rows, cursor = records.faxes(flt, cursor, limit=4)
                pages += [r.fax_id for r in rows]
                if cursor is None:
                    break
            answers.append(pages)
        assert answers[0] == answers[1], flt
    records.PROBE = 2000
    assert len(records.faxes(FaxFilter(sender="+4989", label="lab"), limit=100)[0]) == 40
    assert [r.fax_id for r in records.faxes(FaxFilter(label="urgent"))[0]] == \
        ["f35", "f28", "f21", "f14", "f7", "f0"]


def test_quarantine_is_shared_claimed_once_and_resolved(opener: Opener) -> None:
    journal, _ = store(opener)
    records = journal.records
    ident = records.quarantine("t", "q1", [("29.pdf", "pdf", b"%PDF-1.4 data")],
                               ["core: PDF is damaged"], {"core": ["quarantine", "damaged"]},
                               {"job": {"id": "q1"}}, ["a/0"], None, "w1")
    other = opener()  # another worker or the console, on the same database
    other.records.clock = records.clock
    (row, item), = other.records.quarantine_list()[0]
    assert item.id == ident and item.state == "open" and item.delivered == ("a/0",)
    assert row.reason == "core: PDF is damaged" and row.status == "quarantined"
    [(doc, data)] = other.records.quarantine_documents(ident)
    assert (doc.name, data) == ("29.pdf", b"%PDF-1.4 data")
    assert records.claim_quarantined(ident, "alice", 60) is not None
    assert other.records.claim_quarantined(ident, "bob", 60) is None  # alice acts
    assert not other.records.resolve_quarantined(ident, "bob", "dismissed")
    assert records.resolve_quarantined(ident, "alice", "released", "SMTP fixed")
    item = other.records.quarantine_item(ident)
    assert item is not None and (item.state, item.resolved_by, item.note) == (
        "released", "alice", "SMTP fixed")
    detail = other.records.fax(ident)
    assert detail is not None and detail.row.status == "released"
    assert [e.name for e in detail.events] == ["quarantined", "released"]
    assert other.records.quarantine_list()[0] == []
    assert len(other.records.quarantine_list(FaxFilter(status="released"))[0]) == 1


def test_two_operators_claiming_at_once_get_it_once(opener: Opener) -> None:
    journal, _ = store(opener)
    ident = journal.records.quarantine("t", "q2", [], ["x"], {}, {}, [], None, "w1")
    journals = [opener() for _ in range(8)]
    won: list[str] = []
    barrier = threading.Barrier(len(journals))

    def claim(j: Journal, who: str) -> None:
        barrier.wait()
        if j.records.claim_quarantined(ident, who, 60) is not None:
            won.append(who)

    threads = [threading.Thread(target=claim, args=(j, f"op{i}")) for i, j in
               enumerate(journals)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1


def test_prune_keeps_open_quarantine(opener: Opener) -> None:
    journal, clock = store(opener)
    records = journal.records
    records.event("t", "old", "received", "w1", status="delivered")
    records.quarantine("t", "stuck", [("a.pdf", "pdf", b"x")], ["r"], {}, {}, [], None, "w1")
    cut = clock.now + 1
    records.event("t", "new", "received", "w1")
    assert records.prune(cut) == 1
    rows, _ = records.faxes(limit=10)
    assert sorted(r.fax_id for r in rows) == ["new", "stuck"]


def test_overview(opener: Opener) -> None:
    journal, clock = store(opener)
    records = journal.records
    records.event("t", "a", "received", "w1", status="delivered")
    records.quarantine("t", "b", [], ["r"], {}, {}, [], None, "w1")
    records.pulled("t", "w1")
    journal.route_started("t", "c", "x/0", "email")
    journal.route_finished("t", "c", "x/0", DeliveryResult.transient("SMTP down"))
    view = records.overview(since=clock.now - 100)
    assert view["by_status"] == {"delivered": 1, "quarantined": 1}
    assert view["open_quarantine"] == 1 and "t" in view["last_pull"]
    assert view["failing"]["email"][0] == 1
    assert sum(n for _, n in view["per_hour"]) == 2
    records.event("t", "d", "received", "w1", status="processing")
    records.quarantine("t", "e", [], ["r"], {}, {}, [], None, "w1")
    records.quarantine("t", "f", [], ["other"], {}, {}, [], None, "w1")
    assert records.overview(since=clock.now)["in_flight"] == 1
    assert records.status_counts(clock.now - 1000) == {"delivered": 1, "quarantined": 3,
                                                       "processing": 1}
    assert records.status_counts(clock.now + 1) == {}
    assert records.quarantine_reasons() == [("r", 2), ("other", 1)]


def test_an_old_sqlite_journal_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA)  # what version 1 wrote, with user_version still 0
    db.execute("INSERT INTO delivery (topic, fax_id, route, state, attempts, updated) "
               "VALUES ('t', '1', 'r/0', 'delivered', 1, 0)")
    db.commit()
    db.close()
    journal = SQLiteJournal(path)
    try:
        assert journal.routes("t", "1")["r/0"].state == "delivered"
        journal.records.event("t", "1", "received", "w")
        assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 4
    finally:
        journal.close()
    sqlite3.connect(path).execute("PRAGMA user_version = 99").connection.commit()
    with pytest.raises(sqlite3.DatabaseError, match="newer than this faxflow knows"):
        SQLiteJournal(path)


def test_journal_prune_forgets_old_acknowledged_faxes(opener: Opener) -> None:
    import time

    journal, _ = store(opener)
    journal.records.clock = time.time
    journal.claim("t", "old", "w", 60)
    journal.route_started("t", "old", "r/0", "folder")
    journal.route_finished("t", "old", "r/0", DeliveryResult.delivered("ok"))
    journal.decide("t", "old", "ack", "")
    journal.acknowledged("t", ["old"])
    journal.records.event("t", "old", "acknowledged", "w", status="delivered")
    journal.claim("t", "busy", "w", 60)  # in progress: never pruned
    time.sleep(0.05)
    assert journal.prune(time.time()) == 1
    assert journal.get("t", "old") is None and journal.routes("t", "old") == {}
    assert journal.get("t", "busy") is not None
    assert journal.records.fax_id("t", "old") is None
