"""The App: what a running faxflow holds (plugin manager, config, journal) and a typed facade
over the hooks, so the core never calls ``pm.hook.x(**kwargs)`` untyped (the tox 4 way)."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from faxflow.config import (
    Config,
    ConfigProblem,
    KeyPath,
    as_problems,
    by_line,
    check_sections,
    read,
    with_lines,
)
from faxflow.config import errors as config_errors
from faxflow.errors import ConfigError
from faxflow.metrics import Metrics
from faxflow.plugins import LoadReport, make_manager
from faxflow.stash import Stash
from faxflow.types import (
    Classification,
    Decision,
    DeliveryResult,
    DestinationType,
    Document,
    Fax,
    Notice,
    PageText,
    Part,
    Route,
    Target,
    Vote,
)

if TYPE_CHECKING:
    from faxflow.journal import Journal

# What plugins use (docs/api.md); the rest of the module is the core's.
__all__ = [
    "App",
    "load_app",
]

log = logging.getLogger("faxflow")


@dataclass
class App:
    """What every hook's ``app`` argument is: the running faxflow, one per worker process (and
    a fresh one per test with the ``faxflow_app_factory`` fixture).

    For plugins:

    - `config`: the configuration in use. A hot reload replaces it once every plugin's
      `faxflow_configure` has accepted the new one (during that hook ``app.config`` is still
      the old one: use the hook's `config` argument), so look it up when you need it.
    - `state`: free space for app-wide state (connection pools, clients, compiled
      settings) under a key of your own, e.g. ``"plugins.<name>"`` as the built-ins do. It
      outlives reloads: `faxflow_configure` may find and replace what it stored last time,
      and `faxflow_shutdown` should close what it holds.
    - `metrics`: this app's Prometheus metrics; add your own counters with
      ``app.metrics.counter(...)``.
    - `destinations`: every declared `DestinationType` by name; read only.
    - `warnings`: the configuration's warnings as printed (``file:line: warning: ...``).

    The core's own, to read at most: `pm` (the pluggy plugin manager), `report` (which
    plugins loaded or failed, by name) and `journal` (the record of every fax's attempts and
    deliveries that the delivery guarantees rest on; None until the worker opens it, so in
    ``faxflow check`` and in plugin commands). The methods that call hooks (`process_fax`,
    `classify`, `deliver`, ...) are how the core runs the protocol: a plugin's tests may call
    them, a plugin's hooks should not.
    """

    pm: pluggy.PluginManager
    config: Config = field(default_factory=lambda: Config({}))
    journal: Journal | None = None
    destinations: dict[str, DestinationType] = field(default_factory=dict)
    report: LoadReport = field(default_factory=LoadReport)
    metrics: Metrics = field(default_factory=Metrics)
    # Per-app state of plugins, typed: app.stash[MY_KEY] (see faxflow.stash). Module globals
    # would be shared by every app in the process.
    stash: Stash = field(default_factory=Stash)
    # The same by plugin name (older plugins; the built-ins keep pools and rules here).
    state: dict[str, Any] = field(default_factory=dict)
    # Warnings about the configuration in use (file:line: warning: key: message).
    warnings: list[str] = field(default_factory=list)
    _configured: bool = field(default=False, init=False, repr=False)  # configure() succeeded

    # --- paths -------------------------------------------------------------------------

    @property
    def spool_dir(self) -> Path:
        """Where documents are downloaded: ``[worker] spool_dir``, relative to the config
        file's folder."""
        return self.config.resolve(self.config.worker.spool_dir)

    @property
    def quarantine_dir(self) -> Path:
        """Where quarantined faxes are kept: ``[worker] quarantine_dir``, relative to the
        config file's folder."""
        return self.config.resolve(self.config.worker.quarantine_dir)

    def plugin_options(self, name: str) -> dict[str, Any]:
        """The ``[plugins.<name>]`` table of the configuration in use, or an empty dict
        (``app.config.plugin_options(name)``). Secrets in it are resolved: never log it whole."""
        return self.config.plugin_options(name)

    def plugin_name(self, plugin: object) -> str | None:
        """The name `plugin` (a module or object) was registered under: its entry-point
        name, its file name in --plugins-dir, or the name given in ``extra``. A module plugin
        asks with ``app.plugin_name(sys.modules[__name__])``."""
        return self.pm.get_name(plugin)

    # --- configuration hooks -----------------------------------------------------------

    def load_destination_types(self) -> list[str]:
        """Collect destination types, each marked with its plugin's name; returns error
        messages for duplicate names and for what is not a DestinationType.

        The core's: called once when the app is built (fills `destinations`)."""
        errors: list[str] = []
        self.destinations = {}
        for name, declared, exc in self._each("faxflow_destination_types"):
            if exc is not None:
                errors.append(f"plugin {name}: faxflow_destination_types raised {exc!r}")
                continue
            for dest in declared or ():
                if not isinstance(dest, DestinationType):
                    errors.append(f"plugin {name}: faxflow_destination_types returned "
                                  f"{dest!r}, not a DestinationType")
                elif dest.name in self.destinations:
                    errors.append(f"destination type {dest.name!r} declared twice "
                                  f"(again by plugin {name})")
                else:
                    self.destinations[dest.name] = dataclasses.replace(dest, plugin=name)
        return errors

    def check_config(self, config: Config) -> list[ConfigProblem]:
        """Every problem of a config: core tables, unknown tables, each plugin's check.

        What ``faxflow check``, start-up and a reload run (`faxflow_check_config`); each
        problem carries its line."""
        claimed: list[str] = []
        problems: list[ConfigProblem] = []
        for name, names, exc in self._each("faxflow_config_sections"):
            if exc is None and isinstance(names, list | tuple | set | frozenset) and all(
                    isinstance(n, str) for n in names):
                claimed.extend(names)
            elif exc is not None or names is not None:
                problems.append(ConfigProblem((), f"plugin {name}: faxflow_config_sections "
                                              f"{'raised ' + repr(exc) if exc else 'returned'}"
                                              f"{'' if exc else ' ' + repr(names)}"
                                              f"{'' if exc else ', not a list of names'}"))
        problems += check_sections(config, claimed)
        for name, found, exc in self._each("faxflow_check_config", config=config, app=self):
            where: KeyPath = ("plugins", name)
            if exc is not None:  # a plugin bug must not hide the other problems
                problems.append(ConfigProblem(where, f"plugin {name}: its configuration check "
                                              f"raised {exc!r}"))
            else:
                problems += as_problems(found, where,
                                        f"the configuration check of plugin {name}")
        problems += self._plugin_problems(config)
        return with_lines(config, problems)

    def _plugin_problems(self, config: Config) -> list[ConfigProblem]:
        """Plugins that failed to load, and plugin names (in `disable`, [plugins.<name>]
        tables, FAXFLOW_LOAD_PLUGINS) that name no plugin: a misspelling must not pass."""
        loaded = {self.pm.get_name(p) for p in self.pm.get_plugins()}
        report = self.report
        known = report.available | loaded
        table = config.data.get("plugins", {})
        table = table if isinstance(table, dict) else {}
        problems = [ConfigProblem(("plugins", name) if name in table else (),
                                  f"plugin {name} ({report.plugins[name].source}) failed to "
                                  f"load: {error}; fix or uninstall it, or add it to "
                                  "[plugins] disable")
                    for name, error in report.failed.items()]
        problems += [ConfigProblem((), message) for message in report.unknown_asked()]
        disabled = table.get("disable", [])
        for i, name in enumerate(disabled if isinstance(disabled, list) else []):
            if name not in known:
                problems.append(ConfigProblem(("plugins", "disable", i),
                                              f"no plugin named {name!r}{report.suggest(name)}"))
        for name, value in table.items():
            if name == "disable" or name in report.failed:
                continue
            if not isinstance(value, dict):
                problems.append(ConfigProblem(("plugins", name), "unknown option (options of a "
                                              f"plugin go in [plugins.{name}])"))
            elif name not in known:
                problems.append(ConfigProblem(("plugins", name), f"no plugin named {name!r}"
                                              f"{report.suggest(name)}"))
            elif name not in loaded:
                problems.append(ConfigProblem(("plugins", name), (
                    f"plugin {name} is not loaded (disabled, or not in FAXFLOW_LOAD_PLUGINS): "
                    "these options have no effect"), warning=True))
        return problems

    def configure(self, config: Config) -> None:
        """Run every plugin's `faxflow_configure` with a checked `config`, then take it into
        use as `config`. If one raises, the config is refused (ConfigError naming the
        plugin) and `config` stays the old one; on a reload every plugin is then configured
        with the old one again, so that none is left on the refused one. The core's: at
        start-up and on every hot reload."""
        refused = [(name, exc) for name, _, exc in
                   self._each("faxflow_configure", config=config, app=self) if exc is not None]
        if not refused:
            self.config, self._configured = config, True
            return
        if self._configured:
            for name, _, again in self._each("faxflow_configure", config=self.config,
                                             app=self):
                if again is not None:
                    log.error("plugin %s could not go back to the configuration in use: %s: %s",
                              name, type(again).__name__, again)
        name, exc = refused[0]
        if isinstance(exc, ConfigError):
            raise ConfigError(f"plugin {name}: {exc}") from exc
        raise ConfigError(f"plugin {name} refused the configuration: "
                          f"{type(exc).__name__}: {exc}") from exc

    def startup(self) -> None:
        """Run `faxflow_startup`. The core's: once, before the worker starts pulling."""
        self.pm.hook.faxflow_startup(app=self)

    def shutdown(self) -> None:
        """Run `faxflow_shutdown`, each plugin on its own (exceptions are logged). The core's:
        once, when the worker stops."""
        self.notify("faxflow_shutdown", app=self)

    # --- per-fax hooks -----------------------------------------------------------------

    def process_fax(self, fax: Fax) -> Decision:
        """Run `faxflow_process_fax`: the whole protocol for one fax (extract text, classify,
        route, deliver, vote) and its decision. The worker calls it once per attempt; a
        plugin's tests may call it to run a fax end to end."""
        decision: Decision = self.pm.hook.faxflow_process_fax(fax=fax, app=self)
        return decision

    def extract_text(self, fax: Fax, document: Document) -> list[PageText] | None:
        """Run `faxflow_extract_text` for one document: the pages of the first plugin that
        reads it, or None if none does. Not added to the fax."""
        pages: list[PageText] | None = self.pm.hook.faxflow_extract_text(
            fax=fax, document=document, app=self)
        return pages

    def split(self, fax: Fax) -> list[Part] | None:
        """Run `faxflow_split`: the parts the first plugin that splits the fax cuts it into,
        not checked; None: the fax stays whole."""
        parts: list[Part] | None = self.pm.hook.faxflow_split(fax=fax, app=self)
        return parts

    def classify(self, fax: Fax) -> list[Classification]:
        """Run `faxflow_classify`: every plugin's `Classification` (abstentions left out),
        not merged into the fax."""
        return [c for c in self.pm.hook.faxflow_classify(fax=fax, app=self)
                if isinstance(c, Classification)]

    def route(self, fax: Fax) -> list[Iterable[Route]]:
        """Run `faxflow_route`: each plugin's routes, not checked for duplicate keys nor
        added to the fax."""
        return list(self.pm.hook.faxflow_route(fax=fax, app=self))

    def route_targets(self) -> list[str]:
        """Every target an operator may pick (`faxflow_route_targets`), sorted, unique."""
        return sorted(self.targets())

    def targets(self) -> dict[str, Target]:
        """The targets by name, with the labels each gives (`faxflow_route_targets`)."""
        found: dict[str, Target] = {}
        for name, given, exc in self._each("faxflow_route_targets", app=self):
            if exc is not None:
                log.error("plugin %s raised in faxflow_route_targets: %r", name, exc)
                continue
            for item in given or ():
                target = item if isinstance(item, Target) else Target(str(item))
                found.setdefault(target.name, target)
        return found

    def route_to(self, fax: Fax, target: str) -> list[Route] | None:
        """Run `faxflow_route_to`: the routes of the target an operator picked, rendered for
        this fax; None when no plugin knows the target."""
        routes: Iterable[Route] | None = self.pm.hook.faxflow_route_to(
            fax=fax, target=target, app=self)
        return None if routes is None else [r for r in routes if isinstance(r, Route)]

    def notify_people(self, notice: Notice, route: Route) -> DeliveryResult | None:
        """Send a notice through one route (`faxflow_notify`); None if no plugin can."""
        result: DeliveryResult | None = self.pm.hook.faxflow_notify(notice=notice, route=route,
                                                                    app=self)
        return result

    def deliver(self, fax: Fax, route: Route, uncertain: bool) -> DeliveryResult | None:
        """Run `faxflow_deliver` for one route: the result of the plugin that delivers
        ``route.type``, or None if none does. Nothing is recorded in the journal."""
        result: DeliveryResult | None = self.pm.hook.faxflow_deliver(
            fax=fax, route=route, uncertain=uncertain, app=self)
        return result

    def ack_votes(self, fax: Fax) -> dict[str, Vote | None]:
        """Run `faxflow_ack_vote`: every plugin's vote by plugin name (None: abstained),
        the core's own included; a plugin that raised votes not-yet. Not yet decided
        (`faxflow.ack.decide` does that)."""
        return self._votes("faxflow_ack_vote", fax)

    def hold_votes(self, fax: Fax) -> dict[str, Vote | None]:
        """Run `faxflow_hold_vote`: every plugin's vote on delivering the fax at all, asked
        before any delivery; decided like the acknowledgement votes."""
        return self._votes("faxflow_hold_vote", fax)

    def _votes(self, hook: str, fax: Fax) -> dict[str, Vote | None]:
        """Votes by plugin name; a plugin that raised, or returned no Vote, votes not-yet."""
        votes: dict[str, Vote | None] = {}
        for name, vote, exc in self._each(hook, fax=fax, app=self):
            if exc is not None:
                log.error("plugin %s raised in %s: %r", name, hook, exc)
                votes[name] = Vote.not_yet(f"vote raised {exc!r}")
            else:
                votes[name] = vote if isinstance(vote, Vote) or vote is None else \
                    Vote.not_yet(f"voted {vote!r}, not a Vote")
        return votes

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Call a notification hook (``"faxflow_fax_delivered"``, ...) with these arguments;
        each implementation isolated, failures logged, never raised. The core's."""
        for name, _, exc in self._each(hook, **kwargs):
            if exc is not None:
                log.error("plugin %s raised in %s (ignored): %r", name, hook, exc)

    def _each(self, hook: str, **kwargs: Any) -> list[tuple[str, Any, Exception | None]]:
        """Call every implementation of a hook on its own, so one failure is isolated
        (pluggy stops a hook call at the first exception)."""
        trace = os.environ.get("FAXFLOW_TRACE_PLUGINS") == "1"
        out: list[tuple[str, Any, Exception | None]] = []
        for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
            try:
                out.append((impl.plugin_name, impl.function(**_args(impl, **kwargs)), None))
            except Exception as exc:
                out.append((impl.plugin_name, None, exc))
            if trace:
                print(f"[trace] {hook} {impl.plugin_name} = {out[-1][2] or out[-1][1]!r}"[:200],
                      file=sys.stderr)
        return out


def _args(impl: pluggy.HookImpl, **available: Any) -> dict[str, Any]:
    """Only the arguments this implementation asked for (pluggy's own rule)."""
    return {name: available[name] for name in impl.argnames if name in available}


def load_app(config_path: Path | None, *, plugins_dir: Path | None = None,
             extra: Iterable[tuple[str, Any]] = (), env: dict[str, str] | None = None,
             load: Iterable[str] | None = None) -> App:
    """Read and validate a config file, build the plugin manager and configure the plugins.

    Raises ConfigError with one line per problem (file:line: key: message).

    For a command a plugin adds (`faxflow_register_commands`) that needs the configured
    plugins: ``app = load_app(Path(config_path))``. The app is configured, not running: no
    journal, no `faxflow_startup`. `plugins_dir` adds one-file plugins (``--plugins-dir``),
    `extra` registers ``(name, plugin)`` pairs besides the entry points, `env` replaces
    ``os.environ`` for ``${VAR}`` references and `load` limits the entry points loaded (as
    ``FAXFLOW_LOAD_PLUGINS`` does; None: that variable decides).
    """
    problems: list[ConfigProblem]
    if config_path is None:
        config, problems = Config({}), []
    else:
        config, problems = read(config_path, env)
    pm, report = make_manager(disable=config.disabled_plugins, plugins_dir=plugins_dir,
                              extra=extra, load=load)
    app = App(pm=pm, config=config, report=report)
    errors = app.load_destination_types()
    if not any(p.message.startswith("invalid TOML") for p in problems):
        problems = [*problems, *app.check_config(config)]
    problems = by_line(with_lines(config, problems))
    where = str(config_path) if config_path else None
    app.warnings = [p.format(where) for p in problems if p.warning]
    if errors or config_errors(problems):
        raise ConfigError("\n".join([p.format(where) for p in problems]
                                    + [f"{where or 'config'}: {e}" for e in errors]))
    try:
        app.configure(config)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    return app
