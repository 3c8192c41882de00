"""faxflow-urgent: an example third-party plugin.

- labels a fax "urgent" when its text contains one of the configured words, so rules can
  route it (`labels = ["urgent"]` in a rule's match);
- votes not-yet on a fax whose every page failed text extraction, when asked to;
- adds `faxflow urgent-words -c FILE` to show the words in use.

Configuration:

    [plugins.urgent]
    words = ["urgent", "dringend", "asap"]
    hold_unreadable = false
"""

from __future__ import annotations

from typing import Any

import click

from faxflow.config import Config, ConfigProblem
from faxflow.hookspecs import hookimpl
from faxflow.types import Classification, Fax, Vote

DEFAULT_WORDS = ("urgent", "dringend", "asap")
_settings: dict[str, Any] = {"words": DEFAULT_WORDS, "hold_unreadable": False}


@hookimpl
def faxflow_check_config(config: Config) -> list[ConfigProblem]:
    options = config.plugin_options("urgent")
    words = options.get("words", list(DEFAULT_WORDS))
    problems = []
    if not isinstance(words, list) or not all(isinstance(w, str) and w for w in words):
        problems.append(ConfigProblem(("plugins", "urgent", "words"),
                                      "must be a list of non-empty strings"))
    if not isinstance(options.get("hold_unreadable", False), bool):
        problems.append(ConfigProblem(("plugins", "urgent", "hold_unreadable"),
                                      "must be true or false"))
    return problems


@hookimpl
def faxflow_configure(config: Config) -> None:
    options = config.plugin_options("urgent")
    _settings["words"] = tuple(w.lower() for w in options.get("words", DEFAULT_WORDS))
    _settings["hold_unreadable"] = options.get("hold_unreadable", False)


@hookimpl
def faxflow_classify(fax: Fax) -> Classification | None:
    text = fax.text.lower()
    if any(word in text for word in _settings["words"]):
        return Classification(labels=frozenset({"urgent"}))
    return None


@hookimpl
def faxflow_ack_vote(fax: Fax) -> Vote | None:
    if _settings["hold_unreadable"] and fax.pages and all(p.error for p in fax.pages):
        return Vote.not_yet("no page could be read; holding for a retry")
    return None


@hookimpl
def faxflow_register_commands(cli: click.Group) -> None:
    @cli.command("urgent-words")
    @click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False))
    def urgent_words(config_path: str | None) -> None:
        """Show the words that make a fax urgent."""
        if config_path:
            from pathlib import Path

            from faxflow.app import load_app

            load_app(Path(config_path))
        click.echo(", ".join(_settings["words"]))
