"""PNG charts for mail (clients strip SVG and scripts), drawn by matplotlib's Agg backend from the
same panel views as the dashboards' SVG. matplotlib is imported on first use only: the dashboards
never pay for it."""

from __future__ import annotations

import io
import threading
from datetime import datetime, tzinfo

from functions.reports.svg import segments, value_bounds
from functions.reports.views import PanelView, format_value

# Okabe-Ito, as the SVG charts.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
_lock = threading.Lock()  # pyplot's state is global; concurrent requests draw one at a time


def line_png(
    panel: PanelView, title: str, *, zone: tzinfo | None = None, width_px: int = 600, height_px: int = 220
) -> bytes:
    """The panel's series as a PNG, its time axis in ``zone`` (the report's) and a percentage's
    axis within 0-100%."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    dpi = 100
    with _lock:
        figure = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
        axes = figure.add_subplot(1, 1, 1)
        for index, series in enumerate(s for s in panel.series if s.points):
            colour = PALETTE[index % len(PALETTE)]
            times: list[datetime] = []
            values: list[float] = []
            for run in segments(series.points):
                if times:  # a gap: matplotlib breaks the line at a NaN
                    times.append(run[0][0])
                    values.append(float("nan"))
                times += [t for t, _ in run]
                values += [v for _, v in run]
                if len(run) == 1:  # a lone point has no line to show it
                    axes.plot([run[0][0]], [run[0][1]], "o", color=colour, markersize=3)
            axes.plot(times, values, color=colour, linewidth=1.4, label=series.label)
        if panel.band is not None:
            axes.axhline(panel.band.ok, color="#B00020", linestyle="--", linewidth=0.9, label="target")
        axes.yaxis.set_major_formatter(
            FuncFormatter(lambda v, _pos: format_value(v, panel.unit, panel.currency))
        )
        axes.xaxis.set_major_formatter(mdates.DateFormatter("%a %d", tz=zone))
        limits = percent_limits(panel)
        if limits is not None:
            axes.set_ylim(*limits)
        axes.tick_params(labelsize=8)
        axes.grid(True, color="#e5e5e5", linewidth=0.6)
        axes.set_title(title, fontsize=10, loc="left")
        if len(panel.series) > 1 or panel.band is not None:
            axes.legend(fontsize=7, loc="upper left", frameon=False, ncol=4)
        figure.tight_layout()
        buffer = io.BytesIO()
        # A palette PNG: a quarter of the RGBA size, no visible loss on a line chart.
        figure.savefig(buffer, format="png", dpi=dpi, pil_kwargs={"optimize": True})
    return _quantised(buffer.getvalue())


def percent_limits(panel: PanelView) -> tuple[float, float] | None:
    """A percentage's y axis within 0-100%, reaching the target line whichever side of the
    values it is (as the SVG charts); None for other units (matplotlib's own)."""
    values = [v for s in panel.series for _, v in s.points]
    if not values or panel.unit != "percent":
        return None
    low, high = value_bounds(values, panel.unit, floor_zero=False)
    if not (low >= 0.0 and high <= 1.0):
        return None
    if panel.band is not None and 0.0 <= panel.band.ok <= 1.0:
        low, high = min(low, panel.band.ok), max(high, panel.band.ok)
    margin = (high - low) * 0.04
    return max(0.0, low - margin), min(1.0, high + margin)


def _quantised(png: bytes) -> bytes:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=64)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
