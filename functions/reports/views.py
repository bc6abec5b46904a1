"""The panel and dashboard views every output format is rendered from (HTML, JSON, Markdown,
text, the weekly report's tables and PNG charts), and how their values read.

The JSON of ``DashboardView`` is the documented dashboard API (``schema_version`` changes only
with an incompatible change).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import AwareDatetime, BaseModel

from functions.reports.incident_views import IncidentRecordView, PriorityStatsView
from functions.reports.money import money
from functions.reports.panels import Band, Status

SCHEMA_VERSION = 1
STATUS_ORDER: dict[str, int] = {"breach": 0, "warning": 1, "no_data": 2, "ok": 3, "info": 4}


class SeriesView(BaseModel):
    label: str
    points: list[tuple[AwareDatetime, float]]


class RowView(BaseModel):
    label: str
    value: float | None
    text: str
    status: Status = "info"
    share: float | None = None
    # What stands behind the row (a customer's reasons and actions, a KPI's definition and target).
    detail: str = ""


class AlertView(BaseModel):
    rule: str
    kind: str
    severity: str
    labels: dict[str, str]
    since: AwareDatetime | None
    value: float | None
    threshold: float | None


class IncidentView(BaseModel):
    rule: str
    severity: str
    labels: dict[str, str]
    started: AwareDatetime
    ended: AwareDatetime | None
    duration_seconds: float
    ongoing: bool
    summary: str


class PanelView(BaseModel):
    id: str
    title: str
    kind: str
    description: str = ""
    unit: str
    # The ISO code of a money panel's figures (unit ``usd`` is money, whatever its currency);
    # None for other units or when no cost document said.
    currency: str | None = None
    target: str = ""
    status: Status
    value: float | None = None
    text: str = ""
    band: Band | None = None
    series: list[SeriesView] = []
    rows: list[RowView] = []
    alerts: list[AlertView] = []
    incidents: list[IncidentView] = []
    # The incident records' panels: per-priority times, and incidents one by one.
    priorities: list[PriorityStatsView] = []
    records: list[IncidentRecordView] = []
    note: str = ""


class DashboardView(BaseModel):
    schema_version: int = SCHEMA_VERSION
    name: str
    title: str
    description: str
    window: str
    region: str | None
    start: AwareDatetime
    end: AwareDatetime
    step_seconds: int
    refresh_seconds: int
    generated_at: AwareDatetime
    status: Status
    panels: list[PanelView]


# -- formatting ------------------------------------------------------------------------------------


def format_value(value: float | None, unit: str, currency: str | None = None) -> str:
    """``value`` in ``unit``; money (unit ``usd``) in ``currency``, see ``money.py``."""
    if value is None or not math.isfinite(value):
        return "no data"
    if unit == "percent":
        pct = value * 100
        if pct >= 99.0 and pct < 100.0:
            return f"{pct:.3f}%"
        return f"{pct:.2f}%" if pct < 10 else f"{pct:.1f}%"
    if unit == "seconds":
        if abs(value) < 1.0:
            ms = value * 1000
            return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms"
        return f"{value:.2f} s"
    if unit == "per_second":
        return f"{value:,.0f}/s" if value >= 100 else f"{value:.2f}/s"
    if unit == "instances":
        return f"{value:.1f}"
    if unit == "ratio":
        return f"{value:.3f}"
    if unit == "usd":
        return money(value, currency)
    if unit == "duration":
        from functions.reports.incident_metrics import duration_text

        return duration_text(value)
    if unit == "days":
        return f"{value:.1f} day{'' if value == 1 else 's'}"
    return f"{value:,.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:,.2f}"


def worst(statuses: list[str]) -> Status:
    graded = [s for s in statuses if s != "info"]
    if not graded:
        return "info"
    return min(graded, key=lambda s: STATUS_ORDER[s])  # type: ignore[return-value]


# -- report views (weekly report figures and tables, with their change) ---------------------------

Direction = Literal["better", "worse", "same", "new", "none"]


class Figure(BaseModel):
    ref: str
    title: str
    unit: str
    currency: str | None = None  # as on ``PanelView``
    target: str
    status: Status
    value: float | None
    text: str
    previous: float | None
    previous_text: str
    change: str
    direction: Direction


class TableRow(BaseModel):
    label: str
    text: str
    share: float | None
    previous_share: float | None
    change: str
    status: Status
    detail: str = ""


class Table(BaseModel):
    ref: str
    title: str
    unit: str
    currency: str | None = None  # as on ``PanelView``
    rows: list[TableRow]
    note: str = ""


def change_of(
    unit: str, value: float | None, previous: float | None, better: str | None, currency: str | None = None
) -> tuple[str, Direction]:
    """Week-over-week change: points for percentages, relative change otherwise."""
    if value is None:
        return "no data this period", "none"
    if previous is None:
        return "no data the period before", "new"
    delta = value - previous
    if unit == "percent":
        text = f"{delta * 100:+.2f} pts" if abs(delta) >= 0.00005 else "unchanged"
    elif previous == 0:
        text = "unchanged" if value == 0 else f"{format_value(value, unit, currency)} from 0"
    else:
        relative = delta / abs(previous)
        text = f"{relative * 100:+.1f}%" if abs(relative) >= 0.0005 else "unchanged"
    if text == "unchanged" or better is None:
        return text, "same" if text == "unchanged" else "none"
    improved = delta < 0 if better == "lower" else delta > 0
    return text, "better" if improved else "worse"
