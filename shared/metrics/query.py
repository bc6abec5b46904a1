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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from shared.clock import utcnow
from shared.metrics.sketch import Sketch
from shared.metrics.store import (
    RESOLUTION_SECONDS,
    RETENTION,
    SUMMARY_FIELDS,
    Summary,
    bucket_start,
    entries,
    folded_until,
    hour_ceil,
    rollups,
)

Agg = Literal["count", "sum", "rate", "avg", "min", "max", "p50", "p90", "p95", "p99"]
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


@dataclass
class _Acc:
    count: float = 0.0
    sum: float = 0.0
    rate_num: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    sketch: Sketch | None = None
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
        return self.sketch.quantile(QUANTILES[agg]) if self.sketch is not None else None


@dataclass
class _Group:
    labels: dict[str, str]
    steps: dict[int, _Acc] = field(default_factory=dict)


def run_query(query: MetricQuery, *, max_series: int | None = None) -> QueryResult:
    """Answer ``query`` from the Firestore rollups (see the module docstring for semantics); a
    ``QueryError`` when the answer would hold more than ``max_series`` series."""
    resolution = choose_resolution(query)
    bucket = RESOLUTION_SECONDS[resolution]
    if query.step is not None and query.step < bucket:
        raise QueryError(
            f"step {query.step}s is finer than the {resolution} rollups this window is answered from; "
            f"use step >= {bucket}"
        )
    wants_sketch = query.agg in QUANTILES
    keep = sorted(set(query.labels) | set(query.group_by))
    window_seconds = (query.end - query.start).total_seconds()
    step_seconds = float(query.step) if query.step else window_seconds

    # (rollups, whether each is counted in the bucket of its hour): the folded hours, and for an
    # hour-resolution window the minutes of hours not folded yet.
    sources: list[tuple[Any, bool]] = []
    if resolution == "hour":
        folded = folded_until(query.metric, utcnow())
        if query.start < folded:
            hours = _range(rollups(query.metric, "hour"), query.start, min(query.end, folded))
            sources.append((hours, False))
        # The hours whose start lies in [start, end), read from [their start, the next hour).
        low, high = max(folded, hour_ceil(query.start)), hour_ceil(query.end)
        if low < high:
            sources.append((_range(rollups(query.metric, "minute"), low, high), True))
    else:
        sources.append((_range(rollups(query.metric, resolution), query.start, query.end), False))

    groups: dict[tuple[tuple[str, str], ...], _Group] = {}
    for source, by_hour in sources:
        # A rollup holds a bucket of series: each is filtered and grouped on its own labels.
        stream = source if wants_sketch else source.select(SUMMARY_FIELDS)
        for snapshot in stream.stream():
            doc = snapshot.to_dict() or {}
            at = bucket_start(doc["t"], "hour") if by_hour else doc["t"]
            offset = (at - query.start).total_seconds()
            index = int(offset // query.step) if query.step else 0
            for _, summary, sketch_bytes in entries(doc):
                labels: dict[str, str] = summary.get("labels") or {}
                if any(labels.get(k) != v for k, v in query.labels.items()):
                    continue
                kept = {k: labels[k] for k in keep if k in labels}
                key = tuple(sorted(kept.items()))
                group = groups.get(key)
                if group is None:
                    if max_series is not None and len(groups) >= max_series:
                        raise QueryError(
                            f"the query matches more than {max_series} series, the most one answer "
                            "holds: filter with label.<name>=<value> or group by fewer labels",
                            field="by",
                        )
                    group = groups[key] = _Group(kept)
                acc = group.steps.get(index)
                if acc is None:
                    acc = group.steps[index] = _Acc()
                sketch = Sketch.from_bytes(sketch_bytes) if wants_sketch and sketch_bytes else None
                acc.add(summary, sketch)

    n_steps = math.ceil(window_seconds / query.step) if query.step else 1
    fill_zero = query.agg in ("count", "sum", "rate")
    series: list[Series] = []
    for key in sorted(groups):
        group = groups[key]
        points: list[tuple[datetime, float]] = []
        for index in range(n_steps):
            acc = group.steps.get(index)
            if acc is None:
                if not fill_zero:
                    continue
                acc = _Acc()
            step_start = query.start + timedelta(seconds=index * (query.step or 0))
            step_end = min(query.end, step_start + timedelta(seconds=step_seconds))
            value = acc.value(query.agg, (step_end - step_start).total_seconds())
            if value is not None:
                points.append((step_start, value))
        series.append(Series(labels=group.labels, points=points))
    return QueryResult(metric=query.metric, agg=query.agg, series=series, resolution=resolution)


def _range(collection: Any, start: datetime, end: datetime) -> Any:
    """Rollups whose bucket starts in ``[start, end)``: a range on ``t``, which Firestore's
    automatic single-field index serves."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    return collection.where(filter=FieldFilter("t", ">=", start)).where(filter=FieldFilter("t", "<", end))
