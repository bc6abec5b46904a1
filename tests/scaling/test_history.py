"""The function's history comes from the real metric store: OTLP batches stored by the real
ingestion entry point (in process, Firestore emulator), read back through the query API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from functions.scaling.sources import QueryApiHistory
from functions.scaling.time_grid import floor_hour
from shared.clock import FrozenClock, set_clock
from tests.ingest_client import ingest_client
from tests.ingestion.otlp_builders import counter, gauge, histogram, request

NOW = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)


def test_history_from_routing_and_cloud_run_metrics(fs, emulators) -> None:  # type: ignore[no-untyped-def]
    set_clock(FrozenClock(NOW))
    client = ingest_client(emulators.project)
    start = NOW.replace(minute=0, second=0) - timedelta(hours=2)
    minutes = [start + timedelta(minutes=k, seconds=30) for k in range(120)]
    # US: the collector's Cloud Run request counts, 100 + k per minute (a delta sum per minute).
    run = counter(
        "cloudrun.request.count",
        [(t, 100.0 + k, {"response_code_class": "2xx"}) for k, t in enumerate(minutes)],
    )
    us = request([run], service="persona-router", region="us-central1")
    # EU: routing's own request histogram, 40 requests a minute.
    eu_metrics = [
        histogram(
            "http.server.request.duration",
            t,
            [0.01, 0.1],
            [30, 10, 0],
            total=1.0,
            labels={"http.route": "/v2/route"},
        )
        for t in minutes
    ]
    eu = request(eu_metrics, service="routing", region="europe-west1")
    # Another Cloud Run service in the same region is not the persona service's load.
    other = request(
        [counter("cloudrun.request.count", [(t, 5000.0, {"response_code_class": "2xx"}) for t in minutes])],
        service="ingest",
        region="us-central1",
    )
    for batch in (us, eu, other):
        answer = client.post(
            "/v1/metrics", data=batch.SerializeToString(), content_type="application/x-protobuf"
        )
        assert answer.status_code == 200, answer.data
    inputs = QueryApiHistory("routing").inputs(
        ["us-central1", "europe-west1", "asia-southeast1"],
        {
            "us-central1": "persona-router",
            "europe-west1": "persona-router",
            "asia-southeast1": "persona-router",
        },
        NOW,
        days=14,
    )
    us_history = inputs["us-central1"].history
    last = NOW.replace(second=0) - timedelta(minutes=1)
    assert us_history.recent[last] == 100.0 + 119
    assert us_history.recent[last - timedelta(minutes=60)] == 100.0 + 59
    # Complete hours as mean requests per minute: 10:00-11:00 holds k = 0..59.
    assert us_history.hourly[start] == sum(100.0 + k for k in range(60)) / 60
    assert us_history.first_seen == start
    eu_history = inputs["europe-west1"].history
    assert eu_history.recent[last] == 40.0
    # Routing's histogram counts requests, not the minutes that had data: its hourly sum alone
    # gives no mean (a hole would read as a quiet hour); the decisions record it per minute.
    assert eu_history.hourly == {}
    assert eu_history.first_seen == start
    assert inputs["asia-southeast1"].history.first_seen is None
    # Between forecast refreshes a decision reads the last 15 minutes only, the same values.
    services = {"us-central1": "persona-router", "europe-west1": "persona-router"}
    latest = QueryApiHistory("routing").latest(["us-central1", "europe-west1"], services, NOW)
    us_latest = latest["us-central1"].history
    assert sorted(us_latest.recent) == [last - timedelta(minutes=k) for k in range(14, -1, -1)]
    assert us_latest.recent == {
        m: v for m, v in us_history.recent.items() if m >= last - timedelta(minutes=14)
    }
    assert (us_latest.hourly, us_latest.first_seen) == ({}, None)
    assert latest["europe-west1"].history.recent[last] == 40.0


def test_each_regions_own_service_counts_its_requests_without_routing_counted_twice(fs, emulators) -> None:  # type: ignore[no-untyped-def]
    """The persona service exports its own request histogram in every region (every few seconds,
    where the collector's Cloud Run counts come minutes late): a region without routing or the
    collector is followed from it. Routing counts the same requests one hop before (and its cache
    hits), so where both export the larger is read, never the sum; another service's requests in
    the region are not the persona service's load."""
    set_clock(FrozenClock(NOW))
    client = ingest_client(emulators.project)
    start = NOW.replace(second=0) - timedelta(minutes=20)
    minutes = [start + timedelta(minutes=k, seconds=30) for k in range(20)]

    def served(per_minute: int, service: str, region: str):  # type: ignore[no-untyped-def]
        metrics = [
            histogram("http.server.request.duration", t, [0.1], [per_minute, 0], total=1.0) for t in minutes
        ]
        return request(metrics, service=service, region=region)

    batches = [
        served(70, "persona-router", "asia-southeast1"),  # asia: the persona service alone
        served(50, "persona-router", "europe-west1"),  # eu: the persona service and routing
        served(60, "routing", "europe-west1"),
        served(900, "ingest", "asia-southeast1"),  # another service in asia
    ]
    for batch in batches:
        answer = client.post(
            "/v1/metrics", data=batch.SerializeToString(), content_type="application/x-protobuf"
        )
        assert answer.status_code == 200, answer.data
    services = {"europe-west1": "persona-router", "asia-southeast1": "persona-router"}
    last = NOW.replace(second=0) - timedelta(minutes=1)
    for inputs in (
        QueryApiHistory("routing").inputs(list(services), services, NOW, days=14),
        QueryApiHistory("routing").latest(list(services), services, NOW),
    ):
        assert inputs["asia-southeast1"].history.recent[last] == 70.0
        assert inputs["europe-west1"].history.recent[last] == 60.0


def test_capacity_samples_sum_instances_across_revisions_and_states(fs, emulators) -> None:  # type: ignore[no-untyped-def]
    """Cloud Run's instance count has a series per revision and state: the capacity learned per
    instance divides by their sum. Averaging them (the old query) halved the instance count and
    doubled the capacity learned, so scaling set about half the minimum it should."""
    set_clock(FrozenClock(NOW))
    client = ingest_client(emulators.project)
    hour = NOW.replace(minute=0, second=0) - timedelta(hours=1)
    minutes = [hour + timedelta(minutes=k, seconds=30) for k in range(60)]
    instances = {("r-00041", "active"): 12.0, ("r-00041", "idle"): 4.0, ("r-00042", "active"): 6.0}
    metrics = [
        counter("cloudrun.request.count", [(t, 6000.0, {"response_code_class": "2xx"}) for t in minutes]),
        gauge(
            "cloudrun.container.instance.count",
            [
                (t, v, {"revision": rev, "state": state})
                for t in minutes
                for (rev, state), v in instances.items()
            ],
        ),
        gauge("cloudrun.container.cpu.utilization", [(t, 0.6, {"revision": "r-00041"}) for t in minutes]),
    ]
    batch = request(metrics, service="persona-router", region="us-central1")
    answer = client.post("/v1/metrics", data=batch.SerializeToString(), content_type="application/x-protobuf")
    assert answer.status_code == 200, answer.data
    inputs = QueryApiHistory("routing").inputs(
        ["us-central1"], {"us-central1": "persona-router"}, NOW, days=1
    )
    [(rpm, running, cpu)] = inputs["us-central1"].capacity_samples
    assert rpm == 6000.0
    assert running == 22.0  # 12 + 4 + 6, not their mean 7.33
    assert cpu == pytest.approx(0.6)


def test_minutes_without_data_are_missing_not_quiet(fs, emulators) -> None:  # type: ignore[no-untyped-def]
    """An ingestion outage is missing data, not quiet traffic: an hour with half its minutes
    missing reads at its served minutes' mean (the hourly sum / 60 read it as half the load), an
    hour with fewer than 20 minutes is unknown, and a hole in the last 130 minutes is absent (the
    query's 0 for an empty step read as a quiet minute). The bench's in-memory port answers the
    same on the same rows: the bench's production path is the function's."""
    from bench.scaling import TraceQueries
    from functions.scaling.replay import Trace

    set_clock(FrozenClock(NOW))
    client = ingest_client(emulators.project)
    top = NOW.replace(minute=0, second=0)
    start = top - timedelta(hours=4)
    # 08:00-09:00 full; 09:00-10:00 only 15 minutes (unknown); 10:00-11:00 half its minutes
    # (the collector down from 10:30); 11:00-12:00 full but for a hole of 11:40-11:52.
    minutes = [
        start + timedelta(minutes=k)
        for k in range(240)
        if not (75 <= k < 120 or 150 <= k < 180 or 220 <= k < 232)
    ]
    for hour in range(4):  # each hour sent within the ingestion's lateness allowance
        set_clock(FrozenClock(start + timedelta(hours=hour + 1, minutes=1)))
        batch = request(
            [
                counter(
                    "cloudrun.request.count",
                    [
                        (t + timedelta(seconds=30), 6000.0, {"response_code_class": "2xx"})
                        for t in minutes
                        if floor_hour(t) == start + timedelta(hours=hour)
                    ],
                )
            ],
            service="persona-router",
            region="us-central1",
        )
        answer = client.post(
            "/v1/metrics", data=batch.SerializeToString(), content_type="application/x-protobuf"
        )
        assert answer.status_code == 200, answer.data
    set_clock(FrozenClock(NOW))
    inputs = QueryApiHistory("routing").inputs(
        ["us-central1"], {"us-central1": "persona-router"}, NOW, days=1
    )
    history = inputs["us-central1"].history
    assert history.hourly == {
        start: 6000.0,
        start + timedelta(hours=2): 6000.0,
        start + timedelta(hours=3): 6000.0,
    }
    hole = [top - timedelta(minutes=20) + timedelta(minutes=k) for k in range(12)]
    assert not any(minute in history.recent for minute in hole)
    assert set(history.recent) == {m for m in minutes if m >= top - timedelta(minutes=130)}
    assert set(history.recent.values()) == {6000.0}
    assert history.first_seen == start

    trace = Trace(minutes=minutes, requests=[6000.0] * len(minutes), zone=ZoneInfo("UTC"))
    bench = TraceQueries("us-central1", trace).inputs(["us-central1"], {}, NOW, days=1)["us-central1"].history
    assert dict(bench.hourly) == history.hourly
    assert dict(bench.recent) == dict(history.recent)
    assert bench.first_seen == history.first_seen
