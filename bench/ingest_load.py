"""The ingest bench's first load: 1,000,000 lognormal samples from 100 series as OTLP protobuf
gauge points, in requests of 100,000 points, with the exact values kept for the error check."""

from __future__ import annotations

import random

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m

SERIES = 100
SAMPLES = 1_000_000
PER_REQUEST = 100_000
QUANTILES = (0.5, 0.9, 0.95, 0.99)
T0 = 1_772_452_800 * 1_000_000_000  # 2026-03-02T12:00:00Z
NANOS = 1_000_000_000


def kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def build_requests(rng: random.Random) -> tuple[list[bytes], dict[int, list[float]]]:
    exact: dict[int, list[float]] = {s: [] for s in range(SERIES)}
    payloads = []
    for r in range(SAMPLES // PER_REQUEST):
        points: dict[int, list[m.NumberDataPoint]] = {s: [] for s in range(SERIES)}
        for i in range(PER_REQUEST):
            s = i % SERIES
            value = rng.lognormvariate(3.0 + (s % 10) * 0.2, 0.6)
            exact[s].append(value)
            t = T0 + r * 60_000_000_000 + (i * 59_000_000_000) // PER_REQUEST
            points[s].append(m.NumberDataPoint(time_unix_nano=t, as_double=value))
        metrics = []
        for s in range(SERIES):
            for p in points[s]:
                p.attributes.extend([kv("endpoint", f"/e{s % 20}"), kv("instance", f"i{s // 20}")])
            metrics.append(
                m.Metric(name="http.server.request.duration", unit="ms", gauge=m.Gauge(data_points=points[s]))
            )
        request = ExportMetricsServiceRequest(
            resource_metrics=[
                m.ResourceMetrics(
                    resource={"attributes": [kv("service.name", "route"), kv("cloud.region", "us-central1")]},
                    scope_metrics=[m.ScopeMetrics(metrics=metrics)],
                )
            ]
        )
        payloads.append(request.SerializeToString())
    return payloads, exact
