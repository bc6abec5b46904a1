"""A histogram with no bucket bounds (one bucket, as an SDK view with ``boundaries=[]`` exports
for a cheap count and sum) and no min/max says nothing about where its values lie: its
percentiles, min and max have no answer, instead of 0."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.metrics.query import run_query
from shared.metrics.query_model import MetricQuery
from tests.ingestion.conftest import NOW
from tests.ingestion.otlp_builders import CUMULATIVE, histogram, request

pytestmark = pytest.mark.emulators
PB = "application/x-protobuf"
T0 = NOW.replace(second=0) - timedelta(minutes=10)


def value(metric: str, agg: str) -> float | None:
    result = run_query(
        MetricQuery(metric=metric, agg=agg, start=T0 - timedelta(minutes=5), end=NOW + timedelta(minutes=1))  # type: ignore[arg-type]
    )
    points = [p[1] for s in result.series for p in s.points]
    return points[0] if points else None


@pytest.mark.parametrize("temporality", ["delta", "cumulative"])
def test_no_bounds_and_no_min_max_give_no_percentile_rather_than_zero(client, store, temporality) -> None:  # type: ignore[no-untyped-def]
    if temporality == "delta":
        bodies = [histogram("job.duration", T0, [], [5], total=12.5)]
    else:
        start = T0 - timedelta(minutes=30)
        bodies = [
            histogram("job.duration", T0, [], [2], total=4.0, temporality=CUMULATIVE, start=start),
            histogram(
                "job.duration",
                T0 + timedelta(minutes=1),
                [],
                [7],
                total=16.5,
                temporality=CUMULATIVE,
                start=start,
            ),
        ]
    for body in bodies:
        response = client.post("/v1/metrics", data=request([body]).SerializeToString(), content_type=PB)
        assert response.status_code == 200, response.get_data(as_text=True)
    assert value("job.duration", "count") == (5 if temporality == "delta" else 7)
    assert value("job.duration", "avg") == pytest.approx(2.5 if temporality == "delta" else 16.5 / 7)
    # Before: p95, max and min all read 0 s.
    for agg in ("p50", "p95", "max", "min"):
        assert value("job.duration", agg) is None, agg


def test_one_bucket_with_min_and_max_still_answers_within_them(client, store) -> None:  # type: ignore[no-untyped-def]
    body = histogram("job.duration", T0, [], [4], total=10.0, minimum=1.0, maximum=4.0)
    response = client.post("/v1/metrics", data=request([body]).SerializeToString(), content_type=PB)
    assert response.status_code == 200
    assert value("job.duration", "max") == 4.0
    assert 1.0 <= (value("job.duration", "p50") or 0) <= 4.0
