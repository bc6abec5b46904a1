"""The "lead the autoscaler" target for the min. Pure: no I/O, the same code in the function, the
replay CLI and the bench.

The platform's own autoscaler already keeps what the last 15 minutes needed (less its 2-minute
reaction time), so a min only has to cover what comes *above* that: the rises. The target is

    min = ceil(recent peak x expected growth x e^margin / capacity)

- recent peak: the busiest served minute of the last ``lookback_minutes`` (13) the function can
  trust, leaving out the last ``lag_minutes`` (2: a metric still arriving reads low);
- expected growth: how the same local time grew at the seasonal lags (the forecast's lags), from
  the recorded quarter-hour peaks: the peak of the quarter ``ahead_minutes`` ahead over the peak
  of the quarter in the middle of the lookback, the median over the lags, clamped to
  [1, ``growth_max``] (1 without history: the min never leads *down*);
- margin: a high quantile (``rise_quantile``) of the rises seen so far, each the log of the
  busiest minute of the ``hold_minutes`` after a decision over that decision's recent peak x
  growth, recorded causally in the state (last ``rise_memory``); ``default_rise`` until
  ``min_rises`` exist; never under 0.

When under half of the lookback's minutes were served (the metric's holes, an outage, a new
service) there is no recent peak to lead from: the caller falls back on the seasonal forecast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
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
    # What the rises are measured from: "peak" the busiest minute of the lookback, "top3" its
    # busiest 3-minute mean, "p90" its 90th percentile minute (less moved by one noisy minute).
    base: Literal["peak", "top3", "p90"] = "peak"
    rise_floor: float = 0.0  # log: the margin is never under e^floor
    rise_cap: float = math.inf  # log: each realised rise is clipped to this before the quantile


@dataclass(frozen=True)
class Lead:
    peak: float  # the recent peak led from (requests/min): the statistic ``LeadConfig.base``
    growth: float
    margin: float  # log
    served: int  # served minutes in the lookback
    busiest: float = 0.0  # the lookback's busiest minute: the target never under it

    @property
    def base(self) -> float:
        """What the rises are measured against: recent peak x growth."""
        return self.peak * self.growth

    @property
    def target(self) -> float:
        return max(self.base * math.exp(self.margin), self.busiest)


def _window(at: datetime, config: LeadConfig) -> tuple[datetime, datetime]:
    now = floor_minute(at.astimezone(UTC))
    end = now - config.lag_minutes * MINUTE
    return end - config.lookback_minutes * MINUTE, end


def _served(
    recent: Mapping[datetime, float], at: datetime, config: LeadConfig, forecast_config: ForecastConfig
) -> list[float]:
    """The lookback's served minutes in time order (outage runs dropped)."""
    start, end = _window(at, config)
    around = {m: v for m, v in recent.items() if start - forecast_config.outage_minutes * MINUTE <= m < end}
    kept = drop_outages(around, forecast_config.outage_minutes)
    return [kept[m] for m in sorted(kept) if m >= start]


def base_statistic(served: Sequence[float], config: LeadConfig) -> float:
    """The recent peak the rises are measured from (``LeadConfig.base``); 0 when nothing served."""
    if not served:
        return 0.0
    if config.base == "top3":
        spans = [sum(served[i : i + 3]) / len(served[i : i + 3]) for i in range(max(1, len(served) - 2))]
        return max(spans)
    if config.base == "p90":
        return quantile(sorted(served), 0.9)
    return max(served)


def recent_peak(
    recent: Mapping[datetime, float], at: datetime, config: LeadConfig, forecast_config: ForecastConfig
) -> tuple[float, int]:
    """The lookback's recent peak (``base_statistic``) and how many minutes were served."""
    served = _served(recent, at, config, forecast_config)
    return base_statistic(served, config), len(served)


def expected_growth(
    quarter_peaks: Mapping[datetime, float] | None, at: datetime, zone: ZoneInfo, config: LeadConfig
) -> float:
    """The median over the seasonal lags of the quarter ahead's peak over the lookback's quarter's
    peak, within [1, growth_max]; 1 without history."""
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
    growth = expected_growth(quarter_peaks, at, zone, config)
    return Lead(
        peak=base_statistic(served, config),
        growth=growth,
        margin=margin(rises, config),
        served=len(served),
        busiest=max(served),
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
