"""Exceptions the core and plugins share."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "FaxflowError",
    "PermanentError",
]


class FaxflowError(Exception):
    """Base of faxflow's own errors; the CLI prints their message without a traceback."""


class PermanentError(FaxflowError):
    """Raised by a stage hook when this fax can never be processed (corrupt document, a
    destination that refuses it for good): the fax is quarantined with this message."""


class ConfigError(FaxflowError):
    """The configuration file is invalid; the message names file, line and key.

    A plugin may raise it from `faxflow_configure` to refuse a configuration with its own
    message; problems returned by `faxflow_check_config` are better, as they get file and
    line."""
