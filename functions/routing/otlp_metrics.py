"""OTLP metric encoding for ``functions.routing.telemetry``: one typed accumulator per instrument kind (delta
monotonic Sum, last-value Gauge, delta ExponentialHistogram at scale 6) that writes its own OTLP
data point, and the request that carries a batch of them.

Exponential histogram buckets follow the OpenTelemetry spec's logarithm mapping at ``SCALE`` 6
(bounds 2^(1/64) ≈ 1.09% apart); a spread wider than ``MAX_BUCKETS`` is exported at a coarser
scale. opentelemetry-proto is imported when a batch is encoded, never at import time.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

AttrValue = str | int | float | bool
Attributes = tuple[tuple[str, AttrValue], ...]
Kind = Literal["sum", "histogram", "gauge"]

SCALE = 6
MAX_BUCKETS = 4096  # a wider spread is exported at a coarser scale (never happens for latencies)
_SCALE_FACTOR = math.ldexp(1.0 / math.log(2), SCALE)
_frexp, _floor, _log = math.frexp, math.floor, math.log


def map_to_index(value: float) -> int:
    """Index of the bucket (base^i, base^(i+1)] holding ``value`` > 0, base = 2^(2^-SCALE).

    As the OpenTelemetry spec's logarithm mapping: exact powers of two go to the bucket below,
    computed from the exponent because log() may round them either way.
    """
    mantissa, exponent = math.frexp(value)
    if mantissa == 0.5:
        return ((exponent - 1) << SCALE) - 1
    return math.floor(math.log(value) * _SCALE_FACTOR)


class SumAccumulator:
    kind: ClassVar[Kind] = "sum"
    __slots__ = ("start", "value")

    def __init__(self, start: int) -> None:
        self.start = start
        self.value: float = 0

    def encode_into(self, metric: Any, attributes: Attributes, now: int) -> None:
        point = metric.sum.data_points.add(start_time_unix_nano=self.start, time_unix_nano=now)
        _set_number(point, self.value)
        point.attributes.extend(key_values(attributes))


class GaugeAccumulator:
    kind: ClassVar[Kind] = "gauge"
    __slots__ = ("start", "time", "value")

    def __init__(self, start: int) -> None:
        self.start = start
        self.time = start
        self.value: float = 0

    def encode_into(self, metric: Any, attributes: Attributes, now: int) -> None:
        point = metric.gauge.data_points.add(start_time_unix_nano=self.start, time_unix_nano=self.time)
        _set_number(point, self.value)
        point.attributes.extend(key_values(attributes))


class HistogramAccumulator:
    kind: ClassVar[Kind] = "histogram"
    __slots__ = ("count", "max", "min", "negative", "positive", "start", "sum", "zero")

    def __init__(self, start: int) -> None:
        self.start = start
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.zero = 0
        self.positive: dict[int, int] = {}
        self.negative: dict[int, int] = {}

    def record(self, value: float) -> None:
        self.count += 1
        self.sum += value
        # Comparisons, not min() and max(): two calls less on every request (NaN is kept out alike).
        if value < self.min:  # noqa: PLR1730
            self.min = value
        if value > self.max:  # noqa: PLR1730
            self.max = value
        if value > 0:
            # map_to_index, inline: this runs for every request.
            mantissa, exponent = _frexp(value)
            index = ((exponent - 1) << SCALE) - 1 if mantissa == 0.5 else _floor(_log(value) * _SCALE_FACTOR)
            positive = self.positive
            positive[index] = positive.get(index, 0) + 1
        elif value < 0:
            index = map_to_index(-value)
            self.negative[index] = self.negative.get(index, 0) + 1
        else:
            self.zero += 1

    def encode_into(self, metric: Any, attributes: Attributes, now: int) -> None:
        point = metric.exponential_histogram.data_points.add()
        point.start_time_unix_nano = self.start
        point.time_unix_nano = now
        point.count = self.count
        point.sum = self.sum
        if self.count:
            point.min = self.min
            point.max = self.max
        point.zero_count = self.zero
        scale, positive, negative = SCALE, self.positive, self.negative
        while _span(positive) > MAX_BUCKETS or _span(negative) > MAX_BUCKETS:
            scale -= 1
            positive, negative = _downscale(positive), _downscale(negative)
        point.scale = scale
        for buckets, target in ((positive, point.positive), (negative, point.negative)):
            if buckets:
                low, high = min(buckets), max(buckets)
                target.offset = low
                target.bucket_counts.extend(buckets.get(i, 0) for i in range(low, high + 1))
        point.attributes.extend(key_values(attributes))


Accumulator = SumAccumulator | GaugeAccumulator | HistogramAccumulator


def encode_request(
    resource: Attributes,
    scope: tuple[str, str],
    metrics: dict[str, tuple[Kind, str, str]],
    batch: dict[tuple[str, Attributes], Accumulator],
    now: int,
) -> ExportMetricsServiceRequest:
    """One request: ``resource`` attributes, ``scope`` (name, version), and per metric name its
    (kind, unit, description) with the batch's accumulators of that name."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
    from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    delta = pb.AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.CopyFrom(Resource(attributes=key_values(resource)))
    scope_metrics = resource_metrics.scope_metrics.add()
    scope_metrics.scope.CopyFrom(InstrumentationScope(name=scope[0], version=scope[1]))
    by_name: dict[str, list[tuple[Attributes, Accumulator]]] = {}
    for (name, attributes), acc in batch.items():
        by_name.setdefault(name, []).append((attributes, acc))
    for name, series in by_name.items():
        kind, unit, description = metrics[name]
        metric = scope_metrics.metrics.add(name=name, unit=unit, description=description)
        if kind == "sum":
            metric.sum.aggregation_temporality = delta
            metric.sum.is_monotonic = True
        elif kind == "histogram":
            metric.exponential_histogram.aggregation_temporality = delta
        for attributes, acc in series:
            acc.encode_into(metric, attributes, now)
    return request


def key_values(attributes: Attributes) -> list[KeyValue]:
    """OTLP ``KeyValue``s of attributes, each value in its own type."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    values = []
    for key, value in attributes:
        if isinstance(value, bool):
            any_value = AnyValue(bool_value=value)
        elif isinstance(value, int):
            any_value = AnyValue(int_value=value)
        elif isinstance(value, float):
            any_value = AnyValue(double_value=value)
        else:
            any_value = AnyValue(string_value=str(value))
        values.append(KeyValue(key=key, value=any_value))
    return values


def _set_number(point: Any, value: float) -> None:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 2**62):
        point.as_int = int(value)
    else:
        point.as_double = float(value)


def _span(buckets: dict[int, int]) -> int:
    return max(buckets) - min(buckets) + 1 if buckets else 0


def _downscale(buckets: dict[int, int]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for index, count in buckets.items():
        merged[index >> 1] = merged.get(index >> 1, 0) + count
    return merged
