"""A data point attribute named like a label its resource gives (``service``, ``region``) with
another value no longer takes the sender's series away: it is kept as ``exported_<name>``, as
Prometheus keeps a scraped label that clashes with a target label."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.metrics.query import run_query
from shared.metrics.query_model import MetricQuery
from tests.ingestion.conftest import NOW
from tests.ingestion.otlp_builders import CUMULATIVE, counter, gauge, request

pytestmark = pytest.mark.emulators
PB = "application/x-protobuf"
T0 = NOW.replace(second=0) - timedelta(minutes=5)


def post(client, req):  # type: ignore[no-untyped-def]
    response = client.post("/v1/metrics", data=req.SerializeToString(), content_type=PB)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.data == b""


def labels_of(metric: str) -> list[dict[str, str]]:
    result = run_query(
        MetricQuery(
            metric=metric,
            agg="count",
            start=T0 - timedelta(minutes=5),
            end=NOW + timedelta(minutes=1),
            group_by=["service", "region", "exported_service", "exported_region", "peer"],
        )
    )
    return [s.labels for s in result.series]


def test_a_point_attribute_named_service_does_not_move_the_series_to_that_service(client, store) -> None:  # type: ignore[no-untyped-def]
    # Routing's client metrics name the service they called: before, these series were stored
    # (and alerted on, and counted against the metric names) as service "payments".
    point = (T0, 0.2, {"service": "payments", "region": "europe-west1", "peer": "x"})
    post(client, request([gauge("rpc.client.duration", [point])], service="route", region="us-central1"))
    assert labels_of("rpc.client.duration") == [
        {
            "service": "route",
            "region": "us-central1",
            "exported_service": "payments",
            "exported_region": "europe-west1",
            "peer": "x",
        }
    ]


def test_the_same_for_sums_and_an_attribute_agreeing_with_the_resource_stays_as_it_is(client, store) -> None:  # type: ignore[no-untyped-def]
    sums = counter("calls", [(T0, 3.0, {"service": "payments"})], temporality=CUMULATIVE, start=T0)
    post(client, request([sums], service="route"))
    agreeing = gauge("g", [(T0, 1.0, {"service": "route"})])
    post(client, request([agreeing], service="route"))
    assert labels_of("calls") == [
        {"service": "route", "region": "us-central1", "exported_service": "payments"}
    ]
    assert labels_of("g") == [{"service": "route", "region": "us-central1"}]
