"""OTLP ExportMetricsServiceRequest builders for the ingestion tests, on opentelemetry-proto."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m

from functions.routing.otlp_metrics import key_values

DELTA = m.AGGREGATION_TEMPORALITY_DELTA
CUMULATIVE = m.AGGREGATION_TEMPORALITY_CUMULATIVE


def ns(at: datetime) -> int:
    return int(at.timestamp()) * 1_000_000_000 + at.microsecond * 1000


def attrs(labels: dict[str, Any]) -> list[KeyValue]:
    return key_values(tuple(labels.items()))


def request(
    metrics: Sequence[m.Metric],
    *,
    service: str = "route",
    region: str = "us-central1",
    instance: str = "i-1",
) -> ExportMetricsServiceRequest:
    resource = {"service.name": service, "cloud.region": region, "service.instance.id": instance}
    return ExportMetricsServiceRequest(
        resource_metrics=[
            m.ResourceMetrics(
                resource={"attributes": attrs(resource)},
                scope_metrics=[m.ScopeMetrics(scope={"name": "tests"}, metrics=list(metrics))],
            )
        ]
    )


def gauge(name: str, points: Sequence[tuple[datetime, float, dict[str, Any]]], unit: str = "") -> m.Metric:
    return m.Metric(
        name=name,
        unit=unit,
        gauge=m.Gauge(
            data_points=[
                m.NumberDataPoint(time_unix_nano=ns(t), as_double=v, attributes=attrs(a))
                for t, v, a in points
            ]
        ),
    )


def counter(
    name: str,
    points: Sequence[tuple[datetime, float, dict[str, Any]]],
    *,
    temporality: int = DELTA,
    start: datetime | None = None,
    monotonic: bool = True,
) -> m.Metric:
    return m.Metric(
        name=name,
        sum=m.Sum(
            aggregation_temporality=temporality,
            is_monotonic=monotonic,
            data_points=[
                m.NumberDataPoint(
                    start_time_unix_nano=ns(start) if start else 0,
                    time_unix_nano=ns(t),
                    as_double=v,
                    attributes=attrs(a),
                )
                for t, v, a in points
            ],
        ),
    )


def histogram(
    name: str,
    at: datetime,
    bounds: Sequence[float],
    counts: Sequence[int],
    *,
    total: float,
    labels: dict[str, Any] | None = None,
    temporality: int = DELTA,
    start: datetime | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
) -> m.Metric:
    point = m.HistogramDataPoint(
        start_time_unix_nano=ns(start) if start else 0,
        time_unix_nano=ns(at),
        count=sum(counts),
        sum=total,
        bucket_counts=list(counts),
        explicit_bounds=list(bounds),
        attributes=attrs(labels or {}),
    )
    if minimum is not None:
        point.min = minimum
    if maximum is not None:
        point.max = maximum
    return m.Metric(
        name=name, histogram=m.Histogram(aggregation_temporality=temporality, data_points=[point])
    )


def exp_histogram(
    name: str,
    at: datetime,
    values: Sequence[float],
    *,
    scale: int = 6,
    labels: dict[str, Any] | None = None,
    temporality: int = DELTA,
    start: datetime | None = None,
) -> m.Metric:
    """Positive values bucketed exactly as the SDKs do: index = ceil(log2(v) * 2^scale) - 1."""
    import math

    indexes = [math.ceil(math.log2(v) * 2**scale) - 1 for v in values]
    offset = min(indexes)
    counts = [0] * (max(indexes) - offset + 1)
    for i in indexes:
        counts[i - offset] += 1
    point = m.ExponentialHistogramDataPoint(
        start_time_unix_nano=ns(start) if start else 0,
        time_unix_nano=ns(at),
        count=len(values),
        sum=sum(values),
        scale=scale,
        zero_count=0,
        positive=m.ExponentialHistogramDataPoint.Buckets(offset=offset, bucket_counts=counts),
        min=min(values),
        max=max(values),
        attributes=attrs(labels or {}),
    )
    return m.Metric(
        name=name,
        exponential_histogram=m.ExponentialHistogram(
            aggregation_temporality=temporality, data_points=[point]
        ),
    )


def exact_quantile(values: Sequence[float], q: float) -> float:
    """The rank q*(n-1) value (lower), the definition DDSketch's error guarantee is stated for."""
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]
