"""A cumulative stream first seen long after its start (a Collector forwarding counters of
processes up for days, a Cloud Monitoring CUMULATIVE series, a stream forgotten and seen again):
its first point sets the baseline, as Prometheus' first sample does, instead of landing days of
counts in one minute."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.metrics.query import run_query
from shared.metrics.query_model import MetricQuery
from tests.ingestion.conftest import NOW
from tests.ingestion.otlp_builders import CUMULATIVE, counter, histogram, request

pytestmark = pytest.mark.emulators
PB = "application/x-protobuf"
T0 = NOW.replace(second=0) - timedelta(minutes=10)


def post(client, req):  # type: ignore[no-untyped-def]
    response = client.post("/v1/metrics", data=req.SerializeToString(), content_type=PB)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.data == b"", response.data  # nothing refused


def per_minute(metric: str, agg: str = "sum") -> list[float]:
    result = run_query(MetricQuery(metric=metric, agg=agg, start=T0, end=T0 + timedelta(minutes=3), step=60))
    return [p[1] for p in result.series[0].points]


def test_a_first_point_whose_start_is_days_old_sets_the_baseline(client, store) -> None:  # type: ignore[no-untyped-def]
    started = NOW - timedelta(days=3)
    for minute, value in ((0, 1_000_000.0), (1, 1_000_010.0), (2, 1_000_025.0)):
        at = T0 + timedelta(minutes=minute)
        post(client, request([counter("hits", [(at, value, {})], temporality=CUMULATIVE, start=started)]))
    # Before: [1000000, 10, 15], three days of requests charted as one minute's spike.
    assert per_minute("hits") == [0.0, 10.0, 15.0]


def test_a_first_point_started_within_the_lateness_allowance_still_counts_whole(client, store) -> None:  # type: ignore[no-untyped-def]
    started = T0 - timedelta(minutes=90)
    post(client, request([counter("hits", [(T0, 40.0, {})], temporality=CUMULATIVE, start=started)]))
    assert per_minute("hits") == [40.0, 0.0, 0.0]


def test_a_restart_seen_only_a_day_later_sets_the_baseline(client, store) -> None:  # type: ignore[no-untyped-def]
    from shared.clock import FrozenClock, set_clock

    before = NOW - timedelta(days=2)
    set_clock(FrozenClock(before))
    post(
        client,
        request(
            [
                counter(
                    "hits",
                    [(before - timedelta(minutes=5), 100.0, {})],
                    temporality=CUMULATIVE,
                    start=before - timedelta(hours=1),
                )
            ]
        ),
    )
    set_clock(FrozenClock(NOW))
    # The process restarted a day ago and is heard from again only now: before, its day of counts
    # landed in this one minute.
    restarted = NOW - timedelta(days=1)
    post(client, request([counter("hits", [(T0, 30.0, {})], temporality=CUMULATIVE, start=restarted)]))
    post(
        client,
        request(
            [
                counter(
                    "hits", [(T0 + timedelta(minutes=1), 34.0, {})], temporality=CUMULATIVE, start=restarted
                )
            ]
        ),
    )
    assert per_minute("hits") == [0.0, 4.0, 0.0]


def test_cumulative_histogram_first_seen_days_after_its_start_sets_the_baseline(client, store) -> None:  # type: ignore[no-untyped-def]
    started = NOW - timedelta(days=2)
    bounds = [0.1, 0.5]
    for minute, counts, total in ((0, [9000, 900, 100], 1500.0), (1, [9003, 901, 100], 1500.6)):
        at = T0 + timedelta(minutes=minute)
        post(
            client,
            request([histogram("d", at, bounds, counts, total=total, temporality=CUMULATIVE, start=started)]),
        )
    assert per_minute("d", "count") == [0.0, 4.0, 0.0]
