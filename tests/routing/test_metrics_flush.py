"""Routing's metrics are not stranded: a quiet instance ships its batch between requests, and an
instance that is stopped (SIGTERM, as Cloud Run does) ships it before it goes."""

from __future__ import annotations

import contextlib
import time

import pytest
import requests
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

pytestmark = pytest.mark.emulators
ROUTE = {"resonance_key": "calm-flowing-seek_advice"}


def _metrics_subscription(project: str) -> str:
    from google.api_core.exceptions import AlreadyExists
    from google.cloud import pubsub_v1

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = publisher.topic_path(project, "metrics")
    with contextlib.suppress(AlreadyExists):
        publisher.create_topic(name=topic)
    subscription = subscriber.subscription_path(project, f"metrics-probe-{time.monotonic_ns()}")
    subscriber.create_subscription(name=subscription, topic=topic)
    return subscription


def _routed_count(subscription: str, wait: float, until: float | None = None) -> float:
    """Requests counted in the batches on the subscription within ``wait`` seconds: as soon as
    ``until`` are counted (a busy machine may ship them in several batches), or else as soon as
    any is."""
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    deadline = time.monotonic() + wait
    count = 0.0
    while time.monotonic() < deadline:
        response = subscriber.pull(request={"subscription": subscription, "max_messages": 50}, timeout=5)
        for received in response.received_messages:
            batch = ExportMetricsServiceRequest.FromString(received.message.data)
            for resource in batch.resource_metrics:
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        if metric.name != "http.server.request.duration":
                            continue
                        for point in metric.exponential_histogram.data_points:
                            labels = {a.key: a.value.string_value for a in point.attributes}
                            if labels.get("http.route") == "/v2/route":  # not the readiness probes
                                count += point.count
        if response.received_messages:
            subscriber.acknowledge(
                request={
                    "subscription": subscription,
                    "ack_ids": [r.ack_id for r in response.received_messages],
                }
            )
        if count and (until is None or count >= until):
            return count
        time.sleep(0.5)
    return count


def test_a_quiet_instance_ships_its_batch_between_requests(emulators, serve_capability) -> None:  # type: ignore[no-untyped-def]
    subscription = _metrics_subscription(emulators.project)
    live = serve_capability("routing", {"ION_METRICS_ENABLED": "true", "ION_METRICS_FLUSH_SECONDS": "2"})
    for _ in range(7):
        assert requests.post(f"{live.url}/v2/route", json=ROUTE, timeout=30).status_code == 200
    assert _routed_count(subscription, wait=30, until=7) == 7  # no further request arrived


def test_a_stopped_instance_ships_its_batch_before_it_goes(emulators, serve_capability) -> None:  # type: ignore[no-untyped-def]
    subscription = _metrics_subscription(emulators.project)
    live = serve_capability(
        "routing",
        {
            "ION_METRICS_ENABLED": "true",
            "ION_METRICS_FLUSH_SECONDS": "3600",
            "ION_METRICS_BACKGROUND_FLUSH": "false",
        },
    )
    for _ in range(4):
        assert requests.post(f"{live.url}/v2/route", json=ROUTE, timeout=30).status_code == 200
    assert _routed_count(subscription, wait=3) == 0  # an hour's interval: nothing shipped yet
    live.process.stop()  # SIGTERM, then wait
    assert _routed_count(subscription, wait=30, until=4) == 4
