"""The query API over the metric store, for every capability (alerts, dashboards, scaling, cost,
reports) and behind ``GET /v1/query`` of the ingestion function.

    from shared.metrics.query import MetricQuery, run_query
    result = run_query(MetricQuery(metric="http.server.request.duration", agg="p95",
                                   start=now - timedelta(minutes=5), end=now,
                                   labels={"service": "route"}, group_by=["region"]))

Semantics:

- A rollup bucket (a minute, or an hour) belongs to the window when its start lies in
  ``[start, end)``; with ``step``, to the step ``i`` whose ``[start + i*step, start + (i+1)*step)``
  holds its start. Each point is labelled with its step's start (the window's start without step).
- Resolution: minute rollups when the window starts within the last 72 h (their retention),
  hourly rollups otherwise (then ``step`` must be at least 3600 s). Hours the downsampler has not
  folded yet (the last few: an hour is folded once the lateness allowance has passed) are read
  from their minute rollups, each counted in its hour's bucket, so an hour-resolution answer is
  the same before and after the fold.
- ``labels`` are equality filters; the output series keep the filter labels and ``group_by``
  labels, and every other label is aggregated away (counts and sums added, minima/maxima taken,
  sketches merged).
- ``count``: number of samples (gauge samples, histogram observations, sum data points);
  ``sum``: their sum (for sums, the increments); ``rate``: per second over the step (or window),
  of the increments for sums and of the observations for gauges and histograms; ``avg`` =
  sum/count; ``min``/``max``; ``p50``..``p99`` from the merged DDSketch, within 1% relative error
  of the exact quantile (rank ``q*(n-1)``) over the raw samples.
- ``count``/``sum``/``rate`` steps without data are 0 in a series that has data in the window;
  other aggregations leave such steps out.
- ``across`` (``sum``, ``avg``, ``min``, ``max``): aggregate each stored series over time first,
  then combine the series of an output group step by step, as Cloud Monitoring's aligner then
  reducer and Prometheus' ``sum by (...) (avg_over_time(...))`` do. Without it, every sample of
  every series in a group is pooled, which is right for latencies and counters but wrong for a
  gauge like Cloud Run's instance count (one series per revision and state): its ``avg`` would be
  the average series, not the total. A series without a value in a step adds nothing to it.

``Fold`` (filters, grouping, steps, the answer) and ``Accumulator`` (every aggregation) hold these
semantics apart from the store: the alert replay folds its in-memory points with them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from shared.clock import utcnow
from shared.metrics.build_reads import RangeKey, current_build_reads
from shared.metrics.catalogue import CustomerUsage
from shared.metrics.recording import (
    rule_for,
)
from shared.metrics.rule_reads import documents, folded_sources, range_of, tail_documents
from shared.metrics.sketch import Sketch
from shared.metrics.store import (
    RESOLUTION_SECONDS,
    RETENTION,
    Summary,
    bucket_start,
    entries,
    fold_state,
    hour_ceil,
    rollups,
)

Agg = Literal["count", "sum", "rate", "avg", "min", "max", "p50", "p90", "p95", "p99"]
Across = Literal["sum", "avg", "min", "max"]
AGGREGATIONS: tuple[str, ...] = get_args(Agg)
QUANTILES: dict[str, float] = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}
MAX_POINTS = 11_000


# Times a query may name: anything outside cannot hold data and would overflow date arithmetic.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


class QueryError(ValueError):
    """A query that cannot be answered as asked (the HTTP API answers it 422), naming the
    parameter at fault in ``field``."""

    def __init__(self, message: str, field: str = "step") -> None:
        super().__init__(message)
        self.field = field


class MetricQuery(BaseModel):
    metric: str = Field(min_length=1, max_length=255)
    agg: Agg
    start: AwareDatetime
    end: AwareDatetime
    step: int | None = Field(default=None, gt=0, description="seconds; None = one point for the window")
    labels: dict[str, str] = {}
    group_by: list[str] = []
    resolution: Literal["auto", "minute", "hour"] = "auto"
    across: Across | None = Field(
        default=None, description="combine the series of a group after aggregating each over time"
    )

    @model_validator(mode="after")
    def _window(self) -> MetricQuery:
        for name, at in (("start", self.start), ("end", self.end)):
            if not EARLIEST <= at < LATEST:
                raise ValueError(
                    f"{name} {at.isoformat()} is out of range: times from {EARLIEST:%Y-%m-%d} "
                    f"to before {LATEST:%Y-%m-%d} are allowed"
                )
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.step is not None:
            points = math.ceil((self.end - self.start).total_seconds() / self.step)
            if points > MAX_POINTS:
                raise ValueError(f"{points} points asked; at most {MAX_POINTS} per series (raise step)")
        return self


class Series(BaseModel):
    labels: dict[str, str]
    points: list[tuple[AwareDatetime, float]]


class QueryResult(BaseModel):
    metric: str
    agg: str
    series: list[Series]
    resolution: str = "minute"


def choose_resolution(query: MetricQuery, now: datetime | None = None) -> str:
    if query.resolution != "auto":
        return query.resolution
    now = now or utcnow()
    return "minute" if query.start >= now - RETENTION["minute"] else "hour"


def quantile(ordered: Sequence[float], q: float) -> float:
    """The exact quantile of sorted values at rank ``q*(n-1)``, interpolated: what the sketch
    answers within 1%."""
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Accumulator:
    """One step of one series: rollup entries (``add``) or raw samples (``add_samples``, which
    keeps the values, so quantiles are exact) folded into every aggregation."""

    count: float = 0.0
    sum: float = 0.0
    rate_num: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    sketch: Sketch | None = None
    samples: list[float] | None = None
    seen: bool = False

    def add(self, doc: dict[str, Any], sketch: Sketch | None) -> None:
        summary = Summary.of(doc)
        self.count += summary.count
        self.sum += summary.sum
        self.rate_num += summary.sum if doc.get("kind") == "sum" else summary.count
        if summary.min is not None:
            self.min = min(self.min, summary.min)
        if summary.max is not None:
            self.max = max(self.max, summary.max)
        if sketch is not None:
            if self.sketch is None:
                self.sketch = Sketch()
            self.sketch.merge(sketch)
        self.seen = True

    def add_counter(self, value: float) -> None:
        """A stored counter's increments over a bucket (their number is not kept: sum and rate only)."""
        self.sum += value
        self.rate_num += value
        self.seen = True

    def add_samples(self, values: Sequence[float], *, increment: bool) -> None:
        """Raw samples; ``increment``: a sum's data points (its rate is of values, not of samples)."""
        if not values:
            return
        self.count += len(values)
        total = sum(values)
        self.sum += total
        self.rate_num += total if increment else len(values)
        self.min = min(self.min, *values)
        self.max = max(self.max, *values)
        if self.samples is None:
            self.samples = []
        self.samples.extend(values)
        self.seen = True

    def value(self, agg: str, seconds: float) -> float | None:
        if agg == "count":
            return self.count
        if agg == "sum":
            return self.sum
        if agg == "rate":
            return self.rate_num / seconds
        if not self.seen:
            return None
        if agg == "avg":
            return self.sum / self.count if self.count else None
        if agg == "min":
            return self.min if math.isfinite(self.min) else None
        if agg == "max":
            return self.max if math.isfinite(self.max) else None
        if self.samples:
            return quantile(sorted(self.samples), QUANTILES[agg])
        return self.sketch.quantile(QUANTILES[agg]) if self.sketch is not None else None


@dataclass
class Group:
    """One output series being aggregated: its labels and its steps' accumulators."""

    labels: dict[str, str]
    steps: dict[int, Accumulator] = field(default_factory=dict)


class Fold:
    """The series of one query being aggregated, wherever the data comes from (the rollups here,
    the alert replay's in-memory points): label filters, grouping, steps, and the answer."""

    def __init__(  # noqa: PLR0917 - a query's fields
        self,
        agg: str,
        start: datetime,
        end: datetime,
        step: int | None,
        labels: Mapping[str, str],
        group_by: Iterable[str],
        across: str | None = None,
    ) -> None:
        self.agg, self.start, self.end, self.step = agg, start, end, step
        self.filters = dict(labels)
        self.keep = sorted(set(self.filters) | set(group_by))
        self.across = across
        # With ``across``, a group is one stored series (all its labels); ``outputs`` are the
        # output series they are combined into.
        self.groups: dict[tuple[tuple[str, str], ...], Group] = {}
        self.outputs: set[tuple[tuple[str, str], ...]] = set()

    def output_count(self) -> int:
        return len(self.outputs) if self.across else len(self.groups)

    def accepts(self, labels: Mapping[str, str]) -> bool:
        """Equality filters: every filter label present with its value."""
        return all(labels.get(k) == v for k, v in self.filters.items())

    def group(self, labels: Mapping[str, str]) -> Group:
        """The output series ``labels`` fall in (the filter and group_by labels kept, the others
        aggregated away)."""
        kept = {k: labels[k] for k in self.keep if k in labels}
        key = tuple(sorted((labels if self.across else kept).items()))
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(dict(labels) if self.across else kept)
            if self.across:
                self.outputs.add(tuple(sorted(kept.items())))
        return group

    def accumulator(self, labels: Mapping[str, str], index: int, max_series: int | None) -> Accumulator:
        """The step ``index`` of the output series ``labels`` fall in; a ``QueryError`` once the
        answer would hold more than ``max_series`` series."""
        steps = self.group(labels).steps
        if max_series is not None and self.output_count() > max_series:
            raise QueryError(
                f"the query matches more than {max_series} series, the most one answer "
                "holds: filter with label.<name>=<value> or group by fewer labels",
                field="by",
            )
        acc = steps.get(index)
        if acc is None:
            acc = steps[index] = Accumulator()
        return acc

    def index(self, offset: float) -> int:
        """The step holding a bucket that starts ``offset`` seconds into the window."""
        return int(offset // self.step) if self.step else 0

    def series(self) -> list[Series]:
        window_seconds = (self.end - self.start).total_seconds()
        step_seconds = float(self.step) if self.step else window_seconds
        n_steps = math.ceil(window_seconds / self.step) if self.step else 1
        spans: list[tuple[datetime, float]] = []  # each step's start and length (the last may be short)
        for index in range(n_steps):
            step_start = self.start + timedelta(seconds=index * (self.step or 0))
            step_end = min(self.end, step_start + timedelta(seconds=step_seconds))
            spans.append((step_start, (step_end - step_start).total_seconds()))
        fill_zero = self.agg in ("count", "sum", "rate")
        out: list[Series] = []
        for key in sorted(self.groups):
            group = self.groups[key]
            points: list[tuple[datetime, float]] = []
            for index, (step_start, seconds) in enumerate(spans):
                acc = group.steps.get(index)
                if acc is None:
                    if not fill_zero:
                        continue
                    acc = Accumulator()
                value = acc.value(self.agg, seconds)
                if value is not None:
                    points.append((step_start, value))
            # Built here from stored numbers: nothing to validate (the replay asks thousands a cycle).
            out.append(Series.model_construct(labels=group.labels, points=points))
        return self._combined(out) if self.across else out

    def _combined(self, per_series: list[Series]) -> list[Series]:
        """Each output group's series combined step by step with ``across``."""
        combine = {"sum": sum, "min": min, "max": max, "avg": lambda v: sum(v) / len(v)}[self.across or "sum"]
        grouped: dict[tuple[tuple[str, str], ...], dict[datetime, list[float]]] = {}
        for series in per_series:
            kept = tuple(sorted((k, v) for k, v in series.labels.items() if k in self.keep))
            steps = grouped.setdefault(kept, {})
            for at, value in series.points:
                steps.setdefault(at, []).append(value)
        return [
            Series.model_construct(
                labels=dict(key),
                points=[(at, float(combine(values))) for at, values in sorted(grouped[key].items())],
            )
            for key in sorted(grouped)
        ]


def run_query(query: MetricQuery, *, max_series: int | None = None) -> QueryResult:
    """Answer ``query`` from the Firestore rollups (see the module docstring for semantics); a
    ``QueryError`` when the answer would hold more than ``max_series`` series. A metric the
    catalogue keeps per customer is answered from the customer usage store (``_customer_usage``)."""
    from shared.metrics.customer_usage import spec_of

    spec = spec_of(query.metric)
    if spec is not None:
        return _customer_usage(query, spec, max_series)
    fold = Fold(query.agg, query.start, query.end, query.step, query.labels, query.group_by, query.across)
    resolution = _fold_rollups(fold, query, query.start, query.end, max_series)
    return QueryResult(metric=query.metric, agg=query.agg, series=fold.series(), resolution=resolution)


def _fold_rollups(
    fold: Fold, query: MetricQuery, start: datetime, end: datetime, max_series: int | None
) -> str:
    """The rollups of ``query.metric`` whose buckets start in ``[start, end)`` folded into
    ``fold``; returns the resolution read."""
    resolution = choose_resolution(query)
    bucket = RESOLUTION_SECONDS[resolution]
    if query.step is not None and query.step < bucket:
        raise QueryError(
            f"step {query.step}s is finer than the {resolution} rollups this window is answered from; "
            f"use step >= {bucket}"
        )
    wants_sketch = query.agg in QUANTILES

    # (rollups, whether each is counted in the bucket of its hour): the folded hours (a
    # recording rule's where one answers the query and holds them), and for an hour-resolution
    # window the minutes of hours not folded yet.
    sources: list[tuple[Any, bool, RangeKey]] = []
    if resolution == "hour":
        shared = current_build_reads()
        now = utcnow()
        state = (
            fold_state(query.metric, now)
            if shared is None
            else shared.once(("fold_state", query.metric), lambda: fold_state(query.metric, now))
        )
        folded = state.folded_until
        rule_for_query = rule_for(query.metric, query.labels, query.group_by, query.across)
        if start < folded:
            sources.extend(
                folded_sources(
                    query.metric, rule_for_query, state, start, min(end, folded), wants_sketch=wants_sketch
                )
            )
        # The hours whose start lies in [start, end), read from [their start, the next hour).
        low, high = max(folded, hour_ceil(start)), hour_ceil(end)
        if low < high:
            minutes = range_of(rollups(query.metric, "minute"), low, high)
            key: RangeKey = (query.metric, "minute", low, high)
            rule = rule_for_query
            if rule is None or shared is None:
                sources.append((minutes, True, key))
            else:
                # Inside a build: the rule's provisional hours while they still hold, the minutes
                # they do not cover merged by the rule once, for all its queries.
                tail = tail_documents(query.metric, rule, low, high, wants_sketch)
                sources.append((tail, False, key))
    else:
        sources.append(
            (
                range_of(rollups(query.metric, resolution), start, end),
                False,
                (query.metric, resolution, start, end),
            )
        )

    shared = current_build_reads()
    for source, by_hour, key in sources:
        # A rollup holds a bucket of series: each is filtered and grouped on its own labels.
        docs = source if isinstance(source, list) else documents(source, key, wants_sketch)
        for doc in docs:
            at = bucket_start(doc["t"], "hour") if by_hour else doc["t"]
            index = fold.index((at - query.start).total_seconds())
            for _, summary, sketch_bytes in entries(doc):
                labels: dict[str, str] = summary.get("labels") or {}
                if not fold.accepts(labels):
                    continue
                acc = fold.accumulator(labels, index, max_series)
                sketch = None
                if isinstance(sketch_bytes, Sketch):  # merged in memory (``rule_reads``)
                    sketch = sketch_bytes
                elif wants_sketch and sketch_bytes:
                    sketch = (
                        Sketch.from_bytes(sketch_bytes)
                        if shared is None
                        else shared.sketch(sketch_bytes, Sketch.from_bytes)
                    )
                acc.add(summary, sketch)
    return resolution


DAY_SECONDS = 86_400
USAGE_AGGS = ("sum", "rate")


def _customer_usage(query: MetricQuery, spec: CustomerUsage, max_series: int | None) -> QueryResult:
    """A customer usage metric: daily counters, a day belonging to the window when its start
    (UTC midnight) lies in ``[start, end)``. Days before the store's first day come from the
    metric store's rollups, where the metric was kept before."""
    from shared.metrics.customer_usage import day_start, labels_of, read_days

    if query.agg not in USAGE_AGGS:
        raise QueryError(
            f"{query.metric} is kept as daily counters per customer: agg must be sum or rate", field="agg"
        )
    if query.step is not None and query.step < DAY_SECONDS:
        raise QueryError(f"{query.metric} is kept per day: use step >= {DAY_SECONDS}")
    if query.resolution != "auto":
        raise QueryError(f"{query.metric} is kept per day, not per {query.resolution}", field="resolution")
    kept = {spec.customer, *spec.counted_by}
    for name in [*query.labels, *query.group_by]:
        if name not in kept:
            where = f"label.{name}" if name in query.labels else "by"
            raise QueryError(
                f"{query.metric} is kept per {', '.join(sorted(kept))}; label {name} is summed away",
                field=where,
            )
    fold = Fold(query.agg, query.start, query.end, query.step, query.labels, query.group_by, query.across)
    first = query.start.astimezone(UTC).date()
    if day_start(first) < query.start:
        first += timedelta(days=1)  # that day starts before the window
    last = (query.end - timedelta(microseconds=1)).astimezone(UTC).date() + timedelta(days=1)
    days = read_days(first, last, fields=[spec.field])
    since = day_start(days.since) if days.since is not None else None
    if since is None or query.start < since:
        _fold_rollups(fold, query, query.start, min(query.end, since or query.end), max_series)
    for customer, by_day in days.counters.items():
        for day, fields in by_day.items():
            at = day_start(day)
            if since is not None and at < since:
                continue  # read from the rollups above
            index = fold.index((at - query.start).total_seconds())
            for key, value in (fields.get(spec.field) or {}).items():
                labels = labels_of(spec, customer, key)
                if not fold.accepts(labels):
                    continue
                acc = fold.accumulator(labels, index, max_series)
                acc.add_counter(value)
    return QueryResult(metric=query.metric, agg=query.agg, series=fold.series(), resolution="day")
