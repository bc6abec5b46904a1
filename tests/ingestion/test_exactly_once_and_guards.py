"""Exactly-once effect (exporter retries, Pub/Sub redeliveries, a failure between chunks) and the
guards: malformed bodies, refused points with reasons, the per-metric series limit; and the
metric-updates notification."""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import functions_framework
import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

from shared.messages import MetricsIngested
from shared.metrics.query import run_query
from shared.metrics.query_model import MetricQuery
from shared.metrics.store import MINUTES, metric_ref
from shared.topology import ROOT
from tests.ingestion.conftest import NOW
from tests.ingestion.otlp_builders import counter, gauge, histogram, request
from tests.pubsub_helpers import push_envelope

pytestmark = pytest.mark.emulators
PB = "application/x-protobuf"
T0 = NOW.replace(second=0) - timedelta(minutes=5)
PUSH_PATH = "/projects/ion-ops-test/topics/metrics"


def total(metric: str, agg: str = "count", **labels: str) -> float:
    result = run_query(
        MetricQuery(
            metric=metric,
            agg=agg,
            start=T0 - timedelta(hours=1),
            end=NOW + timedelta(minutes=5),
            labels=labels,
        )
    )
    return sum(p[1] for s in result.series for p in s.points)


def stored_documents(fs) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for c in fs.collections() for _ in c.list_documents())


def batch_of(n: int, metric: str = "lat", **extra: str):  # type: ignore[no-untyped-def]
    points = [
        (T0 + timedelta(seconds=i % 50), float(i + 1), {"endpoint": f"/e{i % 3}", **extra}) for i in range(n)
    ]
    return request([gauge(metric, points)])


def test_the_same_payload_posted_twice_is_counted_once(client, store) -> None:  # type: ignore[no-untyped-def]
    body = batch_of(300).SerializeToString()
    for _ in range(3):
        assert client.post("/v1/metrics", data=body, content_type=PB).status_code == 200
    assert total("lat") == 300
    assert total("lat", "sum") == sum(range(1, 301))


ARM = "ion.routing.experiment.arm"  # topic metrics carries routing's metrics only (topic_filter)


def routing_batch_of(n: int, after: timedelta = timedelta(0)):  # type: ignore[no-untyped-def]
    points = [
        (T0 + after + timedelta(seconds=i % 50), float(i + 1), {"experiment": "e1", "arm": f"a{i % 3}"})
        for i in range(n)
    ]
    return request([gauge(ARM, points)], service="routing")


def test_pubsub_redelivery_is_counted_once_and_bad_messages_are_dropped(store) -> None:  # type: ignore[no-untyped-def]
    app = functions_framework.create_app("ingest_pubsub", str(ROOT / "main.py"), "cloudevent")
    push = app.test_client()
    data = routing_batch_of(120).SerializeToString()
    envelope = push_envelope(data, message_id="m-1", publish_time=NOW, attributes={"content_type": PB})
    for _ in range(3):
        assert push.post(PUSH_PATH, json=envelope).status_code == 200
    # The same batch delivered again under a new message id (the producer published twice).
    again = push_envelope(data, message_id="m-2", publish_time=NOW, attributes={"content_type": PB})
    assert push.post(PUSH_PATH, json=again).status_code == 200
    assert total(ARM) == 120
    # JSON is accepted too.
    # Other points (the same ones again would be recognised as such: ``point_keys.py``).
    as_json = json.dumps(MessageToDict(routing_batch_of(10, after=timedelta(minutes=1)))).encode()
    json_envelope = push_envelope(
        as_json, message_id="m-3", publish_time=NOW, attributes={"content_type": "application/json"}
    )
    assert push.post(PUSH_PATH, json=json_envelope).status_code == 200
    assert total(ARM) == 130
    # A message that can never be stored is acknowledged, not retried forever, but never unread:
    # it goes to metrics-dead-letter with the reason (the dead-letter store keeps it and pages).
    with dead_letter_watch() as letters:
        junk = push_envelope(
            b"\x0a\xff\xff", message_id="m-4", publish_time=NOW, attributes={"content_type": PB}
        )
        assert push.post(PUSH_PATH, json=junk).status_code == 200
        assert total(ARM) == 130
        [letter] = letters(1)
    assert letter.data == b"\x0a\xff\xff"
    assert "can never be stored" in letter.attributes["reason"]
    assert letter.attributes["recoverable"] == "false"


@contextlib.contextmanager
def dead_letter_watch() -> Iterator[Callable[[int], list[Any]]]:
    """A pull subscription on metrics-dead-letter for the block; yields ``pull(n)``."""
    import uuid

    from google.cloud import pubsub_v1

    from tests.conftest import PROJECT
    from tests.pubsub_helpers import pull_acknowledged

    subscriber = pubsub_v1.SubscriberClient()
    name = subscriber.subscription_path(PROJECT, f"metrics-dead-letter-{uuid.uuid4().hex[:8]}")
    subscriber.create_subscription(name=name, topic=f"projects/{PROJECT}/topics/metrics-dead-letter")
    try:
        yield lambda want: pull_acknowledged(subscriber, name, quiet_seconds=3.0, want=want)
    finally:
        subscriber.delete_subscription(subscription=name)
        subscriber.close()


def test_a_failure_between_chunks_is_retried_without_double_counting(client, store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from google.api_core.exceptions import ServiceUnavailable

    from functions.ingestion import writer

    # 40 series in buckets of 4 over 3 minutes: 30 rollup documents, 8 per transaction.
    monkeypatch.setenv("ION_METRICS_BUCKET_SERIES", "4")
    monkeypatch.setenv("ION_METRICS_TXN_WRITES", "20")
    points = [(T0 + timedelta(minutes=i % 3), 1.0, {"endpoint": f"/e{i % 40}"}) for i in range(400)]
    body = request([gauge("chunked", points)]).SerializeToString()
    real_apply = writer.apply_chunk
    calls = {"n": 0}

    def failing_after_two_chunks(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise ServiceUnavailable("storage went away")
        return real_apply(*args, **kwargs)

    monkeypatch.setattr(writer, "apply_chunk", failing_after_two_chunks)
    first = client.post("/v1/metrics", data=body, content_type=PB)
    assert first.status_code == 503
    assert first.headers["Retry-After"]
    partly = total("chunked")
    assert 0 < partly < 400  # two chunks were applied, whole
    monkeypatch.setattr(writer, "apply_chunk", real_apply)
    assert client.post("/v1/metrics", data=body, content_type=PB).status_code == 200
    assert client.post("/v1/metrics", data=body, content_type=PB).status_code == 200
    assert total("chunked") == 400
    # No marker documents: each rollup lists the one batch that wrote it, in the same transaction.
    # (metric_services is the per-service registry of metric names, not a marker.)
    assert [c.id for c in store.collections()] == ["metric_services", "metrics"]
    rollups = list(metric_ref("chunked").collection(MINUTES).stream())
    assert len(rollups) == 30  # 10 buckets x 3 minutes
    assert {len(r.to_dict()["series"]) for r in rollups} == {4}
    assert {len(r.to_dict()["applied"]) for r in rollups} == {1}


def test_otlp_json_with_gzip_as_exporters_send_it(client, store) -> None:  # type: ignore[no-untyped-def]
    document = MessageToDict(batch_of(30))
    # OTLP JSON: exemplar ids in hex, which protobuf's own JSON mapping would misread.
    point = document["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["gauge"]["dataPoints"][0]
    point["exemplars"] = [
        {"spanId": "0123456789abcdef", "traceId": "0123456789abcdef0123456789abcdef", "asDouble": 1}
    ]
    body = gzip.compress(json.dumps(document).encode())
    response = client.post(
        "/v1/metrics", data=body, content_type="application/json", headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 200, response.data
    assert response.get_json() == {}
    assert total("lat") == 30


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "status", "says"),
    [
        (b"\x0a\xff\xff\xff", PB, None, 400, "protobuf"),
        (b"{not json", "application/json", None, 400, "JSON"),
        (b'{"resourceMetrics": "nope"}', "application/json", None, 400, "OTLP JSON"),
        (b"[1, 2]", "application/json", None, 400, "object"),
        (b"plain", "text/plain", None, 415, "application/x-protobuf"),
        (b"not gzip at all", PB, "gzip", 400, "gzip"),
        (b"x", PB, "br", 415, "gzip"),
    ],
)
def test_malformed_bodies_are_4xx_saying_what_is_wrong_and_store_nothing(  # type: ignore[no-untyped-def]  # noqa: PLR0917
    client, store, body, content_type, encoding, status, says
) -> None:
    headers = {"Content-Encoding": encoding} if encoding else {}
    response = client.post("/v1/metrics", data=body, content_type=content_type, headers=headers)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert says in response.get_json()["detail"] + json.dumps(response.get_json().get("allowed", []))
    assert stored_documents(store) == 0


def test_gzip_bomb_is_refused_413(client, store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ION_MAX_BODY_BYTES", "100000")
    from shared.settings import get_settings

    get_settings.cache_clear()
    body = gzip.compress(b"\x00" * 5_000_000)
    response = client.post("/v1/metrics", data=body, content_type=PB, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413


def test_bad_points_are_refused_one_by_one_with_reasons(client, store) -> None:  # type: ignore[no-untyped-def]
    good = [(T0, 5.0, {}), (T0 + timedelta(seconds=1), 7.0, {})]
    bad_values = [(T0, float("nan"), {}), (T0, float("inf"), {}), (T0 - timedelta(days=4), 1.0, {})]
    negative = counter("requests", [(T0, -3.0, {}), (T0, 4.0, {})])
    wrong_buckets = histogram("h", T0, [1, 2], [1, 2], total=3)  # 2 counts for 2 bounds
    req = request([gauge("g", good + bad_values), negative, wrong_buckets])
    response = client.post("/v1/metrics", data=req.SerializeToString(), content_type=PB)
    assert response.status_code == 200
    answer = ExportMetricsServiceResponse.FromString(response.data)
    assert answer.partial_success.rejected_data_points == 5
    message = answer.partial_success.error_message
    for reason in ("nan", "inf", "older than", "negative increment", "bucket_counts"):
        assert reason in message, reason
    assert total("g") == 2
    assert total("g", "sum") == 12
    assert total("requests", "sum") == 4
    assert total("h") == 0

    as_json = client.post("/v1/metrics", data=json.dumps(MessageToDict(req)), content_type="application/json")
    body = as_json.get_json()
    assert body["partialSuccess"]["rejectedDataPoints"] == 5
    assert {r["metric"] for r in body["rejections"]} == {"g", "requests", "h"}


def _refused_by_series_limit(capsys) -> list[tuple[int, list[str]]]:  # type: ignore[no-untyped-def]
    """The fields of the Cloud Logging lines the "metric points refused" policy counts."""
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return [
        (line["points_refused_by_series_limit"], line["metrics_over_series_limit"])
        for line in lines
        if line.get("points_refused_by_series_limit", 0) > 0
    ]


def test_series_limit_per_metric_refuses_new_series_naming_the_metric(
    client, store, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ION_METRICS_MAX_SERIES_PER_METRIC", "3")
    capsys.readouterr()
    five = request([gauge("user.requests", [(T0, 1.0, {"user": f"u{i}"}) for i in range(5)])])
    response = client.post(
        "/v1/metrics", data=json.dumps(MessageToDict(five)), content_type="application/json"
    )
    assert response.status_code == 200
    partial = response.get_json()["partialSuccess"]
    assert partial["rejectedDataPoints"] == 2
    assert "user.requests" in partial["errorMessage"]
    assert "limit is 3" in partial["errorMessage"]
    assert total("user.requests") == 3
    assert _refused_by_series_limit(capsys) == [(2, ["user.requests"])]

    before = stored_documents(store)
    only_new = request([gauge("user.requests", [(T0, 1.0, {"user": f"new{i}"}) for i in range(2)])])
    refused = client.post("/v1/metrics", data=only_new.SerializeToString(), content_type=PB)
    assert refused.status_code == 413
    assert "user.requests" in refused.get_json()["detail"]
    assert refused.get_json()["metrics"] == ["user.requests"]
    assert stored_documents(store) == before
    assert _refused_by_series_limit(capsys) == [(2, ["user.requests"])]
    # Series already known keep being accepted, and other metrics are not affected.
    known = next(
        s.labels["user"]
        for s in run_query(
            MetricQuery(metric="user.requests", agg="count", start=T0, end=NOW, group_by=["user"])
        ).series
    )
    again = request(
        [
            gauge("user.requests", [(T0 + timedelta(seconds=5), 1.0, {"user": known})]),
            gauge("other", [(T0, 1.0, {})]),
        ]
    )
    assert client.post("/v1/metrics", data=again.SerializeToString(), content_type=PB).status_code == 200
    assert total("user.requests") == 4
    assert total("other") == 1
    assert _refused_by_series_limit(capsys) == []


def test_every_stored_batch_is_announced_on_metric_updates(client, store, emulators) -> None:  # type: ignore[no-untyped-def]
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    subscription = subscriber.subscription_path(emulators.project, "ingestion-test-updates")
    topic = f"projects/{emulators.project}/topics/metric-updates"
    with contextlib.suppress(Exception):  # absent the first time
        subscriber.delete_subscription(subscription=subscription)
    subscriber.create_subscription(name=subscription, topic=topic)
    try:
        assert (
            client.post("/v1/metrics", data=batch_of(9).SerializeToString(), content_type=PB).status_code
            == 200
        )
        pulled = subscriber.pull(subscription=subscription, max_messages=10, timeout=10)
        messages = [MetricsIngested.model_validate_json(r.message.data) for r in pulled.received_messages]
        assert len(messages) == 1
        update = messages[0]
        assert set(update.metrics) == {"lat"}
        assert len(update.metrics["lat"]) == 3
        assert {"service": "route", "region": "us-central1", "endpoint": "/e0"} in update.metrics["lat"]
        assert update.start == T0
        assert update.end == T0 + timedelta(seconds=8)
    finally:
        subscriber.delete_subscription(subscription=subscription)
        subscriber.close()


def test_rollup_documents_have_hashed_ids_and_ttl(client, store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ION_METRICS_BUCKET_SERIES", "1")  # three series, three buckets
    assert (
        client.post("/v1/metrics", data=batch_of(30).SerializeToString(), content_type=PB).status_code == 200
    )
    docs = list(metric_ref("lat").collection(MINUTES).stream())
    ids = sorted(d.id for d in docs)
    assert len(ids) == 3
    assert len({i[:8] for i in ids}) == len(ids)  # ids start with a hash, never a timestamp
    for doc in docs:
        body = doc.to_dict()
        assert body["expire_at"] == body["t"] + timedelta(hours=72)
        assert all(isinstance(sk, bytes) and base64.b64encode(sk) for sk in body["sk"].values())


def test_extreme_but_valid_exponential_buckets_do_not_break_the_request(client, store) -> None:  # type: ignore[no-untyped-def]
    from opentelemetry.proto.metrics.v1 import metrics_pb2 as m

    from tests.ingestion.otlp_builders import ns

    point = m.ExponentialHistogramDataPoint(
        time_unix_nano=ns(T0),
        count=3,
        sum=1e300,
        scale=-10,
        positive=m.ExponentialHistogramDataPoint.Buckets(offset=5, bucket_counts=[1, 2]),
    )
    metric = m.Metric(
        name="wide",
        exponential_histogram=m.ExponentialHistogram(aggregation_temporality=1, data_points=[point]),
    )
    response = client.post("/v1/metrics", data=request([metric]).SerializeToString(), content_type=PB)
    assert response.status_code == 200
    assert total("wide") == 3
