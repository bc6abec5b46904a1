"""Bounded ingestion and query: attributes per point, label value length, metric names per
service, Firestore document size (refused per point, never a 503 loop), the per-metric series
limit under concurrent registration, and `/v1/query`'s window, series and time bounds."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from pydantic import ValidationError

from functions.ingestion.ingest import ingest_payload
from shared.clock import format_rfc3339
from shared.metrics.query_model import MetricQuery
from shared.metrics.store import MINUTES, SERIES, document_size, metric_ref
from tests.ingestion.conftest import NOW
from tests.ingestion.otlp_builders import CUMULATIVE, gauge, histogram, request

pytestmark = pytest.mark.emulators
PB = "application/x-protobuf"
T0 = NOW.replace(second=0) - timedelta(minutes=5)


def post(client, body):  # type: ignore[no-untyped-def]
    response = client.post("/v1/metrics", data=body.SerializeToString(), content_type=PB)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def partial(client, body) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """The JSON answer's partialSuccess (empty when everything was stored)."""
    from google.protobuf.json_format import MessageToDict

    response = client.post("/v1/metrics", json=MessageToDict(body))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json().get("partialSuccess") or {}


def count(metric: str, **labels: str) -> float:
    from shared.metrics.query import run_query

    result = run_query(
        MetricQuery(
            metric=metric,
            agg="count",
            start=T0 - timedelta(hours=1),
            end=NOW + timedelta(minutes=5),
            labels=labels,
        )
    )
    return sum(p[1] for s in result.series for p in s.points)


def test_attributes_per_point_and_label_value_length_are_capped(client, store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ION_METRICS_MAX_ATTRIBUTES_PER_POINT", "3")
    points = [
        (T0, 1.0, {"a": "1", "b": "2", "c": "3"}),
        (T0, 1.0, {"a": "1", "b": "2", "c": "3", "d": "4"}),
        (T0, 1.0, {"a": "x" * 257}),
    ]
    answer = partial(client, request([gauge("capped", points)]))
    assert answer["rejectedDataPoints"] == 2
    message = answer["errorMessage"]
    assert "4 attributes on a data point, at most 3 (ION_METRICS_MAX_ATTRIBUTES_PER_POINT)" in message
    # The default value length is 256 characters.
    assert "label a is 257 characters long, at most 256 (ION_METRICS_MAX_LABEL_VALUE_LENGTH)" in message
    assert count("capped") == 1

    monkeypatch.setenv("ION_METRICS_MAX_LABEL_VALUE_LENGTH", "8")
    from functions.ingestion.settings import get_ingestion_settings

    get_ingestion_settings.cache_clear()
    answer = partial(client, request([gauge("capped", [(T0, 1.0, {"a": "123456789"})])], service="svc"))
    assert answer["rejectedDataPoints"] == 1
    assert "at most 8" in answer["errorMessage"]


def test_metric_names_per_service_are_capped(client, store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ION_METRICS_MAX_METRICS_PER_SERVICE", "2")
    three = request(
        [gauge(f"m{i}", [(T0, 1.0, {}), (T0, 2.0, {"k": "v"})]) for i in range(3)], service="chatty"
    )
    answer = partial(client, three)
    assert answer["rejectedDataPoints"] == 2
    assert (
        "m2: metric limit reached: service chatty has 2 metric names, the limit is 2"
        in answer["errorMessage"]
    )
    assert "ION_METRICS_MAX_METRICS_PER_SERVICE" in answer["errorMessage"]
    assert count("m0") == 2
    assert count("m1") == 2
    assert count("m2") == 0
    # Known names keep being accepted, by a fresh instance too (the limit is stored, not cached).
    from functions.ingestion import known_series

    known_series.reset()
    again = request(
        [gauge("m1", [(T0 + timedelta(seconds=1), 1.0, {})]), gauge("m3", [(T0, 1.0, {})])], service="chatty"
    )
    answer = partial(client, again)
    assert answer["rejectedDataPoints"] == 1
    assert "m3: metric limit reached" in answer["errorMessage"]
    assert count("m1") == 3
    # Another service has its own allowance.
    assert partial(client, request([gauge("m2", [(T0, 1.0, {})])], service="quiet")) == {}
    assert count("m2", service="quiet") == 1


def test_a_point_that_would_push_a_rollup_past_the_document_cap_is_refused(
    client, store, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ION_METRICS_MAX_DOCUMENT_BYTES", "10000")
    wide = {f"k{j}": "v" * 200 for j in range(4)}  # ~0.8 KB of labels per series
    points = [(T0, float(i), {**wide, "n": str(i)}) for i in range(20)]
    answer = partial(client, request([gauge("wide", points)]))
    refused = answer["rejectedDataPoints"]
    assert 0 < refused < 20
    assert "over ION_METRICS_MAX_DOCUMENT_BYTES (10,000)" in answer["errorMessage"]
    assert count("wide") == 20 - refused
    docs = list(metric_ref("wide").collection(MINUTES).stream())
    assert docs
    for snapshot in docs:
        assert document_size(snapshot.reference.path, snapshot.to_dict() or {}) <= 10_000


def test_a_cumulative_state_past_the_document_cap_is_refused(client, store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ION_METRICS_MAX_DOCUMENT_BYTES", "10000")
    bounds = [float(i) for i in range(1, 1500)]
    counts = [1] * 1500
    many = histogram(
        "buckets", T0, bounds, counts, total=10.0, temporality=CUMULATIVE, start=T0 - timedelta(minutes=1)
    )
    few = histogram(
        "buckets",
        T0,
        [1.0, 2.0],
        [1, 1, 1],
        total=3.0,
        labels={"small": "yes"},
        temporality=CUMULATIVE,
        start=T0 - timedelta(minutes=1),
    )
    answer = partial(client, request([many, few]))
    assert answer["rejectedDataPoints"] == 1
    assert "stream states of a sender's series in one bucket would grow to" in answer["errorMessage"]
    assert count("buckets") == 3  # the small histogram's three observations


def test_firestore_invalid_argument_refuses_the_points_and_is_not_a_503(client, store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """If the size estimate ever lets a document through that Firestore refuses, its points are
    refused in partialSuccess: an exporter retrying on 503 would send it forever."""
    from functions.ingestion import chunk_transaction

    monkeypatch.setenv("ION_MAX_BODY_BYTES", str(8 * 1024 * 1024))
    monkeypatch.setenv("ION_METRICS_MAX_ATTRIBUTES_PER_POINT", "128")
    monkeypatch.setenv("ION_METRICS_MAX_LABEL_VALUE_LENGTH", "4096")
    # An estimate gone wrong (raising=False: the same test runs against code without the estimate).
    monkeypatch.setattr(chunk_transaction, "document_size", lambda path, fields: 0, raising=False)
    monkeypatch.setattr(chunk_transaction, "stored_size", lambda value: 0, raising=False)
    huge = {f"k{j:03d}": "v" * 1000 for j in range(100)}  # ~100 KB of labels per series
    points = [(T0, 1.0, {**huge, "n": str(i)}) for i in range(12)] + [(T0, 1.0, {"n": "small"})]
    response = client.post(
        "/v1/metrics", data=request([gauge("huge", points)]).SerializeToString(), content_type=PB
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

    answer = ExportMetricsServiceResponse.FromString(response.data)
    assert answer.partial_success.rejected_data_points == 13  # one rollup document: all refused
    assert "Firestore refused the write" in answer.partial_success.error_message


def test_the_series_limit_holds_under_concurrent_registration(store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ION_METRICS_MAX_SERIES_PER_METRIC", "10")
    writers = 6
    payloads = [
        request(
            [gauge("racy", [(T0, 1.0, {"writer": str(w), "n": str(i)}) for i in range(5)])],
            instance=f"i-{w}",
        ).SerializeToString()
        for w in range(writers)
    ]
    barrier = threading.Barrier(writers)
    accepted: list[int] = []
    errors: list[BaseException] = []

    def write(payload: bytes) -> None:
        barrier.wait()
        try:
            accepted.append(ingest_payload(payload, PB).batch.accepted)
        except Exception as exc:  # noqa: BLE001 - CardinalityExceeded for a writer that got nothing
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(type(e).__name__ == "CardinalityExceeded" for e in errors), errors
    registered = metric_ref("racy").collection(SERIES).count().get()[0][0].value
    assert registered == 10
    assert sum(accepted) == 10
    assert count("racy") == 10
    assert (metric_ref("racy").get().to_dict() or {})["series_count"] == 10


# --- /v1/query ---------------------------------------------------------------------------------


def query(client, **params: str):  # type: ignore[no-untyped-def]
    base = {"metric": "q", "agg": "count", "start": "2026-03-02T11:00:00Z", "end": "2026-03-02T12:00:00Z"}
    return client.get("/v1/query", query_string={**base, **params})


def test_query_times_out_of_range_are_422_saying_what_is_allowed(client, store) -> None:  # type: ignore[no-untyped-def]
    response = query(client, end="9999-12-31T23:30:00Z")
    assert response.status_code == 422
    body = response.get_json()
    assert "end 9999-12-31T23:30:00Z is out of range" in body["detail"]
    assert body["errors"] == [{"field": "end", "message": "out of range"}]
    assert body["allowed"]["latest"] == "2026-03-03T12:00:30Z"
    assert body["allowed"]["max_window_days"] == 92
    assert body["allowed"]["earliest"] == "2025-11-25T12:00:30Z"
    response = query(client, start="0001-01-01T00:00:00Z")
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "start"
    # The in-process API refuses such times too, instead of overflowing.
    with pytest.raises(ValidationError, match="out of range"):
        MetricQuery(metric="q", agg="count", start=NOW, end=NOW.replace(year=9999))


def test_query_window_and_series_are_capped(client, store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ION_QUERY_MAX_WINDOW_DAYS", "1")
    monkeypatch.setenv("ION_QUERY_MAX_SERIES", "2")
    response = query(client, start="2026-03-01T11:00:00Z", end="2026-03-02T12:00:00Z")
    assert response.status_code == 422
    assert "at most 1 days (ION_QUERY_MAX_WINDOW_DAYS)" in response.get_json()["detail"]

    post(client, request([gauge("q", [(T0, 1.0, {"k": str(i)}) for i in range(3)])]))
    assert query(client).status_code == 200
    response = query(client, by="k")
    assert response.status_code == 422
    body = response.get_json()
    assert "more than 2 series" in body["detail"]
    assert body["errors"][0]["field"] == "by"
    assert query(client, by="k", **{"label.k": "1"}).status_code == 200


def test_query_points_are_capped_the_more_steps_the_fewer_series(client, store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Series and window were bounded, not their product: 1,000 series at a minute step over 72 h
    were 4.3 M points (~200 MB, past the 32 MiB a function may answer). ION_QUERY_MAX_POINTS (here
    its least, 1,000) bounds series x steps, in a 422 naming `step` and what is allowed."""
    monkeypatch.setenv("ION_QUERY_MAX_POINTS", "1000")
    post(client, request([gauge("q", [(T0, 1.0, {"k": str(i)}) for i in range(30)])]))
    assert len(query(client, by="k").get_json()["series"]) == 30  # one point each
    # 60 steps a series: 16 series at most.
    response = query(client, by="k", step="60")
    assert response.status_code == 422
    body = response.get_json()
    assert body["errors"][0]["field"] == "step"
    assert "more than 1000 points (ION_QUERY_MAX_POINTS)" in body["detail"]
    assert body["allowed"] == {"max_points": 1000, "max_series": 1000, "series_at_this_step": 16}
    assert query(client, by="k", step="3600").status_code == 200  # one step: 30 series fit
    narrowed = query(client, by="k", step="60", **{"label.k": "7"})
    assert narrowed.status_code == 200
    assert len(narrowed.get_json()["series"]) == 1


def test_query_too_many_steps_for_one_series_names_the_least_step(client, store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """One series alone past ION_QUERY_MAX_POINTS: the answer says the least step that fits (it
    said "1200 steps a series allow at most 0 series", which names nothing to ask for instead)."""
    monkeypatch.setenv("ION_QUERY_MAX_POINTS", "1000")
    window = {"start": "2026-03-02T00:00:00Z", "end": "2026-03-02T20:00:00Z"}  # 1,200 minutes
    response = query(client, step="60", **window)
    assert response.status_code == 422
    body = response.get_json()
    assert body["errors"][0]["field"] == "step"
    assert "one series alone is 1200 points" in body["detail"], body["detail"]
    assert "a step of at least 120 s" in body["detail"], body["detail"]  # 72 s, in whole minutes
    assert body["allowed"] == {
        "max_points": 1000,
        "max_series": 1000,
        "series_at_this_step": 0,
        "min_step": 120,
    }
    assert query(client, step="120", **window).status_code == 200


def test_query_reads_are_capped_naming_the_window(client, store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A rollup document holds a bucket of a metric's series for a minute (per writer shard) or an
    hour: a metric of 1,500 series read over 92 days of hours was 33,000 documents a request.
    ION_QUERY_MAX_DOCUMENTS (here its least, 100) stops the read there, in a 422 naming `start`."""
    import shared.firestore_reads as reads

    monkeypatch.setenv("ION_METRICS_BUCKET_SERIES", "1")  # a bucket, so a document, per series
    monkeypatch.setenv("ION_QUERY_MAX_DOCUMENTS", "100")
    points = [(T0 + timedelta(minutes=m), 1.0, {"k": str(i)}) for m in range(5) for i in range(25)]
    post(client, request([gauge("q", points)]))
    streamed = [0]
    real = reads.stream_fields

    def counted(query, **kwargs):  # type: ignore[no-untyped-def]
        for row in real(query, **kwargs):
            streamed[0] += 1
            yield row

    monkeypatch.setattr(reads, "stream_fields", counted)
    response = query(client)  # 5 minutes x 25 buckets: 125 rollups
    assert response.status_code == 422
    body = response.get_json()
    assert body["errors"][0]["field"] == "start"
    assert "more than 100 rollup documents" in body["detail"]
    assert body["allowed"] == {"max_documents": 100}
    assert streamed[0] <= 101  # the read stopped at the bound
    one_minute = {"start": format_rfc3339(T0), "end": format_rfc3339(T0 + timedelta(minutes=1))}
    answer = query(client, **one_minute)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["series"][0]["points"][0][1] == 25
