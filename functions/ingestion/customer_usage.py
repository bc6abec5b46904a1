"""Customer usage: the metrics the catalogue declares ``customer_usage`` (routing's per-customer
requests and feedback answers) leave the batch before the series registry, so no per-metric
series cap applies to them, and become daily counters per customer (stored by
``customer_usage_store.py``; layout: ``shared/metrics/customer_usage.py``).

- **Checked against the catalogue**: delta counters only, the customer label a customer id, every
  ``counted_by`` label present with one of its catalogue values, no label but those and the
  resource's. A point that fails is refused in ``partialSuccess`` and, when its customer is known,
  marked refused for its day, so that health scores that customer ``usage_unknown``, never idle.
  The aggregator's refusals of these metrics (late, NaN, too many attributes...) are marked too.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

from functions.ingestion.aggregate import MINUTE_NANOS, Batch
from functions.ingestion.labels import RESOURCE_LABELS
from shared.clock import utcnow
from shared.customer_keys import CUSTOMER_ID_PATTERN
from shared.metrics.catalogue import CustomerUsage, customer_usage_metrics, load_catalogue
from shared.metrics.customer_usage import counter_key, day_of_minute

_CUSTOMER_ID = re.compile(CUSTOMER_ID_PATTERN)
_RESOURCE = frozenset(RESOURCE_LABELS.values())
DELTA_ONLY = "customer usage counters must have delta temporality"


@dataclass
class CustomerDay:
    """One customer's counters of one day in a batch, and the points behind them per metric."""

    fields: dict[str, dict[str, float]] = field(default_factory=dict)
    points: dict[str, int] = field(default_factory=dict)
    last_minute: int = 0


@dataclass
class UsageBatch:
    counts: dict[tuple[str, date], CustomerDay] = field(default_factory=dict)
    # Points refused per customer and day (the marks health reads as usage_unknown).
    refused: dict[tuple[str, date], int] = field(default_factory=lambda: defaultdict(int))

    def __bool__(self) -> bool:
        return bool(self.counts) or bool(self.refused)


def customer_of(spec: CustomerUsage, labels: dict[str, str]) -> str | None:
    customer = labels.get(spec.customer)
    return customer if customer and _CUSTOMER_ID.match(customer) else None


def _problem(metric: str, spec: CustomerUsage, labels: dict[str, str], kind: str) -> str | None:
    if kind != "sum":
        return f"a customer usage metric must be a monotonic counter, not a {kind}"
    allowed = load_catalogue().metrics[metric].labels
    for name in spec.counted_by:
        value = labels.get(name)
        values = allowed[name].values or []
        if value not in values:
            return f"label {name} is {value!r}, not one of the catalogue's values ({', '.join(values)})"
    extra = sorted(set(labels) - {spec.customer, *spec.counted_by} - _RESOURCE)
    if extra:
        return f"label(s) {', '.join(extra)} not declared for this customer usage metric"
    return None


def split_customer_usage(batch: Batch) -> UsageBatch:
    """Take the customer usage metrics' series out of ``batch`` as daily counters per customer;
    refuse (and mark) what the catalogue does not allow. The batch keeps the other series."""
    specs = customer_usage_metrics()
    usage = UsageBatch()
    for (customer, day), points in batch.customer_refusals.items():
        usage.refused[(customer, day)] += points
    for sid, series in list(batch.series.items()):
        spec = specs.get(series.metric)
        if spec is None:
            continue
        del batch.series[sid]
        customer = customer_of(spec, series.labels)
        problem = (
            _problem(series.metric, spec, series.labels, series.kind)
            if customer
            else f"label {spec.customer} is missing or not a customer id"
        )
        if series.streams and problem is None:
            # Cumulative points need per-stream state this store does not keep (routing sends
            # deltas): refused alone, the series' delta points are still counted.
            for stream in series.streams.values():
                for point in stream:
                    day = day_of_minute(point.time // MINUTE_NANOS)
                    _refuse(batch, usage, series.metric, customer, DELTA_ONLY, 1, day)
            series.streams = {}
        if problem is not None:
            for minute, cell in series.minutes.items():
                _refuse(batch, usage, series.metric, customer, problem, cell.points, day_of_minute(minute))
            for stream in series.streams.values():
                for point in stream:
                    day = day_of_minute(point.time // MINUTE_NANOS)
                    _refuse(batch, usage, series.metric, customer, problem, 1, day)
            continue
        assert customer is not None
        key = counter_key([series.labels[name] for name in spec.counted_by])
        for minute, cell in series.minutes.items():
            if not cell.points:
                continue
            entry = usage.counts.get((customer, day_of_minute(minute)))
            if entry is None:
                entry = usage.counts[(customer, day_of_minute(minute))] = CustomerDay()
            counts = entry.fields.setdefault(spec.field, {})
            counts[key] = counts.get(key, 0.0) + cell.sum
            entry.points[series.metric] = entry.points.get(series.metric, 0) + cell.points
            entry.last_minute = max(entry.last_minute, minute)
    return usage


def _refuse(  # noqa: PLR0917 - what was refused, whose and when
    batch: Batch,
    usage: UsageBatch,
    metric: str,
    customer: str | None,
    reason: str,
    points: int,
    day: date | None = None,
) -> None:
    if not points:
        return
    batch.reject(metric, reason, points)
    batch.accepted -= points
    if customer:
        usage.refused[(customer, day or utcnow().date())] += points
