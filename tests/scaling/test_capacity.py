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
