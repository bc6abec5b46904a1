"""The report's cost and customer-health parts, pure over the document port (no emulator): the
documents are made by the cost and health capabilities' own code."""

from __future__ import annotations

from datetime import date

import pytest

from functions.cost.store import DAYS, SNAPSHOTS, day_to_doc
from functions.health.store import RUNS_COLLECTION
from functions.reports import documents
from functions.reports.business import cost_part, health_part, local_days, prorated
from functions.reports.documents import MemoryDocumentSource
from functions.reports.period import month, week
from tests.reports.business_docs import cost_day, days_of, health_run_doc, snapshot_doc

NY = "America/New_York"
WEEK = week("2026-W46", NY)  # Monday 9 to Sunday 15 November 2026; before it 2 to 8 November
WEEK_DAYS = days_of(date(2026, 11, 9), 7)
BEFORE_DAYS = days_of(date(2026, 11, 2), 7)


def test_the_collections_read_are_the_ones_the_capabilities_write() -> None:
    assert documents.COST_DAYS == DAYS
    assert documents.COST_SNAPSHOTS == SNAPSHOTS
    assert documents.HEALTH_RUNS == RUNS_COLLECTION


def source_with(
    days: dict[date, dict[str, str]],
    *,
    snapshots_on: list[date] = (),  # type: ignore[assignment]
    fallback: bool = False,
    runs: dict[date, dict[str, int]] | None = None,
) -> MemoryDocumentSource:
    history = {d: cost_day(d, services) for d, services in days.items()}
    return MemoryDocumentSource(
        {
            documents.COST_DAYS: {d.isoformat(): day_to_doc(c) for d, c in history.items()},
            documents.COST_SNAPSHOTS: {
                d.isoformat(): {
                    "as_of": d.isoformat(),
                    "snapshot": snapshot_doc(history, d, fallback=fallback),
                }
                for d in snapshots_on
            },
            documents.HEALTH_RUNS: {d.isoformat(): health_run_doc(d, c) for d, c in (runs or {}).items()},
        }
    )


def test_local_days_follow_the_period_zone_across_dst() -> None:
    # 2026-W45 holds the end of US daylight time (1 November 2026 is a Sunday; W45 starts 2 Nov).
    assert local_days(week("2026-W44", NY)) == days_of(date(2026, 10, 26), 7)
    assert local_days(week("2026-W45", NY), previous=True) == days_of(date(2026, 10, 26), 7)
    assert len(local_days(month("2026-02", NY))) == 28


def test_budget_is_prorated_by_each_days_own_month() -> None:
    assert prorated(3000, days_of(date(2026, 11, 1), 30)) == pytest.approx(3000)
    # A week across a month end: 3 days of October (31 days), 4 of November (30 days).
    assert prorated(3100, days_of(date(2026, 10, 29), 7)) == pytest.approx(3 * 100 + 4 * 3100 / 30)


def test_cost_of_the_week_against_the_prorated_target_and_budget() -> None:
    week_days = {d: {"Cloud Run": "40.00", "Firestore": "10.00"} for d in WEEK_DAYS}  # $350
    before = {d: {"Cloud Run": "30.00", "Firestore": "10.00"} for d in BEFORE_DAYS}  # $280
    source = source_with({**before, **week_days}, snapshots_on=[WEEK_DAYS[-1], BEFORE_DAYS[-1]])
    part = cost_part(source, WEEK, requests=1_000_000, requests_before=800_000)
    total, forecast, per_million = part.figures
    assert total.value == pytest.approx(350.0)
    assert total.previous == pytest.approx(280.0)
    assert total.change == "+25.0%"
    assert total.direction == "worse"
    # The $1,800 target over 7 November days is $420: $350 is under it.
    assert total.status == "ok"
    assert "$420.00" in total.target
    assert "$700.00" in total.target
    assert forecast.title.startswith("Month-end forecast (as of Nov 15)")
    assert forecast.value is not None
    assert forecast.value > 0
    assert per_million.value == pytest.approx(350.0)
    assert per_million.previous == pytest.approx(280.0 / 0.8)
    (by_service,) = part.tables
    assert [r.label for r in by_service.rows] == ["Cloud Run", "Firestore"]
    assert by_service.rows[0].share == pytest.approx(0.8)
    assert by_service.rows[0].change == f"{(0.8 - 30 / 40) * 100:+.2f} pts"
    assert part.notes == []


@pytest.mark.parametrize(("daily", "status"), [("59.00", "ok"), ("70.00", "warning"), ("101.00", "breach")])
def test_cost_under_target_is_ok_over_it_warns_and_over_budget_breaches(daily: str, status: str) -> None:
    # A week's target is $420 and its budget $700: $413 is under target, $490 over it, $707 over budget.
    source = source_with({d: {"Cloud Run": daily} for d in WEEK_DAYS}, snapshots_on=[WEEK_DAYS[-1]])
    part = cost_part(source, WEEK, requests=None, requests_before=None)
    assert part.figures[0].status == status
    assert part.figures[-1].value is None  # no requests: no per-request figure, not zero


def test_missing_days_and_a_fallback_source_are_said() -> None:
    source = source_with(
        {d: {"Cloud Run": "10.00"} for d in WEEK_DAYS[:5]}, snapshots_on=[WEEK_DAYS[4]], fallback=True
    )
    part = cost_part(source, WEEK, requests=10, requests_before=None)
    assert part.figures[0].value == pytest.approx(50.0)
    assert part.figures[0].change == "no data the period before"
    assert any("5 of 7 days" in n for n in part.notes)
    assert any("local fallback" in n and "not billed" in n for n in part.notes)


def test_no_cost_at_all_says_so_instead_of_zero() -> None:
    part = cost_part(MemoryDocumentSource(), WEEK, requests=100, requests_before=100)
    assert part.figures[0].value is None
    assert part.figures[0].text == "no data"
    assert part.figures[0].status == "info"
    assert any("No cost recorded for 2026-W46" in n for n in part.notes)
    assert any("budget and forecast are unknown" in n for n in part.notes)


def test_health_distribution_from_the_last_run_of_each_week() -> None:
    runs = {
        BEFORE_DAYS[-1]: {"healthy": 8, "at_risk": 1, "churn_risk": 1},
        WEEK_DAYS[2]: {"healthy": 1, "at_risk": 0, "churn_risk": 0},  # superseded by the last run
        WEEK_DAYS[-1]: {"healthy": 6, "at_risk": 2, "churn_risk": 2},
    }
    part = health_part(source_with({}, runs=runs), WEEK)
    (table,) = part.tables
    assert "10 customers scored Nov 15" in table.title
    rows = {r.label: r for r in table.rows}
    assert rows["Healthy"].share == pytest.approx(0.6)
    assert rows["Healthy"].previous_share == pytest.approx(0.8)
    assert rows["Healthy"].change == "-20.00 pts"
    assert rows["Churn risk"].text == "2 customers"
    (churn,) = part.figures
    assert churn.value == 2
    assert churn.previous == 1
    assert churn.direction == "worse"


def test_no_health_run_is_a_note() -> None:
    part = health_part(MemoryDocumentSource(), WEEK)
    assert part.tables == []
    assert part.figures == []
    assert "No customer health run in 2026-W46" in part.notes[0]
