"""The SQLite journal on its own: two processes on one file.

The journal contract (claims, holds, routes, decisions, reopening) runs against both
backends in tests/test_journal_pg.py."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from faxflow.journal import SQLiteJournal


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
