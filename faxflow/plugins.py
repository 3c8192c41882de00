"""Building the plugin manager: built-ins and third-party plugins found the same way.

Every plugin, built-in or not, is an entry point in the ``faxflow`` group. Only the core's own
default protocol is registered directly. ``FAXFLOW_LOAD_PLUGINS`` (comma-separated names)
limits which entry points load; ``disable`` skips some; ``--plugins-dir`` adds one-file plugins.
"""

from __future__ import annotations

import difflib
import functools
import importlib.metadata
import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    # Every name that could have been loaded (whether asked for or not), to tell a misspelt
    # name in FAXFLOW_LOAD_PLUGINS, `disable` or a [plugins.<name>] table from a real one.
    available: set[str] = field(default_factory=set)
    asked: list[str] | None = None  # FAXFLOW_LOAD_PLUGINS (or load=); None: all

    @property
    def failed(self) -> dict[str, str]:
        return {n: p.error for n, p in self.plugins.items() if p.error}

    @property
    def loaded(self) -> list[str]:
        return [n for n, p in self.plugins.items() if not p.error]

    def suggest(self, name: str) -> str:
        """' (did you mean x?)' for a name that is not a plugin, or ''."""
        close = difflib.get_close_matches(name, sorted(self.available), n=1)
        return f" (did you mean {close[0]}?)" if close else ""

    def unknown_asked(self) -> list[str]:
        """Messages for names in FAXFLOW_LOAD_PLUGINS that no plugin has."""
        return [f"FAXFLOW_LOAD_PLUGINS names {name!r}, which is not an installed plugin"
                f"{self.suggest(name)}" for name in self.asked or ()
                if name not in self.available]


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
    pm.register(protocol, name=CORE_NAME)
    if load is None:
        env = os.environ.get("FAXFLOW_LOAD_PLUGINS")
        load = None if env is None else [n.strip() for n in env.split(",") if n.strip()]
    report = LoadReport(asked=None if load is None else list(load))
    report.plugins[CORE_NAME] = PluginInfo(CORE_NAME, "core")
    report.available.add(CORE_NAME)
    wanted = None if load is None else set(load)
    skipped = set(disable)

    def add(name: str, info: PluginInfo, get: Callable[[], Any]) -> None:
        report.plugins[name] = info
        try:
            plugin = get()
            info.error = hook_problem(pm, plugin)
            if info.error is None:
                pm.register(plugin, name=name)
        except Exception as exc:
            info.error = f"{type(exc).__name__}: {exc}"
        if info.error:
            log.warning("plugin %s (%s) failed to load: %s", name, info.source, info.error)

    if entry_points:
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
                         key=lambda e: e.name):
            report.available.add(ep.name)
            if ep.name in skipped or (wanted is not None and ep.name not in wanted):
                continue
            if ep.name in report.plugins:
                log.warning("plugin name %s is used twice; keeping the first", ep.name)
                continue
            dist = ep.dist
            add(ep.name, PluginInfo(ep.name, "entry point", dist.name if dist else None,
                                    dist.version if dist else None), ep.load)

    if plugins_dir is not None:
        for path in sorted(Path(plugins_dir).glob("*.py")):
            report.available.add(path.stem)
            if path.stem not in skipped:
                add(path.stem, PluginInfo(path.stem, f"plugins dir {plugins_dir}"),
                    functools.partial(_load_file, path))

    for name, plugin in extra:
        report.available.add(name)
        add(name, PluginInfo(name, "registered"), functools.partial(_same, plugin))

    if trace if trace is not None else os.environ.get("FAXFLOW_TRACE_PLUGINS") == "1":
        enable_tracing(pm)
    return pm, report


HOOK_NAMES = sorted(name for name in dir(hookspecs) if name.startswith("faxflow_"))


# Hooks the core calls for each plugin on its own (App._each: so one plugin's failure is its
# own, and votes keep their plugin's name): a wrapper cannot wrap those calls.
PER_PLUGIN = frozenset({
    "faxflow_config_sections", "faxflow_check_config", "faxflow_configure",
    "faxflow_destination_types", "faxflow_route_targets", "faxflow_hold_vote",
    "faxflow_ack_vote", "faxflow_shutdown", "faxflow_fax_received", "faxflow_fax_read",
    "faxflow_fax_routed", "faxflow_fax_delivered", "faxflow_fax_acknowledged",
    "faxflow_fax_quarantined", "faxflow_fax_failed"})


def hook_problem(pm: pluggy.PluginManager, plugin: Any) -> str | None:
    """Why `plugin` cannot be registered: a hook implementation whose name is not a faxflow
    hook (a misspelling would otherwise never be called), or a wrapper on a hook the core
    calls per plugin; None if it is fine. Arguments the hook does not have are refused by
    pluggy's own register, with the hook named."""
    for attr in dir(plugin):
        opts = pm.parse_hookimpl_opts(plugin, attr)
        if opts is None:
            continue
        if attr in PER_PLUGIN and (opts.get("wrapper") or opts.get("hookwrapper")):
            return (f"{attr!r} is a wrapper, but faxflow calls {attr} for each plugin on its "
                    "own, so it cannot wrap the others: implement it plainly")
        if attr in HOOK_NAMES:
            continue
        close = difflib.get_close_matches(attr, HOOK_NAMES, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else "; see docs/plugin_hooks.md"
        return f"{attr!r} is marked as a hook implementation but is not a faxflow hook{hint}"
    return None


def _same(plugin: Any) -> Any:
    return plugin


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
