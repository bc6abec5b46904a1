"""Every OTLP point type through the real ``ingest`` entry point into Firestore rollups, and the
query API (Python and HTTP) answering exact counts and sums and percentiles within 1%."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from shared.metrics.query import run_query
from shared.metrics.query_model import MetricQuery, QueryError
from shared.metrics.store import HOURS, MINUTES, entries, metric_ref
from tests.ingestion.conftest import NOW
from tests.ingestion.otlp_builders import (
    CUMULATIVE,
    counter,
    exact_quantile,
    exp_histogram,
    gauge,
    histogram,
    request,
)

pytestmark = pytest.mark.emulators
PB = "application/x-protobuf"
T0 = NOW.replace(second=0) - timedelta(minutes=10)


def post(client, req, content_type=PB):  # type: ignore[no-untyped-def]
    body = req.SerializeToString() if content_type == PB else req
    return client.post("/v1/metrics", data=body, content_type=content_type)


def q(metric, agg, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("start", T0 - timedelta(minutes=5))
    kw.setdefault("end", NOW + timedelta(minutes=1))
    return run_query(MetricQuery(metric=metric, agg=agg, **kw))


def only(result):  # type: ignore[no-untyped-def]
    assert len(result.series) == 1, result
    assert len(result.series[0].points) == 1, result
    return result.series[0].points[0][1]


def test_gauge_points_become_minute_rollups_with_exact_stats_and_sketch(client, store) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(7)
    values = [round(rng.lognormvariate(3, 0.8), 3) for _ in range(3000)]
    points = [(T0 + timedelta(seconds=i % 180), v, {"endpoint": "/v2/route"}) for i, v in enumerate(values)]
    response = post(client, request([gauge("route.latency", points, unit="ms")]))
    assert response.status_code == 200, response.data
    assert response.mimetype == "application/x-protobuf"

    minutes = list(metric_ref("route.latency").collection(MINUTES).stream())
    hours = list(metric_ref("route.latency").collection(HOURS).stream())
    assert len(minutes) == 3  # 180 s of points: three minute rollups, not 3000 documents
    assert hours == []  # hours are folded from minutes by the downsampler, later
    doc = minutes[0].to_dict()
    ((_, rollup, sketch),) = entries(doc)  # the bucket holds the one series
    assert rollup["labels"] == {"service": "route", "region": "us-central1", "endpoint": "/v2/route"}
    assert isinstance(sketch, bytes)
    assert doc["expire_at"] == doc["t"] + timedelta(hours=72)
    assert sum(r["count"] for d in minutes for _, r, _ in entries(d.to_dict())) == 3000

    assert only(q("route.latency", "count")) == 3000
    assert only(q("route.latency", "sum")) == pytest.approx(sum(values), rel=1e-12)
    assert only(q("route.latency", "min")) == min(values)
    assert only(q("route.latency", "max")) == max(values)
    assert only(q("route.latency", "avg")) == pytest.approx(sum(values) / 3000, rel=1e-12)
    for agg, quantile in (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)):
        exact = exact_quantile(values, quantile)
        assert only(q("route.latency", agg)) == pytest.approx(exact, rel=0.01), agg


def test_percentiles_merge_across_series_and_minutes_within_one_percent(client, store) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(11)
    everything: list[float] = []
    by_region: dict[str, list[float]] = {}
    for region, mu in (("us-central1", 2.5), ("europe-west1", 3.5), ("asia-southeast1", 4.0)):
        values = [rng.lognormvariate(mu, 0.5) for _ in range(2000)]
        everything += values
        by_region[region] = values
        points = [
            (T0 + timedelta(seconds=i % 300), v, {"endpoint": f"/e{i % 4}"}) for i, v in enumerate(values)
        ]
        assert post(client, request([gauge("lat", points)], region=region)).status_code == 200

    whole = only(q("lat", "p99"))
    assert whole == pytest.approx(exact_quantile(everything, 0.99), rel=0.01)
    grouped = q("lat", "p50", group_by=["region"])
    assert {s.labels["region"] for s in grouped.series} == set(by_region)
    for series in grouped.series:
        assert set(series.labels) == {"region"}
        exact = exact_quantile(by_region[series.labels["region"]], 0.5)
        assert series.points[0][1] == pytest.approx(exact, rel=0.01)
    filtered = q("lat", "count", labels={"region": "europe-west1", "endpoint": "/e1"})
    assert filtered.series[0].labels == {"region": "europe-west1", "endpoint": "/e1"}
    assert only(filtered) == 500


def test_step_gives_one_point_per_step_and_rate_per_second(client, store) -> None:  # type: ignore[no-untyped-def]
    points = [(T0 + timedelta(minutes=i // 10, seconds=i % 10), 2.0, {}) for i in range(40)]
    assert post(client, request([counter("requests", points)])).status_code == 200
    result = q("requests", "sum", start=T0, end=T0 + timedelta(minutes=6), step=120)
    assert [p[1] for p in result.series[0].points] == [40.0, 40.0, 0.0]
    assert [p[0] for p in result.series[0].points] == [
        T0,
        T0 + timedelta(minutes=2),
        T0 + timedelta(minutes=4),
    ]
    rate = q("requests", "rate", start=T0, end=T0 + timedelta(minutes=4), step=120)
    assert [p[1] for p in rate.series[0].points] == pytest.approx([40 / 120, 40 / 120])
    with pytest.raises(QueryError, match="step"):
        q("requests", "sum", step=30)


def test_histogram_counts_and_sums_are_exact_and_percentiles_follow_buckets(client, store) -> None:  # type: ignore[no-untyped-def]
    bounds = [10, 20, 50, 100, 200]
    counts = [5, 30, 40, 20, 4, 1]
    metric = histogram(
        "http.server.request.duration", T0, bounds, counts, total=4321.5, minimum=3, maximum=250
    )
    assert post(client, request([metric])).status_code == 200
    assert only(q("http.server.request.duration", "count")) == 100
    assert only(q("http.server.request.duration", "sum")) == 4321.5
    assert only(q("http.server.request.duration", "min")) == 3
    assert only(q("http.server.request.duration", "max")) == 250
    p50 = only(q("http.server.request.duration", "p50"))
    assert 20 <= p50 <= 50  # the median lies in bucket (20, 50]: no better than its bounds


def test_exponential_histogram_percentiles_within_tolerance(client, store) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(5)
    values = [rng.lognormvariate(-3, 0.7) for _ in range(5000)]
    assert post(client, request([exp_histogram("rpc.duration", T0, values, scale=7)])).status_code == 200
    assert only(q("rpc.duration", "count")) == 5000
    assert only(q("rpc.duration", "sum")) == pytest.approx(sum(values), rel=1e-9)
    for agg, quantile in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        # scale 7: buckets 0.54% wide; plus the sketch's 1%.
        assert only(q("rpc.duration", agg)) == pytest.approx(exact_quantile(values, quantile), rel=0.016)


def test_cumulative_sums_become_increments_with_restarts_detected(client, store) -> None:  # type: ignore[no-untyped-def]
    start = T0 - timedelta(minutes=30)
    labels = {"endpoint": "/v2/route"}
    exports = [(T0, 100.0), (T0 + timedelta(minutes=1), 130.0), (T0 + timedelta(minutes=2), 175.0)]
    for at, value in exports:
        metric = counter("hits", [(at, value, labels)], temporality=CUMULATIVE, start=start)
        assert post(client, request([metric])).status_code == 200
    # The process restarts: a new start time, counting from zero again.
    restart = T0 + timedelta(minutes=2, seconds=30)
    metric = counter(
        "hits", [(T0 + timedelta(minutes=3), 12.0, labels)], temporality=CUMULATIVE, start=restart
    )
    assert post(client, request([metric])).status_code == 200
    # A second instance of the same service is a stream of its own.
    other = counter("hits", [(T0 + timedelta(minutes=3), 7.0, labels)], temporality=CUMULATIVE, start=start)
    assert post(client, request([other], instance="i-2")).status_code == 200

    assert only(q("hits", "sum")) == 175 + 12 + 7
    steps = q("hits", "sum", start=T0, end=T0 + timedelta(minutes=4), step=60).series[0].points
    assert [p[1] for p in steps] == [100, 30, 45, 19]

    # A decrease without a new start time is refused, and changes nothing.
    bad = counter("hits", [(T0 + timedelta(minutes=4), 5.0, labels)], temporality=CUMULATIVE, start=restart)
    body = post(client, request([bad]), content_type=PB)
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

    answer = ExportMetricsServiceResponse.FromString(body.data)
    assert answer.partial_success.rejected_data_points == 1
    assert "decreased" in answer.partial_success.error_message
    assert only(q("hits", "sum")) == 194


def test_cumulative_histograms_and_exponential_histograms_become_deltas(client, store) -> None:  # type: ignore[no-untyped-def]
    start = T0 - timedelta(hours=1)
    bounds = [1, 10, 100]
    first = histogram("h", T0, bounds, [1, 2, 3, 4], total=500, temporality=CUMULATIVE, start=start)
    second = histogram(
        "h", T0 + timedelta(minutes=1), bounds, [1, 5, 3, 6], total=900, temporality=CUMULATIVE, start=start
    )
    rng = random.Random(3)
    early = [rng.uniform(1, 2) for _ in range(100)]
    late = [rng.uniform(50, 60) for _ in range(300)]
    e1 = exp_histogram("e", T0, early, temporality=CUMULATIVE, start=start)
    e2 = exp_histogram("e", T0 + timedelta(minutes=1), early + late, temporality=CUMULATIVE, start=start)
    for metric in (first, e1):
        assert post(client, request([metric])).status_code == 200
    assert post(client, request([second, e2])).status_code == 200

    assert only(q("h", "count")) == 15
    assert only(q("h", "sum")) == 900
    per_minute = q("h", "count", start=T0, end=T0 + timedelta(minutes=2), step=60).series[0].points
    assert [p[1] for p in per_minute] == [10, 5]
    assert only(q("e", "count")) == 400
    second_minute = q("e", "p50", start=T0 + timedelta(minutes=1), end=T0 + timedelta(minutes=2))
    assert only(second_minute) == pytest.approx(exact_quantile(late, 0.5), rel=0.016)


def test_delta_sums_gauges_and_up_down_counters(client, store) -> None:  # type: ignore[no-untyped-def]
    connections = counter(
        "db.connections",
        [(T0, 12.0, {}), (T0 + timedelta(seconds=20), 15.0, {})],
        temporality=CUMULATIVE,
        monotonic=False,
        start=T0 - timedelta(hours=1),
    )
    assert post(client, request([connections])).status_code == 200
    # An up-down counter's cumulative value is a level: the stats are over the observed levels.
    assert only(q("db.connections", "max")) == 15
    assert only(q("db.connections", "avg")) == 13.5


def test_query_over_http_keeps_filter_and_by_labels(client, store) -> None:  # type: ignore[no-untyped-def]
    points = [
        (T0 + timedelta(seconds=i), float(i), {"endpoint": f"/e{i % 2}", "code": "200"}) for i in range(10)
    ]
    assert post(client, request([gauge("lat", points)])).status_code == 200
    response = client.get(
        "/v1/query",
        query_string={
            "metric": "lat",
            "agg": "count",
            "start": (T0 - timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
            "end": NOW.isoformat(),
            "label.service": "route",
            "by": "endpoint",
        },
    )
    assert response.status_code == 200, response.data
    body = response.get_json()
    assert body["metric"] == "lat"
    assert body["agg"] == "count"
    series = sorted(body["series"], key=lambda s: s["labels"]["endpoint"])
    assert [s["labels"] for s in series] == [
        {"service": "route", "endpoint": "/e0"},
        {"service": "route", "endpoint": "/e1"},
    ]
    assert series[0]["points"] == [[(T0 - timedelta(minutes=1)).isoformat().replace("+00:00", "Z"), 5.0]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"agg": "p42"}, "agg"),
        ({"start": "yesterday"}, "start"),
        ({"step": "-5"}, "step"),
        ({"lable.x": "y"}, "lable.x"),
        ({"metric": ""}, "metric"),
    ],
)
def test_bad_queries_are_422_naming_the_parameter(client, params, field) -> None:  # type: ignore[no-untyped-def]
    base = {"metric": "lat", "agg": "p95", "start": "2026-03-02T11:00:00Z", "end": "2026-03-02T12:00:00Z"}
    response = client.get("/v1/query", query_string={**base, **params})
    assert response.status_code == 422
    body = response.get_json()
    assert field in {e["field"] for e in body["errors"]}
    if field == "agg":
        assert "p99" in body["allowed"]


def test_a_query_ending_before_it_starts_is_a_422_saying_so(client) -> None:  # type: ignore[no-untyped-def]
    """A check across parameters names the query, not a request body (a GET has none), and the
    detail says what was wrong."""
    params = {"metric": "lat", "agg": "p95", "start": "2026-03-02T12:00:00Z", "end": "2026-03-02T11:00:00Z"}
    response = client.get("/v1/query", query_string=params)
    assert response.status_code == 422
    body = response.get_json()
    assert [e["field"] for e in body["errors"]] == ["query"]
    assert "end must be after start" in body["detail"]


def test_old_windows_are_answered_from_hourly_rollups(client, store) -> None:  # type: ignore[no-untyped-def]
    points = [(T0 + timedelta(seconds=i), 1.0, {}) for i in range(30)]
    assert post(client, request([gauge("g", points)])).status_code == 200
    hour = T0.replace(minute=0)
    result = q("g", "count", start=hour - timedelta(days=5), end=hour + timedelta(hours=1), step=3600)
    assert result.resolution == "hour"
    assert result.series[0].points[-1] == (hour, 30.0)
