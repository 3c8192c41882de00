"""How fast faxes are drained (pull + download + ack) from a local Fax2WSPull simulator.

    .venv/bin/python bench/pull_throughput.py            # bare loopback and 50 ms latency

Modes:
- baseline: polls the way the official retarus-fax SDK does: a new HTTP client (so a new
  connection) per call, one call at a time, fetch=10, downloads one after another, then a
  separate ack call.
- faxflow: one pooled RetarusClient, fetch=100, downloads in a thread pool, acks piggy-backed
  on the next pull.

Each run gets a fresh simulator process (so it does not share our GIL) preloaded with N
one-page PDF faxes; a run counts only when every fax ended up acknowledged. Ratios compare
with the baseline measured in the same invocation. Not a test: run on demand.

Hook for more modes: add `name: function` to EXTRA_MODES. The function gets the simulator's
API base URL (user USER, password PASSWORD, topic TOPIC, every fax available), must drain the
topic and return jobs per second, e.g. the full worker loop.
"""

from __future__ import annotations

import argparse
import queue
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from simproc import simulator_process

from faxflow.retarus import RetarusClient
from faxflow.types import Job

USER, PASSWORD, TOPIC = "99999", "bench-secret", "bench"

# Downloads go to a RAM disk when there is one: this measures the network path, not the disk
# (fsync of the spool files costs from 0.5 to 9 ms per file on this machine's disk).
SPOOL_ROOT = "/dev/shm" if Path("/dev/shm").is_dir() else None

Mode = Callable[[str], float]  # API base URL -> jobs per second, topic fully drained
EXTRA_MODES: dict[str, Mode] = {}


# -- the simulator -----------------------------------------------------------------------------


@contextmanager
def simulator(jobs: int, latency_ms: float) -> Iterator[str]:
    """A simulator process with `jobs` faxes in TOPIC; yields its API base URL."""
    with simulator_process(USER, PASSWORD, TOPIC, jobs) as (base, _):
        httpx.post(f"{base}/_sim/faults", json={"rate": 0, "latency_ms": latency_ms})
        yield base + "/faxin/rest/v1"


_CONTROL = httpx.Client(timeout=30)  # one client: a new one costs ~0.1 s of CPU (CA loading)


def topic_state(api_url: str) -> dict[str, Any]:
    base = api_url.removesuffix("/faxin/rest/v1")
    result: dict[str, Any] = _CONTROL.get(f"{base}/_sim/topics/{TOPIC}").json()
    return result


# -- the modes ---------------------------------------------------------------------------------


# Loading the CA bundle costs ~40 ms per client; the SDK's requests session does that only
# for https, so the baseline shares one context to pay just for the new connection per call.
_TLS = ssl.create_default_context()


def baseline(api_url: str) -> float:
    """Like the official SDK: a fresh client per call, everything sequential, fetch=10."""

    def call(method: str, url: str) -> httpx.Response:
        with httpx.Client(auth=(USER, PASSWORD), timeout=60, verify=_TLS) as fresh:
            # The SDK sends an empty JSON body on its POSTs.
            kwargs: dict[str, Any] = {"json": {}} if method == "POST" else {}
            response = fresh.request(method, url, **kwargs)
        response.raise_for_status()
        return response

    topic_url = f"{api_url}/topics/{TOPIC}"
    drained = 0
    with tempfile.TemporaryDirectory(dir=SPOOL_ROOT) as spool:
        start = time.perf_counter()
        while True:
            jobs = call("POST", f"{topic_url}?fetch=10&timeout=600").json()["results"]
            if not jobs:
                break
            for job in jobs:
                for n, doc in enumerate(job["documents"]):
                    name = doc["url"].rsplit("/", 1)[-1]
                    data = call("GET", f"{api_url}/files/{name}").content
                    Path(spool, f"{drained}-{n}.pdf").write_bytes(data)
                drained += 1
            ids = quote(",".join(job["id"] for job in jobs), safe="")
            call("POST", f"{topic_url}?fetch=0&ids={ids}")
        return drained / (time.perf_counter() - start)


def faxflow_client(api_url: str, threads: int = 32, fetch: int = 100) -> float:
    """One pooled client, big batches, parallel downloads, acks on the next pull.

    The next pull does not wait for the current batch's downloads: while at most two
    batches are in flight, each pull acknowledges the jobs finished since the last one.
    """
    drained = acked = 0
    with (
        RetarusClient(USER, PASSWORD, base_url=api_url, max_connections=threads) as client,
        ThreadPoolExecutor(max_workers=threads) as pool,
        tempfile.TemporaryDirectory(dir=SPOOL_ROOT) as spool,
    ):

        def fetch_job(job: Job, slot: int) -> str:
            for k, doc in enumerate(job.documents):
                client.download(doc, Path(spool, f"{slot}-{k}.pdf"))
            return job.id

        start = time.perf_counter()
        finished: queue.SimpleQueue[Future[str]] = queue.SimpleQueue()  # downloaded jobs

        def collect(block: bool) -> list[str]:
            # .result() here, in this thread: a failed download raises instead of hanging
            ids = [finished.get().result()] if block else []
            while not finished.empty():
                ids.append(finished.get().result())
            return ids

        acks: list[str] = []
        while True:
            while drained - acked - len(acks) > fetch:  # at most two batches in flight
                acks += collect(block=True)
            acks += collect(block=False)
            batch = client.pull(TOPIC, fetch=fetch, timeout=600, ack_ids=acks)
            acked += len(acks)
            acks = []
            if not batch.jobs:
                if drained == acked:
                    break
                acks += collect(block=True)  # nothing new yet: let downloads finish
                continue
            for job in batch.jobs:
                pool.submit(fetch_job, job, drained).add_done_callback(finished.put)
                drained += 1
        return drained / (time.perf_counter() - start)


# -- the table ---------------------------------------------------------------------------------


@dataclass
class Row:
    mode: str
    latency_ms: float
    jobs: int
    seconds: float
    rate: float


WORKER_CONFIG = """
[retarus]
base_url = "{api_url}"
username = "{user}"
password = "{password}"
topics = ["{topic}"]
fetch = 100
lock_timeout = 600

[worker]
concurrency = {concurrency}
poll_interval_max = 0.2
reload = false

[journal]
path = "journal.sqlite"

[plugins.folder]
base = "out"

[plugins.rules.default]
[[plugins.rules.default.route]]
type = "folder"
"""


def worker_loop(api_url: str, concurrency: int = 32) -> float:
    """The full worker (journal, rules, folder delivery, votes, acks) without OCR."""
    from faxflow.app import load_app
    from faxflow.runner import start_worker_thread

    with tempfile.TemporaryDirectory(dir=SPOOL_ROOT) as tmp:
        (Path(tmp) / "out").mkdir()
        config = Path(tmp) / "faxflow.toml"
        config.write_text(WORKER_CONFIG.format(api_url=api_url, user=USER, password=PASSWORD,
                                               topic=TOPIC, concurrency=concurrency))
        app = load_app(config, load=["rules", "folder"])
        total = int(topic_state(api_url)["available"])
        started = time.perf_counter()
        thread, worker = start_worker_thread(app)
        if worker is None:
            raise RuntimeError("the worker did not start; see the log")
        while topic_state(api_url)["acknowledged"] < total:
            if not thread.is_alive():
                raise RuntimeError("the worker stopped before draining the topic")
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        worker.stop()
        thread.join(60)
    return total / elapsed


EXTRA_MODES["worker loop (no OCR)"] = worker_loop


def run(mode: str, fn: Mode, jobs: int, latency_ms: float) -> Row:
    with simulator(jobs, latency_ms) as api_url:
        rate = fn(api_url)
        state = topic_state(api_url)
    if state["acknowledged"] != jobs:
        raise SystemExit(f"{mode}: only {state['acknowledged']} of {jobs} faxes acknowledged")
    return Row(mode, latency_ms, jobs, jobs / rate, rate)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latencies", default="0,50", help="ms per request, comma-separated")
    parser.add_argument("--jobs", type=int, default=1000, help="faxes per faxflow run")
    parser.add_argument(
        "--baseline-seconds",
        type=float,
        default=10.0,
        help="rough time budget per baseline run (its fax count is sized from it)",
    )
    parser.add_argument("--threads", type=int, default=32)
    args = parser.parse_args(argv)

    modes: dict[str, Mode] = {
        "faxflow": lambda url: faxflow_client(url, threads=args.threads),
        **EXTRA_MODES,
    }
    rows: list[tuple[Row, float]] = []
    for latency in (float(x) for x in args.latencies.split(",")):
        # ~15 jobs/s at 50 ms; more on bare loopback. Keeps the slow baseline bounded.
        per_second = 15 * 50 / max(latency, 5.0)
        base_jobs = max(50, min(args.jobs, int(per_second * args.baseline_seconds)))
        base = run("baseline (SDK-style)", baseline, base_jobs, latency)
        rows.append((base, 1.0))
        for name, fn in modes.items():
            row = run(name, fn, args.jobs, latency)
            rows.append((row, row.rate / base.rate))

    print(f"{'mode':<22} {'latency':>8} {'jobs':>6} {'seconds':>8} {'jobs/s':>8} {'ratio':>7}")
    for row, ratio in rows:
        print(
            f"{row.mode:<22} {row.latency_ms:>6.0f}ms {row.jobs:>6} {row.seconds:>8.2f} "
            f"{row.rate:>8.1f} {ratio:>6.1f}x"
        )


if __name__ == "__main__":
    main()
