"""Rollup documents hold buckets of series: a request writes one document per bucket and minute
(writes counted at the Firestore client), series fill buckets up to ``ION_METRICS_BUCKET_SERIES``
and keep their bucket, queries answer the same across buckets and writer shards (before and after
the hour fold), and a redelivered batch spanning many buckets is counted once."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

from functions.ingestion import downsample as ds
from functions.ingestion import known_series, series_registry
from functions.ingestion.ingest import ingest_payload
from functions.ingestion.settings import get_ingestion_settings
from shared.clock import get_clock
from shared.metrics.query import run_query
from shared.metrics.query_model import MetricQuery
from shared.metrics.store import MINUTES, metric_ref, series_collection
from tests.ingestion.conftest import NOW
from tests.ingestion.otlp_builders import CUMULATIVE, counter, exact_quantile, gauge, request

pytestmark = pytest.mark.emulators
PB = "application/x-protobuf"
T0 = NOW.replace(second=0) - timedelta(minutes=5)


class Commits:
    """Every document write of every successful commit, counted at the Firestore client."""

    def __init__(self) -> None:
        self.writes = 0

    def since(self, mark: int) -> int:
        return self.writes - mark


@pytest.fixture
def commits(monkeypatch) -> Commits:  # type: ignore[no-untyped-def]
    from google.cloud.firestore_v1.services.firestore.client import FirestoreClient

    counter_ = Commits()
    real = FirestoreClient.commit

    def commit(client: Any, request: Any = None, **kwargs: Any) -> Any:
        response = real(client, request=request, **kwargs)
        writes = request["writes"] if isinstance(request, dict) else request.writes
        counter_.writes += len(writes)
        return response

    monkeypatch.setattr(FirestoreClient, "commit", commit)
    return counter_


def bucket_size(monkeypatch, size: int) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ION_METRICS_BUCKET_SERIES", str(size))
    get_ingestion_settings.cache_clear()


def post(client, metrics, **kw) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/v1/metrics", data=request(metrics, **kw).SerializeToString(), content_type=PB)
    assert response.status_code == 200, response.data


def one_minute(n: int, value: float = 1.0, per_series: int = 4, second: int = 0) -> list:  # type: ignore[type-arg]
    """``per_series`` points of each of ``n`` series, all within the minute T0, from ``second``
    on (another value at a time already stored would be refused: ``point_keys.py``)."""
    return [
        (T0 + timedelta(seconds=second + i), value + i, {"endpoint": f"/e{s}"})
        for s in range(n)
        for i in range(per_series)
    ]


def registry(metric: str) -> dict[str, dict[str, Any]]:
    return {d.id: d.to_dict() for d in series_collection(metric).stream()}


def minute_docs(metric: str) -> list[dict[str, Any]]:
    return [d.to_dict() for d in metric_ref(metric).collection(MINUTES).stream()]


def test_a_request_over_many_series_of_one_metric_writes_one_document_per_bucket(  # type: ignore[no-untyped-def]
    client, store, commits
) -> None:
    # First sight: 100 registry entries, the metric (with its bucket state), the service's metric
    # names (the per-service limit), and one rollup with its hour's stamp document.
    mark = commits.writes
    post(client, [gauge("lat", one_minute(100))])
    assert commits.since(mark) == 100 + 1 + 1 + 2
    # Known series: one document for 100 series (a different batch, maybe another shard), and
    # its stamp document.
    mark = commits.writes
    post(client, [gauge("lat", one_minute(100, value=2.0, second=4))])
    assert commits.since(mark) == 2
    # 150 more series: the first bucket is full, a second opens; 250 series are three buckets.
    post(client, [gauge("lat", one_minute(250, value=3.0, second=8))])
    mark = commits.writes
    post(client, [gauge("lat", one_minute(250, value=4.0, second=12))])
    assert commits.since(mark) == 3 * 2
    by_bucket: dict[int, set[str]] = {}
    for doc in minute_docs("lat"):
        by_bucket.setdefault(doc["bucket"], set()).update(doc["series"])
    assert sorted(len(sids) for sids in by_bucket.values()) == [50, 100, 100]
    result = run_query(MetricQuery(metric="lat", agg="count", start=T0, end=NOW))
    assert result.series[0].points[0][1] == 4 * (100 + 100 + 250 + 250)


def test_buckets_fill_up_to_the_bound_and_the_next_one_opens(client, store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    bucket_size(monkeypatch, 3)
    post(client, [gauge("lat", one_minute(2))])
    assert sorted(d["bucket"] for d in registry("lat").values()) == [0, 0]
    post(client, [gauge("lat", one_minute(7))])  # 2 known, 5 new: 1 fills bucket 0, then 3 + 1
    buckets = [d["bucket"] for d in registry("lat").values()]
    assert sorted(buckets) == [0, 0, 0, 1, 1, 1, 2]
    state = metric_ref("lat").get().to_dict()
    assert (state["bucket_open"], state["bucket_fill"]) == (2, 1)
    assert state["name"] == "lat"
    # Every rollup holds only series of its own bucket.
    bucket_of = {sid: d["bucket"] for sid, d in registry("lat").items()}
    for doc in minute_docs("lat"):
        assert {bucket_of[sid] for sid in doc["series"]} == {doc["bucket"]}
        assert len(doc["series"]) <= 3


def test_a_series_keeps_its_bucket(client, store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    bucket_size(monkeypatch, 2)
    post(client, [gauge("lat", one_minute(3))])
    before = registry("lat")
    assert sorted(d["bucket"] for d in before.values()) == [0, 0, 1]

    # Another instance (nothing cached), another bound, two days later: the known series stay in
    # their buckets (their registry entries refreshed, not reassigned), the new one joins bucket 1.
    known_series.reset()
    bucket_size(monkeypatch, 50)
    later = NOW + timedelta(days=2)
    get_clock().set(later)  # type: ignore[attr-defined]
    points = [(later - timedelta(minutes=1), 1.0, {"endpoint": f"/e{s}"}) for s in range(4)]
    post(client, [gauge("lat", points)])
    after = registry("lat")
    for sid, doc in before.items():
        assert after[sid]["bucket"] == doc["bucket"]
        assert after[sid]["labels"] == doc["labels"]
        assert after[sid]["last_seen"] == later
        assert after[sid]["expire_at"] == later + timedelta(days=90)
    (new,) = after.keys() - before.keys()
    assert after[new]["bucket"] == 1
    for doc in minute_docs("lat"):
        assert {after[sid]["bucket"] for sid in doc["series"]} == {doc["bucket"]}


def test_query_answers_are_the_same_across_buckets_and_shards(client, store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(4)
    regions = ("us-central1", "europe-west1")
    raw: dict[tuple[str, str], list[float]] = {}
    requests = []
    for request_no in range(8):
        by_region: dict[str, list] = {r: [] for r in regions}  # type: ignore[type-arg]
        for i in range(240):
            region, endpoint = regions[i % 2], f"/e{i // 2 % 6}"  # 2 regions x 6 endpoints
            # Three minutes; each request's times its own (a stored time is not sent again).
            at = T0 + timedelta(seconds=(request_no * 240 + i) % 170, microseconds=request_no)
            value = rng.lognormvariate(1.0 + i // 2 % 6 * 0.4, 0.8)
            raw.setdefault((region, endpoint), []).append(value)
            by_region[region].append((at, value, {"endpoint": endpoint}))
        requests.append(by_region)

    def load(metric: str) -> None:
        # Eight instances: a payload's writer shard is chosen by its senders (``writer.py``).
        for request_no, by_region in enumerate(requests):
            for region, points in by_region.items():
                post(client, [gauge(metric, points)], region=region, instance=f"i-{request_no}")

    load("whole")  # 12 series in one bucket
    bucket_size(monkeypatch, 5)
    load("split")  # the same points in buckets of 5 series: 3 buckets
    docs = minute_docs("split")
    assert len({d["bucket"] for d in docs}) == 3
    assert len({d["shard"] for d in docs}) > 1  # 16 senders over 4 writer shards
    assert len({d["bucket"] for d in minute_docs("whole")}) == 1

    def answers(metric: str, agg: str, **kw: Any) -> dict[tuple[str, ...], list]:  # type: ignore[type-arg]
        query = MetricQuery(metric=metric, agg=agg, start=T0, end=T0 + timedelta(minutes=3), **kw)
        return {tuple(sorted(s.labels.items())): s.points for s in run_query(query).series}

    shapes: list[dict[str, Any]] = [
        {"group_by": ["region", "endpoint"]},
        {"group_by": ["endpoint"]},
        {"labels": {"region": "europe-west1"}},
        {"labels": {"endpoint": "/e3"}, "step": 60},
        {},
    ]
    for shape in shapes:
        for agg in ("count", "sum", "min", "max", "avg", "rate", "p50", "p99"):
            split, whole = answers("split", agg, **shape), answers("whole", agg, **shape)
            assert split.keys() == whole.keys()
            for key, points in split.items():
                assert [t for t, _ in points] == [t for t, _ in whole[key]]
                assert [v for _, v in points] == pytest.approx([v for _, v in whole[key]], rel=1e-12)
    # And against the raw values: exact counts, percentiles within 1%.
    per_series = answers("split", "count", group_by=["region", "endpoint"])
    p99 = answers("split", "p99", group_by=["region", "endpoint"])
    for (region, endpoint), values in raw.items():
        key = (("endpoint", endpoint), ("region", region))
        assert per_series[key][0][1] == len(values)
        assert p99[key][0][1] == pytest.approx(exact_quantile(values, 0.99), rel=0.01)

    # Hour resolution, from minutes before the fold and from hour rollups after it: the same.
    hour = T0.replace(minute=0)

    def hourly(agg: str) -> dict[tuple[str, ...], list]:  # type: ignore[type-arg]
        query = MetricQuery(
            metric="split",
            agg=agg,
            start=hour,
            end=hour + timedelta(hours=1),
            resolution="hour",
            group_by=["region", "endpoint"],
        )
        return {tuple(sorted(s.labels.items())): s.points for s in run_query(query).series}

    unfolded = {agg: hourly(agg) for agg in ("count", "sum", "p50")}
    get_clock().set(NOW + timedelta(hours=3, minutes=10))  # type: ignore[attr-defined]
    folded = ds.downsample()
    assert folded.complete
    assert folded.hours_written == 3 + 1  # split: 3 buckets; whole: 1 bucket
    assert folded.series == 2 * 12
    for agg, before in unfolded.items():
        after = hourly(agg)
        assert after.keys() == before.keys()
        for key, points in after.items():
            assert [v for _, v in points] == pytest.approx([v for _, v in before[key]], rel=1e-12)
    assert unfolded["count"] == {
        (("endpoint", e), ("region", r)): [(hour, float(len(v)))] for (r, e), v in raw.items()
    }


def test_a_redelivered_batch_over_many_buckets_is_counted_once(client, store, commits, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    bucket_size(monkeypatch, 3)
    start = T0 - timedelta(minutes=30)
    # Ten series over four buckets, each with delta points and a cumulative stream's point in the
    # same batch (the series' cells and its stream are applied as separate units).
    delta = counter("hits", [(T0 + timedelta(seconds=s), 2.0, {"endpoint": f"/e{s}"}) for s in range(10)])
    cumulative = counter(
        "hits",
        [(T0 + timedelta(minutes=1), 10.0 + s, {"endpoint": f"/e{s}"}) for s in range(10)],
        temporality=CUMULATIVE,
        start=start,
    )
    gauges = gauge("lat", one_minute(10))
    body = request([delta, cumulative, gauges]).SerializeToString()

    def totals() -> tuple[float, float]:
        window = {"start": T0 - timedelta(minutes=1), "end": NOW}
        hits = run_query(MetricQuery(metric="hits", agg="sum", **window)).series[0].points[0][1]
        lat = run_query(MetricQuery(metric="lat", agg="count", **window)).series[0].points[0][1]
        return hits, lat

    assert client.post("/v1/metrics", data=body, content_type=PB).status_code == 200
    expected = (10 * 2.0 + sum(10.0 + s for s in range(10)), 40.0)
    assert totals() == expected
    for _ in range(2):
        mark = commits.writes
        assert client.post("/v1/metrics", data=body, content_type=PB).status_code == 200
        assert commits.since(mark) == 0  # every unit recognised as applied: nothing rewritten
        assert totals() == expected
    # A Pub/Sub redelivery takes the same path: every series is reported as applied before.
    result = ingest_payload(body, PB)
    assert (result.outcome.documents_written, result.outcome.duplicate_series) == (0, 20)
    assert totals() == expected
    for doc in minute_docs("hits") + minute_docs("lat"):
        assert len(doc["applied"]) <= 1
        assert all(len(sk) > 0 for sk in doc["sk"].values())
    # 10 series x 2 minutes (the delta points' and the cumulative points'), in 4 buckets.
    assert sum(len(doc["series"]) for doc in minute_docs("hits")) == 20
    assert len(minute_docs("hits")) == 2 * 4


def test_a_retry_that_accepts_series_refused_the_first_time_stores_them_once(
    client, store, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ION_METRICS_MAX_SERIES_PER_METRIC", "3")
    body = request([gauge("users", one_minute(5))]).SerializeToString()
    first = client.post("/v1/metrics", data=body, content_type=PB)
    assert first.status_code == 200
    assert ExportMetricsServiceResponse.FromString(first.data).partial_success.rejected_data_points == 8
    # The same batch again once the limit allows all five: the three series stored before are
    # recognised in their bucket's document, the two refused before are stored now.
    monkeypatch.setenv("ION_METRICS_MAX_SERIES_PER_METRIC", "10")
    get_ingestion_settings.cache_clear()
    again = client.post("/v1/metrics", data=body, content_type=PB)
    assert ExportMetricsServiceResponse.FromString(again.data).partial_success.rejected_data_points == 0
    for _ in range(2):
        assert client.post("/v1/metrics", data=body, content_type=PB).status_code == 200
    result = run_query(MetricQuery(metric="users", agg="count", start=T0, end=NOW, group_by=["endpoint"]))
    assert {s.labels["endpoint"]: s.points[0][1] for s in result.series} == {f"/e{s}": 4.0 for s in range(5)}
    (doc,) = minute_docs("users")
    assert len(doc["series"]) == 5
    assert len(doc["applied"]) == 1


def test_a_series_registered_meanwhile_by_another_instance_keeps_its_bucket(
    client, store, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from functions.ingestion.aggregate import Batch, SeriesBatch

    bucket_size(monkeypatch, 2)
    post(client, [gauge("lat", one_minute(3))])
    before = registry("lat")
    # This instance saw none of them, and registers them (its lookup raced the other's writes):
    # the registration finds them registered and takes their buckets, writing nothing.
    known_series.reset()
    stale = [SeriesBatch("lat", sid, doc["labels"], "gauge") for sid, doc in before.items()]
    batch = Batch()
    assert series_registry._register(batch, "lat", stale) == 0
    assert batch.buckets == {sid: d["bucket"] for sid, d in before.items()}
    assert registry("lat") == before
    state = metric_ref("lat").get().to_dict()
    assert (state["bucket_open"], state["bucket_fill"]) == (1, 1)


def test_the_instance_cache_of_series_is_bounded_and_a_forgotten_series_keeps_its_bucket(  # type: ignore[no-untyped-def]
    client, store, monkeypatch, commits
) -> None:
    bucket_size(monkeypatch, 2)
    monkeypatch.setattr(known_series, "KNOWN_MAX", 3)
    post(client, [gauge("lat", one_minute(5))])
    # An instance living for weeks sees ever new series: it keeps the most recent only.
    assert len(known_series.series) == 3
    before = registry("lat")
    # The forgotten ones are looked up again (reads, no registry write) and keep their buckets.
    mark = commits.writes
    post(client, [gauge("lat", one_minute(5, value=2.0, second=4))])
    assert registry("lat") == before
    assert commits.since(mark) == 3 * 2  # three buckets' rollups and their hour stamps only
    result = run_query(MetricQuery(metric="lat", agg="count", start=T0, end=NOW))
    assert result.series[0].points[0][1] == 8 * 5
