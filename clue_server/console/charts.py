"""Daily charts as inline SVG, rendered on the server: no JavaScript, no CDN, no inline styles.

Colours come from classes in ``console.css`` (the CSP forbids inline ``style``). Every bar
and point carries a ``<title>`` so hovering shows the exact value (the axis rounds to
``12k``; the title never does). The SVG scales to its box (``viewBox``), so a chart fits a
narrow window.

>>> import datetime as dt
>>> svg = bar_chart([(dt.date(2025, 1, 1), 3), (dt.date(2025, 1, 2), 12345)], label="Lookups")
>>> svg.startswith('<svg') and svg.count('<rect class="bar"') == 2
True
>>> "<title>2025-01-02: 12,345</title>" in svg
True
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 760, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 14, 30


def _nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 × 10ⁿ at or above ``value`` (for the top of the y axis)."""
    if value <= 0:
        return 1.0
    exponent = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * exponent:
            return float(step * exponent)
    return float(10 * exponent)


def _grouped(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _exact(value: float, percent: bool, exact: Callable[[float], str]) -> str:
    return f"{value:.1f}%" if percent else exact(value)


def _number(value: float, percent: bool) -> str:
    if percent:
        return f"{value:.1f}%"
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _frame(points: Sequence[tuple[dt.date, float | None]], label: str, top: float,
           percent: bool) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
             f'aria-label="{escape(label)}">', f"<title>{escape(label)}</title>"]
    for i in range(5):
        value = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" '
                     f'y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{escape(_number(value, percent))}</text>')
    step = max(1, len(points) // 6)
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(points))
    for index in range(0, len(points), step):
        x = LEFT + slot * (index + 0.5)
        parts.append(f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 10}" '
                     f'text-anchor="middle">{points[index][0].strftime("%m-%d")}</text>')
    return parts


def bar_chart(points: Sequence[tuple[dt.date, float]], *, label: str,
              percent: bool = False, exact: Callable[[float], str] = _grouped) -> Markup:
    """One bar per day; ``percent`` formats the axis and titles as percentages; ``exact``
    writes a value in full for its tooltip (the locale's grouping in the console)."""
    top = _nice_max(max((v for _, v in points), default=0))
    parts = _frame(points, label, top, percent)
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(points))
    for index, (day, value) in enumerate(points):
        height = plot_h * value / top
        x = LEFT + slot * index + slot * 0.1
        y = TOP + plot_h - height
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" '
                     f'height="{height:.1f}"><title>{day.isoformat()}: '
                     f'{escape(_exact(value, percent, exact))}</title></rect>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above


def line_chart(points: Sequence[tuple[dt.date, float | None]], *, label: str,
               percent: bool = False, exact: Callable[[float], str] = _grouped) -> Markup:
    """A polyline through the days that have a value (``None``: no data that day)."""
    known = [(d, v) for d, v in points if v is not None]
    top = _nice_max(max((v for _, v in known), default=0))
    parts = _frame(points, label, top, percent)
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(points))
    coords = []
    for index, (day, value) in enumerate(points):
        if value is None:
            continue
        x = LEFT + slot * (index + 0.5)
        y = TOP + plot_h - plot_h * value / top
        coords.append(f"{x:.1f},{y:.1f}")
        parts.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="2.5">'
                     f'<title>{day.isoformat()}: {escape(_exact(value, percent, exact))}</title>'
                     f"</circle>")
    if len(coords) > 1:
        parts.insert(len(parts) - len(coords), f'<polyline class="line" '
                     f'points="{" ".join(coords)}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above
