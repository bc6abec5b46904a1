"""Calendar edges of the document-backed figures: a report's days are the local calendar days of
its period (the billing export's days and the health runs' are dates too), so a week in New York
is seven days, not the eight UTC dates its instants touch, and a month's quarter is its own."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from functions.reports.build import PanelBuilder
from functions.reports.figures import DocumentFigures
from functions.reports.panels import load_catalog
from functions.reports.period import Period, month, week
from functions.reports.source import MemoryAlertSource
from shared.metrics.query_model import MetricQuery, QueryResult
from tests.reports.cs_finance_docs import snapshot, source

CATALOG = load_catalog()


class NoMetrics:
    def query(self, query: MetricQuery) -> QueryResult:
        return QueryResult(metric=query.metric, agg=query.agg, series=[])


def figures_of(period: Period, docs, now: datetime) -> PanelBuilder:  # type: ignore[no-untyped-def]
    builder = PanelBuilder(
        NoMetrics(), MemoryAlertSource(), start=period.start, end=period.end, step=3600, now=now
    )
    builder.figures = DocumentFigures.for_period(
        docs, start=period.start, end=period.end, now=now, week=builder, time_zone=period.time_zone
    )
    return builder


def snapshots(first: date, last: date) -> dict[date, dict]:
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return {d: snapshot(d, opportunities=None) for d in days}


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Tokyo", "UTC"])
def test_the_weeks_daily_cost_is_its_seven_local_days_across_dst(zone: str) -> None:
    # 2026-W10 holds the US change to summer time (Sunday 2026-03-08); every billing day around
    # it has its snapshot, as when the report is built again later (resend, an archive rebuild).
    period = week("2026-W10", zone)
    docs = source(snapshots=snapshots(date(2026, 2, 27), date(2026, 3, 12)))
    builder = figures_of(period, docs, now=period.end + timedelta(days=4))
    _, panel = CATALOG.panel("finance.daily")
    view = builder.build(panel)
    days = [at.date() for series in view.series for at, _ in series.points]
    assert days == [date(2026, 3, 2) + timedelta(days=i) for i in range(7)], zone
    assert view.text.endswith("over 7 days")


def test_the_quarter_of_a_september_report_in_new_york_is_the_third() -> None:
    # The month ends 2026-10-01 00:00 in New York, 04:00 UTC: its last day is 30 September, in Q3.
    period = month("2026-09", "America/New_York")
    docs = source(snapshots=snapshots(date(2026, 7, 1), date(2026, 9, 30)))
    builder = figures_of(period, docs, now=period.end + timedelta(hours=6))
    assert builder.figures is not None
    saved, why = builder.figures.kpi.quarterly_savings()
    assert why == ""
    assert saved is not None


def test_the_health_run_of_a_new_york_week_is_the_one_scoring_its_last_day() -> None:
    # The run of as_of D scores the UTC day before D: the week of 2 to 8 March ends with the run of
    # 9 March, not of 10 March (which scores a day of the next week).
    from tests.reports.cs_finance_docs import run

    period = week("2026-W10", "America/New_York")
    runs = {
        date(2026, 3, 9): run(date(2026, 3, 9), {"healthy": 3, "at_risk": 1, "churn_risk": 0}),
        date(2026, 3, 10): run(date(2026, 3, 10), {"healthy": 1, "at_risk": 1, "churn_risk": 2}),
    }
    builder = figures_of(period, source(runs=runs), now=period.end + timedelta(days=2))
    assert builder.figures is not None
    latest = builder.figures.reads.latest_run()
    assert latest is not None
    assert latest["as_of"] == "2026-03-09"
