"""Conditions of a rule's ``when`` table: compiled once at load time, evaluated per fax.

Every evaluation returns a `Check`, the trace node `faxflow explain` prints: routing and
explain run the same code. ``all`` stops at the first false child and ``any`` at the first
true one; the children not looked at are kept with ``ok=None`` ("not evaluated").
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import regex  # type: ignore[import-untyped]
from rapidfuzz import fuzz

from faxflow.config import ConfigProblem, KeyPath

from .phone import NumberError, NumberPattern

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SNIPPET = 60  # characters of matched text shown by explain


@dataclass
class Check:
    """One condition's verdict on one fax: ``ok`` None when it was not evaluated."""

    what: str
    ok: bool | None
    detail: str = ""
    children: list[Check] = field(default_factory=list)
    captures: dict[str, str] = field(default_factory=dict)

    def captured(self) -> dict[str, str]:
        """Named groups of the regexes that made this check true."""
        if self.ok is not True:
            return {}
        out: dict[str, str] = {}
        for child in self.children:
            out.update(child.captured())
        out.update(self.captures)
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"condition": self.what, "result": self.ok}
        if self.detail:
            out["detail"] = self.detail
        if self.captures:
            out["captures"] = dict(self.captures)
        if self.children:
            out["children"] = [c.to_dict() for c in self.children]
        return out


@dataclass
class Subject:
    """What conditions look at: one fax's data, normalized once per evaluation."""

    receiver: str | None
    sender: str | None
    csid: str
    cost_center: str
    page_count: int
    resolution: str
    received: datetime | None
    pages: list[str]
    labels: set[str]
    regex_timeout: float  # seconds per regex search
    _texts: dict[tuple[int, int | None], str] = field(default_factory=dict)

    def text(self, pages: tuple[int, int | None]) -> str:
        """Text of a page range (1-based; negative counts from the end; None: to the end)."""
        if pages not in self._texts:
            first, last = pages
            n = len(self.pages)
            start = first - 1 if first > 0 else max(n + first, 0)
            stop = n if last is None else (last if last > 0 else n + last + 1)
            self._texts[pages] = "\f".join(self.pages[start:stop])
        return self._texts[pages]


class Condition:
    what = ""

    def evaluate(self, s: Subject) -> Check:
        raise NotImplementedError


class Always(Condition):
    what = "always (no conditions)"

    def evaluate(self, s: Subject) -> Check:
        return Check(self.what, True)


class All(Condition):
    def __init__(self, parts: list[Condition], what: str = "all of") -> None:
        self.parts, self.what = parts, what

    def evaluate(self, s: Subject) -> Check:
        children: list[Check] = []
        ok = True
        for part in self.parts:
            if not ok:
                children.append(Check(part.what, None))
                continue
            check = part.evaluate(s)
            children.append(check)
            ok = check.ok is True
        return Check(self.what, ok, children=children)


class Any_(Condition):
    what = "any of"

    def __init__(self, parts: list[Condition]) -> None:
        self.parts = parts

    def evaluate(self, s: Subject) -> Check:
        children: list[Check] = []
        ok = False
        for part in self.parts:
            if ok:
                children.append(Check(part.what, None))
                continue
            check = part.evaluate(s)
            children.append(check)
            ok = check.ok is True
        return Check(self.what, ok, children=children)


class Not(Condition):
    what = "not"

    def __init__(self, part: Condition) -> None:
        self.part = part

    def evaluate(self, s: Subject) -> Check:
        check = self.part.evaluate(s)
        return Check(self.what, not check.ok, children=[check])


class NumberIs(Condition):
    def __init__(self, attr: str, patterns: list[NumberPattern]) -> None:
        self.attr, self.patterns = attr, patterns
        self.what = f"{attr} is {' or '.join(str(p) for p in patterns)}"

    def evaluate(self, s: Subject) -> Check:
        number: str | None = getattr(s, self.attr)
        if number is None:
            return Check(self.what, False, f"no {self.attr} number")
        hit = next((p for p in self.patterns if p.matches(number)), None)
        detail = f"{self.attr} {number}" + (f" matches {hit.text!r}" if hit else "")
        return Check(self.what, hit is not None, detail)


class TextIs(Condition):
    """CSID or cost center: case-insensitive exact values or globs, or a regex."""

    def __init__(self, attr: str, values: list[str], pattern: Any = None) -> None:
        self.attr, self.values, self.pattern = attr, [v.casefold() for v in values], pattern
        self.what = (f"{attr} matches /{pattern.pattern}/" if pattern is not None
                     else f"{attr} is {' or '.join(repr(v) for v in values)}")

    def evaluate(self, s: Subject) -> Check:
        value: str = getattr(s, self.attr)
        if self.pattern is not None:
            match = _search(self.pattern, value, s.regex_timeout)
            if isinstance(match, str):
                return Check(self.what, False, match)
            groups = {k: v for k, v in match.groupdict().items() if v is not None} \
                if match is not None else {}
            return Check(self.what, match is not None, f"{self.attr} {value!r}", captures=groups)
        folded = value.strip().casefold()
        ok = any(fnmatch.fnmatchcase(folded, v) for v in self.values)
        return Check(self.what, ok, f"{self.attr} {value!r}")


class Between(Condition):
    def __init__(self, attr: str, low: int | None, high: int | None) -> None:
        self.attr, self.low, self.high = attr, low, high
        self.what = f"{attr} in {low if low is not None else ''}..{high if high else ''}"

    def evaluate(self, s: Subject) -> Check:
        value: int = getattr(s, self.attr)
        ok = (self.low is None or value >= self.low) and (self.high is None or value <= self.high)
        return Check(self.what, ok, f"{self.attr} {value}")


class OneOf(Condition):
    def __init__(self, attr: str, values: list[str]) -> None:
        self.attr, self.values = attr, {v.casefold() for v in values}
        self.what = f"{attr} is {' or '.join(sorted(values))}"

    def evaluate(self, s: Subject) -> Check:
        value: str = getattr(s, self.attr)
        return Check(self.what, value.casefold() in self.values, f"{self.attr} {value!r}")


class Labels(Condition):
    def __init__(self, labels: list[str], need_all: bool) -> None:
        self.labels, self.need_all = labels, need_all
        self.what = f"labels {'all' if need_all else 'any'} of {', '.join(labels)}"

    def evaluate(self, s: Subject) -> Check:
        present = [label for label in self.labels if label in s.labels]
        ok = len(present) == len(self.labels) if self.need_all else bool(present)
        return Check(self.what, ok, f"labels present: {', '.join(sorted(s.labels)) or 'none'}")


class Received(Condition):
    def __init__(self, days: set[int], start: time, end: time, tz: ZoneInfo, what: str) -> None:
        self.days, self.start, self.end, self.tz, self.what = days, start, end, tz, what

    def evaluate(self, s: Subject) -> Check:
        if s.received is None:
            return Check(self.what, False, "no receive time")
        local = s.received.astimezone(self.tz)
        now = local.time()
        day = local.weekday()
        if self.start < self.end:
            ok = day in self.days and self.start <= now < self.end
        else:  # overnight: 22:00-06:00 belongs to the day it started on
            ok = (day in self.days and now >= self.start) or \
                 ((day - 1) % 7 in self.days and now < self.end)
        return Check(self.what, ok, f"received {local:%a %Y-%m-%d %H:%M %Z}")


class TextMatch(Condition):
    """One text matcher (words, phrase, regex or fuzzy) over a page range."""

    def __init__(self, what: str, pages: tuple[int, int | None],
                 test: Callable[[str, Subject], tuple[bool, str, dict[str, str]]]) -> None:
        self.what, self.pages, self.test = what, pages, test

    def evaluate(self, s: Subject) -> Check:
        text = s.text(self.pages)
        ok, detail, captures = self.test(text, s)
        return Check(self.what, ok, detail, captures=captures)


# --- Text helpers -----------------------------------------------------------------------------


def _search(pattern: Any, text: str, timeout: float) -> Any:
    """regex search bounded in time; a timeout gives an explanatory string instead of a match."""
    try:
        return pattern.search(text, timeout=timeout)
    except TimeoutError:
        return f"regex timed out after {timeout * 1000:.0f} ms: treated as no match"


def _where(text: str, start: int, end: int) -> str:
    page = text.count("\f", 0, start) + 1
    snippet = " ".join(text[start:end].split())
    if len(snippet) > SNIPPET:
        snippet = snippet[: SNIPPET - 1] + "…"
    return f"{snippet!r} on page {page} of the range"


def _word_pattern(words: Iterable[str], flags: int) -> Any:
    alternatives = "|".join(r"\s+".join(regex.escape(w) for w in word.split()) for word in words)
    return regex.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", flags)


def _words_test(words: list[str], flags: int, need_all: bool
                ) -> Callable[[str, Subject], tuple[bool, str, dict[str, str]]]:
    patterns = [_word_pattern([w], flags) for w in words] if need_all \
        else [_word_pattern(words, flags)]

    def test(text: str, s: Subject) -> tuple[bool, str, dict[str, str]]:
        found, missing = [], []
        for word, pattern in zip(words if need_all else ["/".join(words)], patterns, strict=True):
            m = _search(pattern, text, s.regex_timeout)
            if isinstance(m, regex.Match):
                found.append(_where(text, m.start(), m.end()))
            else:
                missing.append(word)
        ok = not missing
        detail = "found " + "; ".join(found) if found else "not found"
        if need_all and missing:
            detail += f"; missing {', '.join(repr(w) for w in missing)}"
        return ok, detail, {}
    return test


def _regex_test(pattern: Any) -> Callable[[str, Subject], tuple[bool, str, dict[str, str]]]:
    def test(text: str, s: Subject) -> tuple[bool, str, dict[str, str]]:
        m = _search(pattern, text, s.regex_timeout)
        if isinstance(m, str):
            return False, m, {}
        if m is None:
            return False, "no match", {}
        groups = {k: v for k, v in m.groupdict().items() if v is not None}
        return True, "matched " + _where(text, m.start(), m.end()), groups
    return test


def _fuzzy_test(needle: str, threshold: float, case_sensitive: bool
                ) -> Callable[[str, Subject], tuple[bool, str, dict[str, str]]]:
    wanted = needle if case_sensitive else needle.lower()

    def test(text: str, s: Subject) -> tuple[bool, str, dict[str, str]]:
        hay = text if case_sensitive else text.lower()
        best = fuzz.partial_ratio_alignment(wanted, hay)
        if best is None or best.score < threshold:
            score = best.score if best is not None else 0.0
            return False, f"best similarity {score:.0f} < {threshold:g}", {}
        where = _where(text, best.dest_start, best.dest_end)
        return True, f"similarity {best.score:.0f} >= {threshold:g}: {where}", {}
    return test


# --- Compiling a `when` table -----------------------------------------------------------------


@dataclass
class Context:
    """Load-time settings and the problem list of one rule."""

    rule: str
    country: str
    tz: ZoneInfo
    fuzzy_threshold: float
    problems: list[ConfigProblem]
    groups: set[str] = field(default_factory=set)  # named groups of this rule's regexes

    def problem(self, path: KeyPath, message: str) -> None:
        key = ".".join(str(p) for p in path[2:])
        self.problems.append(ConfigProblem(path, f"rule {self.rule!r}: {key}: {message}"))


WHEN_KEYS = ("receiver", "sender", "csid", "cost_center", "page_count", "resolution",
             "received", "text", "labels", "all", "any", "not")
TEXT_KEYS = ("any", "all", "phrase", "regex", "fuzzy", "threshold", "case_sensitive", "pages")


def compile_when(table: Any, path: KeyPath, ctx: Context) -> Condition:
    if not isinstance(table, dict):
        ctx.problem(path, "must be a table of conditions")
        return Always()
    parts: list[Condition] = []
    for key, value in table.items():
        here = (*path, key)
        part = _compile_one(key, value, here, ctx)
        if part is not None:
            parts.append(part)
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
    import difflib
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
    names = ",".join(WEEKDAYS[d] for d in sorted(days)) if len(days) < 7 else "any day"
    hours = f" {start:%H:%M}-{end:%H:%M}" if "between" in value else ""
    what = f"received {names}{hours} {tz.key}"
    if start == end:  # the whole day
        start, end = time(0), time(23, 59, 59, 999999)
    return Received(days, start, end, tz, what)


def load_zone(name: Any) -> ZoneInfo | None:
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def compile_regex(source: Any, path: KeyPath, ctx: Context, *, case_sensitive: bool) -> Any:
    if not isinstance(source, str) or not source:
        ctx.problem(path, "must be a non-empty string")
        return None
    flags = regex.MULTILINE | regex.V0 | (0 if case_sensitive else regex.IGNORECASE)
    try:
        pattern = regex.compile(source, flags)
    except regex.error as exc:
        ctx.problem(path, f"bad regex: {exc}")
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
    flags = regex.V0 | (0 if case else regex.IGNORECASE)
    parts: list[Condition] = []
    for key in ("any", "all"):
        if key in value:
            words = _strings(value[key], (*path, key), ctx)
            if words:
                what = f"text has {key} of {', '.join(repr(w) for w in words)}{where}"
                parts.append(TextMatch(what, pages, _words_test(words, flags, key == "all")))
    if "phrase" in value and (words := _strings(value["phrase"], (*path, "phrase"), ctx)):
        parts.append(TextMatch(f"text has phrase {words[0]!r}{where}", pages,
                               _words_test(words[:1], flags, True)))
    if "regex" in value:
        pattern = compile_regex(value["regex"], (*path, "regex"), ctx, case_sensitive=case)
        if pattern is not None:
            parts.append(TextMatch(f"text matches /{pattern.pattern}/{where}", pages,
                                   _regex_test(pattern)))
    threshold = value.get("threshold", ctx.fuzzy_threshold)
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) \
            or not 0 < threshold <= 100:
        ctx.problem((*path, "threshold"), "must be a number in 1..100")
        threshold = ctx.fuzzy_threshold
    if "fuzzy" in value and (words := _strings(value["fuzzy"], (*path, "fuzzy"), ctx)):
        parts.append(TextMatch(f"text resembles {words[0]!r} (>= {threshold:g}){where}",
                               pages, _fuzzy_test(words[0], float(threshold), case)))
    elif "threshold" in value and "fuzzy" not in value:
        ctx.problem((*path, "threshold"), "only applies to fuzzy")
    if not parts:
        if not {"any", "all", "phrase", "regex", "fuzzy"} & set(value):
            ctx.problem(path, "give at least one of any, all, phrase, regex, fuzzy")
        return None
    return parts[0] if len(parts) == 1 else All(parts, "text: all of")


def subject_time(value: datetime | None) -> datetime | None:
    """Retarus times without an offset are UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value

