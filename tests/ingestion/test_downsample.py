"""The hour downsampler on the Firestore emulator: hours folded exactly once from minute rollups
(counts and sums exact, sketches merged), re-runs are no-ops, an interrupted or budget-bounded run
is finished by the next, late points are refused so a folded hour never changes, and queries give
the same answers before and after the fold, across the minute/hour boundary."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from google.api_core.exceptions import ServiceUnavailable
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

from functions.ingestion import downsample as ds
from functions.ingestion.settings import IngestionSettings, get_ingestion_settings
from shared.clock import get_clock
from shared.metrics.query import run_query
from shared.metrics.query_model import MetricQuery
from shared.metrics.store import FOLDS, HOURS, MINUTES, entries, metric_id, metric_ref
from tests.ingestion.conftest import NOW
from tests.ingestion.otlp_builders import exact_quantile, gauge, request

pytestmark = pytest.mark.emulators
PB = "application/x-protobuf"
H10 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # NOW is 12:00:30; the lateness allowance is 2 h
H11 = H10 + timedelta(hours=1)
H12 = H10 + timedelta(hours=2)
# 2 h lateness + 5 min grace after 12:00: hours 10 and 11 are foldable, 12 is not.
AFTER = datetime(2026, 3, 2, 14, 6, tzinfo=UTC)
ENDPOINTS = [f"/e{i}" for i in range(5)]


def post(client, metrics, **kw) -> ExportMetricsServiceResponse:  # type: ignore[no-untyped-def]
    response = client.post("/v1/metrics", data=request(metrics, **kw).SerializeToString(), content_type=PB)
    assert response.status_code == 200, response.data
    return ExportMetricsServiceResponse.FromString(response.data)


def load(client) -> dict[str, dict[datetime, list[float]]]:  # type: ignore[no-untyped-def]
    """Five series over hours 10, 11 and 12, in several requests (so several writer shards)."""
    rng = random.Random(42)
    raw: dict[str, dict[datetime, list[float]]] = {e: {H10: [], H11: [], H12: []} for e in ENDPOINTS}
    start = H10 + timedelta(minutes=1)
    for request_no in range(6):
        points = []
        for i in range(300):
            at = start + timedelta(seconds=(request_no * 300 + i) * 4)  # 10:01 .. 12:00
            if at > NOW:
                continue
            endpoint = ENDPOINTS[i % len(ENDPOINTS)]
            value = rng.lognormvariate(2.0 + i % 5 * 0.3, 0.7)
            raw[endpoint][at.replace(minute=0, second=0)].append(value)
            points.append((at, value, {"endpoint": endpoint}))
        # One instance a request: a payload's writer shard is chosen by its senders.
        post(client, [gauge("lat", points)], instance=f"i-{request_no}")
    return raw


def hour_query(agg: str, **kw) -> dict[tuple[str, datetime], float]:  # type: ignore[no-untyped-def]
    result = run_query(
        MetricQuery(
            metric="lat",
            agg=agg,
            start=kw.pop("start", H10 - timedelta(hours=1)),
            end=kw.pop("end", H12 + timedelta(hours=1)),
            step=3600,
            resolution="hour",
            group_by=["endpoint"],
            **kw,
        )
    )
    return {(s.labels["endpoint"], t): v for s in result.series for t, v in s.points}


def hour_docs(store) -> list[dict]:  # type: ignore[no-untyped-def]
    """The hour rollup documents (one per bucket and hour)."""
    return [d.to_dict() for d in metric_ref("lat").collection(HOURS).stream()]


def hour_rollups(store) -> list[dict]:  # type: ignore[no-untyped-def]
    """Every series' hour rollup, out of the bucket documents that hold them."""
    return [
        {**summary, "sk": sketch, "t": doc["t"], "expire_at": doc["expire_at"], "shard": doc["shard"]}
        for doc in hour_docs(store)
        for _, summary, sketch in entries(doc)
    ]


def one_series_per_bucket(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Buckets of one series: the runs and transactions below are cut at bucket boundaries."""
    monkeypatch.setenv("ION_METRICS_BUCKET_SERIES", "1")
    get_ingestion_settings.cache_clear()


def folded_until(store) -> datetime | None:  # type: ignore[no-untyped-def]
    snapshot = store.collection(FOLDS).document(metric_id("lat")).get()
    return snapshot.to_dict()["folded_until"] if snapshot.exists else None


def test_hours_are_folded_exactly_and_queries_answer_the_same_before_and_after(client, store) -> None:  # type: ignore[no-untyped-def]
    raw = load(client)
    before = {agg: hour_query(agg) for agg in ("count", "sum", "min", "max", "p50", "p99")}
    assert hour_docs(store) == []
    # Before any fold, hours are answered from minutes: already exact.
    for endpoint in ENDPOINTS:
        for hour in (H10, H11, H12):
            assert before["count"][(endpoint, hour)] == len(raw[endpoint][hour])

    get_clock().set(AFTER)  # type: ignore[attr-defined]
    result = ds.downsample()
    assert result.cutoff == H12
    assert result.complete
    assert result.series == len(ENDPOINTS)
    # The five series are one bucket: one hour rollup per hour (10 and 11; 12 is not closed long
    # enough), holding all five series.
    assert result.hours_written == 2
    assert result.documents_written == 2 + 1  # + the metric's watermark
    assert folded_until(store) == H12

    assert [len(d["series"]) for d in hour_docs(store)] == [len(ENDPOINTS)] * 2
    docs = hour_rollups(store)
    assert len(docs) == 2 * len(ENDPOINTS)
    assert {d["t"] for d in docs} == {H10, H11}
    for doc in docs:
        values = raw[doc["labels"]["endpoint"]][doc["t"]]
        assert doc["count"] == len(values)
        assert doc["sum"] == pytest.approx(sum(values), rel=1e-12)
        assert (doc["min"], doc["max"]) == (min(values), max(values))
        assert doc["expire_at"] == doc["t"] + timedelta(days=90)
        assert doc["shard"] == 0

    after = {agg: hour_query(agg) for agg in before}
    assert after["count"] == before["count"]
    assert after["min"] == before["min"]
    assert after["max"] == before["max"]
    assert after["sum"] == pytest.approx(before["sum"], rel=1e-12)
    for agg, quantile in (("p50", 0.5), ("p99", 0.99)):
        # Merged sketches are the same buckets whichever way they were added up.
        assert after[agg] == pytest.approx(before[agg], rel=1e-12)
        for (endpoint, hour), value in after[agg].items():
            assert value == pytest.approx(exact_quantile(raw[endpoint][hour], quantile), rel=0.01)

    # Across the boundary: hours 10-11 from hour rollups, 12 from minutes; the same as the minute
    # resolution's answer for the same hours.
    minutes = run_query(
        MetricQuery(metric="lat", agg="count", start=H10, end=H12 + timedelta(hours=1), step=3600)
    )
    assert minutes.resolution == "minute"
    totals = dict(minutes.series[0].points)
    across = run_query(
        MetricQuery(
            metric="lat", agg="count", start=H10, end=H12 + timedelta(hours=1), step=3600, resolution="hour"
        )
    )
    assert dict(across.series[0].points) == totals
    assert totals[H12] == sum(len(raw[e][H12]) for e in ENDPOINTS) > 0


def test_a_window_not_aligned_to_hours_counts_each_hour_once(client, store) -> None:  # type: ignore[no-untyped-def]
    raw = load(client)
    get_clock().set(AFTER)  # type: ignore[attr-defined]
    ds.downsample()
    # Hour buckets belong to the window by their start: 10:30-12:30 holds hours 11 and 12.
    window = hour_query("count", start=H10 + timedelta(minutes=30), end=H12 + timedelta(minutes=30))
    assert {t for _, t in window} == {H10 + timedelta(minutes=30), H11 + timedelta(minutes=30)}
    for endpoint in ENDPOINTS:
        assert window[(endpoint, H10 + timedelta(minutes=30))] == len(raw[endpoint][H11])
        assert window[(endpoint, H11 + timedelta(minutes=30))] == len(raw[endpoint][H12])


def test_rerunning_is_a_no_op(client, store) -> None:  # type: ignore[no-untyped-def]
    load(client)
    get_clock().set(AFTER)  # type: ignore[attr-defined]
    ds.downsample()
    stamps = {d.id: d.update_time for d in metric_ref("lat").collection(HOURS).stream()}
    for _ in range(2):
        again = ds.downsample()
        assert (again.series, again.documents_written, again.complete) == (0, 0, True)
    assert {d.id: d.update_time for d in metric_ref("lat").collection(HOURS).stream()} == stamps
    # Over HTTP, as Cloud Scheduler calls it.
    response = client.post("/v1/downsample")
    assert response.status_code == 200
    assert response.get_json()["documents_written"] == 0


def test_a_bounded_run_resumes_where_it_stopped_and_queries_stay_exact_meanwhile(  # type: ignore[no-untyped-def]
    client, store, monkeypatch
) -> None:
    one_series_per_bucket(monkeypatch)
    raw = load(client)
    expected = hour_query("count")
    monkeypatch.setenv("ION_METRICS_DOWNSAMPLE_MAX_SERIES", "2")
    get_ingestion_settings.cache_clear()
    get_clock().set(AFTER)  # type: ignore[attr-defined]
    runs = []
    while not runs or not runs[-1].complete:
        runs.append(ds.downsample())
        # Half-folded: the watermark has not moved, so every hour is still answered from minutes.
        assert hour_query("count") == expected
        assert len(runs) <= 4
    assert [r.series for r in runs] == [2, 2, 1]
    assert folded_until(store) == H12
    assert len(hour_docs(store)) == 2 * len(ENDPOINTS)
    assert len(hour_rollups(store)) == 2 * len(ENDPOINTS)
    assert hour_query("count") == expected
    assert sum(expected.values()) == sum(len(v) for hours in raw.values() for v in hours.values())


def test_a_crash_mid_run_is_finished_by_the_next_run_without_double_counting(  # type: ignore[no-untyped-def]
    client, store, monkeypatch
) -> None:
    one_series_per_bucket(monkeypatch)
    load(client)
    expected = hour_query("sum")
    # Transactions of at most 8 hour rollups (four buckets' two hours each); the second
    # transaction, the fifth bucket and the watermark, fails (storage went away).
    monkeypatch.setenv("ION_METRICS_TXN_WRITES", "10")
    get_ingestion_settings.cache_clear()
    real_commit = ds._commit
    calls = {"n": 0}

    def failing_second(state, *, finished):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise ServiceUnavailable("storage went away")
        return real_commit(state, finished=finished)

    monkeypatch.setattr(ds, "_commit", failing_second)
    get_clock().set(AFTER)  # type: ignore[attr-defined]
    response = client.post("/v1/downsample")
    assert response.status_code == 503
    state = store.collection(FOLDS).document(metric_id("lat")).get().to_dict()
    assert state["target"] == H12  # the pass is recorded, with how far it got
    assert state["cursor"]
    assert state["folded_until"] < H10  # not moved: readers still take hours 10-11 from minutes
    assert len(hour_docs(store)) == 8
    assert hour_query("sum") == expected

    monkeypatch.setattr(ds, "_commit", real_commit)
    finished = ds.downsample()
    assert finished.complete
    assert finished.series == 1  # resumed after the cursor, not from the start
    assert folded_until(store) == H12
    assert len(hour_rollups(store)) == 2 * len(ENDPOINTS)
    assert hour_query("sum") == pytest.approx(expected, rel=1e-12)


def test_points_older_than_the_lateness_allowance_are_refused_so_folded_hours_never_change(  # type: ignore[no-untyped-def]
    client, store
) -> None:
    load(client)
    get_clock().set(AFTER)  # type: ignore[attr-defined]
    ds.downsample()
    folded = hour_query("count")
    late = [(H11 + timedelta(minutes=30), 1.0, {"endpoint": "/e0"})]
    fresh = [(AFTER - timedelta(minutes=30), 1.0, {"endpoint": "/e0"})]
    answer = post(client, [gauge("lat", late + fresh)])
    assert answer.partial_success.rejected_data_points == 1
    assert "older than the accepted age (ION_METRICS_MAX_AGE_SECONDS)" in answer.partial_success.error_message
    after = hour_query("count", end=AFTER)
    assert {k: v for k, v in after.items() if k[1] < H12} == {k: v for k, v in folded.items() if k[1] < H12}
    assert after[("/e0", H12 + timedelta(hours=1))] == 1  # the fresh point (13:36), in an unfolded hour

    # Whatever the clock says, the oldest minute ingestion still accepts is after the fold cutoff.
    settings = get_ingestion_settings()
    for minutes in range(0, 24 * 60, 7):
        now = NOW + timedelta(minutes=minutes)
        oldest_accepted = now - timedelta(seconds=settings.max_age_seconds)
        assert ds.cutoff_at(now) <= oldest_accepted - timedelta(seconds=settings.fold_grace_seconds)


def test_a_lateness_allowance_shorter_than_the_collector_reaches_back_is_refused() -> None:
    with pytest.raises(ValueError, match="ION_METRICS_MAX_AGE_SECONDS"):
        IngestionSettings.model_validate({"ION_METRICS_MAX_AGE_SECONDS": 900})
    ok = IngestionSettings.model_validate(
        {"ION_METRICS_MAX_AGE_SECONDS": 900, "ION_COLLECTOR_MAX_CATCH_UP_SECONDS": 300}
    )
    assert ok.fold_delay_seconds == 900 + 300


def test_a_retry_after_part_of_the_batch_became_late_is_still_counted_once(
    client, store, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # Small transactions: the retry, with fewer points accepted, splits the batch differently.
    monkeypatch.setenv("ION_METRICS_TXN_WRITES", "10")
    get_ingestion_settings.cache_clear()
    early = [(H10 + timedelta(minutes=5), 1.0, {"endpoint": f"/e{i}"}) for i in range(6)]
    later = [(H11 + timedelta(minutes=50), 2.0, {"endpoint": f"/e{i}"}) for i in range(0, 6, 2)]
    body = request([gauge("lat", early + later)]).SerializeToString()
    assert client.post("/v1/metrics", data=body, content_type=PB).status_code == 200
    counted = hour_query("sum", start=H10, end=H12)
    assert sum(counted.values()) == 6 + 6

    get_clock().set(NOW + timedelta(minutes=20))  # type: ignore[attr-defined]
    retry = client.post("/v1/metrics", data=body, content_type=PB)
    assert retry.status_code == 200
    # The early points are now late (refused, and they were stored the first time); the others
    # are recognised in the rollups as already applied.
    assert ExportMetricsServiceResponse.FromString(retry.data).partial_success.rejected_data_points == 6
    assert hour_query("sum", start=H10, end=H12) == counted
    docs = list(metric_ref("lat").collection(MINUTES).stream())
    assert all(len(d.to_dict()["applied"]) == 1 for d in docs)
