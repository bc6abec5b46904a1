"""The scaling decision for one region at one instant. Pure: the function, the replay CLI and the
bench call the same ``decide`` with a history, the state it returned last time, the bounds of the
time-of-day rules and the rollback triggers that are firing.

desired min = the larger of ceil(forecast upper band / capacity per instance x (1 +
forecast_headroom)) and ceil(the last minute's requests / capacity x (1 + headroom)), clamped to
the rules' bounds. Decisions come every minute; the forecast and its learning are refreshed on the
``forecast_every_minutes`` grid (every 5 minutes on the clock) and reused by the minutes between,
which follow the load: the platform's own autoscaler sees a minute two minutes late, a decision
one minute late. Then, like Kubernetes' HPA: changes within ``tolerance`` of the current value are
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
from zoneinfo import ZoneInfo

from functions.scaling.forecast import (
    RECENT_MINUTES,
    Forecast,
    ForecastConfig,
    History,
    drop_outages,
    forecast,
    realised_error,
)
from functions.scaling.models import (
    Binding,
    Capacity,
    Decision,
    ForecastView,
    Live,
    MaxBinding,
    PendingForecast,
    Recommendation,
    ScalingState,
)
from functions.scaling.rules import Bounds
from functions.scaling.time_grid import HOUR, MINUTE, QUARTER, floor_hour, floor_minute, floor_quarter


@dataclass(frozen=True)
class PolicyConfig:
    headroom: float = 0.2  # over the last minute's load, and the max's room for a burst
    forecast_headroom: float = 0.0  # over the forecast's upper band
    # The forecast and its learning are refreshed on this grid (minutes since the epoch); the
    # decisions between reuse the last forecast and follow the last minute's load.
    forecast_every_minutes: int = 5
    follow_load: bool = True  # off: the forecast's target alone (the bench's row of the earlier policy)
    tolerance: float = 0.1
    stabilisation: timedelta = timedelta(minutes=15)
    max_step_down: float = 0.5
    rollback_window: timedelta = timedelta(minutes=30)
    max_factor: float = 3.0  # the max leaves room for a burst of this many times the upper band
    max_slack: float = 0.5  # a live max up to this much above the target is kept as it is


DEFAULT_FORECAST = ForecastConfig()
DEFAULT_POLICY = PolicyConfig()


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


def on_grid(at: datetime, config: PolicyConfig = DEFAULT_POLICY) -> bool:
    """Whether the decision at ``at`` refreshes the forecast (and reads the history for it)."""
    return int(at.timestamp() // 60) % config.forecast_every_minutes == 0


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
    keeps only its learning when it is not (a dry run). Off the forecast grid ``history.recent``
    need only hold the last ``recent_peak_minutes``: the stored forecast is reused, nothing learned."""
    current = live.min_instances if live is not None else state.min_instances
    current_max = live.max_instances if live is not None else state.max_instances
    now = floor_minute(at.astimezone(UTC))
    last_minute = history.recent.get(now - MINUTE)
    load_min = (
        _instances(last_minute * (1 + config.headroom), capacity) if config.follow_load and last_minute else 0
    )
    fc, learning = _forecast_for(
        at=at,
        history=history,
        state=state,
        capacity=capacity,
        zone=zone,
        forecast_config=forecast_config,
        config=config,
    )
    # Without a recent forecast (refreshes missed) hold what the service has; raise for the load.
    forecast_min = (current or 0) if fc.method == "held" else (learning.forecast_min or 0)
    raw = max(forecast_min, load_min)
    desired = min(max(raw, bounds.low), bounds.high)
    if raw > bounds.high:
        bound_by: Binding = "rule-max"
    elif raw < bounds.low:
        bound_by = "rule-min" if bounds.rule else "floor"
    else:
        bound_by = "load" if load_min > forecast_min else "forecast"

    recommendations = [r for r in state.recommendations if r.at > at - config.stabilisation]
    recommendations.append(Recommendation(at=at, min=desired))
    # Step from what the service has, not from what was last stored.
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
    if fc.method == "held":
        new_max, max_bound_by = max(current_max or bounds.high, new_min), "no-forecast"
    else:
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
    new_state = learning.model_copy(
        update={
            "min_instances": new_min,
            "max_instances": new_max,
            "previous_min": current if changed else state.previous_min,
            "previous_max": current_max if changed else state.previous_max,
            "changed_at": at if changed else state.changed_at,
            "recommendations": recommendations,
        }
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
        forecast_at=learning.forecast_at if fc.method != "held" else None,
        last_minute_rpm=last_minute,
        capacity=capacity,
        guard_firing=firing,
    )
    return decision, new_state


def _forecast_for(
    *,
    at: datetime,
    history: History,
    state: ScalingState,
    capacity: Capacity,
    zone: ZoneInfo,
    forecast_config: ForecastConfig,
    config: PolicyConfig,
) -> tuple[Forecast, ScalingState]:
    """On the grid a new forecast and the state with its learning (the errors of forecasts whose
    window is over, the peaks and means of spans that ended, this forecast pending); between, the
    stored forecast with the last minutes' busiest minute, or ``held`` when it is too old."""
    now = floor_minute(at.astimezone(UTC))
    if not on_grid(at, config):
        every = config.forecast_every_minutes * MINUTE
        if state.forecast is None or state.forecast_at is None or state.forecast_at <= at - 2 * every:
            held = Forecast(
                point=0.0,
                lower=0.0,
                upper=0.0,
                hourly_mean=0.0,
                peak_factor=1.0,
                recent_peak=0.0,
                method="held",
            )
            return held, state
        since = now - forecast_config.recent_peak_minutes * MINUTE
        recent_peak = max((v for m, v in history.recent.items() if m >= since), default=0.0)
        return Forecast(**{**state.forecast.model_dump(), "recent_peak": recent_peak}), state
    errors = list(state.errors)
    pending: list[PendingForecast] = []
    for item in state.pending:
        if item.made_at + item.window_minutes * MINUTE <= at:
            error = realised_error(
                item.made_at, item.point, history.recent, forecast_config, item.window_minutes
            )
            if error is not None:
                errors.append(error)
        else:
            pending.append(item)
    errors = errors[-forecast_config.max_errors :]
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
    pending.append(PendingForecast(made_at=at, point=fc.point, window_minutes=fc.window_minutes))
    learned = state.model_copy(
        update={
            "pending": pending,
            "errors": errors,
            "hourly_peaks": peaks,
            "quarter_peaks": quarters,
            "hourly_means": means,
            "forecast": ForecastView.of(fc),
            "forecast_min": _instances(fc.upper * (1 + config.forecast_headroom), capacity),
            "forecast_at": at,
            "capacity": capacity,
        }
    )
    return fc, learned


def _instances(requests_per_minute: float, capacity: Capacity) -> int:
    return math.ceil(requests_per_minute / capacity.rpm - 1e-9) if requests_per_minute > 0 else 0


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
