"""Conditions of a rule's ``when`` table, evaluated per fax (`when` compiles them at load).

Every evaluation returns a `Check`, the trace node `faxflow explain` prints: routing and
explain run the same code. ``all`` stops at the first false child and ``any`` at the first
true one; the children not looked at are kept with ``ok=None`` ("not evaluated").
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import regex  # type: ignore[import-untyped]
from rapidfuzz import fuzz

from faxflow.delivery import one_line
from faxflow.types import Barcode

from .phone import NumberPattern

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SNIPPET = 60  # characters of matched text shown by explain
WORD = re.compile(r"\w+")  # stdlib re: a fixed pattern, linear, faster than regex here


@dataclass
class Check:
    """One condition's verdict on one fax: ``ok`` None when it was not evaluated."""

    what: str
    ok: bool | None
    detail: str = ""
    children: list[Check] = field(default_factory=list)
    captures: dict[str, str] = field(default_factory=dict)
    barcode: Barcode | None = None  # the barcode that made a barcode condition true

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
        if self.barcode is not None:
            out["barcode"] = {"page": self.barcode.page, "format": self.barcode.format,
                              "value": one_line(self.barcode.value, SNIPPET)}
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
    barcodes: list[Barcode] = field(default_factory=list)  # page: 1-based position in the fax
    _texts: dict[tuple[int, int | None], str] = field(default_factory=dict)
    _lowered: dict[tuple[int, int | None], str] = field(default_factory=dict)
    _tokens: dict[tuple[tuple[int, int | None], bool], tuple[str, frozenset[str]]] = field(
        default_factory=dict)

    def text(self, pages: tuple[int, int | None]) -> str:
        """Text of a page range (1-based; negative counts from the end; None: to the end)."""
        if pages not in self._texts:
            first, last = pages
            n = len(self.pages)
            start = first - 1 if first > 0 else max(n + first, 0)
            stop = n if last is None else (last if last > 0 else n + last + 1)
            self._texts[pages] = "\f".join(self.pages[start:stop])
        return self._texts[pages]

    def lowered(self, pages: tuple[int, int | None]) -> str:
        if pages not in self._lowered:
            self._lowered[pages] = self.text(pages).lower()
        return self._lowered[pages]

    def tokens(self, pages: tuple[int, int | None], case_sensitive: bool
               ) -> tuple[str, frozenset[str]]:
        """The words of a page range, space-joined (for phrases) and as a set (for words)."""
        key = (pages, case_sensitive)
        if key not in self._tokens:
            words = tokens(self.text(pages), case_sensitive)
            self._tokens[key] = (f" {' '.join(words)} ", frozenset(words))
        return self._tokens[key]


class Condition:
    what = ""

    def evaluate(self, s: Subject) -> Check:
        raise NotImplementedError


class Always(Condition):
    what = "always (no conditions)"

    def evaluate(self, s: Subject) -> Check:
        return Check(self.what, True)


class Invalid(Condition):
    """Stands in for conditions the config got wrong (already reported): never matches, and
    unlike an empty `when` it does not make the rule a catch-all."""

    what = "invalid condition"

    def evaluate(self, s: Subject) -> Check:
        return Check(self.what, False)


def short_circuit(what: str, parts: list[Condition], s: Subject, stop_at: bool) -> Check:
    """Evaluate parts in order until one is `stop_at` (all: False, any: True); the rest are
    shown as not evaluated, as explain prints them."""
    children: list[Check] = []
    stopped = False
    for part in parts:
        if stopped:
            children.append(Check(part.what, None))
            continue
        check = part.evaluate(s)
        children.append(check)
        stopped = (check.ok is True) == stop_at
    return Check(what, stop_at if stopped else not stop_at, children=children)


class All(Condition):
    def __init__(self, parts: list[Condition], what: str = "all of") -> None:
        self.parts, self.what = parts, what

    def evaluate(self, s: Subject) -> Check:
        return short_circuit(self.what, self.parts, s, stop_at=False)


class Any_(Condition):
    what = "any of"

    def __init__(self, parts: list[Condition]) -> None:
        self.parts = parts

    def evaluate(self, s: Subject) -> Check:
        return short_circuit(self.what, self.parts, s, stop_at=True)


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


TextTest = Callable[[Subject, tuple[int, int | None]], tuple[bool, str, dict[str, str]]]


class TextMatch(Condition):
    """One text matcher (words, phrase, regex or fuzzy) over a page range."""

    def __init__(self, what: str, pages: tuple[int, int | None], test: TextTest) -> None:
        self.what, self.pages, self.test = what, pages, test

    def evaluate(self, s: Subject) -> Check:
        ok, detail, captures = self.test(s, self.pages)
        return Check(self.what, ok, detail, captures=captures)


class BarcodeIs(Condition):
    """A barcode on the fax (in a page range, of some formats) whose value is one of `exact`,
    starts with one of `prefixes` and/or matches `pattern`; all given must hold for the
    same barcode. Compared as decoded, case-sensitive: a barcode has no OCR errors."""

    def __init__(self, exact: list[str], prefixes: list[str], pattern: Any,
                 formats: list[str], pages: tuple[int, int | None]) -> None:
        self.exact, self.prefixes, self.pattern = set(exact), tuple(prefixes), pattern
        self.formats, self.pages = set(formats), pages
        said = [f"is {' or '.join(repr(v) for v in exact)}" if exact else "",
                f"starts with {' or '.join(repr(v) for v in prefixes)}" if prefixes else "",
                f"matches /{pattern.pattern}/" if pattern is not None else ""]
        where = "" if pages == (1, None) else f" in pages {pages[0]}-{pages[1] or 'end'}"
        kinds = f" ({', '.join(sorted(formats))})" if formats else ""
        self.what = f"barcode{kinds} " + (" and ".join(w for w in said if w) or "present") \
            + where

    def evaluate(self, s: Subject) -> Check:
        first, last = self.pages
        n = len(s.pages)
        low = first if first > 0 else n + first + 1
        high = n if last is None else (last if last > 0 else n + last + 1)
        seen = [b for b in s.barcodes if low <= b.page <= high and
                (not self.formats or b.format in self.formats)]
        for code in seen:
            value = code.value
            if self.exact and value not in self.exact:
                continue
            if self.prefixes and not value.startswith(self.prefixes):
                continue
            groups: dict[str, str] = {}
            if self.pattern is not None:
                m = _search(self.pattern, value, s.regex_timeout)
                if m is None:
                    continue
                groups = {k: v for k, v in m.groupdict().items() if v is not None}
            return Check(self.what, True, f"{shown(code)} on page {code.page}",
                         captures=groups, barcode=code)
        detail = f"{len(seen)} barcode(s) looked at, none matched" if seen else \
            "no barcode" + (" of these formats" if self.formats and s.barcodes else "") + \
            (" on these pages" if s.barcodes and self.pages != (1, None) else "")
        return Check(self.what, False, detail)


def shown(code: Barcode) -> str:
    """A barcode for explain and logs: its format and its value on one line, cut short
    (values are the sender's text: no line breaks, no bidi tricks, no 4 kB lines)."""
    value = one_line(code.value, SNIPPET)
    more = "…" if len(code.value) > len(value) else ""
    return f"{code.format} {value!r}{more}"


# --- Text helpers -----------------------------------------------------------------------------


class RegexTimeout(Exception):
    """A regex ran out of time. Not a "no match": under `not` that would make the rule match,
    so a sender could force a negated rule. The whole rule fails closed instead
    (`ruleset.evaluate` catches this)."""


def _search(pattern: Any, text: str, timeout: float) -> Any:
    """regex search bounded in time; RegexTimeout when the time is up."""
    try:  # concurrent: release the GIL, so other faxes' threads run meanwhile
        return pattern.search(text, concurrent=True, timeout=timeout)
    except TimeoutError:
        raise RegexTimeout(f"regex /{_short(pattern.pattern)}/ timed out after "
                           f"{timeout * 1000:.0f} ms") from None


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _where(text: str, start: int, end: int) -> str:
    page = text.count("\f", 0, start) + 1
    snippet = " ".join(text[start:end].split())
    if len(snippet) > SNIPPET:
        snippet = snippet[: SNIPPET - 1] + "…"
    return f"{snippet!r} on page {page} of the range"


def tokens(text: str, case_sensitive: bool) -> list[str]:
    return WORD.findall(text if case_sensitive else text.casefold())


def _locator(tokens: list[str], case_sensitive: bool) -> Any:
    """Finds where a word or phrase is, for explain; only run once it is known to be there."""
    body = r"\W+".join(regex.escape(t) for t in tokens)
    return regex.compile(rf"(?<!\w){body}(?!\w)",
                         regex.V0 | (0 if case_sensitive else regex.IGNORECASE | regex.FULLCASE))


def words_test(words: list[str], case_sensitive: bool, need_all: bool) -> TextTest:
    """Words and phrases are compared as sequences of whole words (letters and digits), so
    case (unless case_sensitive), punctuation and line breaks between words do not matter.
    The text is split into words once per evaluation: a lookup per word, not a scan."""
    wanted = [tokens(w, case_sensitive) for w in words]
    locators = [_locator(t, case_sensitive) for t in wanted]

    def test(s: Subject, pages: tuple[int, int | None]) -> tuple[bool, str, dict[str, str]]:
        joined, vocabulary = s.tokens(pages, case_sensitive)
        hits = [t[0] in vocabulary if len(t) == 1 else f" {' '.join(t)} " in joined
                for t in wanted]
        ok = all(hits) if need_all else any(hits)
        text = s.text(pages)
        found = []
        for word, hit, locator in zip(words, hits, locators, strict=True):
            if hit:  # the decision is made; locating the word is only for explain
                try:
                    m = _search(locator, text, s.regex_timeout)
                except RegexTimeout:
                    m = None
                found.append(_where(text, m.start(), m.end()) if isinstance(m, regex.Match)
                             else repr(word))
                if not need_all:
                    break
        detail = "found " + "; ".join(found) if found else "not found"
        missing = [repr(w) for w, hit in zip(words, hits, strict=True) if not hit]
        if need_all and missing and found:
            detail += f"; missing {', '.join(missing)}"
        return ok, detail, {}
    return test


def regex_test(pattern: Any) -> TextTest:
    def test(s: Subject, pages: tuple[int, int | None]) -> tuple[bool, str, dict[str, str]]:
        text = s.text(pages)
        m = _search(pattern, text, s.regex_timeout)
        if m is None:
            return False, "no match", {}
        groups = {k: v for k, v in m.groupdict().items() if v is not None}
        return True, "matched " + _where(text, m.start(), m.end()), groups
    return test


def fuzzy_test(needle: str, threshold: float, case_sensitive: bool) -> TextTest:
    wanted = needle if case_sensitive else needle.lower()

    def test(s: Subject, pages: tuple[int, int | None]) -> tuple[bool, str, dict[str, str]]:
        text = s.text(pages)
        hay = text if case_sensitive else s.lowered(pages)
        best = fuzz.partial_ratio_alignment(wanted, hay)
        if best is None or best.score < threshold:
            score = best.score if best is not None else 0.0
            return False, f"best similarity {score:.0f} < {threshold:g}", {}
        where = _where(text, best.dest_start, best.dest_end)
        return True, f"similarity {best.score:.0f} >= {threshold:g}: {where}", {}
    return test


def subject_time(value: datetime | None) -> datetime | None:
    """Retarus times without an offset are UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value

