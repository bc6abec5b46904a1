"""The "lead the autoscaler" target for the min, one of the targets the online selection
(``select.py``) chooses between. Pure: no I/O.

The platform's own autoscaler already keeps what the last 15 minutes needed (less its 2-minute
reaction time), so a min only has to cover what comes *above* that: the rises. The target is

    min = ceil(max(recent peak x expected growth x e^margin, recent peak) / capacity)

- recent peak: the busiest served minute of the last ``lookback_minutes`` (13), leaving out the
  last ``lag_minutes`` (2: a metric still arriving reads low);
- expected growth: how the same local time grew at the seasonal lags, from the recorded
  quarter-hour peaks: the peak of the quarter ``ahead_minutes`` ahead over the peak of the quarter
  in the middle of the lookback, the median over the lags, clamped to [1, ``growth_max``];
- margin: the ``rise_quantile`` of the rises seen so far, each the log of the busiest minute of
  the ``hold_minutes`` after a decision over that decision's recent peak x growth, clipped at
  ``rise_cap`` (one noisy jump does not set the margin for a week), recorded causally in the state;
  never under ``rise_floor`` (the forecast target's 20% headroom); ``default_rise`` until
  ``min_rises`` exist.

This is the variant measured in the README's second lead trial (floor 1.2, rises clipped at 1.5).
When under half of the lookback's minutes were served there is no recent peak to lead from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from functions.scaling.forecast import (
    MINUTE,
    ForecastConfig,
    _lagged_quarter,
    _lags,
    _median,
    drop_outages,
    floor_minute,
    floor_quarter,
    quantile,
)


@dataclass(frozen=True)
class LeadConfig:
    lookback_minutes: int = 13
    lag_minutes: int = 2
    hold_minutes: int = 5  # a decision's min holds until the next one
    ahead_minutes: int = 10
    growth_max: float = 3.0
    rise_quantile: float = 0.985
    rise_memory: int = 2016  # a week of 5-minute decisions
    min_rises: int = 24
    default_rise: float = math.log(1.3)
    rise_floor: float = math.log(1.2)  # the margin is never under e^floor
    rise_cap: float = math.log(1.5)  # each realised rise is clipped to this before the quantile


@dataclass(frozen=True)
class Lead:
    peak: float  # the lookback's busiest served minute (requests/min)
    growth: float
    margin: float  # log

    @property
    def base(self) -> float:
        """What the rises are measured against: recent peak x growth."""
        return self.peak * self.growth

    @property
    def target(self) -> float:
        return max(self.base * math.exp(self.margin), self.peak)


def _window(at: datetime, config: LeadConfig) -> tuple[datetime, datetime]:
    now = floor_minute(at.astimezone(UTC))
    end = now - config.lag_minutes * MINUTE
    return end - config.lookback_minutes * MINUTE, end


def _served(
    recent: Mapping[datetime, float], at: datetime, config: LeadConfig, forecast_config: ForecastConfig
) -> list[float]:
    """The lookback's served minutes (outage runs dropped)."""
    start, end = _window(at, config)
    around = {m: v for m, v in recent.items() if start - forecast_config.outage_minutes * MINUTE <= m < end}
    kept = drop_outages(around, forecast_config.outage_minutes)
    return [v for m, v in kept.items() if m >= start]


def expected_growth(
    quarter_peaks: Mapping[datetime, float] | None, at: datetime, zone: ZoneInfo, config: LeadConfig
) -> float:
    """The median over the seasonal lags of the quarter ahead's peak over the lookback's quarter's
    peak, within [1, growth_max]; 1 without history (the min never leads *down*)."""
    if not quarter_peaks:
        return 1.0
    start, end = _window(at, config)
    ahead = floor_quarter(floor_minute(at.astimezone(UTC)) + config.ahead_minutes * MINUTE)
    behind = floor_quarter(start + (end - start) / 2)
    ratios = []
    for days in _lags(ahead.astimezone(zone)):
        later = quarter_peaks.get(_lagged_quarter(ahead, days, zone))
        earlier = quarter_peaks.get(_lagged_quarter(behind, days, zone))
        if later and earlier and later > 0 and earlier > 0:
            ratios.append(later / earlier)
    if not ratios:
        return 1.0
    return min(config.growth_max, max(1.0, _median(ratios)))


def margin(rises: Sequence[float], config: LeadConfig) -> float:
    if len(rises) < config.min_rises:
        return max(config.rise_floor, config.default_rise)
    clipped = sorted(min(rise, config.rise_cap) for rise in rises)
    return max(config.rise_floor, quantile(clipped, config.rise_quantile))


def lead(
    recent: Mapping[datetime, float],
    quarter_peaks: Mapping[datetime, float] | None,
    at: datetime,
    *,
    zone: ZoneInfo,
    rises: Sequence[float],
    config: LeadConfig,
    forecast_config: ForecastConfig,
) -> Lead | None:
    """The lead target, or None when under half of the lookback was served (nothing to lead from)."""
    served = _served(recent, at, config, forecast_config)
    if len(served) * 2 < config.lookback_minutes:
        return None
    return Lead(
        peak=max(served),
        growth=expected_growth(quarter_peaks, at, zone, config),
        margin=margin(rises, config),
    )


def realised_rise(
    made_at: datetime,
    base: float,
    recent: Mapping[datetime, float],
    config: LeadConfig,
    forecast_config: ForecastConfig,
) -> float | None:
    """log(busiest served minute of the ``hold_minutes`` after ``made_at`` / ``base``); None when
    none of them was served or there was no base."""
    start = floor_minute(made_at.astimezone(UTC))
    end = start + config.hold_minutes * MINUTE
    around = {m: v for m, v in recent.items() if start - forecast_config.outage_minutes * MINUTE <= m < end}
    served = [v for m, v in drop_outages(around, forecast_config.outage_minutes).items() if m >= start]
    if not served or base <= 0:
        return None
    peak = max(served)
    if peak <= 0:
        return None
    return math.log(peak / base)
