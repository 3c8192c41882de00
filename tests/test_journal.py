"""The SQLite journal on its own: a transient route outcome, and two processes on one file.

The journal contract (claims, holds, decisions, reopening) runs against both backends in
tests/test_journal_pg.py."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from faxflow.journal import SQLiteJournal
from faxflow.types import DeliveryResult


def test_routes_and_decisions(tmp_path: Path) -> None:
    j = SQLiteJournal(tmp_path / "j.sqlite")
    j.claim("t", "a@b/c", "w", 60)
    j.route_started("t", "a@b/c", "r/0")
    assert j.routes("t", "a@b/c")["r/0"].state == "started"
    j.route_finished("t", "a@b/c", "r/0", DeliveryResult.delivered("ok", "ref-1"))
    j.route_started("t", "a@b/c", "r/1")
    j.route_finished("t", "a@b/c", "r/1", DeliveryResult.transient("down"))
    routes = j.routes("t", "a@b/c")
    assert (routes["r/0"].state, routes["r/0"].reference) == ("delivered", "ref-1")
    assert (routes["r/1"].state, routes["r/1"].detail) == ("transient", "down")
    j.decide("t", "a@b/c", "ack", "all delivered")
    assert j.pending_acks() == {"t": ["a@b/c"]}
    decided = j.claim("t", "a@b/c", "w2", 60)
    assert decided is not None and decided.state == "ack"  # returned for a re-ack only
    j.acknowledged("t", ["a@b/c"])
    assert j.pending_acks() == {}
    assert j.claim("t", "a@b/c", "w", 60) is None
    assert j.counts() == {"done:ack": 1}


def _claim(path: str, owner: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    j = SQLiteJournal(path)
    out.put(sum(1 for i in range(200) if j.claim("t", str(i), owner, 60) is not None))


def test_two_processes_never_claim_the_same_fax(tmp_path: Path) -> None:
    path = str(tmp_path / "j.sqlite")
    SQLiteJournal(path).close()
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    procs = [multiprocessing.Process(target=_claim, args=(path, f"w{i}", queue))
             for i in range(2)]
    for p in procs:
        p.start()
    won = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(10)
    assert sum(won) == 200
