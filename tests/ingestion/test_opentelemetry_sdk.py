"""Done-when test of issue 4: the real OpenTelemetry SDK (OTLP/HTTP exporter, protobuf, gzip,
cumulative temporality) exports to ``ingest`` served over real HTTP under functions-framework,
and the query API answers exact counts and sums and percentiles within tolerance."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.ingestion.otlp_builders import exact_quantile

pytestmark = pytest.mark.emulators


def _query(url: str, **params: str) -> dict:  # type: ignore[type-arg]
    response = requests.get(f"{url}/v1/query", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_sdk_exports_to_the_served_function_and_queries_are_exact(serve_capability, fs, topics) -> None:  # type: ignore[no-untyped-def]
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality,
        InMemoryMetricReader,
        MetricExportResult,
    )
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
    from opentelemetry.sdk.resources import Resource

    live = serve_capability("ingestion")
    started = datetime.now(UTC) - timedelta(minutes=1)
    exporter = OTLPMetricExporter(endpoint=f"{live.url}/v1/metrics", compression=Compression.Gzip, timeout=30)
    reader = InMemoryMetricReader(
        preferred_temporality=dict.fromkeys([Counter, Histogram], AggregationTemporality.CUMULATIVE)
    )
    provider = MeterProvider(
        resource=Resource.create({"service.name": "route", "cloud.region": "europe-west1"}),
        metric_readers=[reader],
        # 1024 buckets keep the SDK at scale >= 7 here (buckets 0.54% wide); its default 160 lets the
        # scale fall to 4 (4.4% wide buckets), which no store can make finer.
        views=[
            View(
                instrument_name="http.server.request.duration",
                aggregation=ExponentialBucketHistogramAggregation(max_size=1024),
            )
        ],
    )
    meter = provider.get_meter("ion.tests")
    duration = meter.create_histogram("http.server.request.duration", unit="s")
    requests_total = meter.create_counter("ion.route.requests")

    rng = random.Random(42)
    observed: list[float] = []
    for export in range(3):
        for i in range(4000):
            value = rng.lognormvariate(-3.5, 0.6)  # ~30 ms
            observed.append(value)
            code = 500 if i % 50 == 0 else 200
            duration.record(value, {"http.response.status_code": code, "http.route": "/v2/route"})
            requests_total.add(1, {"http.route": "/v2/route"})
        data = reader.get_metrics_data()
        assert data is not None
        assert exporter.export(data) == MetricExportResult.SUCCESS, f"export {export}"
    # An exporter retry of the last payload (as after a timeout) does not count twice.
    assert exporter.export(data) == MetricExportResult.SUCCESS
    provider.shutdown()

    window = {
        "start": started.isoformat().replace("+00:00", "Z"),
        "end": (datetime.now(UTC) + timedelta(minutes=2)).isoformat().replace("+00:00", "Z"),
    }
    metric = "http.server.request.duration"
    count = _query(live.url, metric=metric, agg="count", **window)
    assert count["series"][0]["labels"] == {}
    assert count["series"][0]["points"][0][1] == 12000
    total = _query(live.url, metric=metric, agg="sum", **window)["series"][0]["points"][0][1]
    assert total == pytest.approx(sum(observed), rel=1e-9)
    errors = _query(
        live.url, metric=metric, agg="count", **{"label.http.response.status_code": "500"}, **window
    )
    assert errors["series"][0]["labels"] == {"http.response.status_code": "500"}
    assert errors["series"][0]["points"][0][1] == 240
    by_service = _query(live.url, metric=metric, agg="p95", by="service,region", **window)
    assert by_service["series"][0]["labels"] == {"service": "route", "region": "europe-west1"}
    for agg, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        answer = _query(live.url, metric=metric, agg=agg, **window)["series"][0]["points"][0][1]
        # 1% from the sketch plus at most 0.27% from the SDK's scale-7 buckets.
        assert answer == pytest.approx(exact_quantile(observed, q), rel=0.015), agg
    counter = _query(live.url, metric="ion.route.requests", agg="sum", **window)
    assert counter["series"][0]["points"][0][1] == 12000
