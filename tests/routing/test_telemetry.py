"""functions.routing.telemetry: exponential-histogram accuracy, OTLP encoding, flush policy, failure handling,
and one batch through the Pub/Sub emulator decoded with opentelemetry-proto."""

from __future__ import annotations

import contextlib
import math
import random
import time
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1 import metrics_pb2

from functions.routing.telemetry import SCALE, Telemetry, TelemetrySettings, map_to_index

DELTA = metrics_pb2.AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _default_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults, not the quiet metrics the other routing tests set in the environment."""
    for name in ("ION_METRICS_ENABLED", "ION_METRICS_FLUSH_SECONDS"):
        monkeypatch.delenv(name, raising=False)


def make(publish: Any = None, **settings: Any) -> tuple[Telemetry, list[bytes], FakeMonotonic]:
    sent: list[bytes] = []
    clock = FakeMonotonic()
    telemetry = Telemetry(
        "routing",
        publish=publish or sent.append,
        settings=TelemetrySettings(**settings),
        region="europe-west1",
        monotonic=clock,
    )
    return telemetry, sent, clock


def decode(payload: bytes) -> dict[str, metrics_pb2.Metric]:
    request = ExportMetricsServiceRequest.FromString(payload)
    assert len(request.resource_metrics) == 1
    return {m.name: m for m in request.resource_metrics[0].scope_metrics[0].metrics}


def attrs(point: Any) -> dict[str, Any]:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in point.attributes}


def bucket_bounds(index: int, scale: int) -> tuple[float, float]:
    base = 2 ** (2**-scale)
    return base**index, base ** (index + 1)


def test_every_value_falls_in_its_bucket_and_the_midpoint_is_within_1_percent() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(-6, 3) for _ in range(20_000)] + [2.0**k for k in range(-20, 20)]
    for value in values:
        low, high = bucket_bounds(map_to_index(value), SCALE)
        assert low < value <= high * (1 + 1e-12), value
        midpoint = (low + high) / 2
        assert abs(midpoint - value) / value <= 0.01


def test_the_accumulator_buckets_each_value_where_map_to_index_says() -> None:
    """HistogramAccumulator.record inlines map_to_index for speed: the two must not drift apart."""
    from functions.routing.otlp_metrics import HistogramAccumulator

    rng = random.Random(11)
    values = [rng.lognormvariate(-6, 3) for _ in range(5_000)] + [2.0**k for k in range(-20, 20)]
    for value in values:
        for signed in (value, -value):
            acc = HistogramAccumulator(0)
            acc.record(signed)
            buckets = acc.positive if signed > 0 else acc.negative
            assert buckets == {map_to_index(value): 1}, signed


def test_exact_powers_of_two_go_to_the_lower_bucket() -> None:
    assert map_to_index(1.0) == -1
    assert map_to_index(2.0) == (1 << SCALE) - 1
    assert map_to_index(0.5) == -(1 << SCALE) - 1


def test_batch_encodes_sums_histograms_and_gauges_as_delta_otlp() -> None:
    telemetry, sent, clock = make()
    duration = telemetry.histogram("http.server.request.duration", "s", "request duration")
    selected = telemetry.counter("ion.routing.persona.selected", "{decision}")
    up = telemetry.gauge("ion.cache.l2.available")
    route = (("http.route", "/v2/route"), ("http.request.method", "POST"), ("http.response.status_code", 200))
    for value in (0.001, 0.002, 0.004, 0.0):
        duration.record(value, route)
    duration.record(
        0.5,
        (("http.route", "/v2/route"), ("http.request.method", "POST"), ("http.response.status_code", 422)),
    )
    selected.add(1, (("persona", "Lua"),))
    selected.add(2, (("persona", "Lua"),))
    selected.add(1, (("persona", "Elro"),))
    up.set(0)
    up.set(1)
    assert telemetry.maybe_flush() is None  # not due yet
    clock.now += 10
    assert telemetry.maybe_flush() is True
    assert len(sent) == 1
    request = ExportMetricsServiceRequest.FromString(sent[0])
    resource = {kv.key: kv.value.string_value for kv in request.resource_metrics[0].resource.attributes}
    assert resource["service.name"] == "routing"
    assert resource["cloud.region"] == "europe-west1"
    metrics = decode(sent[0])

    hist = metrics["http.server.request.duration"]
    assert hist.unit == "s"
    assert hist.exponential_histogram.aggregation_temporality == DELTA
    points = {attrs(p)["http.response.status_code"]: p for p in hist.exponential_histogram.data_points}
    ok = points[200]
    assert attrs(ok) == {
        "http.route": "/v2/route",
        "http.request.method": "POST",
        "http.response.status_code": 200,
    }
    assert ok.count == 4
    assert ok.zero_count == 1
    assert ok.sum == pytest.approx(0.007)
    assert (ok.min, ok.max) == (0.0, 0.004)
    assert ok.scale == SCALE
    assert sum(ok.positive.bucket_counts) == 3
    # Each recorded value sits in the bucket its index says.
    for value in (0.001, 0.002, 0.004):
        position = map_to_index(value) - ok.positive.offset
        assert ok.positive.bucket_counts[position] >= 1
    assert points[422].count == 1

    counts = metrics["ion.routing.persona.selected"]
    assert counts.sum.aggregation_temporality == DELTA
    assert counts.sum.is_monotonic
    assert {attrs(p)["persona"]: p.as_int for p in counts.sum.data_points} == {"Lua": 3, "Elro": 1}
    assert [p.as_int for p in metrics["ion.cache.l2.available"].gauge.data_points] == [1]


def test_delta_batches_do_not_repeat_what_was_sent() -> None:
    telemetry, sent, clock = make()
    counter = telemetry.counter("c")
    counter.add(5)
    clock.now += 11
    telemetry.maybe_flush()
    counter.add(2)
    clock.now += 11
    telemetry.maybe_flush()
    assert [decode(p)["c"].sum.data_points[0].as_int for p in sent] == [5, 2]


def test_a_full_batch_flushes_before_its_time() -> None:
    telemetry, sent, _ = make(max_series=3)
    counter = telemetry.counter("c")
    for i in range(3):
        counter.add(1, (("i", i),))
        telemetry.maybe_flush()
    assert len(sent) == 1
    assert len(decode(sent[0])["c"].sum.data_points) == 3


def test_a_failed_publish_is_resent_byte_for_byte_before_the_next_batch() -> None:
    outcomes: list[bool] = [False, True, True]
    sent: list[bytes] = []
    failed: list[bytes] = []

    def flaky(payload: bytes) -> None:
        if not outcomes.pop(0):
            failed.append(payload)
            raise TimeoutError("pubsub down")
        sent.append(payload)

    telemetry, _, clock = make(publish=flaky)
    counter = telemetry.counter("c")
    hist = telemetry.histogram("h")
    counter.add(3)
    hist.record(0.25)
    clock.now += 11
    assert telemetry.maybe_flush() is False  # logged, not raised
    assert telemetry.failed_batches == 1
    counter.add(4)
    hist.record(0.5)
    assert telemetry.maybe_flush() is None  # backs off: not retried on the very next request
    clock.now += 11
    assert telemetry.maybe_flush() is True
    # The failed batch again, identical (ingestion deduplicates by content), then the new one.
    assert sent[0] == failed[0]
    assert decode(sent[0])["c"].sum.data_points[0].as_int == 3
    assert decode(sent[1])["c"].sum.data_points[0].as_int == 4
    assert decode(sent[1])["h"].exponential_histogram.data_points[0].count == 1
    assert telemetry.unsent_batches() == 0


def test_a_publish_that_timed_out_after_delivery_is_resent_identically() -> None:
    delivered: list[bytes] = []
    attempts = iter([True, False])

    def times_out_once(payload: bytes) -> None:
        delivered.append(payload)  # the server got it...
        if next(attempts, False):
            raise TimeoutError("...but the answer was lost")

    telemetry, _, clock = make(publish=times_out_once)
    telemetry.counter("c").add(5)
    clock.now += 11
    assert telemetry.maybe_flush() is False
    clock.now += 11
    assert telemetry.maybe_flush() is True
    assert len(delivered) == 2
    assert delivered[0] == delivered[1]  # one content hash: stored once by ingestion


def test_unsent_batches_and_pending_series_are_bounded_while_publishing_fails() -> None:
    def down(_payload: bytes) -> None:
        raise ConnectionError("down")

    telemetry, _, clock = make(publish=down, max_series=1000, max_pending_series=5, max_unsent_batches=2)
    counter = telemetry.counter("c")
    for i in range(20):
        counter.add(1, (("i", i),))
    assert telemetry.dropped_series == 15
    for _ in range(4):
        clock.now += 11
        counter.add(1)
        telemetry.maybe_flush()
    assert telemetry.unsent_batches() == 2
    assert telemetry.dropped_batches == 2


def test_disabled_metrics_are_dropped_not_published() -> None:
    telemetry, sent, clock = make(enabled=False)
    telemetry.counter("c").add(1)
    clock.now += 11
    assert telemetry.maybe_flush() is True
    assert sent == []
    assert telemetry.series_count() == 0


def test_recording_is_thread_safe() -> None:
    import threading

    telemetry, sent, _ = make()
    counter = telemetry.counter("c")
    hist = telemetry.histogram("h")

    def work() -> None:
        for _ in range(2000):
            counter.add(1)
            hist.record(0.01)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    telemetry.flush()
    metrics = decode(sent[0])
    assert metrics["c"].sum.data_points[0].as_int == 8000
    assert metrics["h"].exponential_histogram.data_points[0].count == 8000


@pytest.mark.emulators
def test_batch_reaches_the_metrics_topic_as_protobuf(emulators: Any) -> None:
    from google.cloud import pubsub_v1

    from shared.pubsub import get_publisher, topic_path

    project = emulators.project
    publisher = get_publisher()
    topic = topic_path("metrics")
    from google.api_core.exceptions import AlreadyExists

    with contextlib.suppress(AlreadyExists):  # created by another test of the session
        publisher.create_topic(name=topic)
    subscriber = pubsub_v1.SubscriberClient()
    subscription = f"projects/{project}/subscriptions/telemetry-test-{time.time_ns()}"
    subscriber.create_subscription(name=subscription, topic=topic)
    try:
        telemetry = Telemetry("routing")
        telemetry.counter("ion.cache.requests").add(
            2, (("tier", "l1"), ("result", "hit"), ("endpoint", "route"))
        )
        telemetry.histogram("http.server.request.duration", "s").record(
            0.0123, (("http.route", "/v2/route"), ("http.response.status_code", 200))
        )
        assert telemetry.flush() is True
        received = subscriber.pull(subscription=subscription, max_messages=10, timeout=10).received_messages
        assert len(received) == 1
        message = received[0].message
        assert message.attributes["content_type"] == "application/x-protobuf"
        metrics = decode(message.data)
        point = metrics["ion.cache.requests"].sum.data_points[0]
        assert attrs(point) == {"tier": "l1", "result": "hit", "endpoint": "route"}
        assert point.as_int == 2
        hist = metrics["http.server.request.duration"].exponential_histogram
        assert hist.aggregation_temporality == DELTA
        assert hist.data_points[0].count == 1
        assert math.isclose(hist.data_points[0].sum, 0.0123)
    finally:
        subscriber.delete_subscription(subscription=subscription)
        subscriber.close()


def test_the_publisher_is_made_as_the_flusher_starts_not_at_the_first_flush(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Importing and creating the Pub/Sub client holds the GIL for about half a second: done at the
    first flush it stalled every request in flight, so the flusher does it first, as it starts."""
    from shared.pubsub import get_publisher

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")  # made, never connected
    get_publisher.cache_clear()
    telemetry = Telemetry(
        "routing",
        settings=TelemetrySettings(flush_seconds=3600, background_flush=True),
        region="europe-west1",
    )
    try:
        telemetry.start_background_flush()
        deadline = time.monotonic() + 60
        while get_publisher.cache_info().currsize == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert get_publisher.cache_info().currsize == 1
        assert telemetry.published_batches == 0  # an hour's interval: nothing flushed yet
    finally:
        telemetry.stop_background_flush()
        get_publisher.cache_clear()


def test_a_telemetry_with_its_own_publish_or_metrics_off_makes_no_publisher() -> None:
    from shared.pubsub import get_publisher

    get_publisher.cache_clear()
    own, _, _ = make()
    own._prepare_publisher()
    off = Telemetry("routing", settings=TelemetrySettings(enabled=False), region="europe-west1")
    off._prepare_publisher()
    assert get_publisher.cache_info().currsize == 0
