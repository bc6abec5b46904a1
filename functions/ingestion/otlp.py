"""OTLP/HTTP metrics: decoding (protobuf or JSON, optionally gzip) and aggregation into a
``Batch``, with every data point checked and refused one by one with a reason.

OpenTelemetry mapping: resource attribute ``service.name`` becomes label ``service`` and
``cloud.region`` label ``region``; other resource attributes identify the stream (for cumulative
sums and histograms) but are not labels; data point attributes become labels.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import zlib
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Literal

from google.protobuf.message import DecodeError

from functions.ingestion.aggregate import (
    MINUTE_NANOS,
    Batch,
    Cell,
    CumulativePoint,
    MetricInfo,
    SeriesBatch,
    explicit_buckets_sketch,
    exponential_buckets_sketch,
)
from shared.metrics.store import series_id

if TYPE_CHECKING:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest


class RejectedPayload(ValueError):
    """A payload that can never be stored: ``malformed`` (400), ``too_large`` (413) or
    ``unsupported`` (415, with what is ``allowed``)."""

    def __init__(
        self,
        reason: Literal["malformed", "too_large", "unsupported"],
        detail: str,
        *,
        allowed: list[str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.allowed = allowed


PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf")
JSON_TYPES = ("application/json",)
RESOURCE_LABELS = {"service.name": "service", "cloud.region": "region"}
DELTA, CUMULATIVE = 1, 2
NO_RECORDED_VALUE = 1
MAX_NAME = 255
MAX_LABEL_KEY = 128
MAX_LABEL_VALUE = 1024
MIN_EXP_SCALE, MAX_EXP_SCALE = -10, 20


# --- decoding ---------------------------------------------------------------------------------


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding: gzip`` (or deflate) without inflating past ``limit`` bytes."""
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise RejectedPayload(
            "unsupported",
            f"Content-Encoding {encoding} is not supported.",
            allowed=["gzip", "deflate", "identity"],
        )
    wbits = 16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise RejectedPayload("malformed", f"Body is not valid {encoding}: {exc}.") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise RejectedPayload("too_large", f"Decompressed body exceeds the limit of {limit} bytes.")
    if not inflater.eof:
        raise RejectedPayload("malformed", f"Body is truncated {encoding} data.")
    return data


def decode_request(body: bytes, content_type: str | None) -> ExportMetricsServiceRequest:
    """An ``ExportMetricsServiceRequest`` from OTLP protobuf or OTLP JSON; 400 saying what is wrong."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    mimetype = (content_type or "").split(";", 1)[0].strip().lower()
    if mimetype in PROTOBUF_TYPES:
        try:
            request = ExportMetricsServiceRequest.FromString(body)
        except (DecodeError, ValueError, RecursionError) as exc:
            raise RejectedPayload(
                "malformed", f"Body is not a valid OTLP ExportMetricsServiceRequest protobuf: {exc}."
            ) from None
        return request
    if mimetype in JSON_TYPES:
        return decode_json(body)
    raise RejectedPayload(
        "unsupported",
        f"Content-Type {mimetype or '(none)'} is not supported; send OTLP as "
        "application/x-protobuf or application/json.",
        allowed=["application/x-protobuf", "application/json"],
    )


def decode_json(body: bytes) -> ExportMetricsServiceRequest:
    from google.protobuf.json_format import ParseDict, ParseError
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise RejectedPayload("malformed", f"Body is not valid JSON: {exc}.") from None
    if not isinstance(document, dict):
        raise RejectedPayload("malformed", "OTLP JSON must be an object with `resourceMetrics`.")
    _drop_exemplars(document)
    try:
        return ParseDict(document, ExportMetricsServiceRequest(), ignore_unknown_fields=True)
    except (ParseError, ValueError, TypeError, RecursionError) as exc:
        raise RejectedPayload(
            "malformed", f"Body is not a valid OTLP JSON ExportMetricsServiceRequest: {exc}."
        ) from None


def _drop_exemplars(node: Any) -> None:
    """OTLP JSON writes trace and span ids as hex, protobuf's JSON mapping expects base64; the
    ingestion does not use exemplars, so they are removed before parsing."""
    if isinstance(node, dict):
        node.pop("exemplars", None)
        for value in node.values():
            _drop_exemplars(value)
    elif isinstance(node, list):
        for value in node:
            _drop_exemplars(value)


def content_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


# --- aggregation ------------------------------------------------------------------------------


def _any_value(value: Any) -> str:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return str(value.string_value)
    if kind is None:
        return ""
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return repr(value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return json.dumps(_any_json(value), sort_keys=True)


def _any_json(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_any_json(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_json(kv.value) for kv in value.kvlist_value.values}
    return _any_value(value)


class _Aggregator:
    def __init__(self, batch: Batch, now_ns: int, max_age_s: int, max_future_s: int) -> None:
        self.batch = batch
        self.oldest = now_ns - max_age_s * 1_000_000_000
        self.newest = now_ns + max_future_s * 1_000_000_000
        self._series: dict[tuple[Any, ...], SeriesBatch | str] = {}

    def check_time(self, t: int) -> str | None:
        if t <= 0:
            return "time_unix_nano is missing"
        if t < self.oldest:
            return "point is older than the accepted age (ION_METRICS_MAX_AGE_SECONDS)"
        if t > self.newest:
            return "point is ahead of the clock by more than ION_METRICS_MAX_FUTURE_SECONDS"
        return None

    def series(
        self,
        metric: str,
        kind: str,
        resource_labels: tuple[tuple[str, str], ...],
        attrs: tuple[tuple[str, str], ...],
    ) -> SeriesBatch | str:
        """The series of these labels, or the reason its labels are refused."""
        key = (metric, kind, resource_labels, attrs)
        found = self._series.get(key)
        if found is not None:
            return found
        labels = dict(resource_labels)
        labels.update(attrs)
        problem = None
        for k, v in labels.items():
            if not k or len(k) > MAX_LABEL_KEY:
                problem = f"label key {k[:40]!r} must be 1-{MAX_LABEL_KEY} characters"
            elif len(v) > MAX_LABEL_VALUE:
                problem = f"label {k} is longer than {MAX_LABEL_VALUE} characters"
        if problem is not None:
            self._series[key] = problem
            return problem
        sid = series_id(metric, labels)
        series = self.batch.series.get(sid)
        if series is None:
            series = self.batch.series[sid] = SeriesBatch(metric=metric, sid=sid, labels=labels, kind=kind)
        self._series[key] = series
        return series


def _attrs(dp: Any) -> tuple[tuple[str, str], ...]:
    out = []
    for kv in dp.attributes:
        value = kv.value
        if value.WhichOneof("value") == "string_value":
            out.append((kv.key, value.string_value))
        else:
            out.append((kv.key, _any_value(value)))
    if len(out) > 1:
        out.sort()
    return tuple(out)


def _stream_id(metric: str, resource_key: str, scope_key: str, attrs: tuple[tuple[str, str], ...]) -> str:
    text = "\x1d".join((metric, resource_key, scope_key, repr(attrs)))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def aggregate(
    request: ExportMetricsServiceRequest, *, now_ns: int, max_age_s: int, max_future_s: int
) -> Batch:
    """Every data point of ``request`` into a ``Batch``; refused points are counted with reasons."""
    batch = Batch()
    agg = _Aggregator(batch, now_ns, max_age_s, max_future_s)
    for rm in request.resource_metrics:
        resource_attrs = sorted((kv.key, _any_value(kv.value)) for kv in rm.resource.attributes)
        resource_labels = tuple(
            sorted((RESOURCE_LABELS[k], v) for k, v in resource_attrs if k in RESOURCE_LABELS)
        )
        resource_key = repr(resource_attrs)
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
    if shape == "gauge":
        _gauge(agg, name, metric.gauge.data_points, resource_labels, "gauge")
        batch.metrics.setdefault(name, MetricInfo(name, "gauge", metric.unit, metric.description))
    elif shape == "sum":
        _sum(agg, name, metric.sum, resource_labels, resource_key, scope_key)
        kind = "sum" if metric.sum.is_monotonic or metric.sum.aggregation_temporality == DELTA else "gauge"
        batch.metrics.setdefault(name, MetricInfo(name, kind, metric.unit, metric.description))
    elif shape == "histogram":
        _histogram(agg, name, metric.histogram, resource_labels, resource_key, scope_key)
        batch.metrics.setdefault(name, MetricInfo(name, "histogram", metric.unit, metric.description))
    elif shape == "exponential_histogram":
        _exp_histogram(agg, name, metric.exponential_histogram, resource_labels, resource_key, scope_key)
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
    agg: _Aggregator, name: str, points: Any, resource_labels: tuple[tuple[str, str], ...], kind: str
) -> None:
    # The hot path (one raw sample per point): locals only, no per-point allocation but the labels.
    batch = agg.batch
    oldest, newest = agg.oldest, agg.newest
    isfinite = math.isfinite
    accepted = 0
    min_t, max_t = batch.min_t or newest, batch.max_t
    for dp in points:
        if dp.flags & NO_RECORDED_VALUE:
            continue
        which = dp.WhichOneof("value")
        if which is None:
            batch.reject(name, "data point has no value")
            continue
        value = dp.as_double if which == "as_double" else float(dp.as_int)
        t = dp.time_unix_nano
        problem = None if oldest <= t <= newest else agg.check_time(t)
        if problem is None and not isfinite(value):
            problem = f"value is {value} (NaN and infinities are refused)"
        series = agg.series(name, kind, resource_labels, _attrs(dp)) if problem is None else None
        if isinstance(series, str):
            problem = series
        if problem is not None or series is None:
            batch.reject(name, problem or "refused")
            continue
        minute = t // MINUTE_NANOS
        cell = series.minutes.get(minute)
        if cell is None:
            cell = series.minutes[minute] = Cell()
        cell.add(value, t)
        series.points += 1
        accepted += 1
        if t < min_t:  # noqa: PLR1730 - hot path, faster than min()
            min_t = t
        if t > max_t:  # noqa: PLR1730
            max_t = t
    if accepted:
        batch.accepted += accepted
        batch.min_t, batch.max_t = min_t, max_t


def _temporality_problem(temporality: int) -> str | None:
    if temporality in (DELTA, CUMULATIVE):
        return None
    return "aggregation_temporality must be DELTA (1) or CUMULATIVE (2)"


def _sum(  # noqa: PLR0917 - one signature for every point shape
    agg: _Aggregator,
    name: str,
    data: Any,
    resource_labels: tuple[tuple[str, str], ...],
    resource_key: str,
    scope_key: str,
) -> None:
    batch = agg.batch
    temporality = data.aggregation_temporality
    monotonic = bool(data.is_monotonic)
    if temporality == CUMULATIVE and not monotonic:
        # An up-down counter's cumulative value is a level (connections, queue depth): a gauge.
        _gauge(agg, name, data.data_points, resource_labels, "gauge")
        return
    bad_temporality = _temporality_problem(temporality)
    for dp in data.data_points:
        if dp.flags & NO_RECORDED_VALUE:
            continue
        which = dp.WhichOneof("value")
        value = dp.as_double if which == "as_double" else float(dp.as_int)
        t = dp.time_unix_nano
        problem = bad_temporality or agg.check_time(t)
        if problem is None and which is None:
            problem = "data point has no value"
        if problem is None and not math.isfinite(value):
            problem = f"value is {value} (NaN and infinities are refused)"
        if problem is None and monotonic and value < 0:
            problem = (
                "negative increment of a monotonic sum"
                if temporality == DELTA
                else "negative cumulative value of a monotonic sum"
            )
        attrs = _attrs(dp)
        series = agg.series(name, "sum", resource_labels, attrs) if problem is None else None
        if isinstance(series, str):
            problem = series
        if problem is not None or series is None:
            batch.reject(name, problem or "refused")
            continue
        if temporality == DELTA:
            series.cell(t).add_increment(value, t)
        else:
            stream = _stream_id(name, resource_key, scope_key, attrs)
            series.streams.setdefault(stream, []).append(
                CumulativePoint(shape="sum", start=dp.start_time_unix_nano, time=t, value=value)
            )
        series.points += 1
        batch.accepted += 1
        batch.saw(t)


def _optional(dp: Any, field: str) -> float | None:
    return float(getattr(dp, field)) if dp.HasField(field) else None


def _histogram(  # noqa: PLR0917 - one signature for every point shape
    agg: _Aggregator,
    name: str,
    data: Any,
    resource_labels: tuple[tuple[str, str], ...],
    resource_key: str,
    scope_key: str,
) -> None:
    batch = agg.batch
    temporality = data.aggregation_temporality
    bad_temporality = _temporality_problem(temporality)
    for dp in data.data_points:
        if dp.flags & NO_RECORDED_VALUE:
            continue
        t = dp.time_unix_nano
        bounds = tuple(dp.explicit_bounds)
        buckets = tuple(dp.bucket_counts)
        total, minimum, maximum = _optional(dp, "sum"), _optional(dp, "min"), _optional(dp, "max")
        problem = bad_temporality or agg.check_time(t)
        if problem is None:
            problem = _histogram_problem(dp.count, total, minimum, maximum, bounds, buckets)
        attrs = _attrs(dp)
        series = agg.series(name, "histogram", resource_labels, attrs) if problem is None else None
        if isinstance(series, str):
            problem = series
        if problem is not None or series is None:
            batch.reject(name, problem or "refused")
            continue
        if temporality == DELTA:
            keyed = explicit_buckets_sketch(bounds, buckets, minimum, maximum)
            series.cell(t).add_distribution(dp.count, total or 0.0, minimum, maximum, keyed, t)
        else:
            stream = _stream_id(name, resource_key, scope_key, attrs)
            series.streams.setdefault(stream, []).append(
                CumulativePoint(
                    shape="histogram",
                    start=dp.start_time_unix_nano,
                    time=t,
                    count=dp.count,
                    total=total,
                    minimum=minimum,
                    maximum=maximum,
                    bounds=bounds,
                    buckets=buckets,
                )
            )
        series.points += 1
        batch.accepted += 1
        batch.saw(t)


def _finite_problem(total: float | None, minimum: float | None, maximum: float | None) -> str | None:
    for label, value in (("sum", total), ("min", minimum), ("max", maximum)):
        if value is not None and not math.isfinite(value):
            return f"{label} is {value} (NaN and infinities are refused)"
    if minimum is not None and maximum is not None and minimum > maximum:
        return "min is greater than max"
    return None


def _histogram_problem(  # noqa: PLR0917
    count: int,
    total: float | None,
    minimum: float | None,
    maximum: float | None,
    bounds: tuple[float, ...],
    buckets: tuple[int, ...],
) -> str | None:
    problem = _finite_problem(total, minimum, maximum)
    if problem:
        return problem
    if buckets and len(buckets) != len(bounds) + 1:
        return f"{len(buckets)} bucket_counts for {len(bounds)} explicit_bounds (needs bounds + 1)"
    if any(not math.isfinite(b) for b in bounds) or any(b >= c for b, c in pairwise(bounds)):
        return "explicit_bounds must be finite and strictly increasing"
    if buckets and sum(buckets) != count:
        return f"bucket_counts add up to {sum(buckets)} but count is {count}"
    return None


def _exp_histogram(  # noqa: PLR0917 - one signature for every point shape
    agg: _Aggregator,
    name: str,
    data: Any,
    resource_labels: tuple[tuple[str, str], ...],
    resource_key: str,
    scope_key: str,
) -> None:
    batch = agg.batch
    temporality = data.aggregation_temporality
    bad_temporality = _temporality_problem(temporality)
    for dp in data.data_points:
        if dp.flags & NO_RECORDED_VALUE:
            continue
        t = dp.time_unix_nano
        total, minimum, maximum = _optional(dp, "sum"), _optional(dp, "min"), _optional(dp, "max")
        positive = (int(dp.positive.offset), tuple(dp.positive.bucket_counts))
        negative = (int(dp.negative.offset), tuple(dp.negative.bucket_counts))
        problem = bad_temporality or agg.check_time(t) or _finite_problem(total, minimum, maximum)
        if problem is None and not MIN_EXP_SCALE <= dp.scale <= MAX_EXP_SCALE:
            problem = f"scale {dp.scale} is outside {MIN_EXP_SCALE}..{MAX_EXP_SCALE}"
        if problem is None:
            counted = dp.zero_count + sum(positive[1]) + sum(negative[1])
            if counted != dp.count:
                problem = f"zero_count and bucket_counts add up to {counted} but count is {dp.count}"
        attrs = _attrs(dp)
        series = agg.series(name, "histogram", resource_labels, attrs) if problem is None else None
        if isinstance(series, str):
            problem = series
        if problem is not None or series is None:
            batch.reject(name, problem or "refused")
            continue
        if temporality == DELTA:
            keyed = exponential_buckets_sketch(dp.scale, dp.zero_count, positive, negative)
            series.cell(t).add_distribution(dp.count, total or 0.0, minimum, maximum, keyed, t)
        else:
            stream = _stream_id(name, resource_key, scope_key, attrs)
            series.streams.setdefault(stream, []).append(
                CumulativePoint(
                    shape="exp_histogram",
                    start=dp.start_time_unix_nano,
                    time=t,
                    count=dp.count,
                    total=total,
                    minimum=minimum,
                    maximum=maximum,
                    scale=dp.scale,
                    zero_count=dp.zero_count,
                    positive=positive,
                    negative=negative,
                )
            )
        series.points += 1
        batch.accepted += 1
        batch.saw(t)
