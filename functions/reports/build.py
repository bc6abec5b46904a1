"""Panel data: a panel definition plus a window becomes a ``PanelView`` (value, status, series,
rows, alerts; the views are in ``views.py``). Pure over the two ports of ``source.py``; a whole
dashboard is built in ``dashboard_build.py``.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from functions.reports.figures import DocumentFigures
from functions.reports.incident_panels import IncidentReads, build_incident_panel
from functions.reports.incident_records import IncidentSource
from functions.reports.incidents import episodes, firing_alerts
from functions.reports.panels import ADDITIVE, INCIDENT_KINDS, Panel, Status
from functions.reports.source import ActiveAlert, AlertSource, MetricSource, Transition
from functions.reports.views import IncidentView, PanelView, RowView, SeriesView, format_value, worst
from shared.metrics.fold import local_day_starts
from shared.metrics.query_model import MetricQuery, QueryResult

DAY = 86_400


class PanelBuilder:
    """Builds panel views over one window ``[start, end)`` charted in steps of ``step`` seconds."""

    def __init__(
        self,
        metrics: MetricSource,
        alerts: AlertSource,
        *,
        start: datetime,
        end: datetime,
        step: int,
        region: str | None = None,
        now: datetime | None = None,
        incidents: IncidentSource | None = None,
        figures: DocumentFigures | None = None,
        time_zone: str | None = None,
    ) -> None:
        self.metrics = metrics
        self.alerts = alerts
        # The document-backed panels (``Panel.figure``); without it they say no data.
        self.figures = figures
        self.start, self.end, self.step = start, end, step
        # The period's zone (a report's): a day's step is a calendar day there (a month's report),
        # the incident trend's weeks are its weeks. None: UTC and fixed steps (the dashboards).
        self.step_zone = time_zone if step == DAY else None
        self._day_starts = local_day_starts(start, end, self.step_zone) if self.step_zone else None
        self.region = region
        self.now = now or end
        self._active: list[ActiveAlert] | None = None
        self._transitions: list[Transition] | None = None
        self._lock = threading.Lock()
        # The incident records (None: their panels say they were not read).
        self.records = (
            IncidentReads(
                incidents, start=start, end=end, region=region, zone=ZoneInfo(time_zone) if time_zone else UTC
            )
            if incidents is not None
            else None
        )

    # queries -----------------------------------------------------------------------------------
    def _query(
        self, panel: Panel, *, agg: str | None = None, stepped: bool, group_by: list[str]
    ) -> QueryResult:
        assert panel.query is not None
        labels = dict(panel.query.match)
        if self.region:
            labels["region"] = self.region
        return self.metrics.query(
            MetricQuery(
                metric=panel.query.metric,
                agg=agg or panel.query.agg,  # type: ignore[arg-type]
                start=self.start,
                end=self.end,
                step=self.step if stepped else None,
                labels=labels,
                group_by=[g for g in group_by if g not in labels],
                resolution="hour" if self.step >= 3600 else "auto",
                across=panel.query.across,
                step_zone=self.step_zone if stepped else None,
            )
        )

    def _step_scale(self, panel: Panel, at: datetime) -> float:
        """Minutes the step starting ``at`` covers, for per_minute: a window ending now has a
        last step only partly elapsed, which divided by a whole step would read a fraction."""
        if panel.transform != "per_minute":
            return 1.0
        covered = (self._step_end(at) - at).total_seconds()
        return max(covered, 1.0) / 60.0

    def _step_end(self, at: datetime) -> datetime:
        """The end of the step starting ``at``: a local day's is the next midnight (23 to 25
        hours on), the window's end at the latest."""
        if self._day_starts is None:
            return min(self.end, at + timedelta(seconds=self.step))
        return next((s for s in self._day_starts if s > at), self.end)

    def _step_count(self) -> int:
        """How many steps the window holds (the local days of a month's report)."""
        if self._day_starts is not None:
            return len(self._day_starts)
        return max(1, math.ceil((self.end - self.start).total_seconds() / self.step))

    def _additive_series(self, panel: Panel, result: QueryResult, keep: Any = None) -> dict[datetime, float]:
        """Sum per step over the series ``keep`` accepts (all by default)."""
        totals: dict[datetime, float] = defaultdict(float)
        for series in result.series:
            if keep is not None and not keep(series.labels):
                continue
            for at, value in series.points:
                totals[at] += value / self._step_scale(panel, at)
        return dict(sorted(totals.items()))

    def _ratio(self, panel: Panel, result: QueryResult) -> tuple[float | None, list[tuple[datetime, float]]]:
        assert panel.ratio is not None
        ratio = panel.ratio
        num = self._additive_series(panel, result, ratio.numerator.matches)
        den = self._additive_series(panel, result, ratio.denominator.matches)
        points = []
        for at, total in den.items():
            if total > 0:
                share = num.get(at, 0.0) / total
                points.append((at, 1.0 - share if ratio.complement else share))
        den_total = sum(den.values())
        if den_total <= 0:
            return None, points
        share = sum(num.values()) / den_total
        return (1.0 - share if ratio.complement else share), points

    def _has_data(self, panel: Panel) -> bool:
        assert panel.query is not None
        labels = {"region": self.region} if self.region else {}
        result = self.metrics.query(
            MetricQuery(
                metric=panel.query.metric,
                agg="count",
                start=self.start,
                end=self.end,
                labels=labels,
                resolution="hour" if self.step >= 3600 else "auto",
            )
        )
        return any(v > 0 for s in result.series for _, v in s.points)

    def _figure(self, panel: Panel) -> tuple[float | None, list[tuple[datetime, float]]]:
        """The window's value and its series per step (all series of the panel together)."""
        assert panel.query is not None
        agg = panel.query.agg
        if panel.ratio is not None:
            result = self._query(panel, stepped=True, group_by=panel.needed_labels())
            return self._ratio(panel, result)
        if agg in ADDITIVE:
            result = self._query(panel, stepped=True, group_by=[])
            totals = self._additive_series(panel, result)
            points = list(totals.items())
            if not result.series:
                # No series matches the filter: zero if the metric has data in the window (no L2
                # lookup failed), no data if it has none at all.
                if panel.query.match and self._has_data(panel):
                    return 0.0, []
                return None, []
            if agg == "rate" or panel.transform == "per_minute":
                return sum(totals.values()) / self._step_count(), points
            return sum(totals.values()), points
        stepped = self._query(panel, stepped=True, group_by=[])
        points = [p for s in stepped.series for p in s.points]
        whole = self._query(panel, stepped=False, group_by=[])
        values = [v for s in whole.series for _, v in s.points]
        return (values[0] if values else None), points

    def _status(self, panel: Panel, value: float | None) -> Status:
        if panel.band is None:
            return "info" if value is not None else "no_data"
        return panel.band.status(value)

    def build(self, panel: Panel) -> PanelView:
        base: dict[str, Any] = {
            "id": panel.id,
            "title": panel.title,
            "kind": panel.kind,
            "description": panel.description,
            "unit": panel.unit,
            "target": panel.target,
            "band": panel.band,
        }
        if panel.figure is not None:
            if self.figures is None:
                return PanelView(**base, status="no_data", note="No document source for this figure.")
            return self.figures.build(panel, base)
        if panel.kind == "stat":
            value, points = self._figure(panel)
            series = [SeriesView(label=panel.title, points=points)] if points else []
            return PanelView(
                **base,
                status=self._status(panel, value),
                value=value,
                text=format_value(value, panel.unit),
                series=series,
            )
        if panel.kind == "timeseries":
            return self._timeseries(panel, base)
        if panel.kind == "breakdown":
            return self._breakdown(panel, base)
        if panel.kind == "distribution":
            return self._distribution(panel, base)
        if panel.kind == "alerts":
            return self._alerts(panel, base)
        if panel.kind in (*INCIDENT_KINDS, "alert_counts"):
            return build_incident_panel(panel, base, self.records, now=self.now, episodes=self.incidents)
        return self._incidents(panel, base)

    def _timeseries(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        assert panel.query is not None
        value, overall = self._figure(panel)
        series: list[SeriesView] = []
        if panel.by:
            result = self._query(panel, stepped=True, group_by=[panel.by])
            for s in result.series:
                label = s.labels.get(panel.by, "(none)")
                points = [(t, v / self._step_scale(panel, t)) for t, v in s.points]
                series.append(SeriesView(label=label, points=points))
            series.sort(key=lambda s: s.label)
        elif overall:
            series = [SeriesView(label=panel.title, points=overall)]
        return PanelView(
            **base,
            status=self._status(panel, value),
            value=value,
            text=format_value(value, panel.unit),
            series=series,
        )

    def _breakdown(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        assert panel.query is not None
        assert panel.by
        result = self._query(panel, stepped=False, group_by=[panel.by])
        by_label: dict[str, float] = defaultdict(float)
        for s in result.series:
            label = s.labels.get(panel.by, "(none)")
            for _, v in s.points:
                by_label[label] = v if panel.query.agg not in ADDITIVE else by_label[label] + v
        total = sum(by_label.values()) if by_label and panel.query.agg in ("count", "sum") else None
        rows = []
        for label, value in sorted(by_label.items(), key=lambda kv: (-kv[1], kv[0])):
            band = panel.row_bands.get(label, panel.band)
            status: Status = band.status(value) if band else "info"
            share = value / total if total else None
            rows.append(
                RowView(
                    label=label, value=value, text=format_value(value, panel.unit), status=status, share=share
                )
            )
        status = (
            worst([r.status for r in rows])
            if rows
            else ("no_data" if panel.band or panel.row_bands else "info")
        )
        note = "" if rows else "No data in this window."
        return PanelView(
            **base,
            status=status,
            rows=rows,
            note=note,
            value=total,
            text=format_value(total, panel.unit) if total is not None else "",
        )

    def _distribution(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        rows = []
        for agg in panel.aggs:
            result = self._query(panel, agg=agg, stepped=False, group_by=[])
            values = [v for s in result.series for _, v in s.points]
            value = values[0] if values else None
            rows.append(RowView(label=agg, value=value, text=format_value(value, panel.unit)))
        has_data = any(r.value is not None for r in rows)
        return PanelView(
            **base,
            status="info" if has_data else "no_data",
            rows=rows,
            note="" if has_data else "No data in this window.",
        )

    def _alerts(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        with self._lock:  # panels are built side by side: read the alert states once
            if self._active is None:
                self._active = self.alerts.active()
        views = firing_alerts(
            self._active, kinds=panel.alert_kinds, severities=panel.severities, region=self.region
        )
        urgent = any(a.severity in ("critical", "high") for a in views)
        return _listing(base, len(views), urgent, f"{len(views)} firing", "No alert is firing.", alerts=views)

    def incidents(self, severities: list[str] | None = None) -> list[IncidentView]:
        """Firing episodes overlapping the window (see ``incidents.episodes``)."""
        with self._lock:
            if self._transitions is None:
                self._transitions = self.alerts.transitions(self.start, self.end)
        return episodes(
            self._transitions,
            start=self.start,
            end=self.end,
            now=self.now,
            severities=severities,
            region=self.region,
        )

    def _incidents(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        found = self.incidents(panel.severities or None)
        text = f"{len(found)} incident{'s' if len(found) != 1 else ''}"
        urgent = any(i.ongoing for i in found)
        return _listing(base, len(found), urgent, text, "No incident in this window.", incidents=found)


def _listing(
    base: dict[str, Any], count: int, urgent: bool, text: str, empty_note: str, **items: Any
) -> PanelView:
    """A panel listing alerts or incidents: breach when one is urgent, warning when there are any,
    ok when there are none."""
    status: Status = "breach" if urgent else "warning" if count else "ok"
    return PanelView(
        **base, status=status, value=float(count), text=text, note="" if count else empty_note, **items
    )
