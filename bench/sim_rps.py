"""Requests per second the Fax2WSPull simulator serves on loopback.

Starts `python -m faxflow.simulator --port 0` in its own process (so client and server do
not share a GIL), then for each workload runs THREADS threads sharing one pooled
httpx.Client for SECONDS seconds:
  pull   POST /topics/{topic}?fetch=0   (the cheapest API call: auth, topic, params, JSON)
  file   GET  /files/{name}             (a 1-page PDF)
and prints requests/second and latency percentiles. Bounded: it stops by itself.

    .venv/bin/python bench/sim_rps.py [--threads 8] [--seconds 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import httpx

AUTH = ("99999", "secret")
TOPIC = "abc123"


def start_simulator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "faxflow.simulator", "--port", "0", "--user", "99999:secret",
         "--topic", f"{TOPIC}=99999", "--samples", "1", "--seed", "1"],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    return proc, line.removeprefix("listening on ")


def run(name: str, call: Callable[[httpx.Client], httpx.Response], client: httpx.Client,
        threads: int, seconds: float) -> None:
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    deadline = time.perf_counter() + seconds

    def worker(index: int) -> None:
        mine = latencies[index]
        while (start := time.perf_counter()) < deadline:
            if call(client).status_code != 200:
                errors[index] += 1
            mine.append(time.perf_counter() - start)

    began = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - began
    every = sorted(x for per in latencies for x in per)
    p99 = every[int(len(every) * 0.99) - 1] * 1000
    print(f"{name:5} {len(every) / elapsed:8.0f} req/s  {len(every):6d} requests  "
          f"p50 {statistics.median(every) * 1000:5.2f} ms  p99 {p99:5.2f} ms  "
          f"errors {sum(errors)}  ({threads} threads, {elapsed:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    proc, base = start_simulator()
    try:
        limits = httpx.Limits(max_connections=args.threads, max_keepalive_connections=args.threads)
        with httpx.Client(base_url=base + "/faxin/rest/v1", auth=AUTH, limits=limits) as client:
            first = client.post(f"/topics/{TOPIC}", params={"fetch": 1, "timeout": 0}).json()
            # Keep the last segment as served (already percent-encoded): see docs/simulator.md.
            url = first["results"][0]["documents"][0]["url"]
            name = url.rsplit("/", 1)[1]
            size = len(client.get(f"/files/{name}").content)
            print(f"simulator at {base}; file {name} ({size} bytes)")
            run("pull", lambda c: c.post(f"/topics/{TOPIC}?fetch=0"), client,
                args.threads, args.seconds)
            run("file", lambda c: c.get(f"/files/{name}"), client, args.threads, args.seconds)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
