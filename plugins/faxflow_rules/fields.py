"""Typed fields from named regex groups: ``str``, ``int``, ``decimal``, ``date``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

TYPES = ("str", "int", "decimal", "date")


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str = "str"
    format: str | None = None  # strptime format, dates only
    decimal_separator: str = "."

    def convert(self, raw: str) -> Any:
        """The typed value; raises ValueError with a short reason."""
        text = raw.strip()
        if self.type == "str":
            return " ".join(text.split())
        if self.type == "int":
            cleaned = re.sub(r"[\s.,']", "", text)
            if not re.fullmatch(r"[+-]?\d+", cleaned):
                raise ValueError(f"{raw!r} is not an integer")
            return int(cleaned)
        if self.type == "decimal":
            thousands = "," if self.decimal_separator == "." else "."
            cleaned = re.sub(r"[\s']", "", text).replace(thousands, "")
            cleaned = cleaned.replace(self.decimal_separator, ".")
            try:
                return Decimal(cleaned)
            except InvalidOperation:
                raise ValueError(f"{raw!r} is not a decimal number") from None
        assert self.format is not None
        try:
            value: date = datetime.strptime(text, self.format).date()
        except ValueError:
            raise ValueError(f"{raw!r} does not match date format {self.format!r}") from None
        return value


def parse_spec(name: str, value: Any) -> tuple[FieldSpec | None, str | None]:
    """A field declaration from the config, or an error message (without the key)."""
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, dict):
        return None, 'must be a type name ("str", "int", "decimal") or a table with type'
    unknown = set(value) - {"type", "format", "decimal_separator"}
    if unknown:
        return None, f"unknown key {sorted(unknown)[0]!r}; use type, format, decimal_separator"
    kind = value.get("type", "str")
    if kind not in TYPES:
        return None, f"type must be one of {', '.join(TYPES)}"
    fmt = value.get("format")
    if kind == "date" and not (isinstance(fmt, str) and "%" in fmt):
        return None, 'a date needs a format, e.g. format = "%d.%m.%Y"'
    if kind != "date" and fmt is not None:
        return None, "format applies to dates only"
    sep = value.get("decimal_separator", ".")
    if sep not in (".", ","):
        return None, 'decimal_separator must be "." or ","'
    return FieldSpec(name, kind, fmt, sep), None
