"""Forecast of the peak request rate (requests per minute) of the next ``window_minutes`` (30)
with an uncertainty band. Pure: no I/O, the same code in the function, the replay CLI and the bench.

With quarter-hour peaks recorded (``History.quarter_peak``): per quarter-hour overlapping the
window, the median over the seasonal lags of that local quarter's busiest minute, each scaled by
the recent level at that lag; the largest quarter wins. Without them (the first days), the hourly
model below, per target hour (the current clock hour and the next, in the region's time zone):

- Seasonal candidates: the same local hour 7 and 14 days before (weekly seasonality) and on the
  two most recent days of the same kind (weekday or weekend) within the last 6 days (daily
  seasonality), from at most 14 days of hourly means.
- Recent level: each candidate is scaled by how the last 3 hours (and the current partial hour)
  compare with the same hours at that lag, clamped to [0.5, 2] so a burst cannot run away.
- Outages: zero runs of ``outage_minutes`` or more are not traffic (dropped before any mean is
  taken), and a candidate below ``outage_ratio`` of the largest one is dropped as an outage or a
  gap that the hourly store recorded as quiet. An outage never teaches the model a quiet hour.
- The hourly mean forecast is the median of the candidates; the peak within the hour is that mean
  times the recent peak-to-mean ratio of the per-minute counts.
- Band: the empirical quantiles of past errors (log of realised peak over forecast peak), which
  the policy records causally; a fixed band until there are enough of them.
- Fallback when history is under 2 days or no candidate exists: the recent level (last hour),
  with a wider band.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from functions.scaling.time_grid import (
    DAY,
    HOUR,
    MINUTE,
    QUARTER,
    floor_hour,
    floor_minute,
    floor_quarter,
    lagged_hour,
    lagged_quarter,
    seasonal_lags,
)

RECENT_MINUTES = 130  # what a decision needs at minute resolution: two hours plus slack


@dataclass(frozen=True)
class ForecastConfig:
    history_days: int = 14
    min_history_days: float = 2.0
    recent_hours: int = 3
    level_low: float = 0.5
    level_high: float = 2.0
    outage_minutes: int = 10
    outage_ratio: float = 0.25
    default_peak_factor: float = 1.25
    min_peak_factor: float = 1.05
    band_quantile: float = 0.6
    lower_quantile: float = 0.1
    default_band: float = 1.3
    fallback_band: float = 1.5
    min_errors: int = 24
    max_errors: int = 576  # two days of 5-minute decisions
    recent_peak_minutes: int = 10
    min_served_minutes: int = 20  # an hour with fewer served minutes has no mean or peak
    peak_delay_minutes: int = 5  # an hour's peak is recorded once its last minutes are in
    # With quarter-hour peaks recorded: the peak forecast is of the next ``window_minutes`` (the
    # next decision comes in 5, the platform reacts in 2, an instance starts in seconds), not of
    # the clock hour and the next: holding an hour's peak all hour is most of the cost.
    window_minutes: int = 30
    min_served_quarter: int = 5  # a quarter-hour with fewer served minutes has no peak


@dataclass(frozen=True)
class History:
    """What one decision reads. ``hourly``: UTC hour start -> mean requests per minute over the
    hour's served minutes (complete hours only, at most ``history_days`` back). ``recent``: UTC
    minute start -> requests in that minute, for the last ``RECENT_MINUTES`` before the decision;
    missing minutes absent. ``first_seen``: the earliest time with data (for the 2-day fallback)."""

    hourly: Mapping[datetime, float]
    recent: Mapping[datetime, float]
    first_seen: datetime | None
    hourly_peak: Mapping[datetime, float] | None = None  # the hour's busiest minute, when known
    quarter_peak: Mapping[datetime, float] | None = None  # each quarter-hour's busiest minute


@dataclass(frozen=True)
class Forecast:
    point: float  # forecast peak requests/min over the next hour
    lower: float
    upper: float
    hourly_mean: float
    peak_factor: float
    recent_peak: float
    method: str  # "seasonal", "fallback", "no-data"
    lags_days: list[int] = field(default_factory=list)
    level: float = 1.0
    window_minutes: int = 60  # the span the peak is forecast for, from the decision on


def drop_outages(minutes: Mapping[datetime, float], run: int) -> dict[datetime, float]:
    """The minutes outside zero runs of ``run`` consecutive minutes or more (outages, not quiet)."""
    if 0 not in minutes.values() and 0.0 not in minutes.values():
        return dict(minutes)
    kept: dict[datetime, float] = {}
    zeros: list[datetime] = []
    previous: datetime | None = None
    for minute in sorted(minutes):
        value = minutes[minute]
        contiguous = previous is not None and minute - previous == MINUTE
        if value == 0 and zeros and contiguous:
            zeros.append(minute)
        else:
            if zeros and len(zeros) < run:
                kept.update((z, 0.0) for z in zeros)
            zeros = []
            if value == 0:
                zeros.append(minute)
            else:
                kept[minute] = value
        previous = minute
    if len(zeros) < run:
        kept.update((z, 0.0) for z in zeros)
    return kept


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of an already sorted sequence."""
    if not sorted_values:
        raise ValueError("no values")
    position = q * (len(sorted_values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def forecast(
    history: History, at: datetime, zone: ZoneInfo, errors: Sequence[float], config: ForecastConfig
) -> Forecast:
    now = floor_minute(at.astimezone(UTC))
    served = drop_outages(history.recent, config.outage_minutes)
    last_hour = [v for m, v in served.items() if now - HOUR <= m < now]
    previous_hour = [v for m, v in served.items() if now - 2 * HOUR <= m < now - HOUR]
    recent_peak = max(
        (v for m, v in served.items() if m >= now - config.recent_peak_minutes * MINUTE), default=0.0
    )
    peak_factor = _peak_factor(last_hour, previous_hour, config)

    h0 = floor_hour(now)
    current = [v for m, v in served.items() if m >= h0]
    recent: list[tuple[datetime, float]] = []
    for back in range(1, config.recent_hours + 1):
        value = history.hourly.get(h0 - back * HOUR)
        if value is not None:
            recent.append((h0 - back * HOUR, value))
    if len(current) >= 10:
        recent.append((h0, _mean(current)))

    enough = history.first_seen is not None and now - history.first_seen >= config.min_history_days * DAY
    means: list[float] = []
    used: set[int] = set()
    levels: list[float] = []
    if enough:
        for target in (h0, h0 + HOUR):
            candidates: list[tuple[int, float, float]] = []
            for days in seasonal_lags(target.astimezone(zone)):
                if days > config.history_days:
                    continue
                lagged = lagged_hour(target, days, zone)
                base = history.hourly.get(lagged)
                if base is None:
                    continue
                if history.hourly_peak is not None and lagged in history.hourly_peak:
                    # A known peak carries the hour's own shape; scaled to the mean's units here.
                    base = history.hourly_peak[lagged] / peak_factor
                level = _level(recent, history.hourly, days, zone, config)
                candidates.append((days, base * level, level))
            if not candidates:
                continue
            top = max(c[1] for c in candidates)
            candidates = [c for c in candidates if c[1] >= config.outage_ratio * top]
            means.append(_median([c[1] for c in candidates]))
            used.update(c[0] for c in candidates)
            levels.extend(c[2] for c in candidates)

    window = 60
    quarter_point = (
        _quarter_point(history, now, recent=recent, zone=zone, config=config, used=used, levels=levels)
        if enough
        else None
    )
    if quarter_point is not None:
        hourly_mean = max(means) if means else quarter_point / peak_factor
        method = "seasonal"
        point, window = quarter_point, config.window_minutes
        lower, upper = _band(point, errors, config)
    elif means:
        hourly_mean = max(means)
        method = "seasonal"
        point = hourly_mean * peak_factor
        lower, upper = _band(point, errors, config)
    else:
        level_values = last_hour or previous_hour
        if level_values:
            hourly_mean = _mean(level_values)
        else:
            hourly_mean = next(
                (history.hourly[h0 - b * HOUR] for b in range(1, 4) if h0 - b * HOUR in history.hourly), 0.0
            )
        method = "fallback" if (level_values or hourly_mean) else "no-data"
        point = hourly_mean * peak_factor
        lower, upper = point / config.fallback_band, point * config.fallback_band
    upper = max(upper, recent_peak)
    return Forecast(
        point=point,
        lower=lower,
        upper=upper,
        hourly_mean=hourly_mean,
        peak_factor=peak_factor,
        recent_peak=recent_peak,
        method=method,
        lags_days=sorted(used),
        level=_mean(levels) if levels else 1.0,
        window_minutes=window,
    )


def _quarter_point(
    history: History,
    now: datetime,
    *,
    recent: list[tuple[datetime, float]],
    zone: ZoneInfo,
    config: ForecastConfig,
    used: set[int],
    levels: list[float],
) -> float | None:
    """The busiest minute forecast over [now, now + window): per quarter-hour overlapping it, the
    median of the same local quarter's recorded peak at the seasonal lags, each scaled by the
    recent level at that lag; the largest. None when no quarter has a candidate."""
    if not history.quarter_peak:
        return None
    values: list[float] = []
    quarter = floor_quarter(now)
    while quarter < now + config.window_minutes * MINUTE:
        candidates: list[tuple[int, float, float]] = []
        for days in seasonal_lags(quarter.astimezone(zone)):
            if days > config.history_days:
                continue
            base = history.quarter_peak.get(lagged_quarter(quarter, days, zone))
            if base is None:
                continue
            level = _level(recent, history.hourly, days, zone, config)
            candidates.append((days, base * level, level))
        quarter += QUARTER
        if not candidates:
            continue
        top = max(c[1] for c in candidates)
        candidates = [c for c in candidates if c[1] >= config.outage_ratio * top]
        values.append(_median([c[1] for c in candidates]))
        used.update(c[0] for c in candidates)
        levels.extend(c[2] for c in candidates)
    return max(values) if values else None


def _peak_factor(last_hour: list[float], previous_hour: list[float], config: ForecastConfig) -> float:
    ratios = [
        max(values) / _mean(values)
        for values in (last_hour, previous_hour)
        if len(values) >= 30 and _mean(values) > 0
    ]
    if not ratios:
        return config.default_peak_factor
    return max(config.min_peak_factor, _mean(ratios))


def _level(
    recent: list[tuple[datetime, float]],
    hourly: Mapping[datetime, float],
    days: int,
    zone: ZoneInfo,
    config: ForecastConfig,
) -> float:
    actual = lagged = 0.0
    for hour, value in recent:
        before = hourly.get(lagged_hour(hour, days, zone))
        if before is None:
            continue
        actual += value
        lagged += before
    if lagged <= 0 or actual <= 0:
        return 1.0
    return min(config.level_high, max(config.level_low, actual / lagged))


def _band(point: float, errors: Sequence[float], config: ForecastConfig) -> tuple[float, float]:
    if len(errors) < config.min_errors:
        return point / config.default_band, point * config.default_band
    ordered = sorted(errors)
    high = quantile(ordered, config.band_quantile)
    low = min(high, quantile(ordered, config.lower_quantile))
    return point * math.exp(low), point * math.exp(high)


def realised_error(
    made_at: datetime,
    point: float,
    recent: Mapping[datetime, float],
    config: ForecastConfig,
    window_minutes: int = 60,
) -> float | None:
    """log(realised peak / forecast peak) for a forecast made at ``made_at`` over the next
    ``window_minutes``, once they are over; None when half of them had no served minute or
    nothing was forecast."""
    start = floor_minute(made_at)
    span = window_minutes * MINUTE
    served = drop_outages(
        {m: v for m, v in recent.items() if start - HOUR <= m < start + span}, config.outage_minutes
    )
    window = [v for m, v in served.items() if m >= start]
    if len(window) < window_minutes / 2 or point <= 0:
        return None
    peak = max(window)
    if peak <= 0:
        return None
    return math.log(peak / point)
