"""Compiling a rule's ``when`` table into `conditions`, reporting every mistake with its key.

Each problem names the rule and its key path (``rule 'x': when.text.regex: bad regex: ...``);
a condition that cannot be compiled becomes `Invalid` (never matches) so one mistake gives
one message, not follow-up errors.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import regex  # type: ignore[import-untyped]

from faxflow.config import ConfigProblem, KeyPath

from .conditions import (
    WEEKDAYS,
    All,
    Always,
    Any_,
    BarcodeIs,
    Between,
    Condition,
    Invalid,
    Labels,
    Not,
    NumberIs,
    OneOf,
    Received,
    TextIs,
    TextMatch,
    fuzzy_test,
    regex_test,
    tokens,
    words_test,
)
from .phone import NumberError, NumberPattern


@dataclass
class Context:
    """Load-time settings and the problem list of one rule."""

    rule: str
    country: str
    tz: ZoneInfo
    fuzzy_threshold: float
    problems: list[ConfigProblem]
    groups: set[str] = field(default_factory=set)  # named groups of this rule's regexes
    uses_labels: bool = False  # a `labels` condition: the outcome may change once other
    # classifiers' labels are merged

    def problem(self, path: KeyPath, message: str, warning: bool = False) -> None:
        key = ".".join(str(p) for p in path[2:])
        self.problems.append(ConfigProblem(path, f"rule {self.rule!r}: {key}: {message}",
                                           warning=warning))


WHEN_KEYS = ("receiver", "sender", "csid", "cost_center", "page_count", "resolution",
             "received", "text", "labels", "barcode", "all", "any", "not")
BARCODE_KEYS = ("exact", "prefix", "regex", "format", "pages")
# What the OCR plugin reads (faxflow_ocr.barcodes.NAMES); another extractor may add more.
BARCODE_FORMATS = ("aztec", "code128", "code39", "datamatrix", "ean13", "ean8", "pdf417",
                   "qr", "upca", "upce")
TEXT_KEYS = ("any", "all", "phrase", "regex", "fuzzy", "threshold", "case_sensitive", "pages")


def compile_when(table: Any, path: KeyPath, ctx: Context) -> Condition:
    if not isinstance(table, dict):
        ctx.problem(path, "must be a table of conditions")
        return Invalid()
    parts: list[Condition] = []
    for key, value in table.items():
        here = (*path, key)
        part = _compile_one(key, value, here, ctx)
        parts.append(part if part is not None else Invalid())
    if not parts:
        return Always()
    return parts[0] if len(parts) == 1 else All(parts)


def _compile_one(key: str, value: Any, path: KeyPath, ctx: Context) -> Condition | None:
    if key in ("all", "any"):
        if not isinstance(value, list) or not value:
            ctx.problem(path, "must be a non-empty list of condition tables")
            return None
        parts = [compile_when(v, (*path, i), ctx) for i, v in enumerate(value)]
        return All(parts) if key == "all" else Any_(parts)
    if key == "not":
        return Not(compile_when(value, path, ctx))
    if key in ("receiver", "sender"):
        return _numbers(key, value, path, ctx)
    if key in ("csid", "cost_center"):
        return _text_is(key, value, path, ctx)
    if key == "page_count":
        return _range(key, value, path, ctx)
    if key == "resolution":
        values = _strings(value, path, ctx)
        return OneOf(key, values) if values else None
    if key == "labels":
        return _labels(value, path, ctx)
    if key == "received":
        windows = value if isinstance(value, list) else [value]
        parts = [w for i, v in enumerate(windows)
                 if (w := _received(v, (*path, i) if isinstance(value, list) else path, ctx))]
        return (parts[0] if len(parts) == 1 else Any_(parts)) if parts else None
    if key == "text":
        return _text(value, path, ctx)
    if key == "barcode":
        return _barcode(value, path, ctx)
    close = difflib.get_close_matches(key, WHEN_KEYS, n=1)
    ctx.problem(path, "unknown condition" + (f" (did you mean {close[0]}?)" if close else "")
                + f"; known: {', '.join(WHEN_KEYS)}")
    return None


def _strings(value: Any, path: KeyPath, ctx: Context) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    ctx.problem(path, "must be a string or a non-empty list of strings")
    return []


def _numbers(key: str, value: Any, path: KeyPath, ctx: Context) -> Condition | None:
    entries: list[tuple[str, bool, KeyPath]] = []
    if isinstance(value, dict):
        for sub, items in value.items():
            if sub not in ("exact", "prefix", "glob"):
                ctx.problem((*path, sub), "unknown key; use exact, prefix or glob")
                continue
            where = (*path, sub)
            entries += [(s, sub == "prefix", where) for s in _strings(items, where, ctx)]
    else:
        entries = [(s, False, path) for s in _strings(value, path, ctx)]
    patterns: list[NumberPattern] = []
    for text, prefix, where in entries:
        try:
            patterns.append(NumberPattern(text, ctx.country, prefix=prefix))
        except NumberError as exc:
            ctx.problem(where, str(exc))
    return NumberIs(key, patterns) if patterns else None


def _text_is(key: str, value: Any, path: KeyPath, ctx: Context) -> Condition | None:
    if isinstance(value, dict):
        if set(value) != {"regex"}:
            ctx.problem(path, "a table here takes exactly one key: regex")
            return None
        pattern = compile_regex(value["regex"], (*path, "regex"), ctx, case_sensitive=False)
        return TextIs(key, [], pattern) if pattern is not None else None
    values = _strings(value, path, ctx)
    return TextIs(key, values) if values else None


def _range(key: str, value: Any, path: KeyPath, ctx: Context) -> Condition | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return Between(key, value, value)
    if isinstance(value, dict) and value and set(value) <= {"min", "max"} and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value.values()):
        return Between(key, value.get("min"), value.get("max"))
    ctx.problem(path, "must be an integer or a table with min and/or max integers")
    return None


def _labels(value: Any, path: KeyPath, ctx: Context) -> Condition | None:
    ctx.uses_labels = True
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in ("any", "all"):
            ctx.problem(path, "a table here takes exactly one key: any or all")
            return None
        mode, items = next(iter(value.items()))
        labels = _strings(items, (*path, mode), ctx)
        return Labels(labels, mode == "all") if labels else None
    labels = _strings(value, path, ctx)
    return Labels(labels, True) if labels else None


def _parse_days(value: Any, path: KeyPath, ctx: Context) -> set[int] | None:
    days: set[int] = set()
    for item in _strings(value, path, ctx):
        for part in item.lower().replace(" ", "").split(","):
            first, _, last = part.partition("-")
            if first not in WEEKDAYS or (last and last not in WEEKDAYS):
                ctx.problem(path, f"bad weekday {part!r}; use mon..sun or ranges like mon-fri")
                return None
            a, b = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
            days |= {d % 7 for d in range(a, b + 1 if b >= a else b + 8)}
    return days


def _received(value: Any, path: KeyPath, ctx: Context) -> Condition | None:
    if not isinstance(value, dict):
        ctx.problem(path, "must be a table with weekdays, between and/or timezone")
        return None
    for key in value:
        if key not in ("weekdays", "between", "timezone"):
            ctx.problem((*path, key), "unknown key; use weekdays, between, timezone")
    days = set(range(7))
    if "weekdays" in value:
        parsed = _parse_days(value["weekdays"], (*path, "weekdays"), ctx)
        if parsed is None:
            return None
        days = parsed
    start, end = time(0), time(0)
    if "between" in value:
        between = value["between"]
        try:
            if not (isinstance(between, list) and len(between) == 2):
                raise ValueError
            start, end = (time.fromisoformat(str(t)) for t in between)
        except ValueError:
            ctx.problem((*path, "between"), 'must be ["HH:MM", "HH:MM"] (start inclusive, '
                        "end exclusive; an end before the start spans midnight)")
            return None
    tz = ctx.tz
    if "timezone" in value:
        found = load_zone(value["timezone"])
        if found is None:
            ctx.problem((*path, "timezone"), f"unknown time zone {value['timezone']!r}")
            return None
        tz = found
    names = _day_names(days)
    hours = f" {start:%H:%M}-{end:%H:%M}" if "between" in value else ""
    what = f"received {names}{hours} {tz.key}"
    if start == end:  # the whole day
        start, end = time(0), time(23, 59, 59, 999999)
    return Received(days, start, end, tz, what)


def _day_names(days: set[int]) -> str:
    """mon-fri,sun style; "any day" for all seven."""
    if len(days) == 7:
        return "any day"
    runs: list[list[int]] = []
    for day in sorted(days):
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ",".join(WEEKDAYS[r[0]] if len(r) == 1 else f"{WEEKDAYS[r[0]]}-{WEEKDAYS[r[-1]]}"
                    for r in runs)


def load_zone(name: Any) -> ZoneInfo | None:
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def compile_regex(source: Any, path: KeyPath, ctx: Context, *, case_sensitive: bool,
                  multiline: bool = True) -> Any:
    if not isinstance(source, str) or not source:
        ctx.problem(path, "must be a non-empty string")
        return None
    flags = (regex.MULTILINE if multiline else 0) | regex.V0 | \
        (0 if case_sensitive else regex.IGNORECASE)
    try:
        pattern = regex.compile(source, flags)
    except regex.error as exc:
        ctx.problem(path, f"bad regex: {exc}")
        ctx.groups |= set(re.findall(r"\(\?P<(\w+)>", source))  # no follow-up errors
        return None
    ctx.groups |= set(pattern.groupindex)
    return pattern


def _parse_pages(value: Any, path: KeyPath, ctx: Context) -> tuple[int, int | None] | None:
    if isinstance(value, int) and not isinstance(value, bool) and value != 0:
        return (value, value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(-?\d+)\s*(?:-\s*(\d*)\s*)?", value)
        if m and int(m.group(1)) != 0:
            first = int(m.group(1))
            last = m.group(2)
            if last is None:
                return (first, first)
            if last == "" or int(last) >= first > 0:
                return (first, int(last) if last else None)
    ctx.problem(path, 'must be a page number (1 first, -1 last) or a range like "1-2" or "2-"')
    return None


def _text(value: Any, path: KeyPath, ctx: Context) -> Condition | None:
    if not isinstance(value, dict):
        ctx.problem(path, "must be a table (any, all, phrase, regex or fuzzy)")
        return None
    for key in value:
        if key not in TEXT_KEYS:
            ctx.problem((*path, key), f"unknown key; known: {', '.join(TEXT_KEYS)}")
    case = value.get("case_sensitive", False)
    if not isinstance(case, bool):
        ctx.problem((*path, "case_sensitive"), "must be true or false")
        case = False
    pages: tuple[int, int | None] | None = (1, None)
    if "pages" in value:
        pages = _parse_pages(value["pages"], (*path, "pages"), ctx)
    if pages is None:
        return None
    where = "" if pages == (1, None) else f" in pages {pages[0]}-{pages[1] or 'end'}"
    parts: list[Condition] = []
    for key in ("any", "all", "phrase"):
        if key not in value:
            continue
        words = _strings(value[key], (*path, key), ctx)
        if key == "phrase" and len(words) > 1:
            ctx.problem((*path, key), "one phrase per condition; use all = [...] for several")
            continue
        if not words or any(not tokens(w, True) for w in words):
            if words:
                ctx.problem((*path, key), "every entry needs a letter or digit")
            continue
        listed = ", ".join(repr(w) for w in words)
        what = f"text has phrase {listed}" if key == "phrase" else f"text has {key} of {listed}"
        parts.append(TextMatch(what + where, pages, words_test(words, case, key != "any")))
    if "regex" in value:
        pattern = compile_regex(value["regex"], (*path, "regex"), ctx, case_sensitive=case)
        if pattern is not None:
            parts.append(TextMatch(f"text matches /{pattern.pattern}/{where}", pages,
                                   regex_test(pattern)))
    threshold = value.get("threshold", ctx.fuzzy_threshold)
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) \
            or not 0 < threshold <= 100:
        ctx.problem((*path, "threshold"), "must be a number in 1..100")
        threshold = ctx.fuzzy_threshold
    if "fuzzy" in value and (words := _strings(value["fuzzy"], (*path, "fuzzy"), ctx)):
        parts.append(TextMatch(f"text resembles {words[0]!r} (>= {threshold:g}){where}",
                               pages, fuzzy_test(words[0], float(threshold), case)))
    elif "threshold" in value and "fuzzy" not in value:
        ctx.problem((*path, "threshold"), "only applies to fuzzy")
    if not parts:
        if not {"any", "all", "phrase", "regex", "fuzzy"} & set(value):
            ctx.problem(path, "give at least one of any, all, phrase, regex, fuzzy")
        return None
    return parts[0] if len(parts) == 1 else All(parts, "text: all of")


def _barcode(value: Any, path: KeyPath, ctx: Context) -> Condition | None:
    """``barcode = "X"`` / ``["X", "Y"]`` (exact values) or a table of exact, prefix, regex,
    format and pages."""
    if not isinstance(value, dict):
        exact = _strings(value, path, ctx)
        return BarcodeIs(exact, [], None, [], (1, None)) if exact else None
    for key in value:
        if key not in BARCODE_KEYS:
            ctx.problem((*path, key), f"unknown key; known: {', '.join(BARCODE_KEYS)}")
    exact = _strings(value["exact"], (*path, "exact"), ctx) if "exact" in value else []
    prefixes = _strings(value["prefix"], (*path, "prefix"), ctx) if "prefix" in value else []
    formats = _strings(value["format"], (*path, "format"), ctx) if "format" in value else []
    for name in formats:
        if name not in BARCODE_FORMATS:
            ctx.problem((*path, "format"), f"unknown format {name!r}; known: "
                        f"{', '.join(BARCODE_FORMATS)}")
    pattern = None
    if "regex" in value:
        # Not MULTILINE: a value is one string, and a line break in it is the sender's.
        pattern = compile_regex(value["regex"], (*path, "regex"), ctx, case_sensitive=True,
                                multiline=False)
        if pattern is None:
            return None
    pages: tuple[int, int | None] | None = (1, None)
    if "pages" in value:
        pages = _parse_pages(value["pages"], (*path, "pages"), ctx)
    if pages is None:
        return None
    return BarcodeIs(exact, prefixes, pattern, formats, pages)
