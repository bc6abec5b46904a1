"""A decoded OTLP request aggregated into a ``Batch``: every data point checked and refused one
by one with a reason, gauges kept as raw samples, sums and histograms through one loop with a
small adapter per point shape (``shapes.py``). OpenTelemetry mapping: resource attribute
``service.name`` becomes label ``service`` and ``cloud.region`` label ``region``; other resource
attributes identify the stream (for cumulative sums and histograms) but are not labels; data
point attributes become labels (``labels.py``)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from functions.ingestion.aggregate import MINUTE_NANOS, Batch, Cell, MetricInfo, SeriesBatch
from functions.ingestion.descriptors import unit_problem
from functions.ingestion.identities import known_identities, resolve_identity
from functions.ingestion.labels import RESOURCE_LABELS, any_value, label_pairs, origin_id, raw_point_attrs
from functions.ingestion.point_keys import origin_tag, record
from functions.ingestion.shapes import (
    CUMULATIVE,
    DELTA,
    ExpHistogramShape,
    HistogramShape,
    Shape,
    SumShape,
    number_value,
    temporality_problem,
)
from shared.customer_keys import CUSTOMER_ID_PATTERN
from shared.metrics.catalogue import customer_usage_metrics
from shared.metrics.customer_usage import RETENTION as USAGE_RETENTION
from shared.metrics.store import series_id

NO_RECORDED_VALUE = 1
NANOS = 1_000_000_000
USAGE_RETENTION_NS = int(USAGE_RETENTION.total_seconds()) * NANOS
_CUSTOMER_ID = re.compile(CUSTOMER_ID_PATTERN)
MAX_NAME = 255
MAX_LABEL_KEY = 128
# Defaults of ION_METRICS_MAX_LABEL_VALUE_LENGTH and ION_METRICS_MAX_ATTRIBUTES_PER_POINT.
MAX_LABEL_VALUE = 256
MAX_ATTRIBUTES = 16


class _Aggregator:
    def __init__(  # noqa: PLR0917 - the batch and its limits
        self,
        batch: Batch,
        now_ns: int,
        max_age_s: int,
        max_future_s: int,
        max_attributes: int = MAX_ATTRIBUTES,
        max_label_value: int = MAX_LABEL_VALUE,
    ) -> None:
        self.batch = batch
        self.now_ns = now_ns
        self.usage = customer_usage_metrics()
        self.oldest = now_ns - max_age_s * 1_000_000_000
        self.newest = now_ns + max_future_s * 1_000_000_000
        self.max_attributes = max_attributes
        self.max_label_value = max_label_value
        self._series: dict[tuple[Any, ...], SeriesBatch | str] = {}

    def check_time(self, t: int) -> str | None:
        if t <= 0:
            return "time_unix_nano is missing"
        if t < self.oldest:
            return "point is older than the accepted age (ION_METRICS_MAX_AGE_SECONDS)"
        if t > self.newest:
            return "point is ahead of the clock by more than ION_METRICS_MAX_FUTURE_SECONDS"
        return None

    def note_refused(self, metric: str, dp: Any, t: int) -> None:
        """A refused point of a customer usage metric: counted against its customer and day (the
        point's, or today's when its time is not one a day document is kept for), so health
        scores that customer usage_unknown instead of idle."""
        spec = self.usage[metric]
        try:
            raw = tuple(dp.attributes[:])
            pairs = raw_point_attrs(raw) if raw and isinstance(raw[0], bytes) else label_pairs(raw)
        except (ValueError, TypeError):
            return
        customer = dict(pairs).get(spec.customer, "")
        if not _CUSTOMER_ID.match(customer):
            return
        kept = self.now_ns - USAGE_RETENTION_NS < t <= self.newest
        day = datetime.fromtimestamp((t if kept else self.now_ns) / NANOS, UTC).date()
        refusals = self.batch.customer_refusals
        refusals[(customer, day)] = refusals.get((customer, day), 0) + 1

    def label_problem(self, labels: dict[str, str], attrs: tuple[tuple[str, str], ...]) -> str | None:
        """Why a point with these labels (``attrs`` its own attributes) is refused, or None."""
        if len(attrs) > self.max_attributes:
            return (
                f"{len(attrs)} attributes on a data point, at most {self.max_attributes} "
                "(ION_METRICS_MAX_ATTRIBUTES_PER_POINT)"
            )
        for k, v in labels.items():
            if not k or len(k) > MAX_LABEL_KEY:
                return f"label key {k[:40]!r} must be 1-{MAX_LABEL_KEY} characters"
            if len(v) > self.max_label_value:
                return (
                    f"label {k[:40]} is {len(v)} characters long, at most {self.max_label_value} "
                    "(ION_METRICS_MAX_LABEL_VALUE_LENGTH)"
                )
        return None

    def series(
        self,
        metric: str,
        kind: str,
        resource_labels: tuple[tuple[str, str], ...],
        raw_attrs: tuple[bytes, ...],
    ) -> SeriesBatch | str:
        """The series of these labels (``raw_attrs``: the point's attributes as wire bytes), or the
        reason its labels are refused."""
        key = (metric, kind, resource_labels, raw_attrs)
        found = self._series.get(key)
        if found is not None:
            return found
        try:
            attrs = raw_point_attrs(raw_attrs)
        except ValueError as exc:
            self._series[key] = str(exc)
            return str(exc)
        labels = dict(resource_labels)
        labels.update(attrs)
        problem = self.label_problem(labels, attrs)
        if problem is not None:
            self._series[key] = problem
            return problem
        sid = series_id(metric, labels)
        series = self.batch.series.get(sid)
        if series is None:
            series = self.batch.series[sid] = SeriesBatch.new(metric, sid, labels, kind)
        self._series[key] = series
        return series


def aggregate(
    request: Any,
    *,
    now_ns: int,
    max_age_s: int,
    max_future_s: int,
    max_attributes: int = MAX_ATTRIBUTES,
    max_label_value: int = MAX_LABEL_VALUE,
) -> Batch:
    """Every data point of ``request`` (decoded by ``otlp.decode_request``: attributes as wire
    bytes) into a ``Batch``; refused points are counted with reasons."""
    batch = Batch()
    agg = _Aggregator(batch, now_ns, max_age_s, max_future_s, max_attributes, max_label_value)
    for rm in request.resource_metrics:
        resource_attrs = sorted((kv.key, any_value(kv.value)) for kv in rm.resource.attributes)
        resource_labels = tuple(
            sorted((RESOURCE_LABELS[k], v) for k, v in resource_attrs if k in RESOURCE_LABELS)
        )
        resource_key = repr(resource_attrs)
        batch.senders.add(resource_key)
        for sm in rm.scope_metrics:
            scope_key = f"{sm.scope.name}\x1e{sm.scope.version}"
            for metric in sm.metrics:
                _metric(agg, metric, resource_labels, resource_key, scope_key)
    return batch


def _metric(
    agg: _Aggregator,
    metric: Any,
    resource_labels: tuple[tuple[str, str], ...],
    resource_key: str,
    scope_key: str,
) -> None:
    batch = agg.batch
    name: str = metric.name
    shape = metric.WhichOneof("data")
    if not name or len(name) > MAX_NAME:
        batch.reject(name[:60], f"metric name must be 1-{MAX_NAME} characters", _count_points(metric))
        return
    info = batch.metrics.get(name)  # the metric seen earlier in this batch: one unit for both
    if info is not None and (problem := unit_problem(name, metric.unit, info.unit)):
        batch.reject(name, problem, _count_points(metric))
        return
    if info is not None and not info.unit:
        info.unit = metric.unit
    origin = origin_tag(origin_id(resource_key, scope_key))
    if shape == "gauge":
        _gauge(agg, name, metric.gauge.data_points, resource_labels, origin)
        batch.metrics.setdefault(name, MetricInfo(name, "gauge", metric.unit, metric.description))
    elif shape == "sum":
        data = metric.sum
        if data.aggregation_temporality == CUMULATIVE and not data.is_monotonic:
            # An up-down counter's cumulative value is a level (connections, queue depth): a gauge.
            _gauge(agg, name, data.data_points, resource_labels, origin)
        else:
            sums = SumShape(bool(data.is_monotonic), data.aggregation_temporality)
            _points(agg, name, data, sums, resource_labels, resource_key, scope_key)
        kind = "sum" if metric.sum.is_monotonic or metric.sum.aggregation_temporality == DELTA else "gauge"
        batch.metrics.setdefault(name, MetricInfo(name, kind, metric.unit, metric.description))
    elif shape == "histogram":
        _points(agg, name, metric.histogram, HistogramShape(), resource_labels, resource_key, scope_key)
        batch.metrics.setdefault(name, MetricInfo(name, "histogram", metric.unit, metric.description))
    elif shape == "exponential_histogram":
        exp = metric.exponential_histogram
        _points(agg, name, exp, ExpHistogramShape(), resource_labels, resource_key, scope_key)
        batch.metrics.setdefault(name, MetricInfo(name, "histogram", metric.unit, metric.description))
    elif shape == "summary":
        batch.reject(
            name,
            "Summary is not supported (its quantiles cannot be merged); export a histogram",
            len(metric.summary.data_points),
        )
    # A metric with no data at all carries no points: nothing to store or refuse.


def _count_points(metric: Any) -> int:
    shape = metric.WhichOneof("data")
    return len(getattr(metric, shape).data_points) if shape else 0


def _gauge(
    agg: _Aggregator, name: str, points: Any, resource_labels: tuple[tuple[str, str], ...], origin: int
) -> None:
    # The hot path (one raw sample per point): locals only, no per-point allocation but the labels.
    batch = agg.batch
    oldest, newest = agg.oldest, agg.newest
    isfinite = math.isfinite
    accepted = 0
    watch = name in agg.usage
    min_t, max_t = batch.min_t or newest, batch.max_t
    for dp in points:
        if dp.flags & NO_RECORDED_VALUE:
            continue
        which = dp.WhichOneof("value")
        if which is None:
            batch.reject(name, "data point has no value")
            if watch:
                agg.note_refused(name, dp, dp.time_unix_nano)
            continue
        value = dp.as_double if which == "as_double" else float(dp.as_int)
        t = dp.time_unix_nano
        problem = None if oldest <= t <= newest else agg.check_time(t)
        if problem is None and not isfinite(value):
            problem = f"value is {value} (NaN and infinities are refused)"
        series = None if problem else agg.series(name, "gauge", resource_labels, tuple(dp.attributes[:]))
        if isinstance(series, str):
            problem = series
        if problem is not None or series is None:
            batch.reject(name, problem or "refused")
            if watch:
                agg.note_refused(name, dp, t)
            continue
        minute = t // MINUTE_NANOS
        cell = series.minutes.get(minute)
        if cell is None:
            cell = series.minutes[minute] = Cell()
        record(cell, value, t, origin)
        series.points += 1
        accepted += 1
        if t < min_t:  # noqa: PLR1730 - hot path, faster than min()
            min_t = t
        if t > max_t:  # noqa: PLR1730
            max_t = t
    if accepted:
        batch.accepted += accepted
        batch.min_t, batch.max_t = min_t, max_t


def _points(  # noqa: PLR0917 - one signature for every point shape; the hot loop's locals
    agg: _Aggregator,
    name: str,
    data: Any,
    shape: Shape,
    resource_labels: tuple[tuple[str, str], ...],
    resource_key: str,
    scope_key: str,
) -> None:
    """Every point of a sum, histogram or exponential histogram: checked, then added to its
    minute's cell (delta) or kept for its stream (cumulative)."""
    batch = agg.batch
    series_of = batch.series
    temporality = data.aggregation_temporality
    bad_temporality = temporality_problem(temporality)
    cumulative = temporality == CUMULATIVE
    keyed = isinstance(shape, SumShape) and not cumulative
    sender = origin_tag(origin_id(resource_key, scope_key))  # the origin of every point here
    kind = shape.kind
    oldest, newest = agg.oldest, agg.newest
    known = known_identities(agg.max_attributes, agg.max_label_value, name, kind, resource_key, scope_key)
    watch = name in agg.usage
    accepted = 0
    min_t, max_t = batch.min_t, batch.max_t
    for dp in data.data_points:
        if dp.flags & NO_RECORDED_VALUE:
            continue
        t = dp.time_unix_nano
        problem = bad_temporality or (None if oldest <= t <= newest else agg.check_time(t))
        point: Any = None
        if problem is None:
            if cumulative:
                point = shape.checked(dp, t)
                if isinstance(point, str):
                    problem = point
            else:
                problem = shape.problem(dp)
        if problem is not None:
            batch.reject(name, problem)
            if watch:
                agg.note_refused(name, dp, t)
            continue
        raw_attrs = tuple(dp.attributes[:])
        found = known.get(raw_attrs)
        if found is None:
            found = resolve_identity(
                agg.label_problem, known, name, resource_key, scope_key, raw_attrs, resource_labels
            )
        sid, labels, problem, stream, origin = found
        if problem is not None:
            batch.reject(name, problem)
            if watch:
                agg.note_refused(name, dp, t)
            continue
        series = series_of.get(sid)
        if series is None:
            series = series_of[sid] = SeriesBatch.new(name, sid, labels, kind)
        if cumulative:
            points = series.streams.get(stream)
            if points is None:
                series.streams[stream] = [point]
                series.origins[stream] = origin
            else:
                points.append(point)
        elif keyed:  # a delta sum's increment: recognised across batches (``point_keys.py``)
            record(series.cell(t), number_value(dp), t, sender)
        else:
            shape.add(series.cell(t), dp, t)
        series.points += 1
        accepted += 1
        if not min_t or t < min_t:
            min_t = t
        if t > max_t:  # noqa: PLR1730 - hot path, faster than max()
            max_t = t
    if accepted:
        batch.accepted += accepted
        batch.min_t, batch.max_t = min_t, max_t
