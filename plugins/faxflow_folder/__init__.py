"""Destination ``folder``: write the fax's files and a JSON sidecar into a folder.

Config::

    [plugins.folder]
    base = "/data/out"                  # the folder named "default"
    file_mode = "0640"                  # optional: default [worker] file_mode ("0600")
    dir_mode = "0750"                   # optional: default [worker] dir_mode ("0700")
    [plugins.folder.bases]              # optional, more folders by name
    invoices = "/data/invoices"

Route options: ``base`` (a name from above, default "default"), ``path`` (sub-folder, may use
``/``), ``name`` (file stem, default the fax id), ``content`` (original, searchable, both),
``sidecar`` (write ``<name>.json``, default true), ``text`` (OCR text in the sidecar, default
true). ``path`` and ``name`` are usually templates over sender fields: every component is
made safe and the result must stay inside the base folder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faxflow import delivery
from faxflow.app import App
from faxflow.config import Config, ConfigProblem, KeyPath
from faxflow.hookspecs import hookimpl
from faxflow.paths import make_dirs
from faxflow.types import DeliveryResult, DestinationType, Fax, Route

log = logging.getLogger("faxflow.folder")

LOCK_NAME = ".faxflow.lock"
MODE = re.compile(r"0?[0-7]{3}")
MAX_DEPTH = 16  # with 120-byte components this stays well under PATH_MAX
OPTIONS: dict[str, tuple[type, ...]] = {
    "base": (str,), "path": (str,), "name": (str,), "content": (str,),
    "sidecar": (bool,), "text": (bool,),
}


def check_options(options: Mapping[str, Any]) -> list[str]:
    problems = delivery.check_types(options, OPTIONS)
    problems += delivery.check_choice(options, "content", delivery.CONTENT_CHOICES)
    return problems


@hookimpl
def faxflow_destination_types() -> list[DestinationType]:
    return [DestinationType("folder", check_options,
                            "Write the fax and a JSON sidecar into a local folder.")]


def bases(config: Config) -> dict[str, Path]:
    opts = config.plugin_options("folder")
    out: dict[str, Path] = {}
    if isinstance(opts.get("base"), str):
        out["default"] = config.resolve(opts["base"])
    named = opts.get("bases")
    if isinstance(named, dict):
        out.update({k: config.resolve(v) for k, v in named.items() if isinstance(v, str)})
    return out


@dataclass(frozen=True, slots=True)
class Modes:
    """Permissions of what a delivery creates: owner-only unless the site asks for more."""

    file: int = 0o600
    dir: int = 0o700


def modes(config: Config) -> Modes:
    opts = config.plugin_options("folder")

    def mode(key: str, default: int) -> int:
        value = opts.get(key)
        return int(value, 8) if isinstance(value, str) and MODE.fullmatch(value) else default

    return Modes(mode("file_mode", config.file_mode), mode("dir_mode", config.dir_mode))


@hookimpl
def faxflow_check_config(config: Config) -> list[ConfigProblem]:
    opts = config.plugin_options("folder")
    problems: list[ConfigProblem] = []
    for key in opts:
        if key not in ("base", "bases", "file_mode", "dir_mode"):
            problems.append(ConfigProblem(("plugins", "folder", key),
                                          "unknown option (known: base, bases, file_mode, "
                                          "dir_mode)"))
        elif key.endswith("_mode") and not (isinstance(opts[key], str)
                                            and MODE.fullmatch(opts[key])):
            problems.append(ConfigProblem(("plugins", "folder", key),
                                          'must be an octal mode such as "0640"'))
    if "base" in opts and not isinstance(opts["base"], str):
        problems.append(ConfigProblem(("plugins", "folder", "base"), "must be a string"))
    for name, folder in bases(config).items():
        if not folder.is_dir():  # deliveries wait for it (transient): say so now
            where: KeyPath = ("plugins", "folder", "base") if name == "default" else \
                ("plugins", "folder", "bases", name)
            problems.append(ConfigProblem(where, f"folder {folder} does not exist (yet): "
                                          "deliveries to it wait until it does", warning=True))
    named = opts.get("bases", {})
    if not isinstance(named, dict):
        problems.append(ConfigProblem(("plugins", "folder", "bases"), "must be a table"))
    else:
        for name, value in named.items():
            if not isinstance(value, str):
                problems.append(ConfigProblem(("plugins", "folder", "bases", name),
                                              "must be a string"))
    return problems


@hookimpl
def faxflow_deliver(fax: Fax, route: Route, uncertain: bool, app: App) -> DeliveryResult | None:
    if route.type != "folder":
        return None
    try:
        return deliver(fax, route, bases(app.config), uncertain, modes(app.config))
    except delivery.DeliveryError as exc:
        return delivery.as_result(exc)
    except OSError as exc:
        return _os_error(exc)


def _os_error(exc: OSError) -> DeliveryResult:
    message = f"folder: {exc.strerror or exc}"
    if exc.errno in (errno.ENAMETOOLONG, errno.EINVAL, errno.EILSEQ):
        return DeliveryResult.permanent(message)
    # Disk full, permissions, a volume away: fixable by the operator, so try again later.
    return DeliveryResult.transient(message)


def deliver(fax: Fax, route: Route, known: Mapping[str, Path],
            uncertain: bool = False, modes: Modes = Modes()) -> DeliveryResult:
    opts = route.options
    base_name = str(opts.get("base", "default"))
    if base_name not in known:
        raise delivery.permanent(f"base: no folder named {base_name!r} in [plugins.folder]")
    base = known[base_name]
    if not base.is_dir():
        raise delivery.transient(f"folder: base folder {base} does not exist (not mounted?)")
    parts = delivery.safe_relative(str(opts.get("path", "")))
    if len(parts) > MAX_DEPTH:
        raise delivery.permanent(f"path: more than {MAX_DEPTH} folder levels")
    folder = make_folder(base, parts, modes.dir)
    key = delivery.stable_key(fax, route)
    stem = delivery.safe_component(str(opts.get("name") or fax.id), 100)
    content = str(opts.get("content", "original"))
    # Choosing a free name and writing must be one step: two faxes whose names clean up
    # alike (from two threads or two workers) would otherwise overwrite each other.
    with folder_lock(folder):
        for candidate in (stem, f"{stem}-{key[:8]}"):
            files = delivery.files_to_send(fax, content, candidate)
            if not taken(folder, candidate, key, files):
                break
        else:
            raise delivery.permanent(f"folder: {folder / stem} and its alternative name are "
                                     "taken by other faxes")
        if uncertain:  # an earlier attempt may have been killed mid-write
            remove_temp_files(folder, [f.name for f in files] + [f"{candidate}.json"])
        written = [write(base, folder / f.name, f.path, modes.file) for f in files]
        if opts.get("sidecar", True):
            data = sidecar(fax, key, files, bool(opts.get("text", True)))
            written.append(write(base, folder / f"{candidate}.json", data, modes.file))
    main = folder / files[0].name
    return DeliveryResult.delivered(f"wrote {', '.join(written)} to {folder}",
                                    reference=str(main))


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on one folder, across threads and processes (flock on a hidden file;
    each call opens its own file, so threads of one process exclude each other too)."""
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def remove_temp_files(folder: Path, names: list[str]) -> None:
    """Remove the temporary files of these names that a writer killed before its rename left
    (delivery.atomic_write's `.name.*.tmp`). Called under folder_lock, so none is in use."""
    for name in names:
        for leftover in folder.glob(f"{glob.escape(f'.{name}.')}*.tmp"):
            leftover.unlink(missing_ok=True)


def make_folder(base: Path, parts: list[str], mode: int = 0o700) -> Path:
    """Create base/parts... one level at a time with `mode`, refusing symlinks that lead out
    of base."""
    folder = base
    for part in parts:
        folder = folder / part
        delivery.inside(base, folder)
        make_dirs(folder, mode)
    return delivery.inside(base, folder)


def taken(folder: Path, stem: str, key: str, files: Iterable[delivery.OutFile]) -> bool:
    """Whether `stem` in `folder` holds another fax's files (ours from an earlier attempt are
    fine: they carry our key in the sidecar or have identical content)."""
    side = folder / f"{stem}.json"
    if side.is_file() and not side.is_symlink():
        try:
            return bool(json.loads(side.read_bytes()).get("delivery_key") != key)
        except (ValueError, AttributeError):
            return True
    return any((folder / f.name).exists() or (folder / f.name).is_symlink()
               if not delivery.same_content(folder / f.name, f.path) else False
               for f in files)


def write(base: Path, target: Path, data: bytes | Path, mode: int = 0o600) -> str:
    if target.is_symlink():
        raise delivery.permanent(f"folder: {target.name} is a symlink; refusing to write")
    delivery.inside(base, target)
    if not delivery.same_content(target, data):
        delivery.atomic_write(target, data, mode)
    return target.name


def sidecar(fax: Fax, key: str, files: list[delivery.OutFile], text: bool) -> bytes:
    data = delivery.metadata(fax, text=text)
    data["files"] = [f.name for f in files]
    data["delivery_key"] = key
    return json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True).encode() + b"\n"
