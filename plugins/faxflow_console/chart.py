"""Faxes per hour as the numbers of a small bar chart, drawn as inline SVG by the overview's
template (no JavaScript, no library; only numbers and hours go into the SVG)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

HOURS = 24
WIDTH, HEIGHT, BAR = 480, 120, 20  # the drawing area; one bar per hour, 20 units apart


@dataclass(frozen=True, slots=True)
class Bar:
    x: int
    y: float
    height: float
    hour: str  # "14:00"
    count: int


@dataclass(frozen=True, slots=True)
class Chart:
    bars: list[Bar]
    peak: int
    total: int
    width: int = WIDTH
    height: int = HEIGHT


def bars(per_hour: Iterable[tuple[int, int]], now: float) -> Chart:
    """The last 24 hours (the current one last) from (hour start, count) pairs."""
    counts = dict(per_hour)
    current = int(now // 3600) * 3600
    hours = [current - 3600 * i for i in range(HOURS - 1, -1, -1)]
    peak = max([counts.get(h, 0) for h in hours] + [1])
    out = []
    for i, hour in enumerate(hours):
        n = counts.get(hour, 0)
        height = round((HEIGHT - 4) * n / peak, 1)
        out.append(Bar(i * BAR + 2, round(HEIGHT - height, 1), height,
                       datetime.fromtimestamp(hour).strftime("%H:00"), n))
    return Chart(out, peak, sum(b.count for b in out))
