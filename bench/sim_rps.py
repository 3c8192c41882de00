"""Requests per second the Fax2WSPull simulator serves on loopback.

Starts `python -m faxflow.simulator --port 0` in its own process, then for each workload
runs PROCESSES client processes, each with THREADS threads sharing one pooled
httpx.Client, for SECONDS seconds:
  pull   POST /topics/{topic}?fetch=0   (the cheapest API call: auth, topic, params, JSON)
  file   GET  /files/{name}             (a 1-page PDF)
and prints requests/second and latency percentiles. Bounded in time: it stops by itself.
One httpx client process tops out well below the server (httpx costs more CPU per request
than the simulator), so use --processes 2 to load the server harder.

    .venv/bin/python bench/sim_rps.py [--processes 1] [--threads 8] [--seconds 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import subprocess
import sys
import threading
import time

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


def client_process(api: str, method: str, path: str, threads: int,
                   seconds: float) -> tuple[list[float], int, float]:
    """Run `threads` threads on one pooled client; return latencies, errors, elapsed."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    limits = httpx.Limits(max_connections=threads, max_keepalive_connections=threads)
    with httpx.Client(base_url=api, auth=AUTH, limits=limits) as client:
        client.request(method, path)  # warm up one connection
        began = time.perf_counter()
        deadline = began + seconds

        def worker(index: int) -> None:
            mine = latencies[index]
            while (start := time.perf_counter()) < deadline:
                if client.request(method, path).status_code != 200:
                    errors[index] += 1
                mine.append(time.perf_counter() - start)

        pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        elapsed = time.perf_counter() - began
    return [x for per in latencies for x in per], sum(errors), elapsed


def run(name: str, api: str, method: str, path: str, args: argparse.Namespace) -> None:
    jobs = [(api, method, path, args.threads, args.seconds)] * args.processes
    with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
        results = pool.starmap(client_process, jobs)
    rate = sum(len(latencies) / elapsed for latencies, _, elapsed in results)
    every = sorted(x for latencies, _, _ in results for x in latencies)
    errors = sum(count for _, count, _ in results)
    p99 = every[int(len(every) * 0.99) - 1] * 1000
    print(f"{name:5} {rate:8.0f} req/s  "
          f"{len(every):6d} requests  p50 {statistics.median(every) * 1000:5.2f} ms  "
          f"p99 {p99:6.2f} ms  errors {errors}  "
          f"({args.processes} process(es) x {args.threads} threads, {args.seconds:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description="Fax2WSPull simulator requests/second")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    proc, base = start_simulator()
    api = base + "/faxin/rest/v1"
    try:
        with httpx.Client(base_url=api, auth=AUTH) as client:
            first = client.post(f"/topics/{TOPIC}", params={"fetch": 1, "timeout": 0}).json()
            # Keep the last segment as served (already percent-encoded): see docs/simulator.md.
            name = first["results"][0]["documents"][0]["url"].rsplit("/", 1)[1]
            size = len(client.get(f"/files/{name}").content)
        print(f"simulator at {base}; file {name} ({size} bytes)")
        run("pull", api, "POST", f"/topics/{TOPIC}?fetch=0", args)
        run("file", api, "GET", f"/files/{name}", args)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
