"""The scaling decision for one region at one instant. Pure: the function, the replay CLI and the
bench call the same ``decide`` with a history, the state it returned last time, the bounds of the
time-of-day rules and the rollback triggers that are firing.

desired min = ceil(forecast upper band / capacity per instance x (1 + headroom)), clamped to the
rules' bounds. Then, like Kubernetes' HPA: changes within ``tolerance`` of the current value are
ignored; scale-up is applied at once; scale-down takes the highest recommendation of the
stabilisation window (so 30 minutes of lower forecasts are needed) and at most halves per step.
The guard: while a rollback trigger fires, never scale down, and if the last change was a
scale-down within ``rollback_window``, go back to the setting before it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel

from functions.scaling.forecast import HOUR, Forecast, ForecastConfig, History, forecast, realised_error
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


@dataclass(frozen=True)
class PolicyConfig:
    headroom: float = 0.2
    tolerance: float = 0.1
    stabilisation: timedelta = timedelta(minutes=30)
    max_step_down: float = 0.5
    rollback_window: timedelta = timedelta(minutes=30)


DEFAULT_FORECAST = ForecastConfig()
DEFAULT_POLICY = PolicyConfig()


class Recommendation(BaseModel):
    at: AwareDatetime
    min: int


class PendingForecast(BaseModel):
    made_at: AwareDatetime
    point: float


class ScalingState(BaseModel):
    """What a region's decisions carry from one to the next (stored in Firestore per region)."""

    min_instances: int | None = None
    max_instances: int | None = None
    previous_min: int | None = None
    previous_max: int | None = None
    changed_at: AwareDatetime | None = None
    recommendations: list[Recommendation] = []
    pending: list[PendingForecast] = []  # forecasts whose hour is not over yet
    errors: list[float] = []  # log(realised peak / forecast peak), newest last


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
    rule: str | None
    local_time: str
    forecast: ForecastView
    capacity: Capacity
    guard_firing: list[str] = []


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
) -> tuple[Decision, ScalingState]:
    errors = list(state.errors)
    pending: list[PendingForecast] = []
    for item in state.pending:
        if item.made_at + HOUR <= at:
            error = realised_error(item.made_at, item.point, history.recent, forecast_config)
            if error is not None:
                errors.append(error)
        else:
            pending.append(item)
    errors = errors[-forecast_config.max_errors :]

    fc = forecast(history, at, zone, errors, forecast_config)
    raw = math.ceil(fc.upper / capacity.rpm * (1 + config.headroom) - 1e-9) if fc.upper > 0 else 0
    desired = min(max(raw, bounds.low), bounds.high)
    if raw > bounds.high:
        bound_by: Binding = "rule-max"
    elif raw < bounds.low:
        bound_by = "rule-min" if bounds.rule else "floor"
    else:
        bound_by = "forecast"

    recommendations = [r for r in state.recommendations if r.at > at - config.stabilisation]
    recommendations.append(Recommendation(at=at, min=desired))
    current = state.min_instances
    new_min = desired
    if current is not None:
        if desired > current:
            forced = current < bounds.low
            if not forced and current > 0 and (desired - current) / current <= config.tolerance:
                new_min, bound_by = current, "tolerance"
        elif desired < current:
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
    new_max = max(bounds.high, new_min)

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
        if state.max_instances is not None and new_max < state.max_instances:
            new_max = state.max_instances

    changed = (new_min, new_max) != (state.min_instances, state.max_instances)
    pending.append(PendingForecast(made_at=at, point=fc.point))
    new_state = ScalingState(
        min_instances=new_min,
        max_instances=new_max,
        previous_min=state.min_instances if changed else state.previous_min,
        previous_max=state.max_instances if changed else state.previous_max,
        changed_at=at if changed else state.changed_at,
        recommendations=recommendations,
        pending=pending,
        errors=errors,
    )
    decision = Decision(
        region=region,
        at=at,
        min_instances=new_min,
        max_instances=new_max,
        previous_min=state.min_instances,
        previous_max=state.max_instances,
        changed=changed,
        desired_min=desired,
        bound_by=bound_by,
        rule=bounds.rule,
        local_time=bounds.local_time,
        forecast=ForecastView.of(fc),
        capacity=capacity,
        guard_firing=firing,
    )
    return decision, new_state


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
