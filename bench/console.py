"""How fast the web console answers with a big journal: list, filtered list and detail pages
with 1,000,000 fax records, on SQLite and on PostgreSQL.

    .venv/bin/python bench/console.py                          # both backends, 1,000,000 faxes
    .venv/bin/python bench/console.py --records 100000 --backend sqlite
    .venv/bin/python bench/console.py --keep /var/tmp/console-bench   # reuse the SQLite file

The journal is filled by bulk inserts straight into the record tables (the way the history
plugin and the worker would have written them over 90 days, not through them: that would take
hours), with realistic distributions:
- 90 days, ids in the order faxes were first seen; 3 topics; 12 receiving lines;
- senders from a pool of 40,000 numbers (Munich 30 %, Berlin 15 %, Hamburg 10 %, ...;
  3 % withheld), picked with a heavy-tailed popularity, each with its own CSID;
- statuses: delivered ~99 %, quarantine items resolved (released / routed / dismissed) 0.5 %,
  open quarantine items 0.3 % of the last 7 days (with a stored one-page PDF), the last
  50 faxes processing or retrying;
- labels (referral 25 %, lab-result 20 %, invoice 15 %, after-hours 12 %, ...), one of 30
  rules (default 10 %), one or two routes (email, folder, webhook, jira), fields for
  referrals and invoices, the rules' explain trace on every fax (~0.7 kB);
- tags for every label, rule and destination type; 5 events per fax (received, text read,
  routed, delivered, acknowledged); one delivery row per route with its reference.

Then the real console (web.py built on the configured App, served by uvicorn on loopback as
`faxflow console` does) is asked for each page by an httpx client signed in as an operator;
every page is timed end to end (request to last byte), median and 95th percentile over the
samples. PostgreSQL is a throwaway server like the tests' (tests/pg_server.py). Not a test.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # pg_server: the tests' throwaway PostgreSQL

DAY = 86400.0
PASSWORD = "bench password 1234"
TOPICS = ["clinic-main", "clinic-lab", "legal"]
AREAS = [("89", 30), ("30", 15), ("40", 10), ("221", 8), ("69", 7), ("711", 5), ("911", 3),
         ("341", 3), ("351", 3), ("511", 3), ("201", 3), ("231", 2), ("421", 2), ("621", 2),
         ("761", 2), ("871", 2)]
LABELS = [("referral", .25), ("lab-result", .20), ("invoice", .15), ("after-hours", .12),
          ("prescription", .08), ("legal", .05), ("urgent", .02)]
DESTINATIONS = [("email", 50), ("folder", 35), ("webhook", 10), ("jira", 5)]
REASONS = ["core: route {r}/0: email: SMTP 550 5.1.1 mailbox unavailable",
           "core: extract_text: PDF is damaged: Syntax Error: Couldn't find trailer dictionary",
           "core: route {r}/0: folder: base folder /srv/fax does not exist (not mounted?)",
           "sender_block: blocked sender",
           "core: route {r}/0: jira: 400 Bad Request: Field 'customfield_10010' is required"]


# --- the data -------------------------------------------------------------------------------


@dataclass
class Pools:
    senders: list[str | None]
    csids: list[str | None]
    receivers: list[str]
    rules: list[str]
    rule_dest: dict[str, list[str]]
    explain: dict[str, str]


def pools(rng: random.Random) -> Pools:
    areas = [a for a, _ in AREAS] + [str(rng.randint(2000, 9999)) for _ in range(200)]
    weights = [w for _, w in AREAS] + [22 / 200] * 200
    senders: list[str | None] = []
    csids: list[str | None] = []
    for i in range(40_000):
        if rng.random() < 0.03:
            senders.append(None)
        else:
            area = rng.choices(areas, weights)[0]
            senders.append(f"+49{area}{rng.randint(10**4, 10**8 - 1)}")
        csids.append(f"PRAXIS {i:05d} DR MUSTER" if rng.random() < 0.7 else None)
    rules = ["default"] + [f"rule-{i:02d}" for i in range(1, 30)]
    rule_dest = {r: [rng.choices([d for d, _ in DESTINATIONS],
                                 [w for _, w in DESTINATIONS])[0]
                     for _ in range(1 if rng.random() < 0.7 else 2)] for r in rules}
    explain = {r: json.dumps({"rules": {
        "fax": {"receiver": "+4989262080440", "sender": "+498912345678", "csid": "PRAXIS",
                "cost_center": None, "pages": 2, "resolution": "fine",
                "received": "2026-11-27T10:15:00+01:00", "text_chars": 1834},
        "rules": [{"name": name, "evaluated": True, "matched": name == r, "continue": False,
                   "check": {"condition": "text contains any of ['referral', 'Überweisung']",
                             "result": name == r, "detail": "matched 'referral' on page 1"
                             if name == r else "", "children": []},
                   "skipped_because": None, "fields": {}, "field_errors": []}
                  for name in [*rules[1:3], r]],
        "default_route_used": r == "default", "labels": ["referral"],
        "fields": {"patient_id": "PID-4711"},
        "routes": [{"key": f"{r}/{i}", "type": d, "rule": r,
                    "options": {"to": "referrals@clinic.example"}, "error": None}
                   for i, d in enumerate(rule_dest[r])]}}, sort_keys=True) for r in rules}
    receivers = [f"+4989262080{440 + i}" for i in range(12)]
    return Pools(senders, csids, receivers, rules, rule_dest, explain)


@dataclass
class Rows:
    record: list[tuple[Any, ...]]
    tag: list[tuple[Any, ...]]
    event: list[tuple[Any, ...]]
    delivery: list[tuple[Any, ...]]
    quarantine: list[tuple[Any, ...]]
    qdoc: list[tuple[Any, ...]]


def batches(n: int, now: float, seed: int = 14, size: int = 20_000) -> Iterator[Rows]:
    """Every fax's rows, `size` faxes at a time, oldest first."""
    from faxflow.simulator.minipdf import one_page_pdf

    rng = random.Random(seed)
    p = pools(rng)
    pdf = one_page_pdf("Referral for patient PID-4711")
    import hashlib

    sha = hashlib.sha256(pdf).hexdigest()
    start = now - 90 * DAY
    rule_weights = [10.0] + [90 / 29] * 29
    for first in range(1, n + 1, size):
        rows = Rows([], [], [], [], [], [])
        for ident in range(first, min(first + size, n + 1)):
            seen = start + (ident - 0.5) * 90 * DAY / n + rng.random()
            topic = rng.choice(TOPICS)
            fax_id = f"{ident:08X}@{rng.randrange(16**7):07X}.bench.QA1"
            who = min(int(rng.paretovariate(0.6)) - 1, len(p.senders) - 1)
            who = (who * 7919) % len(p.senders)  # popular senders spread over the pool
            sender, csid = p.senders[who], p.csids[who]
            receiver = rng.choice(p.receivers)
            rule = rng.choices(p.rules, rule_weights)[0]
            labels = sorted(name for name, share in LABELS if rng.random() < share)
            dests = p.rule_dest[rule]
            routes = [{"key": f"{rule}/{i}", "type": d, "rule": rule}
                      for i, d in enumerate(dests)]
            fields = {"patient_id": f"PID-{rng.randint(1000, 999999)}"} if "referral" in \
                labels else ({"invoice_number": f"INV-{rng.randint(10**5, 10**6)}"}
                             if "invoice" in labels else {})
            status, reason = "delivered", None
            recent = seen > now - 7 * DAY
            if ident > n - 30:
                status = "processing"
            elif ident > n - 50:
                status, reason = "retrying", "core: route x/0: email: SMTP 451 try later"
            elif recent and rng.random() < 0.003:
                status = "quarantined"
            elif rng.random() < 0.005:
                status = rng.choice(["released", "routed", "dismissed"])
            if status in ("quarantined", "released", "routed", "dismissed"):
                reason = rng.choice(REASONS).format(r=rule)
            pages = min(int(rng.expovariate(0.5)) + 1, 30)
            rows.record.append((
                ident, topic, fax_id, seen, seen - rng.uniform(5, 60), seen + 40, status,
                sender, receiver, csid, pages, pages, json.dumps(labels),
                json.dumps(fields) if fields else None, json.dumps([rule]), json.dumps(routes),
                reason, None, p.explain[rule]))
            for kind, value in ([("label", x) for x in labels] + [("rule", rule)]
                                + [("destination", d) for d in sorted(set(dests))]):
                rows.tag.append((ident, kind, value, seen))
            worker = f"worker-{ident % 3}"
            steps = [("received", "attempt 1, 1 document(s)"),
                     ("text read", f"{pages} of {pages} page(s) read"),
                     ("routed", ", ".join(f"{r['key']} ({r['type']})" for r in routes))]
            if status == "delivered":
                steps += [("delivered", f"{routes[0]['key']} ({routes[0]['type']}): sent"),
                          ("acknowledged", "")]
            elif status not in ("processing", "retrying"):
                steps += [("quarantined", reason or "")]
            for k, (name, detail) in enumerate(steps):
                rows.event.append((ident, seen + k * 2.5, name, worker, detail))
            if status != "processing":
                for r in routes:
                    state = "delivered" if status == "delivered" else "transient"
                    reference = f"<{fax_id}.{r['key']}@faxflow>" if r["type"] == "email" \
                        else f"/srv/fax/{rule}/{ident}.pdf"
                    rows.delivery.append((topic, fax_id, r["key"], state, "sent", reference,
                                          1, seen + 5, r["type"]))
            if status in ("quarantined", "released", "routed", "dismissed"):
                resolved = status != "quarantined"
                rows.quarantine.append((
                    ident, seen + 7.5, "open" if not resolved else status,
                    json.dumps([reason]), "{}", json.dumps({"id": fax_id, "topic": topic}),
                    "[]", "alice" if resolved else None, seen + 3600 if resolved else None))
                if not resolved:
                    rows.qdoc.append((ident, 1, f"{fax_id}.pdf", "pdf", len(pdf), sha, pdf))
        yield rows


INSERTS = {
    "record": ("faxflow_record", "id, topic, fax_id, seen, received, updated, status, sender, "
               "receiver, csid, pages, pages_total, labels, fields, rules, routes, reason, "
               "text, explain"),
    "tag": ("faxflow_tag", "record_id, kind, value, seen"),
    "event": ("faxflow_event", "record_id, time, name, worker, detail"),
    "delivery": ("{delivery}", "topic, fax_id, route, state, detail, reference, attempts, "
                 "updated, type"),
    "quarantine": ("faxflow_quarantine", "record_id, at, state, reasons, votes, metadata, "
                   "delivered, resolved_by, resolved_at"),
    "qdoc": ("faxflow_qdoc", "record_id, idx, name, extension, size, sha256, content"),
}


def fill_sqlite(path: Path, n: int, now: float) -> None:
    from faxflow.journal import SQLiteJournal

    SQLiteJournal(path).close()  # the schema, as faxflow makes it
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("BEGIN")
    for rows in batches(n, now):
        for name, (table, columns) in INSERTS.items():
            values = getattr(rows, name)
            if values:
                marks = ", ".join("?" * len(columns.split(",")))
                db.executemany(f"INSERT INTO {table.format(delivery='delivery')} ({columns}) "
                               f"VALUES ({marks})", values)
        progress(rows.record[-1][0], n)
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()


def fill_postgresql(url: str, n: int, now: float) -> None:
    import psycopg

    from faxflow.journal import open_journal

    open_journal("postgresql", Path("unused"), url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        for rows in batches(n, now):
            for name, (table, columns) in INSERTS.items():
                values = getattr(rows, name)
                if not values:
                    continue
                if name == "delivery":  # timestamptz there
                    from datetime import UTC, datetime

                    values = [(*v[:7], datetime.fromtimestamp(v[7], UTC), v[8]) for v in values]
                with conn.cursor().copy(f"COPY {table.format(delivery='faxflow_delivery')} "
                                        f"({columns}) FROM STDIN") as copy:
                    for value in values:
                        copy.write_row(value)
            progress(rows.record[-1][0], n)
        conn.execute("SELECT setval(pg_get_serial_sequence('faxflow_record', 'id'), "
                     "(SELECT max(id) FROM faxflow_record))")
        conn.execute("VACUUM ANALYZE")


def progress(done: int, n: int) -> None:
    if done % 100_000 < 20_000 or done == n:
        print(f"    {done:,} of {n:,} faxes", flush=True)


# --- the console ------------------------------------------------------------------------------


@contextmanager
def console(journal: str, folder: Path) -> Iterator[tuple[str, Any]]:
    """The console on a journal ("sqlite:PATH" or a PostgreSQL URL), on loopback."""
    from argon2 import PasswordHasher
    from faxflow_console.serve import server_for
    from faxflow_console.web import build

    from faxflow.app import load_app
    from faxflow.journal import open_journal

    backend = "sqlite" if journal.startswith("sqlite:") else "postgresql"
    setting = f'path = "{journal[7:]}"' if backend == "sqlite" else 'url = "${BENCH_PG_URL}"'
    config = folder / "bench.toml"
    config.write_text(f"""
[journal]
backend = "{backend}"
{setting}
[plugins.console]
secret = "{'b' * 48}"
[plugins.console.users.bench]
password_hash = "{PasswordHasher().hash(PASSWORD)}"
role = "operator"
""")
    app = load_app(config, env={"BENCH_PG_URL": journal}, load=["history", "console"])
    app.journal = open_journal(backend, Path(journal[7:]), journal)
    asgi, state = build(app)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = server_for(asgi, "127.0.0.1", port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", state
    finally:
        server.should_exit = True
        thread.join(10)
        app.journal.close()


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def measure(base: str, state: Any, n: int, samples: int, seed: int = 7
            ) -> dict[str, tuple[float, float]]:
    """Page -> (median ms, p95 ms)."""
    from faxflow_console.thumbs import Renderer

    rng = random.Random(seed)
    client = httpx.Client(base_url=base, timeout=60)
    token = csrf(client.get("/login").text)
    client.post("/login", data={"username": "bench", "password": PASSWORD, "csrf": token})
    page = client.get("/faxes").text
    token = csrf(page)

    def search(**form: str) -> str:
        answer = client.post("/faxes/search", data={"csrf": token, **form},
                             follow_redirects=False)
        return str(answer.headers["location"])

    pages: dict[str, Callable[[], str]] = {
        "list (newest)": lambda: "/faxes",
        "list (a page in the middle)": lambda: "/faxes?after=" + mid_cursor(base, n, client),
        "filter: status=quarantined": lambda: "/faxes?status=quarantined",
        "filter: label=invoice": lambda: "/faxes?label=invoice",
        "filter: rule=rule-07, 7 days": lambda: "/faxes?rule=rule-07&period=7d",
        "filter: seen last 24 h": lambda: "/faxes?period=24h",
        "filter: sender 089 (prefix)": lambda: search(sender="089"),
        "filter: sender 0761 + label referral": lambda: search(sender="0761",
                                                                label="referral"),
        "filter: one sender's number": lambda: search(sender=one_sender(client, n, rng)),
        "filter: since 30 days, status routed": lambda: search(period="30d",
                                                               status="routed"),
        "detail (random fax)": lambda: f"/faxes/{rng.randint(1, n)}",
        "detail (open quarantine item)": lambda: rng.choice(open_items),
        "page image (thumbnail, not cached)": lambda: rng.choice(open_items)
        + "/documents/1/pages/1/thumb.png",
        "overview": lambda: "/",
        "quarantine (open)": lambda: "/quarantine",
    }
    open_items = sorted(set(re.findall(r'href="(/faxes/\d+)"', client.get("/quarantine").text)))
    results: dict[str, tuple[float, float]] = {}
    for name, target in pages.items():
        varied = name.startswith(("detail", "filter: one", "page"))
        urls = [target() for _ in range(samples)] if varied else [target()] * samples
        client.get(urls[0])  # warm: the first request of a kind pays for imports and caches
        times = []
        for url in urls:
            if name.startswith("page image"):
                state.renderer = Renderer()  # every image drawn afresh (pdfinfo + pdftoppm)
            started = time.perf_counter()
            answer = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200, (url, answer.status_code)
        times.sort()
        results[name] = (statistics.median(times), times[max(0, round(0.95 * len(times)) - 1)])
        print(f"    {name:<40} median {results[name][0]:7.1f} ms   p95 "
              f"{results[name][1]:7.1f} ms", flush=True)
    return results


_MID: dict[str, str] = {}


def mid_cursor(base: str, n: int, client: httpx.Client) -> str:
    """The cursor just after fax n/2 (the list's keyset: seen, id)."""
    if base not in _MID:
        html = client.get(f"/faxes/{n // 2}").text
        seen = re.search(r'First seen</dt><dd>([^<]+)<', html)
        assert seen is not None
        from datetime import datetime

        epoch = datetime.strptime(seen.group(1), "%Y-%m-%d %H:%M:%S").timestamp() + 1
        _MID[base] = f"{epoch!r}_{n // 2}"
    return _MID[base]


def one_sender(client: httpx.Client, n: int, rng: random.Random) -> str:
    """The full number of a random fax's sender, as an operator would type it."""
    while True:
        html = client.get(f"/faxes/{rng.randint(1, n)}").text
        found = re.search(r'<dt>From</dt><dd><span class="num">(\+\d+)</span>', html)
        if found:
            return found.group(1)


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--keep", type=Path, help="Keep (and reuse) the SQLite journal here.")
    args = parser.parse_args()
    now = time.time()
    table: dict[str, dict[str, tuple[float, float]]] = {}
    folder = Path(tempfile.mkdtemp(prefix="faxflow-console-bench-"))
    try:
        if args.backend in ("sqlite", "both"):
            path = (args.keep or folder) / f"journal-{args.records}.sqlite"
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                print(f"SQLite: filling {path} with {args.records:,} faxes", flush=True)
                started = time.monotonic()
                fill_sqlite(path, args.records, now)
                print(f"    filled in {time.monotonic() - started:.0f} s, "
                      f"{path.stat().st_size / 1e9:.2f} GB", flush=True)
            print("SQLite: timing pages", flush=True)
            with console(f"sqlite:{path}", folder) as (base, state):
                table["sqlite"] = measure(base, state, args.records, args.samples)
        if args.backend in ("postgresql", "both"):
            import pg_server

            server = pg_server.start_server()
            try:
                url = server.url()
                print(f"PostgreSQL: filling with {args.records:,} faxes", flush=True)
                started = time.monotonic()
                fill_postgresql(url, args.records, now)
                print(f"    filled in {time.monotonic() - started:.0f} s", flush=True)
                print("PostgreSQL: timing pages", flush=True)
                with console(url, folder) as (base, state):
                    table["postgresql"] = measure(base, state, args.records, args.samples)
            finally:
                server.stop()
                shutil.rmtree(server.base, ignore_errors=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{args.records:,} faxes, {args.samples} requests per page; median / p95 in ms\n")
    names = list(next(iter(table.values())))
    backends = list(table)
    print("| page | " + " | ".join(backends) + " |")
    print("| --- |" + " --- |" * len(backends))
    for name in names:
        cells = [f"{table[b][name][0]:.0f} / {table[b][name][1]:.0f}" for b in backends]
        print(f"| {name} | " + " | ".join(cells) + " |")
    slow = [(b, name) for b in backends for name in names
            if table[b][name][0] >= 200 and name.startswith(("list", "filter", "detail"))]
    print("\nall list, filter and detail pages under 200 ms (median)" if not slow
          else f"\nover 200 ms (median): {slow}")


if __name__ == "__main__":
    main()
