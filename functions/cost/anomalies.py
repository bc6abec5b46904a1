"""Cost anomalies per service and day, against a robust same-weekday baseline.

For service ``s`` on day ``d`` the baseline is the same weekday of the previous ``min_weeks`` to
``max_weeks`` weeks (costs follow the week: weekends are quieter). With ``m`` their median and
``MAD`` their median absolute deviation, the day is anomalous when

    cost - m > max(z * 1.4826 * MAD, floor_share * m, min_change)    and    cost > m * min_ratio

A service is judged once it has ``min_weeks`` of its own: the weeks before its first cost are not
$0 weeks. The spread floor (``floor_share`` of the median) keeps a flat always-on cost from paging
on a rounding change, and ``min_change`` (dollars) keeps cents from paging at all. Only rises are
anomalies: a fall in cost is good news for this capability (an outage shows up in the alerts).

Also here, for the bench: the fixed z-score rule it is compared with (mean and standard
deviation of the previous ``window`` days, any weekday).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

from functions.cost.ledger import DayCost


@dataclass(frozen=True)
class AnomalyParams:
    min_weeks: int = 4
    max_weeks: int = 8
    z: float = 4.0
    floor_share: float = 0.1
    min_change: float = 2.0
    min_ratio: float = 1.2
    top_skus: int = 3


@dataclass
class SkuMove:
    sku: str
    cost: float
    expected: float

    @property
    def change(self) -> float:
        return self.cost - self.expected


@dataclass
class Anomaly:
    date: date
    service: str
    cost: float
    expected: float
    threshold: float
    weeks: int
    skus: list[SkuMove] = field(default_factory=list)

    @property
    def change(self) -> float:
        return self.cost - self.expected


def _mad(values: list[float], median: float) -> float:
    return statistics.median(abs(v - median) for v in values)


def baseline(
    history: Mapping[date, DayCost],
    service: str,
    day: date,
    params: AnomalyParams,
    started: date | None = None,
) -> tuple[float, float, int] | None:
    """(median, threshold over the median, weeks used) or None with fewer than ``min_weeks``.
    Days before ``started`` (the service's first cost) are not weeks of it: a new service would
    otherwise stand against a $0 median, an anomaly every day until it has four weeks."""
    values = []
    for week in range(1, params.max_weeks + 1):
        past_day = day - timedelta(days=7 * week)
        past = history.get(past_day)
        if past is not None and (started is None or past_day >= started):
            values.append(float(past.service(service)))
    if len(values) < params.min_weeks:
        return None
    median = statistics.median(values)
    spread = params.z * 1.4826 * _mad(values, median)
    threshold = max(spread, params.floor_share * median, params.min_change)
    return median, threshold, len(values)


def _sku_moves(
    history: Mapping[date, DayCost], service: str, day: date, params: AnomalyParams
) -> list[SkuMove]:
    today = history[day].by_sku.get(service, {})
    names = set(today)
    past_days = [history.get(day - timedelta(days=7 * w)) for w in range(1, params.max_weeks + 1)]
    past_days_present = [p for p in past_days if p is not None]
    for past in past_days_present:
        names |= set(past.by_sku.get(service, {}))
    moves = []
    for sku in names:
        expected = statistics.median(float(p.by_sku.get(service, {}).get(sku, 0)) for p in past_days_present)
        moves.append(SkuMove(sku, float(today.get(sku, 0)), expected))
    moves.sort(key=lambda m: (-m.change, m.sku))
    return [m for m in moves if m.change > 0][: params.top_skus]


def detect(
    history: Mapping[date, DayCost], days: list[date], params: AnomalyParams | None = None
) -> list[Anomaly]:
    """Anomalies on ``days`` (each judged against the weeks before it), by date then service."""
    p = params or AnomalyParams()
    found: list[Anomaly] = []
    started: dict[str, date] = {}
    for day, cost in sorted(history.items()):
        for service in cost.by_service:
            started.setdefault(service, day)
    for day in days:
        current = history.get(day)
        if current is None:
            continue
        for service in sorted(current.by_service):
            base = baseline(history, service, day, p, started.get(service))
            if base is None:
                continue
            median, threshold, weeks = base
            cost = float(current.service(service))
            if cost - median > threshold and cost > median * p.min_ratio:
                found.append(
                    Anomaly(
                        day,
                        service,
                        cost,
                        median,
                        median + threshold,
                        weeks,
                        _sku_moves(history, service, day, p),
                    )
                )
    return found


def zscore_rule(
    history: Mapping[date, DayCost], days: list[date], *, window: int = 14, z: float = 3.0
) -> list[tuple[date, str]]:
    """The fixed rule the bench compares against: cost above mean + z standard deviations of the
    previous ``window`` days (any weekday), needing ``window`` days of history."""
    found = []
    for day in days:
        current = history.get(day)
        if current is None:
            continue
        for service in sorted(current.by_service):
            past = [history.get(day - timedelta(days=i)) for i in range(1, window + 1)]
            if any(p is None for p in past):
                continue
            values = [float(p.service(service)) for p in past if p is not None]
            mean = statistics.fmean(values)
            stdev = statistics.pstdev(values)
            if float(current.service(service)) > mean + z * max(stdev, 1e-9):
                found.append((day, service))
    return found
