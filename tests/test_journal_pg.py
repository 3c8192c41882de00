"""The journal contract, run against both backends (SQLite and a real PostgreSQL server from
tests/pg_server.py), and what only PostgreSQL does: several processes on one database,
reconnecting after a server restart, never showing the password."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pg_server as pg
import pytest

from faxflow.journal import Journal, SQLiteJournal, open_journal
from faxflow.types import DeliveryResult

pg_server = pg.pg_server  # the fixtures, used by name
pg_url = pg.pg_url

Opener = Callable[[], Journal]


@pytest.fixture(params=["sqlite", "postgresql"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens a journal on one store (a new one per test); every opened journal is closed."""
    opened: list[Journal] = []
    if request.param == "sqlite":
        path = tmp_path / "j.sqlite"

        def make() -> Journal:
            return SQLiteJournal(path)
    else:
        url = request.getfixturevalue("pg_url")

        def make() -> Journal:
            return open_journal("postgresql", tmp_path / "unused", url)

    def tracked() -> Journal:
        opened.append(make())
        return opened[-1]

    yield tracked
    for j in opened:
        j.close()


# --- the contract, on both backends ------------------------------------------------------


def test_claim_counts_attempts_and_respects_other_owners(opener: Opener) -> None:
    j = opener()
    first = j.claim("t", "1", "w1", hold=60)
    assert first is not None and first.attempts == 1 and first.state == "processing"
    assert j.claim("t", "1", "w2", hold=60) is None  # held by w1
    j.decide("t", "1", "retry", "smtp down")
    again = j.claim("t", "1", "w2", hold=60)
    assert again is not None and again.attempts == 2 and again.reason == "smtp down"


def test_owns_only_while_the_hold_lasts(opener: Opener) -> None:
    j = opener()
    j.claim("t", "1", "w1", hold=60)
    assert j.owns("t", "1", "w1") and not j.owns("t", "1", "w2")
    j.decide("t", "1", "retry", "down")
    assert not j.owns("t", "1", "w1")
    j.claim("t", "1", "w1", hold=-1)  # a hold that already ran out
    assert not j.owns("t", "1", "w1")


def test_held_by_anyone_only_while_a_hold_lasts(opener: Opener) -> None:
    j = opener()
    assert not j.held("t", "1")  # unknown
    j.claim("t", "1", "w1", hold=60)
    assert j.held("t", "1")
    j.decide("t", "1", "ack", "")
    assert not j.held("t", "1")
    j.claim("t", "2", "w1", hold=-1)  # its worker died: the hold ran out
    assert not j.held("t", "2")


def test_the_same_owner_may_claim_again(opener: Opener) -> None:
    j = opener()
    assert j.claim("t", "1", "w1", hold=60) is not None
    again = j.claim("t", "1", "w1", hold=60)
    assert again is not None and again.attempts == 2


def test_expired_hold_can_be_taken_over(opener: Opener) -> None:
    j = opener()
    assert j.claim("t", "1", "w1", hold=-1) is not None  # already expired
    taken = j.claim("t", "1", "w2", hold=60)
    assert taken is not None and taken.attempts == 2


def test_routes_and_decisions(opener: Opener) -> None:
    j = opener()
    assert j.routes("t", "a@b/c") == {}
    j.claim("t", "a@b/c", "w", 60)
    j.route_started("t", "a@b/c", "r/0")
    assert j.routes("t", "a@b/c")["r/0"].state == "started"
    j.route_finished("t", "a@b/c", "r/0", DeliveryResult.delivered("ok", "ref-1"))
    j.route_started("t", "a@b/c", "r/1")
    j.route_finished("t", "a@b/c", "r/1", DeliveryResult.transient("down"))
    routes = j.routes("t", "a@b/c")
    assert (routes["r/1"].state, routes["r/1"].detail) == ("transient", "down")
    j.route_started("t", "a@b/c", "r/1")
    j.route_finished("t", "a@b/c", "r/1", DeliveryResult.permanent("refused"))
    routes = j.routes("t", "a@b/c")
    assert (routes["r/0"].state, routes["r/0"].reference, routes["r/0"].attempts) == (
        "delivered", "ref-1", 1)
    assert (routes["r/1"].state, routes["r/1"].detail, routes["r/1"].attempts) == (
        "permanent", "refused", 2)
    j.decide("t", "a@b/c", "ack", "all delivered")
    assert j.pending_acks() == {"t": ["a@b/c"]}
    decided = j.claim("t", "a@b/c", "w2", 60)
    assert decided is not None and decided.state == "ack"  # returned for a re-ack only
    assert decided.attempts == 1 and decided.verdict == "ack"
    j.acknowledged("t", ["a@b/c"])
    assert j.pending_acks() == {}
    assert j.claim("t", "a@b/c", "w", 60) is None
    assert j.counts() == {"done:ack": 1}


def test_pending_acks_by_topic_in_decision_order(opener: Opener) -> None:
    j = opener()
    for topic, fax_id, verdict in [("a", "1", "ack"), ("b", "2", "quarantine"),
                                   ("a", "3", "quarantine"), ("a", "4", "retry")]:
        j.claim(topic, fax_id, "w", 60)
        j.decide(topic, fax_id, verdict, "why")
    assert j.pending_acks() == {"a": ["1", "3"], "b": ["2"]}
    j.acknowledged("a", ["1", "3", "4", "unknown"])  # only decided faxes become done
    assert j.pending_acks() == {"b": ["2"]}
    assert j.counts() == {"done:ack": 1, "done:quarantine": 1, "quarantine:quarantine": 1,
                          "retry": 1}
    record = j.get("a", "4")
    assert record is not None and (record.state, record.verdict) == ("retry", None)
    assert j.get("a", "nope") is None


def test_survives_reopen(opener: Opener) -> None:
    j = opener()
    j.claim("t", "1", "w", 60)
    j.decide("t", "1", "quarantine", "corrupt")
    j.close()
    j2 = opener()
    assert j2.pending_acks() == {"t": ["1"]}
    record = j2.get("t", "1")
    assert record is not None and record.verdict == "quarantine"
    assert j2.writable()


def _claim_all(j: Journal, owner: str, n: int) -> set[str]:
    return {str(i) for i in range(n) if j.claim("t", str(i), owner, 60) is not None}


def test_threads_with_their_own_journal_never_claim_the_same_fax(opener: Opener) -> None:
    journals = [opener(), opener()]
    won: list[set[str]] = [set(), set()]

    def run(i: int) -> None:
        won[i] = _claim_all(journals[i], f"w{i}", 200)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not won[0] & won[1]
    assert won[0] | won[1] == {str(i) for i in range(200)}


# --- PostgreSQL only ----------------------------------------------------------------------


def _claim_in_process(url: str, owner: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    j = open_journal("postgresql", Path("unused"), url)
    out.put(sorted(_claim_all(j, owner, 200)))
    j.close()


def test_two_processes_never_claim_the_same_fax(pg_url: str) -> None:
    open_journal("postgresql", Path("unused"), pg_url).close()  # the schema
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter, no inherited sockets
    queue: multiprocessing.Queue = spawn.Queue()  # type: ignore[type-arg]
    procs = [spawn.Process(target=_claim_in_process, args=(pg_url, f"w{i}", queue))
             for i in range(2)]
    for p in procs:
        p.start()
    won = [set(queue.get(timeout=60)) for _ in procs]
    for p in procs:
        p.join(10)
    assert not won[0] & won[1]
    assert won[0] | won[1] == {str(i) for i in range(200)}


def test_threads_sharing_one_journal_never_claim_the_same_fax(pg_url: str) -> None:
    j = open_journal("postgresql", Path("unused"), pg_url)
    won: list[set[str]] = [set() for _ in range(4)]

    def run(i: int) -> None:
        won[i] = _claim_all(j, f"w{i}", 200)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    j.close()
    assert sum(len(w) for w in won) == 200
    assert set().union(*won) == {str(i) for i in range(200)}


def test_same_worker_two_threads_one_fax(pg_url: str) -> None:
    """Retarus may hand a fax out again to the same worker while one of its threads is still
    on it: the worker id is the same, yet the second thread must not take it."""
    j = open_journal("postgresql", Path("unused"), pg_url)
    got: list[object] = []
    first = j.claim("t", "1", "host:1", 60)
    t = threading.Thread(target=lambda: got.append(j.claim("t", "1", "host:1", 60)))
    t.start()
    t.join(10)
    assert first is not None and got == [None]
    j.decide("t", "1", "retry", "not yet")
    t = threading.Thread(target=lambda: got.append(j.claim("t", "1", "host:1", 60)))
    t.start()
    t.join(10)
    assert got[1] is not None
    j.close()


def test_a_live_owner_keeps_its_hold(pg_url: str) -> None:
    """A slow delivery is not taken over: the hold is renewed while the owner is on it."""
    a = open_journal("postgresql", Path("unused"), pg_url)
    b = open_journal("postgresql", Path("unused"), pg_url)
    assert a.claim("t", "1", "a", hold=1) is not None
    stop = threading.Event()
    stop.wait(2.5)  # over two hold periods
    assert b.claim("t", "1", "b", hold=1) is None
    a.close()  # a worker that dies stops renewing: the hold runs out
    taken = None
    for _ in range(100):  # the last renewal holds it for up to a second more
        taken = b.claim("t", "1", "b", hold=60)
        if taken is not None:
            break
        stop.wait(0.1)
    assert taken is not None and taken.attempts == 2
    b.close()


def test_schema_version_is_recorded_and_a_newer_one_refused(
        pg_server: pg.PgServer, pg_url: str) -> None:
    from faxflow.journal_pg import SCHEMA_VERSION, JournalError

    open_journal("postgresql", Path("unused"), pg_url).close()
    open_journal("postgresql", Path("unused"), pg_url).close()  # idempotent
    schema = pg_url.rsplit("%3D", 1)[1]
    pg_server.admin(f"INSERT INTO {schema}.faxflow_schema (version) "
                    f"VALUES ({SCHEMA_VERSION + 1})", "faxflow")
    with pytest.raises(JournalError, match="newer than this faxflow"):
        open_journal("postgresql", Path("unused"), pg_url)


def test_reconnects_after_a_server_restart(pg_server: pg.PgServer, pg_url: str,
                                           caplog: pytest.LogCaptureFixture) -> None:
    j = open_journal("postgresql", Path("unused"), pg_url)
    j.claim("t", "1", "w", 60)
    j.route_started("t", "1", "r/0")
    pg_server.restart()
    # Each call below meets a dead connection first; none may be lost.
    j.route_finished("t", "1", "r/0", DeliveryResult.delivered("ok", "ref"))
    j.decide("t", "1", "ack", "delivered")
    pg_server.restart()
    assert j.pending_acks() == {"t": ["1"]}
    assert j.routes("t", "1")["r/0"].state == "delivered"
    j.close()
    assert "journal connection to faxflow@127.0.0.1" in caplog.text  # said, without secrets
    assert pg_server.password not in caplog.text


def test_a_killed_connection_is_replaced_for_a_claim(pg_server: pg.PgServer,
                                                      pg_url: str) -> None:
    j = open_journal("postgresql", Path("unused"), pg_url)
    assert j.claim("t", "1", "w", 60) is not None
    pg_server.admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'faxflow' AND usename = 'faxflow'")
    second = j.claim("t", "2", "w", 60)
    assert second is not None and second.attempts == 1
    assert j.counts() == {"processing": 2}
    j.close()


def test_a_server_that_stays_down_is_a_clear_error(pg_server: pg.PgServer, pg_url: str) -> None:
    from faxflow.journal_pg import JournalError, PostgresJournal

    j = PostgresJournal(pg_url)
    j.reconnect_wait = 0.5
    pg_server.stop()
    try:
        with pytest.raises(JournalError) as info:
            j.decide("t", "1", "ack", "x")
        assert j.writable() is False
    finally:
        pg_server.start()
    message = str(info.value)
    assert "cannot connect to the PostgreSQL journal at faxflow@127.0.0.1:" in message
    assert pg_server.password not in message
    assert j.writable() is True  # back
    j.close()


def test_password_never_in_errors(pg_server: pg.PgServer, pg_url: str,
                                  caplog: pytest.LogCaptureFixture) -> None:
    from faxflow.journal_pg import JournalError, PostgresJournal

    secret = "s3cret-Pa55"
    wrong = pg_url.replace(pg_server.password, secret)
    with pytest.raises(JournalError) as info:
        PostgresJournal(wrong)
    assert "password authentication failed" in str(info.value)
    refused = f"postgresql://faxflow:{secret}@127.0.0.1:{pg_server.port + 1}/x"
    kv = f"host=127.0.0.1 port=notaport user=faxflow password={secret}"
    bad_url = f"postgresql://faxflow:{secret}@127.0.0.1/x?nonsense=1"
    messages = [str(info.value)]
    for url in (refused, kv, bad_url):
        with pytest.raises(JournalError) as info:
            PostgresJournal(url, connect_timeout=2)
        messages.append(str(info.value))
        assert info.value.__cause__ is None and info.value.__suppress_context__
    j = PostgresJournal(pg_url)
    messages += [repr(j), j.where, caplog.text]
    j.close()
    for text in messages:
        assert secret not in text and pg_server.password not in text, text
