"""This test process's own child processes, as Linux's /proc shows them."""

from __future__ import annotations

import os
from pathlib import Path


def children(script: str) -> dict[int, tuple[str, list[str]]]:
    """pid -> (state, command line) of this process's children running `script` (a file
    name: the argument that ends with it)."""
    found = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
            args = (entry / "cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        state, parent = stat[stat.rindex(")") + 2:].split()[:2]
        if int(parent) == os.getpid() and any(arg.endswith(script) for arg in args):
            found[int(entry.name)] = (state, args)
    return found
