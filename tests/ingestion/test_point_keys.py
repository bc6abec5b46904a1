"""A point re-sent in a batch of another shape (an SDK that merges a failed export into its next
one, a Collector's batch processor) is the same point: a gauge sample or a delta increment is
identified by its stream and time, as Prometheus and Cloud Monitoring do, not counted again.
Before, batches were recognised by their content only: the same sample in two batches counted
twice, and ``count``/``avg`` drifted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

from shared.metrics.query import run_query
from shared.metrics.query_model import MetricQuery
from tests.ingestion.conftest import NOW
from tests.ingestion.otlp_builders import CUMULATIVE, counter, gauge, request

pytestmark = pytest.mark.emulators
PB = "application/x-protobuf"
T0 = NOW.replace(second=0) - timedelta(minutes=5)
A, B, C = {"queue": "a"}, {"queue": "b"}, {"queue": "c"}


def post(client, metrics, **kw: Any) -> ExportMetricsServiceResponse:  # type: ignore[no-untyped-def]
    response = client.post("/v1/metrics", data=request(metrics, **kw).SerializeToString(), content_type=PB)
    assert response.status_code == 200, response.data
    return ExportMetricsServiceResponse.FromString(response.data)


def answer(metric: str, agg: str, **labels: str) -> float | None:
    result = run_query(
        MetricQuery(
            metric=metric, agg=agg, start=T0 - timedelta(minutes=5), end=NOW + timedelta(minutes=1),  # type: ignore[arg-type]
            labels=labels,
        )
    )  # fmt: skip
    points = [p[1] for s in result.series for p in s.points]
    return points[0] if points else None


def test_a_gauge_sample_re_batched_is_counted_once(client, store) -> None:  # type: ignore[no-untyped-def]
    first = post(client, [gauge("queue.depth", [(T0, 4.0, A), (T0, 7.0, B)])])
    assert not first.HasField("partial_success")
    # The retry re-batched: the sample of queue a again, beside a new one and a later sample.
    retry = post(
        client, [gauge("queue.depth", [(T0 + timedelta(seconds=20), 6.0, A), (T0, 4.0, A), (T0, 9.0, C)])]
    )
    assert not retry.HasField("partial_success")  # a duplicate is not refused (Prometheus: dropped)
    assert answer("queue.depth", "count", queue="a") == 2  # before: 3
    assert answer("queue.depth", "avg", queue="a") == pytest.approx(5.0)  # before: 4.67
    assert answer("queue.depth", "count") == 4
    assert answer("queue.depth", "count", queue="c") == 1


def test_another_value_at_a_stored_time_is_refused_and_the_first_kept(client, store) -> None:  # type: ignore[no-untyped-def]
    post(client, [gauge("queue.depth", [(T0, 4.0, A)])])
    answered = post(client, [gauge("queue.depth", [(T0, 5.0, A), (T0, 7.0, B)])])
    assert answered.partial_success.rejected_data_points == 1
    assert "stored with another value" in answered.partial_success.error_message
    assert answer("queue.depth", "max", queue="a") == 4.0
    assert answer("queue.depth", "count") == 2


def test_two_senders_of_one_series_at_the_same_time_are_two_points(client, store) -> None:  # type: ignore[no-untyped-def]
    """Two instances of a service with the same labels are two streams of one series."""
    post(client, [gauge("queue.depth", [(T0, 4.0, A)])], instance="i-1")
    post(client, [gauge("queue.depth", [(T0, 4.0, A)])], instance="i-2")
    assert answer("queue.depth", "count", queue="a") == 2


def test_a_delta_increment_re_batched_is_counted_once(client, store) -> None:  # type: ignore[no-untyped-def]
    post(client, [counter("jobs.done", [(T0, 3.0, A), (T0, 5.0, B)])])
    post(client, [counter("jobs.done", [(T0, 3.0, A), (T0 + timedelta(seconds=30), 2.0, A)])])
    assert answer("jobs.done", "sum", queue="a") == 5.0  # before: 8
    assert answer("jobs.done", "sum") == 10.0


def test_a_cumulative_point_re_batched_is_counted_once_and_not_refused(client, store) -> None:  # type: ignore[no-untyped-def]
    start = T0 - timedelta(minutes=1)
    post(client, [counter("jobs.total", [(T0, 3.0, A)], temporality=CUMULATIVE, start=start)])
    later = (T0 + timedelta(seconds=30), 5.0, A)
    retry = post(client, [counter("jobs.total", [(T0, 3.0, A), later], temporality=CUMULATIVE, start=start)])
    assert not retry.HasField("partial_success")  # the stream's last point again: a duplicate
    assert answer("jobs.total", "sum") == 5.0


def test_recognising_points_costs_no_document_read_or_write(client, store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Counted at the Firestore client: an export of 50 series (one bucket) in one minute, then
    the next minute's export, then a re-batched retry of both. The point keys ride in the rollup
    the transaction reads and writes anyway."""
    from google.cloud.firestore_v1 import client as firestore_client

    from functions.ingestion import chunk_transaction

    counted = {"reads": 0, "writes": 0}
    get_all = firestore_client.Client.get_all

    def counting_get_all(self, references, *args, **kwargs):  # type: ignore[no-untyped-def]
        references = list(references)
        counted["reads"] += len(references)
        return get_all(self, references, *args, **kwargs)

    monkeypatch.setattr(firestore_client.Client, "get_all", counting_get_all)
    series = [{"queue": f"q{i}"} for i in range(50)]
    one = [(T0, float(i), labels) for i, labels in enumerate(series)]
    two = [(T0 + timedelta(minutes=1), float(i), labels) for i, labels in enumerate(series)]
    post(client, [gauge("queue.depth", one)])  # registers the series
    counted.update(reads=0, writes=0)
    written: list[int] = []
    apply_chunk = chunk_transaction.apply_chunk

    def counting_apply(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = apply_chunk(*args, **kwargs)
        written.append(result.writes)
        return result

    monkeypatch.setattr("functions.ingestion.writer.apply_chunk", counting_apply)
    post(client, [gauge("queue.depth", two)])
    assert (counted["reads"], sum(written)) == (1, 2)  # the rollup read; it and its hour's stamps written
    counted.update(reads=0)
    written.clear()
    post(client, [gauge("queue.depth", one[:25] + two[25:])])  # a re-batched retry of both
    # Two minutes of one hour: two rollups read, and written with their hour's stamp document.
    assert (counted["reads"], sum(written)) == (2, 3)
    assert answer("queue.depth", "count") == 100
