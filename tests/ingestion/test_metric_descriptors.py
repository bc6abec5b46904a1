"""One metric, one unit and one kind: a sender exporting a metric in another unit, or as another
kind, than the one it is stored in is refused naming both (Cloud Monitoring refuses a point whose
unit or kind differs from its descriptor's), instead of pooling seconds with milliseconds in every
percentile and average, or gauge values with a counter's increments."""

from __future__ import annotations

from datetime import timedelta

import pytest
from google.protobuf.json_format import MessageToDict

from shared.metrics.query import run_query
from shared.metrics.query_model import MetricQuery
from tests.ingestion.conftest import NOW
from tests.ingestion.otlp_builders import counter, gauge, histogram, request

pytestmark = pytest.mark.emulators
T0 = NOW.replace(second=0) - timedelta(minutes=5)
METRIC = "http.server.request.duration"


def answer(client, body) -> dict:  # type: ignore[no-untyped-def,type-arg]
    response = client.post("/v1/metrics", json=MessageToDict(body))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def latency(agg: str) -> float | None:
    result = run_query(
        MetricQuery(metric=METRIC, agg=agg, start=T0 - timedelta(minutes=5), end=NOW + timedelta(minutes=1))  # type: ignore[arg-type]
    )
    points = [p[1] for s in result.series for p in s.points]
    return points[0] if points else None


def test_a_metric_sent_in_another_unit_is_refused_naming_both_units(client, store) -> None:  # type: ignore[no-untyped-def]
    assert answer(client, request([gauge(METRIC, [(T0, 0.030, {})], unit="s")], service="route")) == {}
    refused = answer(client, request([gauge(METRIC, [(T0, 30.0, {})], unit="ms")], service="billing"))
    assert refused["partialSuccess"]["rejectedDataPoints"] == 1
    (rejection,) = refused["rejections"]
    assert rejection["metric"] == METRIC
    assert "'ms'" in rejection["reason"]
    assert "'s'" in rejection["reason"]
    # Before: the average of 0.03 s and 30 ms read 15.015.
    assert latency("avg") == pytest.approx(0.030)
    # Points without a unit are taken as the metric's; the same unit is stored as before.
    assert answer(client, request([gauge(METRIC, [(T0, 0.050, {})])], service="search")) == {}
    assert answer(client, request([gauge(METRIC, [(T0, 0.070, {})], unit="s")], service="billing")) == {}
    assert latency("count") == 3


def test_two_units_of_one_metric_in_one_batch_keep_the_first(client, store) -> None:  # type: ignore[no-untyped-def]
    body = request([gauge(METRIC, [(T0, 0.030, {})], unit="s")], service="route")
    other = request([gauge(METRIC, [(T0, 30.0, {}), (T0, 40.0, {})], unit="ms")], service="billing")
    body.resource_metrics.extend(other.resource_metrics)
    refused = answer(client, body)
    assert refused["partialSuccess"]["rejectedDataPoints"] == 2
    assert "'ms'" in refused["rejections"][0]["reason"]
    assert latency("max") == pytest.approx(0.030)


def test_a_batch_without_a_unit_leaves_the_stored_unit(client, store) -> None:  # type: ignore[no-untyped-def]
    from shared import firestore

    assert answer(client, request([gauge(METRIC, [(T0, 0.030, {})], unit="s")], service="route")) == {}
    # A new series registered by a batch without a unit: the metric document's unit was emptied.
    assert answer(client, request([gauge(METRIC, [(T0, 0.040, {})])], service="search")) == {}
    firestore.reset_clients()  # another instance: a new client, the metric document read afresh
    refused = answer(client, request([gauge(METRIC, [(T0, 30.0, {})], unit="ms")], service="billing"))
    assert refused["partialSuccess"]["rejectedDataPoints"] == 1


def sums(metric: str) -> float | None:
    result = run_query(
        MetricQuery(metric=metric, agg="sum", start=T0 - timedelta(minutes=5), end=NOW + timedelta(minutes=1))
    )
    points = [p[1] for s in result.series for p in s.points]
    return points[0] if points else None


def test_a_metric_sent_as_another_kind_is_refused_naming_both_kinds(client, store) -> None:  # type: ignore[no-untyped-def]
    assert answer(client, request([counter("jobs.done", [(T0, 7.0, {})])], service="worker")) == {}
    # Another service reports its queue's level under the counter's name: before, sum read 12.
    refused = answer(client, request([gauge("jobs.done", [(T0, 5.0, {})])], service="scheduler"))
    (rejection,) = refused["rejections"]
    assert "gauge" in rejection["reason"]
    assert "sum" in rejection["reason"]
    histo = histogram("jobs.done", T0, [1.0], [1, 1], total=2.5)
    assert answer(client, request([histo], service="batch"))["partialSuccess"]["rejectedDataPoints"] == 1
    assert sums("jobs.done") == 7.0


def test_annotations_are_not_units(client, store) -> None:  # type: ignore[no-untyped-def]
    # UCUM's curly braces annotate: {request}, {call} and 1 all count, and are one unit.
    for service, unit in (("route", "{request}"), ("billing", "1"), ("search", "{call}")):
        assert answer(client, request([counter("calls", [(T0, 1.0, {})])], service=service)) == {}
        body = request([gauge("queue.depth", [(T0, 3.0, {})], unit=unit)], service=service)
        assert answer(client, body) == {}
    refused = answer(client, request([gauge("queue.depth", [(T0, 3.0, {})], unit="By")], service="x"))
    assert refused["partialSuccess"]["rejectedDataPoints"] == 1
