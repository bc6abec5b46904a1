"""Where the evaluator's numbers come from: a ``MetricSource``.

- ``QueryApiSource``: production, the common metric query API (``shared.metrics.query``),
  imported on first use.
- ``ReplaySource``: in-memory series (a CSV, generated data, a tuning history), aggregated the
  way the query API aggregates. The backtest and the tuning replay history through the same
  engine as production by swapping only this object.

A query names a metric, an aggregation, the span ``(start, end]``, an optional ``step`` (one point
per step, stamped with the step's start, else one point stamped ``end`` for the whole span),
label equality matchers and the labels to keep (``group_by``; the others are aggregated away).
``step=0`` asks for the raw points (a replay's own rows; the query API answers it with 60 s steps).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from shared.metrics.store import RETENTION

# Minute rollups are kept RETENTION["minute"]; an hour less, so the oldest asked for still exists.
FINE_RETENTION = RETENTION["minute"] - timedelta(hours=1)


@dataclass(frozen=True)
class Query:
    metric: str
    agg: str
    start: datetime
    end: datetime
    step: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    group_by: tuple[str, ...] = ()


@dataclass
class SeriesData:
    labels: dict[str, str]
    points: list[tuple[datetime, float]]


class MetricSource(Protocol):
    def fetch(self, query: Query) -> list[SeriesData]: ...


class QueryApiSource:
    """The metric pipeline's query API (``shared.metrics.query.run_query``)."""

    def fetch(self, query: Query) -> list[SeriesData]:
        from shared.metrics.query import MetricQuery, run_query

        step = 60 if query.step == 0 else query.step
        start = query.start
        if step is not None and step < 3600 and query.end - start > FINE_RETENTION:
            # Steps under an hour are served from minute rollups: ask for what exists.
            start = query.end - FINE_RETENTION
        result = run_query(
            MetricQuery(
                metric=query.metric,
                agg=query.agg,
                start=start,
                end=query.end,
                step=step,
                labels=dict(query.labels),
                group_by=list(query.group_by),
            )
        )
        return [SeriesData(dict(s.labels), [(t, float(v)) for t, v in s.points]) for s in result.series]


def aggregate(agg: str, values: Sequence[float], seconds: float) -> float | None:
    """One aggregation over raw values, as the query API defines it (None when undefined)."""
    if agg == "count":
        return float(len(values))
    if not values:
        return None
    if agg == "sum":
        return float(math.fsum(values))
    if agg == "rate":
        return float(math.fsum(values)) / seconds if seconds > 0 else None
    if agg == "avg":
        return float(math.fsum(values)) / len(values)
    if agg == "min":
        return float(min(values))
    if agg == "max":
        return float(max(values))
    if agg.startswith("p") and agg[1:].isdigit():
        ordered = sorted(values)
        rank = float(agg[1:]) / 100 * (len(ordered) - 1)
        low = math.floor(rank)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
    raise ValueError(f"unknown aggregation {agg!r}")


class _Raw:
    __slots__ = ("labels", "times", "values")

    def __init__(self, labels: dict[str, str], times: list[float], values: list[float]) -> None:
        self.labels = labels
        self.times = times
        self.values = values


class ReplaySource:
    """Raw points held in memory and aggregated on each query like the query API does."""

    def __init__(self) -> None:
        self._series: dict[str, list[_Raw]] = {}

    def add(self, metric: str, labels: dict[str, str], points: Iterable[tuple[datetime, float]]) -> None:
        ordered = sorted(points, key=lambda p: p[0])
        self._series.setdefault(metric, []).append(
            _Raw(dict(labels), [t.timestamp() for t, _ in ordered], [float(v) for _, v in ordered])
        )

    def metrics(self) -> list[str]:
        return sorted(self._series)

    def fetch(self, query: Query) -> list[SeriesData]:
        start, end = query.start.timestamp(), query.end.timestamp()
        groups: dict[tuple[str, ...], list[tuple[list[float], list[float]]]] = {}
        for raw in self._series.get(query.metric, []):
            if any(raw.labels.get(k) != v for k, v in query.labels.items()):
                continue
            lo = bisect.bisect_right(raw.times, start)
            hi = bisect.bisect_right(raw.times, end)
            key = tuple(raw.labels.get(k, "") for k in query.group_by)
            groups.setdefault(key, []).append((raw.times[lo:hi], raw.values[lo:hi]))
        out: list[SeriesData] = []
        for key, parts in groups.items():
            labels = {k: v for k, v in zip(query.group_by, key, strict=False) if v}
            if query.step == 0:
                merged = sorted(p for times, values in parts for p in zip(times, values, strict=False))
                out.append(SeriesData(labels, [(datetime.fromtimestamp(t, UTC), v) for t, v in merged]))
                continue
            if query.step is None:
                values = [v for _, vs in parts for v in vs]
                value = aggregate(query.agg, values, end - start)
                points = (
                    [] if value is None or (query.agg == "count" and not values) else [(query.end, value)]
                )
                out.append(SeriesData(labels, points))
                continue
            buckets: dict[int, list[float]] = {}
            for times, values in parts:
                for t, v in zip(times, values, strict=False):
                    buckets.setdefault(int(t // query.step), []).append(v)
            points = []
            for index in sorted(buckets):
                value = aggregate(query.agg, buckets[index], float(query.step))
                if value is not None:
                    points.append((datetime.fromtimestamp(index * query.step, UTC), value))
            out.append(SeriesData(labels, points))
        return out
