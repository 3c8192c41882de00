"""Hot reload: watch the config file; a valid new version is swapped in, an invalid one is
rejected with a clear log line and the old configuration stays."""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from faxflow.config import by_line, errors, read

if TYPE_CHECKING:
    from faxflow.app import App

log = logging.getLogger("faxflow.reload")
CHANGES = {"modified", "created", "moved", "closed", "deleted"}


def reload_config(app: App, path: Path) -> bool:
    """Validate the file at `path` and, if valid, take it into use. True when swapped in."""
    try:
        config, problems = read(path)
    except Exception as exc:
        log.error("config reload rejected, keeping the old configuration: %s", exc)
        return False
    if not any(p.message.startswith("invalid TOML") for p in problems):
        problems = [*problems, *app.check_config(config)]
    if errors(problems):
        log.error("config reload rejected, keeping the old configuration: %s",
                  "; ".join(p.format(str(path)) for p in by_line(problems)))
        return False
    for problem in by_line(problems):
        log.warning("%s", problem.format(str(path)))
    try:
        app.configure(config)  # plugins build first; app.config is replaced only if all agree
    except Exception as exc:
        log.error("config reload rejected by a plugin, keeping the old configuration: %s", exc)
        return False
    log.info("configuration reloaded from %s", path)
    return True


class Reloader(FileSystemEventHandler):
    """Watches the config file's folder (editors replace files rather than write in place)."""

    def __init__(self, app: App, path: Path, settle: float = 0.3) -> None:
        self.app = app
        self.path = path.resolve()
        self.settle = settle
        self._digest = self._read_digest()
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._observer = Observer()

    def _read_digest(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in CHANGES:  # reading the file must not delay a reload
            return
        paths = {str(event.src_path), str(getattr(event, "dest_path", "") or "")}
        if str(self.path) not in paths:
            return
        with self._lock:  # editors write in bursts: act once things settle
            if self._timer:
                self._timer.cancel()
            self._timer = threading.Timer(self.settle, self._changed)
            self._timer.daemon = True
            self._timer.start()

    def _changed(self) -> None:
        digest = self._read_digest()
        if digest is None or digest == self._digest:
            return
        self._digest = digest
        reload_config(self.app, self.path)

    def start(self) -> None:
        self._observer.schedule(self, str(self.path.parent), recursive=False)
        self._observer.daemon = True
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        if self._timer:
            self._timer.cancel()
