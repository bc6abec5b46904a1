"""Month-end forecast with a band: weekday aware, fixed costs apart from usage.

Per service, each SKU is either *fixed* (present every day of the last week and within
``fixed_tolerance`` of its median: an always-on Cloud SQL or Memorystore instance) or *usage*.
The rest of the month is then

- fixed SKUs: their median daily cost of the last week, for each remaining day;
- usage: ``level x weekday factor``, where the weekday factor is the median of that weekday over
  the last four weeks divided by the median of all those days, and the level is the median over
  the last week of ``actual / factor`` (medians, so one spike moves neither).

A service is modelled from its first day with a cost: the days before it are unknown, not zeros.
Days not settled yet (rows still arriving, the last ``settle_days``) count as the larger of what
has arrived and what was expected.

The band comes from the method's own recent errors: the same prediction made for each of the last
``band_days`` days (from the days before it) gives relative errors; their robust spread (1.4826 x
MAD) over the remaining ``n`` days is ``sigma * sqrt(1/n + level_share)`` (daily noise averages
out, an error in the level does not), at ``z`` standard errors, plus the bias of those errors.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

from functions.cost.ledger import DayCost, days_between, month_end, month_start


@dataclass(frozen=True)
class ForecastParams:
    weeks: int = 4
    level_days: int = 7
    fixed_tolerance: float = 0.02
    settle_days: int = 3
    band_days: int = 14
    z: float = 1.645
    level_share: float = 0.25
    min_band: float = 0.01


@dataclass
class Forecast:
    total: float
    low: float
    high: float
    actual_to_date: float
    remaining: float
    fixed_remaining: float
    usage_remaining: float
    days_elapsed: int
    days_in_month: int
    by_service: dict[str, float] = field(default_factory=dict)
    method: str = "weekday"
    relative_error_sigma: float | None = None


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _sku_series(history: Mapping[date, DayCost], days: list[date]) -> dict[tuple[str, str], list[float]]:
    keys = {
        (svc, sku) for d in days if d in history for svc, skus in history[d].by_sku.items() for sku in skus
    }
    series: dict[tuple[str, str], list[float]] = {}
    for svc, sku in keys:
        values = []
        for d in days:
            cost = history.get(d)
            values.append(float(cost.by_sku.get(svc, {}).get(sku, 0)) if cost is not None else 0.0)
        series[(svc, sku)] = values
    return series


def split_fixed(
    history: Mapping[date, DayCost], as_of: date, params: ForecastParams
) -> dict[tuple[str, str], float]:
    """Fixed SKUs and their daily cost, judged on the ``level_days`` days before the unsettled ones."""
    last = as_of - timedelta(days=params.settle_days)
    window = days_between(last - timedelta(days=params.level_days - 1), last)
    if any(d not in history for d in window):
        return {}
    fixed: dict[tuple[str, str], float] = {}
    for key, values in _sku_series(history, window).items():
        median = _median(values)
        if median <= 0 or min(values) <= 0:
            continue
        if (max(values) - min(values)) / median <= params.fixed_tolerance:
            fixed[key] = median
    return fixed


class _UsageModel:
    """Daily usage cost (non-fixed SKUs) of one service, and its weekday-aware prediction."""

    def __init__(self, daily: dict[date, float], params: ForecastParams) -> None:
        self.daily = daily
        self.params = params

    def predict(self, target: date, known_until: date) -> float | None:
        """The expected usage cost of ``target`` from days up to ``known_until`` only."""
        p = self.params
        span = days_between(known_until - timedelta(days=7 * p.weeks - 1), known_until)
        known = [d for d in span if d in self.daily]
        if len(known) < p.level_days:
            recent = [self.daily[d] for d in known]
            return _median(recent) if recent else None
        overall = _median([self.daily[d] for d in known])
        if overall <= 0:
            return 0.0
        factors: dict[int, float] = {}
        for weekday in range(7):
            same = [self.daily[d] for d in known if d.weekday() == weekday]
            factors[weekday] = (_median(same) / overall) if same else 1.0
        recent = [d for d in known if d > known_until - timedelta(days=p.level_days)]
        levels = [self.daily[d] / factors[d.weekday()] for d in recent if factors[d.weekday()] > 0]
        level = _median(levels) if levels else overall
        return level * factors[target.weekday()]


def forecast_month(
    history: Mapping[date, DayCost], as_of: date, params: ForecastParams | None = None
) -> Forecast:
    """The month-end forecast for ``as_of``'s month from daily costs up to ``as_of``."""
    p = params or ForecastParams()
    first, last = month_start(as_of), month_end(as_of)
    elapsed = days_between(first, as_of)
    remaining_days = days_between(as_of + timedelta(days=1), last) if as_of < last else []
    known_days = sorted(d for d in history if d <= as_of)
    if len(known_days) < p.level_days + p.settle_days:
        return _run_rate(
            history, known_days, elapsed=elapsed, remaining_days=remaining_days, first=first, last=last
        )
    fixed = split_fixed(history, as_of, p)
    services = sorted({svc for d in history.values() for svc in d.by_service})

    # A service's days before its first cost are unknown, not $0 days: counted as zeros, a
    # service started this month has a median of 0 and is forecast nothing for the days left.
    started = {svc: min(d for d, c in history.items() if svc in c.by_service) for svc in services}
    usage: dict[str, dict[date, float]] = {svc: {} for svc in services}
    for d, cost in history.items():
        if d > as_of:
            continue
        for svc in services:
            if d < started[svc]:
                continue
            total = float(cost.by_service.get(svc, 0))
            fixed_part = sum(float(cost.by_sku.get(svc, {}).get(sku, 0)) for (s, sku) in fixed if s == svc)
            usage[svc][d] = total - fixed_part
    models = {svc: _UsageModel(usage[svc], p) for svc in services}
    settled_until = as_of - timedelta(days=p.settle_days)

    by_service: dict[str, float] = {}
    fixed_remaining = usage_remaining = 0.0
    actual_to_date = unsettled_expected = 0.0
    for svc in services:
        svc_fixed = sum(v for (s, _), v in fixed.items() if s == svc)
        model = models[svc]
        actual = sum(float(history[d].by_service.get(svc, 0)) for d in elapsed if d in history)
        actual_to_date += actual
        estimate = actual
        for d in elapsed:
            if d > settled_until:
                expected = model.predict(d, settled_until)
                expected_total = svc_fixed + (expected or 0.0)
                unsettled_expected += expected_total
                arrived = float(history[d].by_service.get(svc, 0)) if d in history else 0.0
                estimate += max(0.0, expected_total - arrived)
        svc_usage = 0.0
        for d in remaining_days:
            expected = model.predict(d, settled_until)
            svc_usage += expected if expected is not None else 0.0
        svc_fixed_total = svc_fixed * len(remaining_days)
        fixed_remaining += svc_fixed_total
        usage_remaining += svc_usage
        by_service[svc] = estimate + svc_fixed_total + svc_usage

    total = sum(by_service.values())
    sigma, bias = _recent_errors(models, settled_until, p)
    n = max(len(remaining_days), 1)
    unknown = total - actual_to_date
    if sigma is None:
        # Too little history to measure the method's error: say so with a wide band.
        spread = 0.5 * unknown
        method = "weekday (too little history to measure the band: half the remainder)"
    else:
        relative = p.z * sigma * math.sqrt(1.0 / n + p.level_share) + abs(bias)
        spread = max(relative, p.min_band) * usage_remaining + p.min_band * fixed_remaining
        # Rows still to land for the unsettled days: as uncertain as a day's prediction.
        spread += p.z * max(sigma, p.min_band) * unsettled_expected
        method = "weekday"
    return Forecast(
        total=total,
        low=max(actual_to_date, total - spread),
        high=total + spread,
        actual_to_date=actual_to_date,
        remaining=total - actual_to_date,
        fixed_remaining=fixed_remaining,
        usage_remaining=usage_remaining,
        days_elapsed=len(elapsed),
        days_in_month=(last - first).days + 1,
        by_service=by_service,
        method=method,
        relative_error_sigma=sigma,
    )


def _run_rate(
    history: Mapping[date, DayCost],
    known_days: list[date],
    *,
    elapsed: list[date],
    remaining_days: list[date],
    first: date,
    last: date,
) -> Forecast:
    """Too little history for the weekday model: the mean day so far for each day left, with a
    band of half the remaining amount (said in ``method``)."""
    by_service: dict[str, float] = {}
    services = sorted({svc for d in known_days for svc in history[d].by_service})
    actual_to_date = 0.0
    for svc in services:
        actual = sum(float(history[d].by_service.get(svc, 0)) for d in elapsed if d in history)
        mean_day = sum(float(history[d].by_service.get(svc, 0)) for d in known_days) / len(known_days)
        actual_to_date += actual
        by_service[svc] = actual + mean_day * len(remaining_days)
    total = sum(by_service.values())
    remaining = total - actual_to_date
    return Forecast(
        total=total,
        low=max(actual_to_date, total - 0.5 * remaining),
        high=total + 0.5 * remaining,
        actual_to_date=actual_to_date,
        remaining=remaining,
        fixed_remaining=0.0,
        usage_remaining=remaining,
        days_elapsed=len(elapsed),
        days_in_month=(last - first).days + 1,
        by_service=by_service,
        method="run-rate (little history)",
    )


def _recent_errors(
    models: dict[str, _UsageModel], settled_until: date, p: ForecastParams
) -> tuple[float | None, float]:
    """Robust spread and median of the relative error of the summed usage prediction, each of the
    last ``band_days`` settled days predicted from the days before it."""
    errors: list[float] = []
    for offset in range(p.band_days):
        target = settled_until - timedelta(days=offset)
        predicted = actual = 0.0
        usable = False
        for model in models.values():
            if target not in model.daily:
                continue
            guess = model.predict(target, target - timedelta(days=1))
            if guess is None:
                continue
            predicted += guess
            actual += model.daily[target]
            usable = True
        if usable and predicted > 0:
            errors.append((actual - predicted) / predicted)
    if len(errors) < 5:
        return None, 0.0
    median = statistics.median(errors)
    mad = statistics.median(abs(e - median) for e in errors)
    return 1.4826 * mad, median
