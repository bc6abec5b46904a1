"""Capacity forecast for 30 / 90 / 365 days (the seeds' horizons) with 20-30% headroom.

Daily peak aggregates (the day's busiest hour, as mean requests per minute, and the day's mean)
are kept per region in their own collection, ``scaling_daily_peaks``, without a TTL, so history
outlives the metric store's 90 days. The model, pure: log(daily peak) = level + slope x day +
weekday effect (weekly seasonality as mean log deviations per weekday), fitted by least squares;
the band widens with the residual spread and the slope's standard error times the horizon.
A horizon is forecast only with enough history: at least 21 days (three weeks for the weekday
effects) and a third of the horizon; otherwise it says so and how many days it needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from functions.scaling.models import Capacity
from functions.scaling.notices import capacity_notice

if TYPE_CHECKING:
    from functions.scaling.rules import RuleSet
    from functions.scaling.settings import ScalingSettings

HORIZONS = (30, 90, 365)
MIN_DAYS = 21
Z_90 = 1.645  # one-sided 95% / two-sided 90% band


class DailyPeak(BaseModel):
    region: str
    date: date
    peak_rpm: float  # busiest hour's mean requests per minute
    mean_rpm: float
    hours: int  # hours with data that day


class HorizonForecast(BaseModel):
    horizon_days: int
    enough_history: bool
    note: str
    peak_rpm: float | None = None
    peak_rpm_low: float | None = None
    peak_rpm_high: float | None = None
    instances_needed: int | None = None
    instances_needed_low: int | None = None
    instances_needed_high: int | None = None
    monthly_cost_usd: float | None = None
    monthly_cost_usd_high: float | None = None


class CapacityForecast(BaseModel):
    region: str
    as_of: date
    history_days: int
    trend_per_day: float | None  # relative growth of the daily peak per day
    capacity_rpm: float
    headroom: float
    horizons: list[HorizonForecast]


def _fit(days: Sequence[DailyPeak]) -> tuple[float, float, dict[int, float], float, float, float]:
    """(level, slope, weekday effects, residual sd, slope se, mean day index) on log peaks."""
    origin = days[0].date
    xs = [(d.date - origin).days for d in days]
    ys = [math.log(d.peak_rpm) for d in days]
    mean_y = sum(ys) / len(ys)
    effects: dict[int, float] = {}
    for weekday in range(7):
        values = [y - mean_y for d, y in zip(days, ys, strict=True) if d.date.weekday() == weekday]
        effects[weekday] = sum(values) / len(values) if values else 0.0
    adjusted = [y - effects[d.date.weekday()] for d, y in zip(days, ys, strict=True)]
    mean_x = sum(xs) / len(xs)
    mean_a = sum(adjusted) / len(adjusted)
    sxx = sum((x - mean_x) ** 2 for x in xs) or 1.0
    slope = sum((x - mean_x) * (a - mean_a) for x, a in zip(xs, adjusted, strict=True)) / sxx
    level = mean_a - slope * mean_x
    residuals = [a - (level + slope * x) for x, a in zip(xs, adjusted, strict=True)]
    dof = max(1, len(xs) - 9)
    sd = math.sqrt(sum(r * r for r in residuals) / dof)
    return level, slope, effects, sd, sd / math.sqrt(sxx), mean_x


def forecast_capacity(
    region: str,
    days: Sequence[DailyPeak],
    as_of: date,
    *,
    capacity_rpm: float,
    headroom: float = 0.25,
    instance_hour_usd: float = 0.0587,
) -> CapacityForecast:
    usable = sorted((d for d in days if d.peak_rpm > 0 and d.date <= as_of), key=lambda d: d.date)
    history = (usable[-1].date - usable[0].date).days + 1 if usable else 0
    horizons: list[HorizonForecast] = []
    fit = _fit(usable) if len(usable) >= MIN_DAYS else None
    mean_ratio = (
        sum(d.mean_rpm for d in usable[-28:]) / sum(d.peak_rpm for d in usable[-28:]) if usable else 0.0
    )
    for horizon in HORIZONS:
        needed = max(MIN_DAYS, math.ceil(horizon / 3))
        if fit is None or history < needed or len(usable) < MIN_DAYS:
            horizons.append(
                HorizonForecast(
                    horizon_days=horizon,
                    enough_history=False,
                    note=f"history too short: {history} days with data, {needed} needed "
                    f"for {horizon} days ahead",
                )
            )
            continue
        level, slope, effects, sd, slope_se, mean_x = fit
        origin = usable[0].date
        # The busiest day within the horizon: the trend's end (or start, if falling) on its busiest weekday.
        end_x = (as_of - origin).days + horizon
        x = end_x if slope >= 0 else (as_of - origin).days + 1
        centre = level + slope * x + max(effects.values())
        spread = Z_90 * math.sqrt(sd * sd * (1 + 1 / len(usable)) + (slope_se * (x - mean_x)) ** 2)
        peak, low, high = math.exp(centre), math.exp(centre - spread), math.exp(centre + spread)

        def instances(rpm: float) -> int:
            return math.ceil(rpm / capacity_rpm * (1 + headroom) - 1e-9)

        hours_per_month = 730
        horizons.append(
            HorizonForecast(
                horizon_days=horizon,
                enough_history=True,
                note=f"trend and weekly seasonality from {len(usable)} days",
                peak_rpm=round(peak, 1),
                peak_rpm_low=round(low, 1),
                peak_rpm_high=round(high, 1),
                instances_needed=instances(peak),
                instances_needed_low=instances(low),
                instances_needed_high=instances(high),
                # Instances follow the load: a month costs its mean load's instances, around the clock.
                monthly_cost_usd=round(
                    peak * mean_ratio / capacity_rpm * (1 + headroom) * hours_per_month * instance_hour_usd, 2
                ),
                monthly_cost_usd_high=round(
                    high * mean_ratio / capacity_rpm * (1 + headroom) * hours_per_month * instance_hour_usd, 2
                ),
            )
        )
    return CapacityForecast(
        region=region,
        as_of=as_of,
        history_days=history,
        trend_per_day=round(math.exp(fit[1]) - 1, 5) if fit else None,
        capacity_rpm=capacity_rpm,
        headroom=headroom,
        horizons=horizons,
    )


def daily_peaks(
    region: str, hourly_rpm: dict, day: date, zone_offset: timedelta = timedelta(0)
) -> DailyPeak | None:
    """The day's aggregate from its hourly means (UTC hour start -> requests/min); None without data."""
    values = [v for hour, v in hourly_rpm.items() if (hour + zone_offset).date() == day and v > 0]
    if not values:
        return None
    return DailyPeak(
        region=region, date=day, peak_rpm=max(values), mean_rpm=sum(values) / 24, hours=len(values)
    )


def learn_capacity(
    samples: Sequence[tuple[float, float, float]],
    default_rpm: float,
    *,
    cpu_target: tuple[float, float] = (0.6, 0.7),
    cpu_accept: tuple[float, float] = (0.45, 0.85),
    min_samples: int = 12,
) -> Capacity:
    """Requests per minute per instance at the middle of the CPU target, from hourly samples
    ``(requests per minute, instances, CPU utilisation 0-1)``: the median over hours whose CPU was
    near the target (scaled linearly to the target's middle). The configured default until at
    least ``min_samples`` such hours exist."""
    middle = sum(cpu_target) / 2
    values = sorted(
        rpm / instances * middle / cpu
        for rpm, instances, cpu in samples
        if instances >= 1 and rpm > 0 and cpu_accept[0] <= cpu <= cpu_accept[1]
    )
    if len(values) < min_samples:
        return Capacity(rpm=default_rpm, source="configured", samples=len(values))
    mid = len(values) // 2
    median = values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
    return Capacity(rpm=median, source="learned", samples=len(values))


class HourlyRequests(Protocol):
    def hourly_requests(
        self, start: datetime, end: datetime, services: Mapping[str, str]
    ) -> dict[str, dict[datetime, float]]: ...


class CapacityStore(Protocol):
    def save_peaks(self, peaks: list[Any]) -> None: ...
    def peaks(self, region: str) -> list[dict[str, Any]]: ...
    def save_forecast(self, region: str, forecast: dict[str, Any]) -> None: ...


PEAK_DAYS = 89  # complete days folded into daily peaks on each run (the metric store keeps 90)


def run_capacity_job(
    *,
    now: datetime,
    rules: RuleSet,
    settings: ScalingSettings,
    history: HourlyRequests,
    store: CapacityStore,
    announce: Callable[[Any], None],
) -> dict[str, CapacityForecast]:
    """The daily capacity job: fold complete days of the metric store into daily peaks (idempotent
    upserts), forecast each region's 30/90/365 days from all kept peaks, store the forecast, and
    announce each horizon whose upper band needs more instances than the region's ceiling."""
    today = now.date()
    start = datetime.combine(today - timedelta(days=PEAK_DAYS), datetime.min.time(), tzinfo=now.tzinfo)
    services = {region: region_rules.service for region, region_rules in rules.regions.items()}
    hourly = history.hourly_requests(start, start + timedelta(days=PEAK_DAYS), services)
    out: dict[str, CapacityForecast] = {}
    for region, region_rules in rules.regions.items():
        series = hourly.get(region, {})
        peaks = [
            peak
            for offset in range(PEAK_DAYS)
            if (peak := daily_peaks(region, series, start.date() + timedelta(days=offset))) is not None
        ]
        store.save_peaks(peaks)
        kept = [DailyPeak.model_validate(doc) for doc in store.peaks(region)]
        capacity = learn_capacity([], region_rules.capacity_rpm or settings.default_capacity_rpm)
        forecast = forecast_capacity(
            region, kept, today, capacity_rpm=capacity.rpm, instance_hour_usd=settings.instance_hour_usd
        )
        store.save_forecast(region, {**forecast.model_dump(mode="json"), "computed_at": now.isoformat()})
        for horizon in forecast.horizons:
            if (horizon.instances_needed_high or 0) > region_rules.ceiling:
                announce(capacity_notice(forecast, horizon, region_rules.ceiling, now))
        out[region] = forecast
    return out
