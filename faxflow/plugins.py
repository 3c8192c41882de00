"""Building the plugin manager: built-ins and third-party plugins found the same way.

Every plugin, built-in or not, is an entry point in the ``faxflow`` group. Only the core's own
default protocol is registered directly. ``FAXFLOW_LOAD_PLUGINS`` (comma-separated names)
limits which entry points load; ``disable`` skips some; ``--plugins-dir`` adds one-file plugins.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from faxflow import hookspecs, protocol

log = logging.getLogger("faxflow.plugins")

ENTRY_POINT_GROUP = "faxflow"
CORE_NAME = "core"


@dataclass
class PluginInfo:
    name: str
    source: str  # "core", "entry point", "plugins dir"
    distribution: str | None = None
    version: str | None = None
    error: str | None = None  # set when the plugin failed to load


@dataclass
class LoadReport:
    """What `make_manager` loaded, skipped and failed on, by plugin name."""

    plugins: dict[str, PluginInfo] = field(default_factory=dict)

    @property
    def failed(self) -> dict[str, str]:
        return {n: p.error for n, p in self.plugins.items() if p.error}


def make_manager(
    *,
    load: Iterable[str] | None = None,
    disable: Iterable[str] = (),
    plugins_dir: Path | None = None,
    extra: Iterable[tuple[str, Any]] = (),
    entry_points: bool = True,
    trace: bool | None = None,
) -> tuple[pluggy.PluginManager, LoadReport]:
    """A fresh plugin manager with the core, entry-point plugins and local plugins.

    `load` defaults to ``FAXFLOW_LOAD_PLUGINS`` (unset: all); `extra` registers given plugin
    objects (tests). A plugin that fails to import is recorded in the report, never raised:
    the caller decides whether the configuration needs it.
    """
    pm = pluggy.PluginManager("faxflow")
    pm.add_hookspecs(hookspecs)
    report = LoadReport()
    pm.register(protocol, name=CORE_NAME)
    report.plugins[CORE_NAME] = PluginInfo(CORE_NAME, "core")

    if load is None:
        env = os.environ.get("FAXFLOW_LOAD_PLUGINS")
        load = None if env is None else [n.strip() for n in env.split(",") if n.strip()]
    wanted = None if load is None else set(load)
    skipped = set(disable)

    if entry_points:
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
                         key=lambda e: e.name):
            if ep.name in skipped or (wanted is not None and ep.name not in wanted):
                continue
            if pm.has_plugin(ep.name):
                log.warning("plugin name %s is used twice; keeping the first", ep.name)
                continue
            dist = ep.dist
            info = PluginInfo(ep.name, "entry point", dist.name if dist else None,
                              dist.version if dist else None)
            report.plugins[ep.name] = info
            try:
                pm.register(ep.load(), name=ep.name)
            except Exception as exc:
                info.error = f"{type(exc).__name__}: {exc}"
                log.warning("plugin %s failed to load: %s", ep.name, info.error)

    if plugins_dir is not None:
        for path in sorted(Path(plugins_dir).glob("*.py")):
            name = path.stem
            if name in skipped:
                continue
            info = PluginInfo(name, f"plugins dir {plugins_dir}")
            report.plugins[name] = info
            try:
                pm.register(_load_file(path), name=name)
            except Exception as exc:
                info.error = f"{type(exc).__name__}: {exc}"
                log.warning("plugin %s (%s) failed to load: %s", name, path, info.error)

    for name, plugin in extra:
        pm.register(plugin, name=name)
        report.plugins[name] = PluginInfo(name, "registered")

    # A misspelt hook name would otherwise be silently never called.
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        bad = exc.plugin
        name = pm.get_name(bad) or str(bad)
        pm.unregister(bad)
        report.plugins.setdefault(name, PluginInfo(name, "?")).error = str(exc)
    if trace if trace is not None else os.environ.get("FAXFLOW_TRACE_PLUGINS") == "1":
        enable_tracing(pm)
    return pm, report


def _load_file(path: Path) -> ModuleType:
    name = f"faxflow_local_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def enable_tracing(pm: pluggy.PluginManager) -> None:
    """Print every hook call, its arguments and results to stderr (FAXFLOW_TRACE_PLUGINS=1)."""

    def before(hook_name: str, impls: Sequence[pluggy.HookImpl],
               kwargs: Mapping[str, Any]) -> None:
        names = ", ".join(i.plugin_name for i in impls)
        args = ", ".join(f"{k}={_short(v)}" for k, v in kwargs.items())
        print(f"[trace] {hook_name}({args}) -> [{names}]", file=sys.stderr)

    def after(outcome: pluggy.Result[Any], hook_name: str, impls: Sequence[pluggy.HookImpl],
              kwargs: Mapping[str, Any]) -> None:
        error = outcome.exception
        shown = f"raised {error!r}" if error else _short(outcome.get_result())
        print(f"[trace] {hook_name} = {shown}", file=sys.stderr)

    pm.add_hookcall_monitoring(before, after)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def hooks_of(pm: pluggy.PluginManager, name: str) -> list[str]:
    plugin = pm.get_plugin(name)
    if plugin is None:
        return []
    return sorted(c.name for c in pm.get_hookcallers(plugin) or [])
