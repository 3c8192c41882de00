"""The simulator in a process of its own, for the benchmarks: its CPU is then not the
client's, as with a real Retarus."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def simulator_process(user: str, password: str, topic: str,
                      samples: int = 0) -> Iterator[tuple[str, int]]:
    """A simulator on 127.0.0.1 with `samples` faxes in `topic` (owned by `user`); yields its
    base URL and process id, and stops it afterwards."""
    command = [sys.executable, "-m", "faxflow.simulator", "--host", "127.0.0.1", "--port", "0",
               "--user", f"{user}:{password}", "--topic", f"{topic}={user}", "--seed", "1"]
    if samples:
        command += ["--samples", str(samples)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise SystemExit(f"simulator did not start: {line!r}")
        yield line.removeprefix("listening on "), proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)
