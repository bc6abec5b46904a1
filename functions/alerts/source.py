"""Where the evaluator's numbers come from: a ``MetricSource``.

- ``QueryApiSource``: production, the common metric query API (``shared.metrics.query``),
  imported on first use.
- ``ReplaySource``: in-memory series (a CSV, generated data, a tuning history), aggregated by the
  query API's own ``Fold`` and ``Accumulator``. The backtest and the tuning replay history through
  the same engine as production by swapping only this object.

A ``Query`` has the query API's fields and meaning (``MetricQuery``: label equality matchers, the
labels kept by ``group_by``, steps from the window's start, each point stamped with its step's
start) without its request limits, since a replay's window may reach past the store's retention;
``step=0`` asks for the raw points (a replay's own rows; the query API answers it with 60 s
steps). Answers are the query API's ``Series``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from shared.metrics.fold import Accumulator, Fold
from shared.metrics.query_model import Agg, Series
from shared.metrics.store import RETENTION

# Minute rollups are kept RETENTION["minute"]; an hour less, so the oldest asked for still exists.
FINE_RETENTION = RETENTION["minute"] - timedelta(hours=1)


@dataclass(frozen=True)
class Query:
    metric: str
    agg: Agg
    start: datetime
    end: datetime
    step: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    group_by: tuple[str, ...] = ()


class MetricSource(Protocol):
    def fetch(self, query: Query) -> list[Series]: ...


class QueryApiSource:
    """The metric pipeline's query API (``shared.metrics.query.run_query``)."""

    def fetch(self, query: Query) -> list[Series]:
        from shared.metrics.query import run_query
        from shared.metrics.query_model import MetricQuery

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
        return result.series


# A replayed point is stamped when it was read, at the end of what it measured, where the store
# stamps a bucket with its start: a point at t is read as a bucket starting just before t (by
# datetime's resolution), so it is in the window [start, end) when t is in (start, end], and in
# the step that ends at or after t.
JUST_BEFORE = 1e-6


class _Raw:
    __slots__ = ("increments", "labels", "times", "values")

    def __init__(
        self, labels: dict[str, str], times: list[float], values: list[float], increments: bool
    ) -> None:
        self.labels = labels
        self.times = times
        self.values = values
        self.increments = increments


class ReplaySource:
    """Raw points held in memory and folded on each query as the query API folds rollups."""

    def __init__(self) -> None:
        self._series: dict[str, list[_Raw]] = {}

    def add(
        self,
        metric: str,
        labels: dict[str, str],
        points: Iterable[tuple[datetime, float]],
        *,
        increments: bool = True,
    ) -> None:
        """``increments``: the points are a sum's data points (``rate`` is of their values), else
        samples of a gauge (``rate`` is of their number)."""
        ordered = sorted(points, key=lambda p: p[0])
        self._series.setdefault(metric, []).append(
            _Raw(
                dict(labels), [t.timestamp() for t, _ in ordered], [float(v) for _, v in ordered], increments
            )
        )

    def metrics(self) -> list[str]:
        return sorted(self._series)

    def fetch(self, query: Query) -> list[Series]:
        fold = Fold(query.agg, query.start, query.end, query.step, query.labels, query.group_by)
        start, end = query.start.timestamp(), query.end.timestamp()
        raw: dict[int, list[tuple[float, float]]] = {}
        for series in self._series.get(query.metric, []):
            if not fold.accepts(series.labels):
                continue
            times = series.times
            lo, hi = bisect.bisect_right(times, start), bisect.bisect_right(times, end)
            if query.step == 0:
                group = fold.group(series.labels)
                raw.setdefault(id(group), []).extend(zip(times[lo:hi], series.values[lo:hi], strict=True))
                continue
            steps = fold.group(series.labels).steps if lo < hi else {}
            while lo < hi:  # one step's points at a time (they are in time order)
                index = fold.index(times[lo] - start - JUST_BEFORE)
                step_end = start + (index + 1) * query.step if query.step else end
                cut = bisect.bisect_right(times, step_end, lo, hi)
                acc = steps.get(index)
                if acc is None:
                    acc = steps[index] = Accumulator()
                acc.add_samples(series.values[lo:cut], increment=series.increments)
                lo = cut
        if query.step != 0:
            return fold.series()
        # Raw points: every matching series answers, with or without points in the window.
        return [
            Series.model_construct(
                labels=group.labels,
                points=[(datetime.fromtimestamp(t, UTC), v) for t, v in sorted(raw.get(id(group), []))],
            )
            for group in fold.groups.values()
        ]
