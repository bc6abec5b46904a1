"""The capacity forecast: trend and weekly seasonality from daily peaks, and honesty about short
history."""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta

from functions.scaling.capacity import DailyPeak, daily_peaks, forecast_capacity

START = date(2026, 1, 5)  # a Monday


def peaks(days: int, growth: float = 0.005, seed: int = 3) -> list[DailyPeak]:
    rng = random.Random(seed)
    out = []
    for k in range(days):
        day = START + timedelta(days=k)
        weekly = 0.6 if day.weekday() >= 5 else 1.0
        peak = 1000 * (1 + growth) ** k * weekly * math.exp(rng.gauss(0, 0.03))
        out.append(DailyPeak(region="r", date=day, peak_rpm=peak, mean_rpm=peak * 0.5, hours=24))
    return out


def test_trend_and_band_from_enough_history() -> None:
    history = peaks(120)
    as_of = history[-1].date
    result = forecast_capacity("r", history, as_of, capacity_rpm=100, headroom=0.25)
    assert result.trend_per_day is not None
    assert abs(result.trend_per_day - 0.005) < 0.001
    by = {h.horizon_days: h for h in result.horizons}
    assert by[30].enough_history
    assert by[90].enough_history
    # The busiest weekday 30 days on: 1000 x 1.005^(119+30) on a weekday.
    expected = 1000 * 1.005 ** (119 + 30)
    assert by[30].peak_rpm is not None
    assert abs(by[30].peak_rpm / expected - 1) < 0.08
    assert by[30].peak_rpm_low < by[30].peak_rpm < by[30].peak_rpm_high
    assert by[90].peak_rpm > by[30].peak_rpm  # growth continues
    assert (by[90].peak_rpm_high - by[90].peak_rpm_low) > (by[30].peak_rpm_high - by[30].peak_rpm_low)
    assert by[30].instances_needed == math.ceil(by[30].peak_rpm / 100 * 1.25 - 1e-9)
    assert by[30].monthly_cost_usd > 0
    # 120 days: a year ahead needs 122.
    assert not by[365].enough_history
    assert "122 needed" in by[365].note


def test_short_history_says_so() -> None:
    result = forecast_capacity("r", peaks(10), START + timedelta(days=9), capacity_rpm=100)
    assert all(not h.enough_history for h in result.horizons)
    assert "history too short: 10 days" in result.horizons[0].note
    assert result.horizons[0].instances_needed is None
    empty = forecast_capacity("r", [], START, capacity_rpm=100)
    assert empty.history_days == 0


def test_daily_peak_from_hourly_means() -> None:
    day = date(2026, 3, 2)
    hourly = {datetime(2026, 3, 2, h, tzinfo=UTC): float(100 + h) for h in range(24)}
    hourly[datetime(2026, 3, 3, 0, tzinfo=UTC)] = 9999.0  # the next day
    peak = daily_peaks("r", hourly, day)
    assert peak is not None
    assert peak.peak_rpm == 123
    assert peak.hours == 24
    assert daily_peaks("r", hourly, date(2026, 3, 5)) is None


class GrowingHistory:
    """Hourly means growing 2% a day: 120 days of history reach past the metric store's 90."""

    def __init__(self, base: float) -> None:
        self.base = base
        self.calls: list[tuple[datetime, datetime]] = []

    def hourly_requests(self, start, end, services):  # type: ignore[no-untyped-def]
        self.calls.append((start, end))
        out: dict[str, dict[datetime, float]] = {}
        hour = start
        while hour < end:
            day = (hour.date() - START).days
            if day < 0:  # no traffic before START
                hour += timedelta(hours=1)
                continue
            load = self.base * 1.02**day * (1.0 if 8 <= hour.hour < 18 else 0.3)
            for region in services:
                out.setdefault(region, {})[hour] = load
            hour += timedelta(hours=1)
        return out


def test_capacity_job_keeps_peaks_and_announces_an_outgrown_ceiling() -> None:
    from functions.scaling.capacity import run_capacity_job
    from functions.scaling.rules import RuleSet
    from functions.scaling.settings import ScalingSettings
    from functions.scaling.store import MemoryCapacityStore

    rules = RuleSet.model_validate(
        {
            "regions": {
                "small": {"time_zone": "UTC", "floor": 1, "max_instances": 10, "capacity_rpm": 100},
                "large": {
                    "time_zone": "UTC",
                    "floor": 1,
                    "max_instances": 10,
                    "capacity_rpm": 100,
                    "rules": [{"name": "peak", "start": "08:00", "end": "18:00", "min": 1, "max": 1000}],
                },
            }
        }
    )
    store = MemoryCapacityStore()
    history = GrowingHistory(base=400.0)
    notices: list = []
    first_run = datetime(2026, 1, 15, 4, 15, tzinfo=UTC)  # 10 days after the first traffic
    run_capacity_job(
        now=first_run,
        rules=rules,
        settings=ScalingSettings(),
        history=history,
        store=store,
        announce=notices.append,
    )
    assert not notices  # 10 days of history forecast nothing, so nothing is announced
    assert len(store.peaks("small")) == 10
    later = datetime(2026, 5, 6, 4, 15, tzinfo=UTC)  # 121 days after the first traffic
    forecasts = run_capacity_job(
        now=later,
        rules=rules,
        settings=ScalingSettings(),
        history=history,
        store=store,
        announce=notices.append,
    )
    # Peaks outlive the store's 90 days: the first run's days are still there.
    assert len(store.peaks("small")) == 10 + 89
    assert min(doc["date"] for doc in store.peaks("small")) == START.isoformat()
    assert store.saved["small"]["computed_at"] == later.isoformat()
    thirty = {h.horizon_days: h for h in forecasts["small"].horizons}[30]
    assert thirty.enough_history
    assert thirty.instances_needed_high is not None
    assert thirty.instances_needed_high > 10
    # Only the region whose ceiling (its peak rule's max 1000) is outgrown is announced, per horizon.
    announced = [(n.labels["region"], n.labels["horizon"]) for n in notices]
    assert ("small", "30d") in announced
    assert all(region == "small" for region, _ in announced)
    assert all(n.severity == "low" for n in notices)
    # A re-run the same month announces the same notices (fan-out sends each id once).
    again: list = []
    run_capacity_job(
        now=later + timedelta(hours=2),
        rules=rules,
        settings=ScalingSettings(),
        history=history,
        store=store,
        announce=again.append,
    )
    assert [n.transition_id for n in again] == [n.transition_id for n in notices[-len(again) :]]
