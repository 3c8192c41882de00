"""The App: what a running faxflow holds (plugin manager, config, journal) and a typed facade
over the hooks, so the core never calls ``pm.hook.x(**kwargs)`` untyped (the tox 4 way)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from faxflow.config import Config, ConfigProblem, check_sections, with_lines
from faxflow.types import (
    Classification,
    Decision,
    DeliveryResult,
    DestinationType,
    Document,
    Fax,
    PageText,
    Route,
    Vote,
)

if TYPE_CHECKING:
    from faxflow.journal import Journal

log = logging.getLogger("faxflow")


@dataclass
class App:
    pm: pluggy.PluginManager
    config: Config = field(default_factory=lambda: Config({}))
    journal: Journal | None = None
    destinations: dict[str, DestinationType] = field(default_factory=dict)
    # Filled by the worker: counters and times for health checks and metrics.
    state: dict[str, Any] = field(default_factory=dict)

    # --- paths -------------------------------------------------------------------------

    @property
    def spool_dir(self) -> Path:
        return self.config.resolve(self.config.worker.spool_dir)

    @property
    def quarantine_dir(self) -> Path:
        return self.config.resolve(self.config.worker.quarantine_dir)

    def plugin_options(self, name: str) -> dict[str, Any]:
        return self.config.plugin_options(name)

    # --- configuration hooks -----------------------------------------------------------

    def load_destination_types(self) -> list[str]:
        """Collect destination types; returns error messages for duplicate names."""
        errors: list[str] = []
        self.destinations = {}
        for impl in self.pm.hook.faxflow_destination_types.get_hookimpls():
            for dest in impl.function() or ():
                if dest.name in self.destinations:
                    errors.append(f"destination type {dest.name!r} declared twice "
                                  f"(again by plugin {impl.plugin_name})")
                    continue
                self.destinations[dest.name] = dest
        return errors

    def check_config(self, config: Config) -> list[ConfigProblem]:
        """Every problem of a config: core tables, unknown tables, each plugin's check."""
        claimed: list[str] = []
        for names in self.pm.hook.faxflow_config_sections():
            claimed.extend(names or ())
        problems = list(check_sections(config, claimed))
        for impl in self.pm.hook.faxflow_check_config.get_hookimpls():
            try:
                found = impl.function(**_args(impl, config=config, app=self))
                problems.extend(found or ())
            except Exception as exc:  # a plugin bug must not hide the other problems
                problems.append(ConfigProblem(("plugins", impl.plugin_name),
                                              f"plugin check failed: {exc!r}"))
        return with_lines(config, problems)

    def configure(self, config: Config) -> None:
        self.pm.hook.faxflow_configure(config=config, app=self)
        self.config = config

    def startup(self) -> None:
        self.pm.hook.faxflow_startup(app=self)

    def shutdown(self) -> None:
        self.notify("faxflow_shutdown", app=self)

    # --- per-fax hooks -----------------------------------------------------------------

    def process_fax(self, fax: Fax) -> Decision:
        decision: Decision = self.pm.hook.faxflow_process_fax(fax=fax, app=self)
        return decision

    def extract_text(self, fax: Fax, document: Document) -> list[PageText] | None:
        pages: list[PageText] | None = self.pm.hook.faxflow_extract_text(
            fax=fax, document=document, app=self)
        return pages

    def classify(self, fax: Fax) -> list[Classification]:
        return [c for c in self.pm.hook.faxflow_classify(fax=fax, app=self)
                if isinstance(c, Classification)]

    def route(self, fax: Fax) -> list[Iterable[Route]]:
        return list(self.pm.hook.faxflow_route(fax=fax, app=self))

    def deliver(self, fax: Fax, route: Route, uncertain: bool) -> DeliveryResult | None:
        result: DeliveryResult | None = self.pm.hook.faxflow_deliver(
            fax=fax, route=route, uncertain=uncertain, app=self)
        return result

    def ack_votes(self, fax: Fax) -> dict[str, Vote | None]:
        """Every plugin's vote by plugin name; a plugin that raised votes not-yet."""
        votes: dict[str, Vote | None] = {}
        for impl in reversed(self.pm.hook.faxflow_ack_vote.get_hookimpls()):
            try:
                votes[impl.plugin_name] = impl.function(**_args(impl, fax=fax, app=self))
            except Exception as exc:
                log.exception("plugin %s raised in faxflow_ack_vote", impl.plugin_name)
                votes[impl.plugin_name] = Vote.not_yet(f"vote raised {exc!r}")
        return votes

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Call a notification hook; each implementation isolated, failures logged."""
        caller = getattr(self.pm.hook, hook)
        for impl in reversed(caller.get_hookimpls()):
            try:
                impl.function(**_args(impl, **kwargs))
            except Exception:
                log.exception("plugin %s raised in %s (ignored)", impl.plugin_name, hook)


def _args(impl: pluggy.HookImpl, **available: Any) -> dict[str, Any]:
    """Only the arguments this implementation asked for (pluggy's own rule)."""
    return {name: available[name] for name in impl.argnames if name in available}
