"""Server-side SVG charts for the HTML dashboards: no script, no external request, scaled by
``viewBox`` so one chart fits 360 px and 1440 px alike. Every chart has a ``<title>`` and the
figures are in the page's text too, so the chart is never the only way to read a value."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from html import escape
from itertools import pairwise

from functions.reports.views import SeriesView, format_value

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
WIDTH, HEIGHT = 600, 180
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 64, 12, 12, 28


def value_bounds(values: list[float], unit: str, floor_zero: bool) -> tuple[float, float]:
    """The y axis: the values' range, from zero when asked, never a flat line; a percentage (a
    ratio of 0..1) stays within 0-100%, so a flat 100% series is not drawn on a 110% axis."""
    v0, v1 = min(values), max(values)
    if floor_zero:
        v0 = min(0.0, v0)
    if v1 == v0:
        pad = abs(v0) * 0.1 or (0.1 if unit == "percent" else 1.0)
        v0, v1 = (v0 - pad, v0) if unit == "percent" and v0 >= 1.0 else (v0, v0 + pad)
    if unit == "percent" and min(values) >= 0.0 and max(values) <= 1.0:
        v0, v1 = max(v0, 0.0), min(v1, 1.0)
    return v0, v1


def _bounds(series: list[SeriesView], unit: str, floor_zero: bool) -> tuple[float, float, float, float]:
    times = [t.timestamp() for s in series for t, _ in s.points]
    t0, t1 = min(times), max(times)
    v0, v1 = value_bounds([v for s in series for _, v in s.points], unit, floor_zero)
    if t1 == t0:
        t1 = t0 + 60
    return t0, t1, v0, v1


# Points further apart than this many of the series' step are a gap (a step without data is
# absent), drawn as one: a line across it would show values nobody measured. Local-day steps are
# 23 to 25 hours, so a step's own variation stays under it.
GAP_STEPS = 1.5


def segments(points: list[tuple[datetime, float]]) -> list[list[tuple[datetime, float]]]:
    """The runs of ``points`` without a gap, the step being their smallest spacing."""
    times = [t.timestamp() for t, _ in points]
    spacings = [b - a for a, b in pairwise(times) if b > a]
    if not spacings:
        return [points] if points else []
    limit = min(spacings) * GAP_STEPS
    runs: list[list[tuple[datetime, float]]] = [[points[0]]]
    for previous, point in pairwise(points):
        if (point[0] - previous[0]).total_seconds() > limit:
            runs.append([])
        runs[-1].append(point)
    return runs


def clock(at: datetime, span_seconds: float, zone: tzinfo | None = None) -> str:
    """A time on the axis in the reader's zone, named (UTC when no zone is known)."""
    local = at.astimezone(zone or UTC)
    if span_seconds > 8 * 86_400:  # weekly trends: the date says more than the hour
        return local.strftime("%d %b")
    return local.strftime("%a %H:%M" if span_seconds > 86_400 else "%H:%M") + f" {local.tzname()}"


def line_chart(
    series: list[SeriesView],
    unit: str,
    title: str,
    *,
    threshold: float | None = None,
    zone: tzinfo | None = None,
    currency: str | None = None,
) -> str:
    """A line chart (one path per series) with y-axis bounds and the window's start and end, the
    times in ``zone`` (the reader's; UTC without one), money in ``currency``."""
    drawn = [s for s in series if s.points]
    if not drawn:
        return ""
    t0, t1, v0, v1 = _bounds(drawn, unit, floor_zero=unit not in ("percent",))
    if threshold is not None and unit == "percent":
        # The target is on the axis whichever side of the values it is: a breach shows as one.
        v0, v1 = min(v0, threshold), max(v1, threshold)
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM

    def x(t: float) -> float:
        return PAD_LEFT + (t - t0) / (t1 - t0) * plot_w

    def y(v: float) -> float:
        return PAD_TOP + (1 - (v - v0) / (v1 - v0)) * plot_h

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f'<rect x="{PAD_LEFT}" y="{PAD_TOP}" width="{plot_w}" height="{plot_h}" '
        'fill="#fafafa" stroke="#ddd"/>',
    ]
    for value in (v0, v1):
        parts.append(
            f'<text x="{PAD_LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" font-size="11" fill="#444">'
            f"{escape(format_value(value, unit, currency))}</text>"
        )
    if threshold is not None and v0 <= threshold <= v1:
        parts.append(
            f'<line x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y(threshold):.1f}" y2="{y(threshold):.1f}" '
            'stroke="#B00020" stroke-dasharray="4 3" stroke-width="1"/>'
        )
    span = t1 - t0
    first = min(p[0] for s in drawn for p in s.points)
    last = max(p[0] for s in drawn for p in s.points)
    parts.append(
        f'<text x="{PAD_LEFT}" y="{HEIGHT - 8}" font-size="11" fill="#444">'
        f"{escape(clock(first, span, zone))}</text>"
    )
    parts.append(
        f'<text x="{WIDTH - PAD_RIGHT}" y="{HEIGHT - 8}" text-anchor="end" font-size="11" fill="#444">'
        f"{escape(clock(last, span, zone))}</text>"
    )
    for index, s in enumerate(drawn):
        colour = PALETTE[index % len(PALETTE)]
        for run in segments(s.points):
            coords = " ".join(f"{x(t.timestamp()):.1f},{y(v):.1f}" for t, v in run)
            if len(run) == 1:
                cx, cy = coords.split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>')
            else:
                parts.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" '
                    'vector-effect="non-scaling-stroke" '
                    f'points="{coords}"/>'
                )
    parts.append("</svg>")
    return "".join(parts)


def legend(series: list[SeriesView]) -> list[tuple[str, str]]:
    """``(colour, label)`` per drawn series, in the chart's order."""
    drawn = [s for s in series if s.points]
    return [(PALETTE[i % len(PALETTE)], s.label) for i, s in enumerate(drawn)]
