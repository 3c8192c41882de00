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
    """Watches the config file and the secret files it names (``password_file = ...``).

    Editors and orchestrators replace files rather than write in place, so the folders
    holding them are watched, and every event about any other file there (the journal, a
    log file) is dropped before anything is done or logged: a log file next to the config
    must never feed the watcher (watchdog's own debug lines are kept quiet for the same
    reason, see `faxflow.logs`).
    """

    def __init__(self, app: App, path: Path, settle: float = 0.3) -> None:
        self.app = app
        self.path = path.resolve()
        self.settle = settle
        self._watched = self._files()
        self._digest = self._read_digest()
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._observer = Observer()
        self._folders: set[str] = set()

    def _files(self) -> frozenset[str]:
        named = [f if f.is_absolute() else self.path.parent / f for f in self.app.config.files]
        return frozenset({str(self.path), *(str(f.resolve()) for f in named)})

    def _read_digest(self) -> str | None:
        digest = hashlib.sha256()
        for name in sorted(self._watched):
            try:
                digest.update(name.encode() + b"\0" + Path(name).read_bytes() + b"\0")
            except OSError:
                if name == str(self.path):
                    return None  # the config itself is away (mid-replace): wait
        return digest.hexdigest()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in CHANGES:  # reading the file must not delay a reload
            return
        paths = {str(event.src_path), str(getattr(event, "dest_path", "") or "")}
        if self._watched.isdisjoint(paths):
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
        if reload_config(self.app, self.path):
            self._watched = self._files()  # the new config may name other secret files
            self._digest = self._read_digest()
            self.start_watching()

    def start_watching(self) -> None:
        for folder in sorted({str(Path(f).parent) for f in self._watched}):
            if folder not in self._folders and Path(folder).is_dir():
                self._observer.schedule(self, folder, recursive=False)
                self._folders.add(folder)

    def start(self) -> None:
        self.start_watching()
        self._observer.daemon = True
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        if self._timer:
            self._timer.cancel()
