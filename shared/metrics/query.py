"""The query API over the metric store, for every capability (alerts, dashboards, scaling, cost,
reports) and behind ``GET /v1/query`` of the ingestion function.

    from shared.metrics.query import run_query
    from shared.metrics.query_model import MetricQuery
    result = run_query(MetricQuery(metric="http.server.request.duration", agg="p95",
                                   start=now - timedelta(minutes=5), end=now,
                                   labels={"service": "route"}, group_by=["region"]))

Semantics:

- A rollup bucket (a minute, or an hour) belongs to the window when its start lies in
  ``[start, end)``; with ``step``, to the step ``i`` whose ``[start + i*step, start + (i+1)*step)``
  holds its start (with ``step_zone``, step ``i`` is the window's ``i``-th calendar day in that
  zone). Each point is labelled with its step's start (the window's start without step).
- Resolution: minute rollups when the window starts within the last 72 h (their retention),
  hourly rollups otherwise; ``step`` is a multiple of the resolution (60 s, 3600 s). Hours the
  downsampler has not folded yet (the last few: an hour is folded once the lateness allowance has
  passed) are read from their minute rollups, each counted in its hour's bucket, so an
  hour-resolution answer is the same before and after the fold.
- ``labels`` are equality filters; the output series keep the filter labels and ``group_by``
  labels, and every other label is aggregated away (counts and sums added, minima/maxima taken,
  sketches merged).
- ``count``: number of samples (gauge samples, histogram observations, sum data points);
  ``sum``: their sum (for sums, the increments); ``rate``: per second over the time the step's
  (or window's) buckets cover, up to now (``Fold.covered``), of the increments for sums and of
  the observations for gauges and histograms; ``avg`` =
  sum/count; ``min``/``max``; ``p50``..``p99`` from the merged DDSketch, within 1% relative error
  of the exact quantile (rank ``q*(n-1)``) over the raw samples.
- ``count``/``sum``/``rate`` steps without data are 0 in a series that has data in the window;
  other aggregations leave such steps out.
- ``across`` (``sum``, ``avg``, ``min``, ``max``): aggregate each stored series over time first,
  then combine the series of an output group step by step, as Cloud Monitoring's aligner then
  reducer and Prometheus' ``sum by (...) (avg_over_time(...))`` do. Without it, every sample of
  every series in a group is pooled, which is right for latencies and counters but wrong for a
  gauge like Cloud Run's instance count (one series per revision and state): its ``avg`` would be
  the average series, not the total. A series without a value in a step is absent from that
  step's reduction (not a 0 in it, even for ``count``/``sum``/``rate``); ``across=sum`` of those
  is still 0 in a step where no series has data.
- A histogram point sent without its sum (optional in OTLP) leaves ``sum`` and ``avg`` of its
  step unknown: the step is left out and the answer's ``notes`` say why; ``count``, ``rate``,
  ``min``/``max`` and percentiles are answered.

The request and answer are ``shared.metrics.query_model``'s; ``shared.metrics.fold`` holds these
semantics apart from the store (the alert replay folds its in-memory points with it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.clock import utcnow
from shared.metrics.build_reads import RangeKey, current_build_reads
from shared.metrics.catalogue import CustomerUsage
from shared.metrics.fold import Fold
from shared.metrics.query_model import QUANTILES, MetricQuery, QueryError, QueryResult, TooManyDocuments
from shared.metrics.recording import (
    rule_for,
)
from shared.metrics.rule_reads import documents, folded_sources, range_of, tail_documents
from shared.metrics.rule_reduce import merges_minutes, minutes_by_rule
from shared.metrics.sketch import Sketch
from shared.metrics.store import (
    RESOLUTION_SECONDS,
    RETENTION,
    bucket_start,
    entries,
    fold_state,
    hour_ceil,
    rollups,
)


def choose_resolution(query: MetricQuery, now: datetime | None = None) -> str:
    if query.resolution != "auto":
        return query.resolution
    now = now or utcnow()
    return "minute" if query.start >= now - RETENTION["minute"] else "hour"


def run_query(
    query: MetricQuery, *, max_series: int | None = None, max_documents: int | None = None
) -> QueryResult:
    """Answer ``query`` from the Firestore rollups (see the module docstring for semantics); a
    ``QueryError`` when the answer would hold more than ``max_series`` series, ``TooManyDocuments``
    once more than ``max_documents`` rollups are read (none more is). A metric the catalogue
    keeps per customer is answered from the customer usage store (``_customer_usage``)."""
    from shared.metrics.customer_usage import spec_of

    spec = spec_of(query.metric)
    if spec is not None:
        return _customer_usage(query, spec, max_series, max_documents)
    fold = _fold(query)
    resolution = _fold_rollups(fold, query, query.start, query.end, max_series, max_documents)
    series = fold.series()
    return QueryResult(
        metric=query.metric, agg=query.agg, series=series, resolution=resolution, notes=fold.notes
    )


def _fold_rollups(  # noqa: PLR0917 - the query, its window and its two bounds
    fold: Fold,
    query: MetricQuery,
    start: datetime,
    end: datetime,
    max_series: int | None,
    max_documents: int | None = None,
) -> str:
    """The rollups of ``query.metric`` whose buckets start in ``[start, end)`` folded into
    ``fold``; returns the resolution read."""
    now = utcnow()
    resolution = choose_resolution(query, now)
    bucket = RESOLUTION_SECONDS[resolution]
    kept_from = now - RETENTION["minute"]
    if resolution == "minute" and start < kept_from:
        # Forced: minutes older than their retention are gone or going (TTL deletes them over
        # the following day): the answer would be silently partial.
        raise QueryError(
            f"minute rollups are kept {RETENTION['minute'].total_seconds() / 3600:.0f} h: the window "
            f"starts at {start.isoformat()}, before {kept_from.isoformat()}; use resolution=hour "
            "or auto",
            field="resolution",
        )
    if query.step is not None and query.step < bucket:
        raise QueryError(
            f"step {query.step}s is finer than the {resolution} rollups this window is answered from; "
            f"use step >= {bucket}"
        )
    if query.step is not None and query.step % bucket:
        # A step of 90 s over minute rollups holds two buckets, then one: a steady rate would
        # chart as a sawtooth (rollups cannot be split).
        raise QueryError(
            f"step {query.step}s is not a whole number of the {resolution} rollups ({bucket} s) this "
            f"window is answered from; use a multiple of {bucket}, "
            f"e.g. {_nearest_multiple(query.step, bucket)}"
        )
    fold.bucket_seconds, fold.now = bucket, now
    wants_sketch = query.agg in QUANTILES

    # (rollups, whether each is counted in the bucket of its hour): the folded hours (a
    # recording rule's where one answers the query and holds them), and for an hour-resolution
    # window the minutes of hours not folded yet.
    sources: list[tuple[Any, bool, RangeKey]] = []
    if resolution == "hour":
        shared = current_build_reads()
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
        window = range_of(rollups(query.metric, resolution), start, end)
        key = (query.metric, resolution, start, end)
        rule = rule_for(query.metric, query.labels, query.group_by, query.across)
        if rule is None or current_build_reads() is None or not merges_minutes():
            sources.append((window, False, key))
        else:
            # Inside a build: the window's minutes merged by the rule once, for all its queries.
            merged = minutes_by_rule(lambda: documents(window, key, True), key, rule, wants_sketch)
            sources.append((merged, False, key))

    shared = current_build_reads()
    read = 0
    for source, by_hour, key in sources:
        # A rollup holds a bucket of series: each is filtered and grouped on its own labels.
        docs = source if isinstance(source, list) else documents(source, key, wants_sketch)
        for doc in docs:
            read += 1
            if max_documents is not None and read > max_documents:
                raise TooManyDocuments(max_documents)
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


def _customer_usage(
    query: MetricQuery, spec: CustomerUsage, max_series: int | None, max_documents: int | None
) -> QueryResult:
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
    if query.step is not None and query.step % DAY_SECONDS:
        raise QueryError(
            f"{query.metric} is kept per day: use a step of whole days, "
            f"e.g. {_nearest_multiple(query.step, DAY_SECONDS)}"
        )
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
    fold = _fold(query)
    first = query.start.astimezone(UTC).date()
    if day_start(first) < query.start:
        first += timedelta(days=1)  # that day starts before the window
    last = (query.end - timedelta(microseconds=1)).astimezone(UTC).date() + timedelta(days=1)
    days = read_days(first, last, fields=[spec.field])
    since = day_start(days.since) if days.since is not None else None
    if since is None or query.start < since:
        _fold_rollups(fold, query, query.start, min(query.end, since or query.end), max_series, max_documents)
    fold.bucket_seconds, fold.now = DAY_SECONDS, utcnow()
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


def _nearest_multiple(step: int, bucket: int) -> int:
    return max(bucket, round(step / bucket) * bucket)


def _fold(query: MetricQuery) -> Fold:
    return Fold(
        query.agg,
        query.start,
        query.end,
        query.step,
        query.labels,
        query.group_by,
        query.across,
        step_zone=query.step_zone,
    )
