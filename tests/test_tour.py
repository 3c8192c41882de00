"""The README's five-minute tour, run as a newcomer would type it.

The commands are read from the README's tour block and run in order in an empty folder that
holds copies of the files the tour names (rules.example.toml, examples/). Only what cannot be
typed as is here is changed, and each change is named: `./dev demo` (it installs packages)
runs the demo it ends in; `.venv/bin/` is this test's virtual environment; port 8080 becomes a
free port in the simulator command and in the copied examples/simulator.toml; the worker,
which runs until Ctrl-C, gets SIGINT once the simulator's faxes are filed; `kill %1` stops the
background simulator.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent


def tour_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Five-minute tour"):]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    text = block.group(1).replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in text.splitlines()
            if line.split("  #")[0].strip()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_the_readme_tour_works_as_written(tmp_path: Path) -> None:
    shutil.copy(ROOT / "rules.example.toml", tmp_path)
    shutil.copytree(ROOT / "examples", tmp_path / "examples",
                    ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    port = str(free_port())
    example = tmp_path / "examples" / "simulator.toml"
    example.write_text(example.read_text().replace(":8080/", f":{port}/"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAXFLOW_")}
    background: subprocess.Popen[str] | None = None
    ran: list[str] = []
    try:
        for command in tour_commands():
            ran.append(command)
            command = command.replace(".venv/bin/", f"{BIN}/")
            if command == "./dev demo":
                command = f"{BIN}/faxflow demo"
            if command.startswith("export "):
                for pair in command.removeprefix("export ").split():
                    name, _, value = pair.partition("=")
                    env[name] = value
                continue
            if command.endswith("&"):
                command = command.rstrip("& ").replace("--port 8080", f"--port {port}")
                background = subprocess.Popen(command.split(), cwd=tmp_path, env=env,
                                              stdout=subprocess.PIPE, text=True)
                assert background.stdout is not None
                assert "listening on" in background.stdout.readline()
                continue
            if command == "kill %1":
                assert background is not None and background.poll() is None
                background.terminate()
                background.wait(10)
                continue
            if " run -c " in command:
                worker = subprocess.Popen(command.split(), cwd=tmp_path, env=env,
                                          stderr=subprocess.PIPE, text=True)
                out = tmp_path / "faxflow-run" / "out"
                deadline = time.monotonic() + 120
                while len(list(out.rglob("*.pdf"))) < 5:
                    assert worker.poll() is None, worker.communicate()[1]
                    assert time.monotonic() < deadline, "the tour's faxes were not filed"
                    time.sleep(0.2)
                worker.send_signal(signal.SIGINT)  # Ctrl-C
                _, log = worker.communicate(timeout=60)
                assert worker.returncode == 0, log
                assert "Traceback" not in log
                continue
            result = subprocess.run(command, shell=True, cwd=tmp_path, env=env, text=True,
                                    capture_output=True, timeout=300, executable="/bin/bash")
            assert result.returncode == 0, (command, result.stdout, result.stderr)
            assert "Traceback" not in result.stderr
    finally:
        if background is not None and background.poll() is None:
            background.kill()
    assert ran[-1] == "kill %1" and any(" run -c " in c for c in ran)
    filed = sorted(p.parent.name for p in (tmp_path / "faxflow-run" / "out").rglob("*.pdf"))
    assert filed == ["samples"] * 5
    assert not list((tmp_path / "faxflow-run").glob("quarantine/*/*"))
