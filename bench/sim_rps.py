"""Requests per second the Fax2WSPull simulator serves on loopback.

Starts `python -m faxflow.simulator --port 0` in its own process, then for each workload
runs PROCESSES client processes, each with THREADS threads sharing one pooled
httpx.Client, for SECONDS seconds:
  pull   POST /topics/{topic}?fetch=0   (the cheapest API call: auth, topic, params, JSON)
  file   GET  /files/{name}             (a 1-page PDF)
and prints requests/second and latency percentiles. Bounded in time: it stops by itself.
One httpx client process tops out below the server (httpx costs more CPU per request than
the simulator), so use --processes 2 to load the server harder, or --raw: a minimal asyncio
keep-alive client (THREADS connections per process) that shows the server's own ceiling.

    .venv/bin/python bench/sim_rps.py [--processes 1] [--threads 8] [--seconds 5] [--raw]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import os
import statistics
import threading
import time

import httpx
from simproc import simulator_process

AUTH = ("99999", "secret")
TOPIC = "abc123"


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


def raw_client_process(api: str, method: str, path: str, connections: int,
                       seconds: float) -> tuple[list[float], int, float]:
    """The same load from bare asyncio keep-alive connections: almost no client cost."""
    host_port = api.split("://", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    auth = base64.b64encode(":".join(AUTH).encode()).decode()
    request = (f"{method} {api.split(host_port, 1)[1]}{path} HTTP/1.1\r\nHost: {host_port}\r\n"
               f"Authorization: Basic {auth}\r\nContent-Length: 0\r\n\r\n").encode()
    latencies: list[float] = []
    errors = 0

    async def connection(deadline: float) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        while (start := time.perf_counter()) < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
            errors += not head.startswith(b"HTTP/1.1 200 ")
            latencies.append(time.perf_counter() - start)
        writer.close()

    async def main() -> float:
        began = time.perf_counter()
        await asyncio.gather(*(connection(began + seconds) for _ in range(connections)))
        return time.perf_counter() - began

    elapsed = asyncio.run(main())
    return latencies, errors, elapsed


def cpu_seconds(pid: int) -> float | None:
    """User+system CPU time of a process (Linux /proc), or None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(name: str, api: str, method: str, path: str, args: argparse.Namespace,
        server_pid: int) -> None:
    cpu_before = cpu_seconds(server_pid)
    jobs = [(api, method, path, args.threads, args.seconds)] * args.processes
    worker = raw_client_process if args.raw else client_process
    with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
        results = pool.starmap(worker, jobs)
    cpu_after = cpu_seconds(server_pid)
    rate = sum(len(latencies) / elapsed for latencies, _, elapsed in results)
    every = sorted(x for latencies, _, _ in results for x in latencies)
    errors = sum(count for _, count, _ in results)
    p99 = every[int(len(every) * 0.99) - 1] * 1000
    kind = "raw connections" if args.raw else "httpx threads"
    print(f"{name:5} {rate:8.0f} req/s  "
          f"{len(every):6d} requests  p50 {statistics.median(every) * 1000:5.2f} ms  "
          f"p99 {p99:6.2f} ms  errors {errors}  "
          f"({args.processes} process(es) x {args.threads} {kind}, {args.seconds:.0f} s)")
    if cpu_before is not None and cpu_after is not None:
        # Stable even on a busy machine: what one request costs the server in CPU time.
        per_request = (cpu_after - cpu_before) / len(every)
        print(f"      server CPU {per_request * 1e6:.0f} us/request "
              f"= {1 / per_request:.0f} req/s per fully used core")


def main() -> None:
    parser = argparse.ArgumentParser(description="Fax2WSPull simulator requests/second")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--raw", action="store_true", help="bare asyncio client, no httpx")
    args = parser.parse_args()

    with simulator_process(*AUTH, TOPIC, samples=1) as (base, pid):
        api = base + "/faxin/rest/v1"
        with httpx.Client(base_url=api, auth=AUTH) as client:
            first = client.post(f"/topics/{TOPIC}", params={"fetch": 1, "timeout": 0}).json()
            # Keep the last segment as served (already percent-encoded): see docs/simulator.md.
            name = first["results"][0]["documents"][0]["url"].rsplit("/", 1)[1]
            size = len(client.get(f"/files/{name}").content)
        print(f"simulator at {base}; file {name} ({size} bytes)")
        run("pull", api, "POST", f"/topics/{TOPIC}?fetch=0", args, pid)
        run("file", api, "GET", f"/files/{name}", args, pid)


if __name__ == "__main__":
    main()
