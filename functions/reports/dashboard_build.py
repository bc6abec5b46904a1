"""A dashboard over a window: its panels built side by side (``build.py``) into a
``DashboardView``. Pure over the ports of ``source.py``, ``incident_records.py`` and
``documents.py``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from datetime import UTC, datetime, timedelta

from functions.reports.build import PanelBuilder
from functions.reports.documents import DocumentSource
from functions.reports.figures import DocumentFigures
from functions.reports.incident_records import IncidentSource
from functions.reports.panels import STEPS, WINDOWS, Dashboard
from functions.reports.source import AlertSource, MetricSource
from functions.reports.views import DashboardView, worst
from shared.metrics.build_reads import rollup_reads

PANEL_WORKERS = 8  # Firestore reads of a cold build in flight at once


def dashboard_window(window: str, now: datetime) -> tuple[datetime, datetime, int]:
    """``(start, end, step)`` of a dashboard window ending with the step that holds ``now``."""
    step = STEPS[window]
    epoch = int(now.timestamp())
    end = datetime.fromtimestamp(epoch - epoch % step + step, UTC)
    return end - timedelta(seconds=WINDOWS[window]), end, step


def build_dashboard(
    dashboard: Dashboard,
    metrics: MetricSource,
    alerts: AlertSource,
    *,
    window: str,
    region: str | None,
    now: datetime,
    incidents: IncidentSource | None = None,
    documents: DocumentSource | None = None,
) -> DashboardView:
    from functions.reports.source import MemoisedMetricSource

    start, end, step = dashboard_window(window, now)
    memoised = MemoisedMetricSource(metrics)
    figures = None
    if documents is not None and any(p.figure for p in dashboard.panels):
        # Document figures are daily or weekly whatever the window; the KPI week is the 7 days to now.
        week_start, week_end, week_step = dashboard_window("7d", now)
        week = PanelBuilder(
            memoised, alerts, start=week_start, end=week_end, step=week_step, region=region, now=now
        )
        figures = DocumentFigures.for_dashboard(documents, now=now, week=week)
    builder = PanelBuilder(
        memoised,
        alerts,
        start=start,
        end=end,
        step=step,
        region=region,
        now=now,
        incidents=incidents,
        figures=figures,
    )
    # A cold build is Firestore round trips, not CPU: panels built side by side cost the slowest
    # panel's reads rather than the sum of all of them, and the panels' queries of one metric
    # over the window read its rollups once (``rollup_reads``).
    with (
        rollup_reads(),
        ThreadPoolExecutor(max_workers=max(1, min(PANEL_WORKERS, len(dashboard.panels)))) as pool,
    ):
        tasks = [pool.submit(copy_context().run, builder.build, panel) for panel in dashboard.panels]
        panels = [task.result() for task in tasks]
    return DashboardView(
        name=dashboard.name,
        title=dashboard.title,
        description=dashboard.description,
        window=window,
        region=region,
        start=start,
        end=end,
        step_seconds=step,
        refresh_seconds=dashboard.refresh_seconds,
        generated_at=now,
        status=worst([p.status for p in panels]),
        panels=panels,
    )
