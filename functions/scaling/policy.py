"""The scaling decision for one region at one instant. Pure: the function, the replay CLI and the
bench call the same ``decide`` with a history, the state it returned last time, the bounds of the
time-of-day rules and the rollback triggers that are firing.

desired min = ceil(forecast upper band / capacity per instance x (1 + headroom)), clamped to the
rules' bounds (or, with ``margin_quantile``, off by default, the band or the point times a
quantile of the recorded ratios of each decision's own next minutes' busiest minute to it).
Then, like Kubernetes' HPA: changes within ``tolerance`` of the current value are
ignored when lower (a scale-up is applied at once, however small); scale-down takes the highest
recommendation of the stabilisation window (15 minutes of lower forecasts) and at most halves
per step.
"Current" is the live service's setting when it was read (``live``): a hand change, Terraform or
a dry run never makes the policy step from a value the service does not have.
max = the upper band (or the last minutes' peak) times ``max_factor`` in instances, within the
rule's max, never under the new min nor the load of the last minutes (a max is never cut under
the running load), kept while within ``max_slack`` above that (no PATCH every 5 minutes).
The guard: while a rollback trigger fires, never scale down, and if the last change was a
scale-down within ``rollback_window``, go back to the setting before it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel

from functions.scaling.forecast import (
    HOUR,
    MINUTE,
    QUARTER,
    RECENT_MINUTES,
    Forecast,
    ForecastConfig,
    History,
    drop_outages,
    floor_hour,
    floor_minute,
    floor_quarter,
    forecast,
    quantile,
    realised_error,
)
from functions.scaling.rules import Bounds

Binding = Literal[
    "forecast",
    "floor",
    "rule-min",
    "rule-max",
    "tolerance",
    "stabilising",
    "step-limit",
    "guard-hold",
    "guard-revert",
]
MaxBinding = Literal["forecast", "rule-max", "load", "min", "tolerance", "guard-hold", "no-forecast"]


@dataclass(frozen=True)
class PolicyConfig:
    headroom: float = 0.2
    tolerance: float = 0.1
    stabilisation: timedelta = timedelta(minutes=15)
    max_step_down: float = 0.5
    rollback_window: timedelta = timedelta(minutes=30)
    max_factor: float = 3.0  # the max leaves room for a burst of this many times the upper band
    max_slack: float = 0.5  # a live max up to this much above the target is kept as it is
    # Calibrated margin (off with None): the min = the forecast point times this quantile of the
    # recent ratios (busiest minute of a decision's own next ``margin_minutes``) / (its point),
    # instead of the upper band plus ``headroom``; the headroom's target until ``min_margins``.
    margin_quantile: float | None = None
    margin_minutes: int = 5
    # What the ratio is over and the margin multiplies: the forecast point, or the upper band
    # (never under the last 10 minutes' busiest minute: the headroom's own base).
    margin_base: Literal["point", "upper"] = "point"
    max_margins: int = 2016  # a week of 5-minute decisions
    min_margins: int = 288


DEFAULT_FORECAST = ForecastConfig()
DEFAULT_POLICY = PolicyConfig()


class Recommendation(BaseModel):
    at: AwareDatetime
    min: int


class PendingForecast(BaseModel):
    made_at: AwareDatetime
    point: float
    window_minutes: int = 60  # the span it forecast the peak of
    upper: float | None = None  # its upper band (the calibrated margin's other base)


class Live(BaseModel):
    """The service's min and max as read from it just before deciding."""

    min_instances: int
    max_instances: int


class ScalingState(BaseModel):
    """What a region's decisions carry from one to the next (stored in Firestore per region).
    ``min/max_instances``, ``previous_*`` and ``changed_at`` are what was last *applied* (a dry
    run never writes them); the rest is learning that any decision adds to."""

    min_instances: int | None = None
    max_instances: int | None = None
    previous_min: int | None = None
    previous_max: int | None = None
    changed_at: AwareDatetime | None = None
    recommendations: list[Recommendation] = []
    pending: list[PendingForecast] = []  # forecasts whose window is not over yet
    errors: list[float] = []  # log(realised peak / forecast peak), newest last
    # log(busiest minute of a decision's own next margin_minutes / its forecast point), newest last
    margins: list[float] = []
    # UTC hour -> its busiest minute, recorded from the per-minute reads once the hour is over:
    # the query API keeps minutes 72 h only, and the forecast wants 14 days of peaks.
    hourly_peaks: dict[AwareDatetime, float] = {}
    quarter_peaks: dict[AwareDatetime, float] = {}  # the same per quarter-hour
    # UTC hour -> mean requests/min over its served minutes, recorded the same way: exact where
    # the query API's hourly sums cannot tell how many minutes had data.
    hourly_means: dict[AwareDatetime, float] = {}

    def learned(self, other: ScalingState) -> ScalingState:
        """This state with ``other``'s learning (what a dry run keeps of its decision)."""
        return self.model_copy(
            update={
                "recommendations": other.recommendations,
                "pending": other.pending,
                "errors": other.errors,
                "margins": other.margins,
                "hourly_peaks": other.hourly_peaks,
                "quarter_peaks": other.quarter_peaks,
                "hourly_means": other.hourly_means,
            }
        )


class ForecastView(BaseModel):
    point: float
    lower: float
    upper: float
    hourly_mean: float
    peak_factor: float
    recent_peak: float
    method: str
    lags_days: list[int]
    level: float
    window_minutes: int = 60

    @classmethod
    def of(cls, fc: Forecast) -> ForecastView:
        return cls(**fc.__dict__)


class Capacity(BaseModel):
    rpm: float  # requests per minute one instance serves at the CPU target
    source: Literal["learned", "configured", "replay"]
    samples: int = 0


class Decision(BaseModel):
    region: str
    at: AwareDatetime
    min_instances: int
    max_instances: int
    previous_min: int | None
    previous_max: int | None
    changed: bool
    desired_min: int  # before stabilisation, tolerance and the guard
    bound_by: Binding
    max_bound_by: MaxBinding = "rule-max"
    from_live: bool = False  # previous_min/max were read from the service (else the stored state)
    rule: str | None
    local_time: str
    forecast: ForecastView
    capacity: Capacity
    guard_firing: list[str] = []


def record_peaks(
    peaks: Mapping[datetime, float],
    recent: Mapping[datetime, float],
    at: datetime,
    config: ForecastConfig,
    span: timedelta = HOUR,
    *,
    reduce: Callable[[list[float]], float] = max,
) -> dict[datetime, float]:
    """``peaks`` with the busiest served minute (or ``reduce`` of the served minutes) of each
    ``span`` (an hour or a quarter-hour) that ended at least ``peak_delay_minutes`` ago (its last
    minutes ingested) and lies within ``recent``; older than the history window dropped. Recorded
    once, so a rerun records the same. Minutes without data are absent, never counted."""
    now = floor_minute(at.astimezone(UTC))
    keep_from = floor_hour(now) - timedelta(days=config.history_days + 1)
    out = {start: value for start, value in peaks.items() if start >= keep_from}
    floor = floor_hour if span == HOUR else floor_quarter
    least = config.min_served_minutes if span == HOUR else config.min_served_quarter
    last = floor(now - config.peak_delay_minutes * MINUTE) - span
    start = last
    while start >= now - RECENT_MINUTES * MINUTE:
        if start not in out:
            window = {m: v for m, v in recent.items() if start - HOUR <= m < start + span}
            served = [v for m, v in drop_outages(window, config.outage_minutes).items() if m >= start]
            if len(served) >= least:
                out[start] = reduce(served)
        start -= span
    return out


def decide(
    *,
    region: str,
    at: datetime,
    history: History,
    state: ScalingState,
    bounds: Bounds,
    capacity: Capacity,
    zone: ZoneInfo,
    guard_firing: Sequence[str] = (),
    forecast_config: ForecastConfig = DEFAULT_FORECAST,
    config: PolicyConfig = DEFAULT_POLICY,
    live: Live | None = None,
) -> tuple[Decision, ScalingState]:
    """The returned state is the one to keep if the decision is applied; ``ScalingState.learned``
    keeps only its learning when it is not (a dry run)."""
    errors = list(state.errors)
    margins = list(state.margins)
    pending: list[PendingForecast] = []
    for item in state.pending:
        if item.made_at + item.window_minutes * MINUTE <= at:
            error = realised_error(
                item.made_at, item.point, history.recent, forecast_config, item.window_minutes
            )
            if error is not None:
                errors.append(error)
            if config.margin_quantile is not None and item.window_minutes >= config.margin_minutes:
                base = item.upper if config.margin_base == "upper" and item.upper else item.point
                margin = realised_error(
                    item.made_at, base, history.recent, forecast_config, config.margin_minutes
                )
                if margin is not None:
                    margins.append(margin)
        else:
            pending.append(item)
    errors = errors[-forecast_config.max_errors :]
    margins = margins[-config.max_margins :]
    peaks = record_peaks(state.hourly_peaks, history.recent, at, forecast_config)
    quarters = record_peaks(state.quarter_peaks, history.recent, at, forecast_config, QUARTER)
    means = record_peaks(state.hourly_means, history.recent, at, forecast_config, reduce=_mean)
    if history.hourly_peak is None:
        # The peaks the function itself recorded: the replay reads the same as production.
        history = replace(history, hourly_peak=peaks, quarter_peak=quarters)
    if means:
        # Recorded means are over the served minutes; they win over the query API's hourly reads.
        history = replace(history, hourly={**history.hourly, **means})

    fc = forecast(history, at, zone, errors, forecast_config)
    raw = _min_target(fc, margins, capacity, config)
    desired = min(max(raw, bounds.low), bounds.high)
    if raw > bounds.high:
        bound_by: Binding = "rule-max"
    elif raw < bounds.low:
        bound_by = "rule-min" if bounds.rule else "floor"
    else:
        bound_by = "forecast"

    recommendations = [r for r in state.recommendations if r.at > at - config.stabilisation]
    recommendations.append(Recommendation(at=at, min=desired))
    # Step from what the service has, not from what was last stored.
    current = live.min_instances if live is not None else state.min_instances
    current_max = live.max_instances if live is not None else state.max_instances
    new_min = desired
    if current is not None and desired < current:
        # Up at once, however small (a minute short costs more than an update); the
        # tolerance only keeps small scale-downs from churning.
        window_full = any(r.at <= at - config.stabilisation for r in state.recommendations)
        stabilised = max(r.min for r in recommendations)
        step_floor = math.ceil(current * (1 - config.max_step_down))
        if current > bounds.high:
            new_min, bound_by = bounds.high, "rule-max"
        elif not window_full or stabilised >= current:
            new_min, bound_by = current, "stabilising"
        else:
            new_min = max(stabilised, step_floor, bounds.low)
            if new_min == step_floor and step_floor > stabilised:
                bound_by = "step-limit"
            elif new_min > stabilised:
                bound_by = "stabilising"
            if current - new_min <= config.tolerance * current:
                new_min, bound_by = current, "tolerance"
    new_max, max_bound_by = _max(
        fc, capacity=capacity, bounds=bounds, new_min=new_min, current_max=current_max, config=config
    )

    firing = sorted(guard_firing)
    if firing and current is not None:
        recent_scale_down = (
            state.changed_at is not None
            and state.changed_at > at - config.rollback_window
            and state.previous_min is not None
            and state.previous_min > current
        )
        if recent_scale_down and state.previous_min is not None:
            new_min = max(new_min, state.previous_min)
            new_max = max(new_max, state.previous_max or 0, new_min)
            bound_by = "guard-revert"
        elif new_min < current:
            new_min, bound_by = current, "guard-hold"
        if current_max is not None and new_max < current_max:
            new_max, max_bound_by = current_max, "guard-hold"

    changed = (new_min, new_max) != (current, current_max)
    pending.append(
        PendingForecast(made_at=at, point=fc.point, window_minutes=fc.window_minutes, upper=fc.upper)
    )
    new_state = ScalingState(
        min_instances=new_min,
        max_instances=new_max,
        previous_min=current if changed else state.previous_min,
        previous_max=current_max if changed else state.previous_max,
        changed_at=at if changed else state.changed_at,
        recommendations=recommendations,
        pending=pending,
        errors=errors,
        margins=margins,
        hourly_peaks=peaks,
        quarter_peaks=quarters,
        hourly_means=means,
    )
    decision = Decision(
        region=region,
        at=at,
        min_instances=new_min,
        max_instances=new_max,
        previous_min=current,
        previous_max=current_max,
        changed=changed,
        desired_min=desired,
        bound_by=bound_by,
        max_bound_by=max_bound_by,
        from_live=live is not None,
        rule=bounds.rule,
        local_time=bounds.local_time,
        forecast=ForecastView.of(fc),
        capacity=capacity,
        guard_firing=firing,
    )
    return decision, new_state


def _min_target(fc: Forecast, margins: Sequence[float], capacity: Capacity, config: PolicyConfig) -> int:
    """Instances the min is set to before the bounds: the upper band plus the headroom, or with
    ``margin_quantile`` and enough margins recorded, the point times that quantile of the recent
    realised ratios over the decision's own next minutes (what the min has to cover until the next
    decision), calibrated to the misses wanted rather than a fixed 20%."""
    if config.margin_quantile is not None and fc.method == "seasonal" and len(margins) >= config.min_margins:
        base = fc.upper if config.margin_base == "upper" else fc.point
        target = base * math.exp(quantile(sorted(margins), config.margin_quantile))
    else:
        target = fc.upper * (1 + config.headroom)
    return math.ceil(target / capacity.rpm - 1e-9) if target > 0 else 0


def _max(
    fc: Forecast,
    *,
    capacity: Capacity,
    bounds: Bounds,
    new_min: int,
    current_max: int | None,
    config: PolicyConfig,
) -> tuple[int, MaxBinding]:
    """The max: room for a burst above the forecast's upper band, within the rule's max, never
    under the new min nor the last minutes' load (cutting a max under the running load sheds it)."""
    headroom = 1 + config.headroom
    if fc.method != "seasonal":
        # Too little history to trust a band: the rule's max, as before there was a forecast.
        return max(bounds.high, new_min), "no-forecast"
    ceiling = max(bounds.high, bounds.ceiling or bounds.high)
    load = min(ceiling, math.ceil(fc.recent_peak / capacity.rpm * headroom - 1e-9))
    band = max(fc.upper, fc.recent_peak) / capacity.rpm * headroom
    # A min set by a rule or the floor still gets the same room above it.
    target = math.ceil(max(band, new_min) * config.max_factor - 1e-9)
    binding: MaxBinding = "forecast"
    if target > bounds.high:
        target, binding = bounds.high, "rule-max"
    lowest = max(new_min, load, 1)
    if target < lowest:
        target, binding = lowest, "load" if load >= new_min and load > 1 else "min"
    slack = math.ceil(target * (1 + config.max_slack))
    if current_max is not None and target < current_max <= min(slack, max(bounds.high, lowest)):
        return current_max, "tolerance"
    return target, binding


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


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
