"""The routing function served by functions-framework (gunicorn) over real HTTP, on the emulators
and Redis, shipping its metrics to the `metrics` topic as OTLP protobuf."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pytest
import requests

from tests.routing.conftest import MetricsSink
from tests.routing.test_engine import expected

pytestmark = [pytest.mark.emulators, pytest.mark.redis]


ROUTE_LABELS = {"http.request.method": "POST", "http.route": "/v2/route"}


def test_served_over_http_with_metrics_on_the_topic(serve_capability: Any, fs: Any, redis_url: str) -> None:
    from google.api_core.exceptions import AlreadyExists
    from google.cloud import pubsub_v1

    from shared.pubsub import get_publisher, topic_path

    topic = topic_path("metrics")
    with contextlib.suppress(AlreadyExists):
        get_publisher().create_topic(name=topic)
    subscriber = pubsub_v1.SubscriberClient()
    subscription = f"projects/ion-ops-test/subscriptions/routing-live-{time.time_ns()}"
    subscriber.create_subscription(name=subscription, topic=topic)
    try:
        live = serve_capability(
            "routing",
            env={
                "ION_METRICS_FLUSH_SECONDS": "1",
                "ION_METRICS_ENABLED": "true",
                "FUNCTION_REGION": "europe-west1",
            },
        )
        session = requests.Session()
        answer = session.post(
            f"{live.url}/v2/route", json={"resonance_key": "urgent-burst-planning"}, timeout=10
        )
        assert answer.status_code == 200
        body = answer.json()
        assert body["primary_persona"] == expected("urgent", "burst", "planning")["primary"]
        inferred = session.post(
            f"{live.url}/v2/route", json={"message": "Help!! prod is down, fix it now"}, timeout=10
        )
        assert inferred.json()["inferred"] == ["tone", "pace", "intent"]
        bad = session.post(
            f"{live.url}/v2/route", data="{oops", headers={"Content-Type": "application/json"}, timeout=10
        )
        assert bad.status_code == 400
        assert bad.headers["Content-Type"] == "application/problem+json"
        health = session.get(f"{live.url}/health", timeout=10).json()
        assert health["status"] == "ok"
        assert health["checks"]["redis"]["ok"]
        assert health["checks"]["firestore"]["ok"]
        feedback = session.post(
            f"{live.url}/v2/feedback", json={"request_id": body["request_id"], "helpful": True}, timeout=10
        )
        assert feedback.status_code == 201

        time.sleep(1.2)  # the batch is now due: the next request ships it
        assert session.get(f"{live.url}/v2/personas", timeout=10).status_code == 200

        # Under load the requests may straddle a flush: their points can come in several batches,
        # so the counts are summed over every batch pulled until all three requests are in.
        sink = MetricsSink()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sink.total("http.server.request.duration", **ROUTE_LABELS) < 3:
            pulled = subscriber.pull(subscription=subscription, max_messages=10, timeout=5).received_messages
            for received in pulled:
                assert received.message.attributes["content_type"] == "application/x-protobuf"
                sink.publish(received.message.data)
        assert sink.payloads, "no metric batch reached the metrics topic"
        route = ROUTE_LABELS
        assert sink.total("http.server.request.duration", **route, **{"http.response.status_code": 200}) == 2
        assert sink.total("http.server.request.duration", **route, **{"http.response.status_code": 400}) == 1
        assert sink.total("ion.routing.persona.selected", persona=body["primary_persona"]) >= 1
        assert sink.total("ion.routing.key.source", source="inferred") == 1
        assert sink.total("ion.routing.confidence") == 2
        assert sink.total("ion.cache.requests", tier="l2", result="miss", endpoint="route") == 1
    finally:
        subscriber.delete_subscription(subscription=subscription)
        subscriber.close()
