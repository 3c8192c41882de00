"""Per-app state for plugins, typed (pytest's Stash): no module globals, no name clashes.

A plugin defines its key once, at module level, and keeps its state in the app it is
called with, so two apps in one process (tests, embedded workers) never see each other's::

    from faxflow.stash import StashKey

    SETTINGS = StashKey[Settings]()

    @hookimpl
    def faxflow_configure(config, app):
        app.stash[SETTINGS] = Settings.from_table(config.plugin_options("mine"))

    @hookimpl
    def faxflow_classify(fax, app):
        settings = app.stash[SETTINGS]
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar, cast

__all__ = ["Stash", "StashKey"]

T = TypeVar("T")
D = TypeVar("D")


class StashKey(Generic[T]):
    """A key into `Stash`; each instance is a distinct key, `T` the type of its value."""

    __slots__ = ()


class Stash:
    """Values by `StashKey`, typed. Read with ``stash[key]`` (KeyError if unset) or
    ``stash.get(key, default)``; write with ``stash[key] = value`` or `setdefault`."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: dict[StashKey[Any], object] = {}

    def __setitem__(self, key: StashKey[T], value: T) -> None:
        self._values[key] = value

    def __getitem__(self, key: StashKey[T]) -> T:
        return cast(T, self._values[key])

    def get(self, key: StashKey[T], default: D) -> T | D:
        """The value of `key`, or `default` if it was never set."""
        return cast(T, self._values[key]) if key in self._values else default

    def setdefault(self, key: StashKey[T], default: T) -> T:
        """The value of `key`; set to `default` first if it was never set."""
        return cast(T, self._values.setdefault(key, default))

    def __delitem__(self, key: StashKey[T]) -> None:
        del self._values[key]

    def __contains__(self, key: StashKey[T]) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)
