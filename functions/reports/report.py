"""The weekly (or monthly) report of one audience: its sections (``audiences.yaml``) filled from
the dashboards' panel definitions over the period and the period before it, each figure with its
change. Pure over the ports of ``source.py``; the audiences are in ``audiences.py``, rendering and
mail in ``mail.py``."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, Field

from functions.reports.audiences import AudienceSpec
from functions.reports.build import PanelBuilder
from functions.reports.business import cost_part, health_part
from functions.reports.documents import DocumentSource
from functions.reports.figures import DocumentFigures
from functions.reports.incident_records import IncidentSource
from functions.reports.panels import INCIDENT_KINDS, Catalog, Status
from functions.reports.period import Period
from functions.reports.source import AlertSource, MemoisedMetricSource, MetricSource
from functions.reports.views import (
    STATUS_ORDER,
    Figure,
    IncidentView,
    PanelView,
    Table,
    TableRow,
    change_of,
    format_value,
    worst,
)


class Chart(BaseModel):
    ref: str
    cid: str
    title: str
    alt: str
    panel: PanelView


class Section(BaseModel):
    id: str
    title: str
    status: Status
    figures: list[Figure] = []
    tables: list[Table] = []
    incidents: list[IncidentView] | None = None
    incidents_previous: int | None = None
    chart: Chart | None = None
    # Panels shown whole (incident records: per-priority times, lists, weekly trends).
    panels: list[PanelView] = []
    # What a reader must know to trust the section (missing days, a fallback source, no data).
    notes: list[str] = []


class Report(BaseModel):
    id: str
    audience: str
    title: str
    period: Period
    generated_at: AwareDatetime
    status: Status
    sections: list[Section]
    empty: bool = Field(description="no metric data at all in the period")


def _figure(ref: str, now: PanelView, before: PanelView) -> Figure:
    better = now.band.better if now.band else None
    change, direction = change_of(now.unit, now.value, before.value, better, now.currency)
    return Figure(
        ref=ref,
        title=now.title,
        unit=now.unit,
        currency=now.currency,
        target=now.target,
        status=now.status,
        value=now.value,
        text=now.text,
        previous=before.value,
        previous_text=before.text,
        change=change,
        direction=direction,
    )


def _table(ref: str, now: PanelView, before: PanelView) -> Table:
    previous = {r.label: r for r in before.rows}
    rows = []
    for row in now.rows:
        old = previous.get(row.label)
        if row.share is not None:
            old_share = old.share if old else None
            change, _ = change_of("percent", row.share, old_share, None)
        else:
            old_value = old.value if old else None
            change, _ = change_of(now.unit, row.value, old_value, None, now.currency)
            old_share = None
        rows.append(
            TableRow(
                label=row.label,
                text=row.text,
                share=row.share,
                previous_share=old_share,
                change=change,
                status=row.status,
                detail=row.detail,
            )
        )
    return Table(ref=ref, title=now.title, unit=now.unit, currency=now.currency, rows=rows, note=now.note)


def _row_figures(ref: str, now: PanelView, before: PanelView) -> list[Figure]:
    """A scorecard panel's rows as figures: each with its definition and target, its grade, and
    the figure of the period before."""
    previous = {r.label: r for r in before.rows}
    figures = []
    for row in now.rows:
        old = previous.get(row.label)
        old_value = old.value if old else None
        change = "no data this period" if row.value is None else "no data the period before"
        if row.value is not None and old is not None and old_value is not None:
            grade, old_grade = row.text.rpartition(": ")[2], old.text.rpartition(": ")[2]
            change = (
                "unchanged"
                if row.value == old_value
                else (f"{old_grade} to {grade}" if grade != old_grade else f"still {grade}")
            )
        figures.append(
            Figure(
                ref=f"{ref}.{row.label.lower().replace(' ', '_')}",
                title=row.label,
                unit=now.unit,
                target=row.detail,
                status=row.status,
                value=row.value,
                text=row.text,
                previous=old_value,
                previous_text=old.text if old else "no data",
                change=change,
                direction="none",
            )
        )
    return figures


def _alt(panel: PanelView, period: Period) -> str:
    parts = []
    for series in panel.series:
        values = [v for _, v in series.points]
        if values:
            parts.append(
                f"{series.label} from {format_value(min(values), panel.unit, panel.currency)} "
                f"to {format_value(max(values), panel.unit, panel.currency)}"
            )
    return f"{panel.title}, {period.label}: " + ("; ".join(parts) if parts else "no data")


def report_id(audience: str, period: Period) -> str:
    return f"{audience}-{period.label}"


def build_report(
    audience: AudienceSpec,
    period: Period,
    catalog: Catalog,
    metrics: MetricSource,
    alerts: AlertSource,
    *,
    documents: DocumentSource,
    now: AwareDatetime,
    incidents: IncidentSource | None = None,
) -> Report:
    step = 86_400 if period.kind == "month" else 3600
    # A month is charted per local day (a fixed 86400 s step drifts an hour past a DST change).
    current = PanelBuilder(
        MemoisedMetricSource(metrics),
        alerts,
        start=period.start,
        end=period.end,
        step=step,
        now=now,
        incidents=incidents,
        time_zone=period.time_zone,
    )
    before = PanelBuilder(
        MemoisedMetricSource(metrics),
        alerts,
        start=period.previous_start,
        end=period.previous_end,
        step=step,
        now=now,
        incidents=incidents,
        time_zone=period.time_zone,
    )
    # The document-backed panels (customer success, finance, the KPI scorecard) of each period.
    current.figures = DocumentFigures.for_period(
        documents, start=period.start, end=period.end, now=now, week=current, time_zone=period.time_zone
    )
    before.figures = DocumentFigures.for_period(
        documents,
        start=period.previous_start,
        end=period.previous_end,
        now=now,
        week=before,
        time_zone=period.time_zone,
    )
    views: dict[str, tuple[PanelView, PanelView]] = {}

    def both(ref: str) -> tuple[PanelView, PanelView]:
        if ref not in views:
            _, panel = catalog.panel(ref)
            views[ref] = (current.build(panel), before.build(panel))
        return views[ref]

    sections = []
    for spec in audience.sections:
        figures = [_figure(ref, *both(ref)) for ref in spec.figures]
        if spec.scorecard:
            figures += _row_figures(spec.scorecard, *both(spec.scorecard))
        if spec.error_budget:
            figures.append(_error_budget(spec.error_budget, *both(spec.error_budget)))
        tables = [_table(ref, *both(ref)) for ref in spec.tables]
        notes: list[str] = []
        if spec.cost is not None:
            requests_now, requests_before = both(spec.cost.requests)
            cost = cost_part(
                documents, period, requests=requests_now.value, requests_before=requests_before.value
            )
            figures += cost.figures
            tables += cost.tables if spec.cost.by_service else []
            notes += cost.notes
        if spec.customer_health:
            health = health_part(documents, period)
            figures += health.figures
            tables += health.tables
            notes += health.notes
        if spec.cost_so_far:
            from functions.reports.daily import cost_so_far_part

            so_far = cost_so_far_part(documents, period)
            figures += so_far.figures
            notes += so_far.notes
        shown = [both(ref)[0] for ref in spec.panels]
        if shown and all(not (p.records or p.priorities or p.rows) for p in shown):
            when = f"on {period.label}" if period.kind == "day" else f"in {period.label}"
            notes.append(f"No incident {when}, and none open: nothing to measure.")
        episodes = episodes_before = None
        if spec.incidents is not None:
            episodes = current.incidents(spec.incidents.severities)
            episodes_before = len(before.incidents(spec.incidents.severities))
        chart = None
        if spec.chart:
            panel = both(spec.chart)[0]
            if any(s.points for s in panel.series):
                chart = Chart(
                    ref=spec.chart,
                    cid=f"{spec.id}-chart",
                    title=panel.title,
                    alt=_alt(panel, period),
                    panel=panel,
                )
        statuses = [f.status for f in figures] + [r.status for t in tables for r in t.rows]
        statuses += [p.status for p in shown]
        if episodes:
            statuses.append("warning")
        sections.append(
            Section(
                id=spec.id,
                title=spec.title,
                status=worst(statuses) if statuses else "info",
                figures=figures,
                tables=tables,
                incidents=episodes,
                incidents_previous=episodes_before,
                chart=chart,
                panels=shown,
                notes=notes,
            )
        )
    has_data = any(
        view.value is not None or view.rows or any(s.points for s in view.series)
        for view, _ in views.values()
        if view.kind not in ("alerts", "incidents", "alert_counts", *INCIDENT_KINDS)
    )
    return Report(
        id=report_id(audience.name, period),
        audience=audience.name,
        title=audience.title,
        period=period,
        generated_at=now,
        status=min((s.status for s in sections), key=lambda s: STATUS_ORDER[s]) if sections else "info",
        sections=sections,
        empty=not has_data,
    )


def _error_budget(ref: str, now: PanelView, before: PanelView) -> Figure:
    """Share of the availability objective's error budget the period used (100% = all of it)."""
    objective = now.band.ok if now.band else 0.9995
    budget = 1 - objective

    def used(value: float | None) -> float | None:
        return None if value is None else (1 - value) / budget

    value, previous = used(now.value), used(before.value)
    change, direction = change_of("percent", value, previous, "lower")
    status: Status = (
        "no_data" if value is None else ("ok" if value <= 0.5 else "warning" if value <= 1 else "breach")
    )
    return Figure(
        ref=ref,
        title="Error budget used",
        unit="percent",
        target=f"at most 100% of the {objective * 100:.2f}% objective's budget "
        f"({budget * 100:.2f}% of requests)",
        status=status,
        value=value,
        text=format_value(value, "percent") if value is not None else "no data",
        previous=previous,
        previous_text=format_value(previous, "percent") if previous is not None else "no data",
        change=change,
        direction=direction,
    )
