"""Calendar edges of the document-backed figures: a report's days are the local calendar days of
its period (the billing export's days and the health runs' are dates too), so a week in New York
is seven days, not the eight UTC dates its instants touch, and a month's quarter is its own."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from functions.reports.audiences import load_audiences
from functions.reports.build import PanelBuilder
from functions.reports.figures import DocumentFigures
from functions.reports.mailing import choose_period
from functions.reports.panels import load_catalog
from functions.reports.period import Period, month, week
from functions.reports.report import build_report
from functions.reports.settings import ReportsSettings
from functions.reports.source import MemoryAlertSource
from functions.reports.svg import clock
from shared.metrics.fold import Accumulator, Fold
from shared.metrics.query_model import MetricQuery, QueryResult
from tests.reports.cs_finance_docs import snapshot, source

CATALOG = load_catalog()
SETTINGS = ReportsSettings()
AUDIENCES = load_audiences(SETTINGS.audiences_file, SETTINGS.dashboards_file)


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


class Requests:
    """One request answered 200 and one 500 at noon (local) of every day, folded by the query
    module itself (with the query's local days when it asks for them)."""

    def __init__(self, days: list[date], zone: str) -> None:
        tz = ZoneInfo(zone)
        self.samples = [
            ({"http.response.status_code": status}, datetime.combine(d, time(12), tzinfo=tz), 1.0)
            for d in days
            for status in ("200", "500")
        ]

    def query(self, query: MetricQuery) -> QueryResult:
        local = {"step_zone": query.step_zone} if "step_zone" in MetricQuery.model_fields else {}
        fold = Fold(
            query.agg, query.start, query.end, query.step, query.labels, query.group_by, query.across, **local
        )
        for labels, when, value in self.samples:
            if query.start <= when < query.end and fold.accepts(labels):
                index = fold.index((when - query.start).total_seconds())
                fold.group(labels).steps.setdefault(index, Accumulator()).add_samples(
                    [value], increment=False
                )
        return QueryResult(metric=query.metric, agg=query.agg, series=fold.series())


@pytest.mark.parametrize(("label", "zone"), [("2026-11", "America/New_York"), ("2026-03", "Europe/Brussels")])
def test_a_months_chart_has_one_point_per_local_day_at_its_midnight(label: str, zone: str) -> None:
    # November 2026 starts with New York's 25-hour day; March 2026 holds Brussels' 23-hour day (29th).
    period = month(label, zone)
    tz = ZoneInfo(zone)
    first = period.start.astimezone(tz).date()
    days = [first + timedelta(days=i) for i in range((period.end.astimezone(tz).date() - first).days)]
    report = build_report(
        AUDIENCES.audiences["leadership"],
        period,
        CATALOG,
        Requests(days, zone),
        MemoryAlertSource(),
        documents=source(),
        now=period.end + timedelta(hours=10),
    )
    [uptime] = [s for s in report.sections if s.id == "uptime"]
    assert uptime.chart is not None
    [series] = uptime.chart.panel.series
    assert [at.astimezone(tz) for at, _ in series.points] == [
        datetime.combine(d, time(0), tzinfo=tz) for d in days
    ]
    assert {value for _, value in series.points} == {0.5}
    labels = [clock(at, (period.end - period.start).total_seconds(), tz) for at, _ in series.points]
    assert len(set(labels)) == len(days)


def test_local_day_steps_are_23_to_25_hours_and_need_a_days_step() -> None:
    period = month("2026-11", "America/New_York")
    fold = Fold("rate", period.start, period.end, 86_400, {}, [], step_zone="America/New_York")
    assert fold.step_starts is not None
    edges = [*fold.step_starts, period.end]
    hours = [(b - a).total_seconds() / 3600 for a, b in itertools.pairwise(edges)]
    assert hours == [25.0] + [24.0] * 29
    first_day = fold.start + timedelta(hours=24, minutes=30)  # 23:30 on 1 November: still that day
    assert fold.index((first_day - fold.start).total_seconds()) == 0
    fold.group({}).steps.setdefault(0, Accumulator()).add_samples([1.0], increment=False)
    [series] = fold.series()
    assert series.points[0][1] == pytest.approx(1 / 90_000)  # one sample over the day's 25 hours
    with pytest.raises(ValueError, match="step_zone needs step 86400"):
        MetricQuery(metric="m", agg="count", start=period.start, end=period.end, step=3600, step_zone="UTC")
    with pytest.raises(ValueError, match="not an IANA time zone"):
        MetricQuery(
            metric="m", agg="count", start=period.start, end=period.end, step=86_400, step_zone="Mars/Base"
        )


@pytest.mark.parametrize(
    ("kind", "scheduled", "label", "hours"),
    [
        # The Monday after New York's spring change: the week of 2 to 8 March, 167 hours.
        ("week", datetime(2026, 3, 9, 13, tzinfo=UTC), "2026-W10", 167),
        # The Monday after its autumn change: the week of 26 October to 1 November, 169 hours.
        ("week", datetime(2026, 11, 2, 14, tzinfo=UTC), "2026-W44", 169),
        # 10:00 on 1 November (EST): October, 744 hours (31 days, no change inside it).
        ("month", datetime(2026, 11, 1, 15, tzinfo=UTC), "2026-10", 744),
        # 10:00 on 1 April (EDT): March, 743 hours.
        ("month", datetime(2026, 4, 1, 14, tzinfo=UTC), "2026-03", 743),
        # 17:00 on 1 November (EST): the day so far is 18 hours (01:00 happened twice).
        ("day", datetime(2026, 11, 1, 22, tzinfo=UTC), "2026-11-01", 18),
        # 17:00 on 8 March (EDT): 16 hours (02:00 never happened).
        ("day", datetime(2026, 3, 8, 21, tzinfo=UTC), "2026-03-08", 16),
    ],
)
def test_the_scheduled_time_names_the_period_across_dst(
    kind: str, scheduled: datetime, label: str, hours: int
) -> None:
    # A retry hours later (or a clock read after the schedule time) names the same period.
    chosen = choose_period(
        kind=kind,
        week=None,
        month=None,
        zone_name="America/New_York",
        reference=scheduled,
        now=scheduled + timedelta(hours=5),
    )
    assert (chosen.label, chosen.hours) == (label, hours)


def test_the_incident_trend_of_a_new_york_report_is_in_its_local_weeks() -> None:
    from functions.reports.incident_records import MemoryIncidentSource, record_of
    from tests.reports.incident_docs import incident_doc

    # 23:30 on Sunday 1 March in New York (EST) is 04:30 UTC on 2 March: the week of 23 February.
    # Eight 168-hour spans back from 16 March 00:00 EDT would start each earlier week at 23:00.
    opened = datetime(2026, 3, 2, 4, 30, tzinfo=UTC)
    found = record_of(
        "late-sunday", incident_doc("late-sunday", "P2", opened, resolved_after=timedelta(hours=1))
    )
    assert found is not None
    period = week("2026-W11", "America/New_York")
    report = build_report(
        AUDIENCES.audiences["leadership"],
        period,
        CATALOG,
        NoMetrics(),
        MemoryAlertSource(),
        documents=source(),
        now=period.end + timedelta(hours=10),
        incidents=MemoryIncidentSource([found]),
    )
    trend = next(p for s in report.sections for p in s.panels if p.id == "mttr_trend")
    values = {row.label: row.value for row in trend.rows}
    assert values["week of 2026-02-23"] == pytest.approx(3600)
    assert values["week of 2026-03-02"] is None
    tz = ZoneInfo("America/New_York")
    assert [at.astimezone(tz).time() for at, _ in trend.series[0].points] == [time(0)]


def test_a_time_shown_as_utc_is_converted_to_utc() -> None:
    from functions.reports.render import iso

    # 03:30 in Brussels on the morning its clocks jump (CEST, +02:00) is 01:30 UTC.
    assert iso(datetime(2026, 3, 29, 3, 30, tzinfo=ZoneInfo("Europe/Brussels"))) == "2026-03-29 01:30 UTC"
    assert iso(datetime(2026, 3, 29, 1, 30, tzinfo=UTC)) == "2026-03-29 01:30 UTC"
