"""The incident records measured, pure over memory sources: MTTA and MTTR per priority (median,
mean, counts), the share within targets (pending ones left out), deadlines missed in a window,
open incidents with their age, the weekly trend, and an empty window said, never zeroed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from functions.reports.dashboard_build import build_dashboard
from functions.reports.incident_metrics import (
    duration_text,
    missed_in,
    outcome,
    priority_stats,
    within_share,
)
from functions.reports.incident_records import IncidentRecord, MemoryIncidentSource, record_of
from functions.reports.panels import load_catalog, parse_catalog
from functions.reports.period import day, day_until
from functions.reports.render import render_view
from functions.reports.source import MemoryAlertSource, Transition
from shared.metrics.query_model import QueryResult
from tests.reports.incident_docs import incident_doc

NOW = datetime(2026, 11, 18, 22, 0, tzinfo=UTC)
MIN, HOUR = timedelta(minutes=1), timedelta(hours=1)


def record(incident_id: str, priority: str, opened: datetime, **kw: timedelta) -> IncidentRecord:
    found = record_of(incident_id, incident_doc(incident_id, priority, opened, **kw))
    assert found is not None
    return found


class NoMetrics:
    def query(self, query):  # type: ignore[no-untyped-def]
        return QueryResult(metric=query.metric, agg=query.agg, series=[])


def test_mtta_and_mttr_per_priority_median_mean_and_counts() -> None:
    opened = NOW - 10 * HOUR
    records = [
        record("a", "P1", opened, acknowledged_after=5 * MIN, resolved_after=1 * HOUR),
        record("b", "P1", opened, acknowledged_after=10 * MIN, resolved_after=2 * HOUR),
        record("c", "P1", opened, acknowledged_after=45 * MIN, resolved_after=6 * HOUR),
        record("d", "P3", opened, acknowledged_after=2 * HOUR),
    ]
    p1, p3 = priority_stats(records, NOW)
    assert (p1.priority, p1.opened, p1.acknowledged, p1.resolved) == ("P1", 3, 3, 3)
    assert p1.mtta_median_seconds == 600
    assert p1.mtta_mean_seconds == pytest.approx((5 + 10 + 45) * 60 / 3)
    assert p1.mttr_median_seconds == 7200
    assert p1.mttr_mean_seconds == pytest.approx(3 * 3600)
    # c acknowledged after 45 min (target 15) and resolved after 6 h (target 4 h).
    assert (p1.within_target, p1.missed_target, p1.pending) == (2, 1, 0)
    assert p1.status == "breach"
    assert (p3.priority, p3.acknowledged, p3.resolved, p3.pending) == ("P3", 1, 0, 1)
    assert p3.mttr_mean_seconds is None
    assert "none resolved yet" in p3.text
    assert p3.respond_target_seconds == 4 * 3600
    assert p3.resolve_target_seconds == 3 * 86400


def test_within_target_leaves_pending_out_and_a_resolve_answers_an_unacknowledged_incident() -> None:
    opened = NOW - 2 * HOUR
    quick_fix = record("q", "P1", opened, resolved_after=10 * MIN)  # nobody acknowledged: resolved in time
    late_ack = record("l", "P2", opened, acknowledged_after=90 * MIN)
    still_open = record("o", "P3", opened, acknowledged_after=30 * MIN)  # deadlines ahead
    assert outcome(quick_fix, NOW) == "within"
    assert outcome(late_ack, NOW) == "missed"
    assert outcome(still_open, NOW) == "pending"
    share, within, decided = within_share([quick_fix, late_ack, still_open], NOW)
    assert (share, within, decided) == (0.5, 1, 2)
    assert within_share([still_open], NOW) == (None, 0, 0)


def test_deadlines_missed_in_a_window_are_the_ones_that_fell_in_it() -> None:
    day_start = NOW - 24 * HOUR
    # Opened 3 days and 2 h ago as P3: its resolve deadline fell in the last day, unmet.
    old = record("old", "P3", NOW - 74 * HOUR, acknowledged_after=HOUR)
    # Opened today, acknowledged late.
    late = record("late", "P1", NOW - 3 * HOUR, acknowledged_after=20 * MIN, resolved_after=HOUR)
    fine = record("fine", "P2", NOW - 3 * HOUR, acknowledged_after=5 * MIN, resolved_after=HOUR)
    # Missed its response deadline two days ago: not this window's miss.
    earlier = record("earlier", "P1", NOW - 50 * HOUR, acknowledged_after=HOUR, resolved_after=2 * HOUR)
    missed = missed_in([old, late, fine, earlier], day_start, NOW, NOW)
    assert sorted(r.id for r in missed) == ["late", "old"]


def test_the_incidents_dashboard_measures_lists_and_trends() -> None:
    records = [
        record("a", "P1", NOW - 5 * HOUR, acknowledged_after=5 * MIN, resolved_after=HOUR),
        record("b", "P1", NOW - 4 * HOUR, acknowledged_after=30 * MIN, resolved_after=3 * HOUR),
        record("open", "P2", NOW - 2 * HOUR, region="europe-west1"),
        record("old", "P4", NOW - 20 * 24 * HOUR, acknowledged_after=HOUR, resolved_after=5 * HOUR),
    ]
    transitions = [
        Transition(
            fingerprint="f1",
            rule="error-rate-high",
            state="firing",
            severity="high",
            starts_at=NOW - 3 * HOUR,
            evaluated_at=NOW - 3 * HOUR,
        )
    ]
    catalog = load_catalog()
    view = build_dashboard(
        catalog.dashboards["incidents"],
        NoMetrics(),
        MemoryAlertSource(transitions=transitions),
        window="24h",
        region=None,
        now=NOW,
        incidents=MemoryIncidentSource(records),
    )
    panels = {p.id: p for p in view.panels}
    assert panels["opened"].value == 3
    # a within; b acknowledged and resolved late; the open one is past its 1 h response deadline.
    assert panels["within_target"].value == pytest.approx(1 / 3)
    assert panels["within_target"].text == "33.3% (1 of 3)"
    assert panels["within_target"].status == "breach"
    assert panels["mttr"].value == pytest.approx(2 * 3600)
    assert panels["mttr"].text.startswith("2 h 00 min")
    assert panels["mtta"].value == pytest.approx(17.5 * 60)
    assert [r.priority for r in panels["response"].priorities] == ["P1", "P2"]
    # The open incident with its age; its response deadline passed an hour ago.
    (still,) = panels["open"].records
    assert still.id == "open"
    assert still.age_seconds == 2 * 3600
    assert still.missed_response
    assert panels["open"].status == "breach"
    assert {r.id for r in panels["missed_list"].records} == {"b", "open"}
    assert panels["missed"].value == 2
    assert [(r.label, r.value) for r in panels["alerts_by_severity"].rows] == [
        ("critical", 0),
        ("high", 1),
        ("medium", 0),
        ("low", 0),
    ]
    trend = panels["mttr_trend"]
    assert len(trend.rows) == 8
    assert trend.rows[0].value == pytest.approx(2 * 3600)  # this week: a and b
    assert [r.value for r in trend.rows if r.value is not None] == [pytest.approx(7200), 5 * 3600]
    assert len(trend.series[0].points) == 2
    # The region filter keeps incidents of that region (and those without one).
    eu = build_dashboard(
        catalog.dashboards["incidents"],
        NoMetrics(),
        MemoryAlertSource(),
        window="24h",
        region="europe-west1",
        now=NOW,
        incidents=MemoryIncidentSource(records),
    )
    assert {p.id: p for p in eu.panels}["opened"].value == 1
    text = render_view(view, "text", catalog)
    assert "P1 critical: 2 incidents: MTTA median 17 min" in text
    assert "open for 2 h 00 min" in text


def test_an_empty_window_says_so_instead_of_zeros() -> None:
    catalog = load_catalog()
    view = build_dashboard(
        catalog.dashboards["incidents"],
        NoMetrics(),
        MemoryAlertSource(),
        window="24h",
        region=None,
        now=NOW,
        incidents=MemoryIncidentSource([]),
    )
    panels = {p.id: p for p in view.panels}
    for measured in ("within_target", "mttr", "mtta"):
        assert panels[measured].value is None
        assert panels[measured].text == "no incident"
        assert panels[measured].status == "info"
        assert "nothing to measure" in panels[measured].note
    assert panels["response"].priorities == []
    assert panels["open"].note == "No incident is open."
    assert panels["mttr_trend"].rows == []
    assert "No incident in the last 8 weeks" in panels["mttr_trend"].note
    markdown = render_view(view, "markdown", catalog)
    assert "0.00%" not in markdown
    assert "0 s" not in markdown
    # Not read at all is another thing: said as not read.
    unread = build_dashboard(
        catalog.dashboards["incidents"], NoMetrics(), MemoryAlertSource(), window="1h", region=None, now=NOW
    )
    assert {p.id: p for p in unread.panels}["mttr"].status == "no_data"


def test_a_document_that_is_not_an_incident_is_left_out() -> None:
    doc = incident_doc("x", "P1", NOW)
    doc["priority"] = "urgent"
    assert record_of("x", doc) is None
    doc = incident_doc("y", "P1", NOW)
    del doc["respond_by"]
    assert record_of("y", doc) is None


def test_incident_panels_need_a_measure() -> None:
    bad = {
        "dashboards": {"x": {"title": "X", "panels": [{"id": "p", "title": "P", "kind": "incident_stat"}]}}
    }
    with pytest.raises(ValueError, match="needs `measure`"):
        parse_catalog(bad)


def test_the_day_so_far_and_the_same_hours_the_day_before_across_dst() -> None:
    # 17:00 in New York on the Monday after DST ended (Sun 1 Nov 2026): the day before was 25 h.
    at = datetime(2026, 11, 2, 22, 0, tzinfo=UTC)
    period = day_until(at, "America/New_York")
    assert period.label == "2026-11-02"
    assert period.kind == "day"
    assert period.start == datetime(2026, 11, 2, 5, 0, tzinfo=UTC)
    assert period.end == at
    assert period.previous_label == "2026-11-01"
    assert period.previous_start == datetime(2026, 11, 1, 4, 0, tzinfo=UTC)
    assert period.previous_end == datetime(2026, 11, 1, 22, 0, tzinfo=UTC)  # 17:00 EST that day
    whole = day("2026-11-01", "America/New_York", until=at)
    assert whole.end - whole.start == timedelta(hours=25)
    assert whole.previous_end == whole.start


def test_durations_read_as_people_say_them() -> None:
    assert [duration_text(s) for s in (42, 900, 7500, 3 * 86400 + 4 * 3600)] == [
        "42 s",
        "15 min",
        "2 h 05 min",
        "3 d 04 h",
    ]


@pytest.mark.parametrize(("daily", "status"), [("40.00", "ok"), ("70.00", "warning"), ("110.00", "breach")])
def test_cost_so_far_is_the_snapshots_month_to_date_against_the_prorated_target(
    daily: str, status: str
) -> None:
    from functions.reports.daily import cost_so_far_part
    from functions.reports.documents import MemoryDocumentSource
    from tests.reports.business_docs import cost_day, days_of, snapshot_doc

    days = days_of(datetime(2026, 11, 1).date(), 17)
    history = {d: cost_day(d, {"Cloud Run": daily}) for d in days}
    snapshot = snapshot_doc(history, days[-1])
    documents = MemoryDocumentSource(
        {"cost_snapshots": {"2026-11-17": {"as_of": "2026-11-17", "snapshot": snapshot}}}
    )
    # 17:00 New York on 18 Nov: today's snapshot is not taken yet; the 17th's is used and said.
    part = cost_so_far_part(
        documents, day_until(datetime(2026, 11, 18, 22, 0, tzinfo=UTC), "America/New_York")
    )
    so_far, forecast = part.figures
    assert so_far.value == pytest.approx(17 * float(daily))
    assert so_far.title == "Cost so far in November (17 days, to Nov 17)"
    target = snapshot["budget"]["target"] * 17 / 30
    assert f"<= ${target:,.2f}" in so_far.target
    assert so_far.status == status
    assert forecast.value == snapshot["forecast_month_end"]["total"]
    assert any("latest cost snapshot is of 2026-11-17, not 2026-11-18" in n for n in part.notes)
    nothing = cost_so_far_part(MemoryDocumentSource(), day("2026-11-18", "America/New_York"))
    assert nothing.figures == []
    assert "the cost so far is unknown" in nothing.notes[0]
