"""Plugin ``urgent``: label urgent faxes; ``faxflow urgent-words`` shows the words in use.

    [plugins.urgent]
    words = ["urgent", "dringend", "asap"]
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import click

from faxflow.app import App
from faxflow.config import Config
from faxflow.hookspecs import hookimpl
from faxflow.stash import StashKey
from faxflow.types import Classification, Fax

DEFAULT_WORDS = ("urgent", "dringend", "asap")


@dataclass(frozen=True)
class Settings:
    words: tuple[str, ...] = DEFAULT_WORDS


# Per-app state: two apps in one process (tests, an embedded worker) never share it.
SETTINGS = StashKey[Settings]()


def options(config: Config, app: App) -> dict[str, Any]:
    """Our table, [plugins.<the name we were registered under>]."""
    return config.plugin_options(app.plugin_name(sys.modules[__name__]) or "urgent")


@hookimpl
def faxflow_check_config(config: Config, app: App) -> list[str]:
    words = options(config, app).get("words", list(DEFAULT_WORDS))
    if not isinstance(words, list) or not all(isinstance(w, str) and w for w in words):
        return ["words: must be a list of non-empty strings"]  # faxflow adds file and line
    return []


@hookimpl
def faxflow_configure(config: Config, app: App) -> None:
    words = options(config, app).get("words", DEFAULT_WORDS)
    app.stash[SETTINGS] = Settings(tuple(str(w).lower() for w in words))


@hookimpl
def faxflow_classify(fax: Fax, app: App) -> Classification | None:
    words = app.stash.get(SETTINGS, Settings()).words
    text = fax.text.lower()
    if any(word in text for word in words):
        return Classification(labels=frozenset({"urgent"}))
    return None


@hookimpl
def faxflow_register_commands(cli: click.Group) -> None:
    @cli.command("urgent-words")
    @click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False))
    def urgent_words(config_path: str | None) -> None:
        """Show the words that make a fax urgent."""
        words: tuple[str, ...] = DEFAULT_WORDS
        if config_path:
            from pathlib import Path

            from faxflow.app import load_app

            app = load_app(Path(config_path))
            words = app.stash[SETTINGS].words
        click.echo(", ".join(words))
