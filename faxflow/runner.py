"""Running a configured App as a worker: journal, client, reload, signals, clean shutdown."""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from faxflow.config import ConfigProblem, RetarusSettings, with_lines
from faxflow.errors import FaxflowError
from faxflow.journal import open_journal
from faxflow.retarus import RetarusClient, RetarusError
from faxflow.worker import Worker

if TYPE_CHECKING:
    from faxflow.app import App

log = logging.getLogger("faxflow")


def make_client(settings: RetarusSettings, concurrency: int = 8) -> RetarusClient:
    return RetarusClient(settings.username, settings.password, region=settings.region,
                         base_url=settings.base_url, timeout=settings.timeout,
                         max_connections=max(16, concurrency * 2),
                         allow_http=settings.allow_http)


def preflight(app: App) -> list[ConfigProblem]:
    """What `run_worker` would refuse, found without starting anything or touching the
    network: `faxflow check` reports the same problems as `faxflow run`."""
    config = app.config
    problems: list[ConfigProblem] = []
    if "retarus" not in config.data:
        return [ConfigProblem((), "a [retarus] table (region or base_url, username, password, "
                                  "topics) is needed to run the worker")]
    try:
        make_client(config.retarus).close()
    except RetarusError as exc:
        key = "base_url" if config.retarus.base_url else "region"
        problems.append(ConfigProblem(("retarus", key), str(exc)))
    if config.journal.backend == "postgresql" and importlib.util.find_spec("psycopg") is None:
        problems.append(ConfigProblem(("journal", "backend"), "postgresql needs the Python "
                                      "package psycopg: pip install 'faxflow[postgresql]'"))
    folders = [("worker", "spool_dir", config.worker.spool_dir)]
    if config.worker.quarantine_dir:
        folders.append(("worker", "quarantine_dir", config.worker.quarantine_dir))
    if config.journal.backend == "sqlite":
        folders.append(("journal", "path", str(Path(config.journal.path).parent)))
    for section, key, value in folders:
        folder = config.resolve(value)
        here = folder
        while not here.exists() and here != here.parent:
            here = here.parent
        if not here.is_dir() or not os.access(here, os.W_OK | os.X_OK):
            problems.append(ConfigProblem((section, key), f"cannot create or write {folder} "
                                          f"({here} is not a writable folder)"))
    return problems


def run_worker(app: App, install_signals: bool = False,
               on_idle: Callable[[Worker], None] | None = None,
               ready: Callable[[Worker], None] | None = None) -> Worker:
    """Open what the worker needs, run it until stopped, then close everything."""
    config = app.config
    problems = with_lines(config, preflight(app))
    if problems:
        raise FaxflowError("\n".join(p.format(str(config.path)) for p in problems))
    try:
        app.journal = open_journal(config.journal.backend, config.resolve(config.journal.path),
                                   config.journal.url, config.file_mode)
    except Exception as exc:
        raise FaxflowError(f"cannot open the journal: {exc}") from exc
    client = make_client(config.retarus, config.worker.concurrency)
    worker = Worker(app, client, make_client=lambda: make_client(app.config.retarus,
                                                                 app.config.worker.concurrency))
    if on_idle is not None:
        worker.on_idle = lambda: on_idle(worker)
    reloader = None
    health = None
    try:
        try:
            app.startup()
        except Exception as exc:
            raise FaxflowError(f"a plugin failed to start: {exc}") from exc
        if install_signals and threading.current_thread() is threading.main_thread():
            _install_signals(worker)
        if config.path is not None and config.worker.reload:
            from faxflow.reload import Reloader

            reloader = Reloader(app, config.path)
            reloader.start()
        if config.health.listen:
            from faxflow.health import HealthServer, parse_listen

            health = HealthServer(app, *parse_listen(config.health.listen)).start()
            app.state["health_port"] = health.port
            log.info("health and metrics on http://%s:%d/", *health.address)
        if ready is not None:
            ready(worker)
        log.info("faxflow worker %s pulling %s from %s", worker.worker_id,
                 ", ".join(config.retarus.topics), client.base_url)
        worker.run()
        log.info("worker stopped")
    finally:
        if health is not None:
            health.stop()
        if reloader is not None:
            reloader.stop()
        app.shutdown()
        worker.close_clients()
        app.journal.close()
    return worker


def start_worker_thread(app: App, wait: float = 30.0) -> tuple[threading.Thread, Worker | None]:
    """run_worker in a daemon thread (the demo, benchmarks, tests). Returns the thread and
    the Worker once it runs; None if it did not start within `wait` seconds or failed."""
    started = threading.Event()
    box: list[Worker] = []

    def ready(worker: Worker) -> None:
        box.append(worker)
        started.set()

    thread = threading.Thread(target=run_worker, args=(app,), kwargs={"ready": ready},
                              daemon=True, name="faxflow-worker")
    thread.start()
    for _ in range(max(1, round(wait / 0.05))):  # stop waiting early if it failed to start
        if started.wait(0.05) or not thread.is_alive():
            break
    return thread, (box[0] if box else None)


def _install_signals(worker: Worker) -> None:
    def graceful(signum: int, frame: FrameType | None) -> None:
        if worker.stopping:  # a second signal: stop waiting for in-flight faxes
            raise KeyboardInterrupt
        log.info("%s: stopping; in-flight faxes get the grace period to finish",
                 signal.Signals(signum).name)
        worker.stop()

    signal.signal(signal.SIGTERM, graceful)
    signal.signal(signal.SIGINT, graceful)
