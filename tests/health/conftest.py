"""The health capability under functions-framework in-process (its real WSGI app), on the emulators."""

from __future__ import annotations

from typing import Any

import pytest

from shared.topology import ROOT
from tests.pubsub_helpers import pull_acknowledged


@pytest.fixture
def health_client(fs):  # type: ignore[no-untyped-def]
    import functions_framework

    from functions.health.settings import get_health_settings

    get_health_settings.cache_clear()
    app = functions_framework.create_app("score_health", str(ROOT / "main.py"), "http")
    yield app.test_client()
    get_health_settings.cache_clear()


def make_customer(client: Any, customer_id: str = "acme", **extra: Any) -> dict[str, Any]:
    body = {"id": customer_id, "name": f"{customer_id} Ltd", "plan": "pro", **extra}
    response = client.post("/v1/customers", json=body)
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


@pytest.fixture
def alerts_inbox(emulators):  # type: ignore[no-untyped-def]
    """The alerts topic on the Pub/Sub emulator with a pull subscription; yields a function that
    drains what was published since."""
    import contextlib
    import json
    import time

    from google.api_core.exceptions import AlreadyExists
    from google.cloud import pubsub_v1

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = publisher.topic_path(emulators.project, "alerts")
    with contextlib.suppress(AlreadyExists):
        publisher.create_topic(name=topic)
    subscription = subscriber.subscription_path(emulators.project, f"health-{time.monotonic_ns()}")
    subscriber.create_subscription(name=subscription, topic=topic)

    def drain(settle: float = 1.0) -> list[dict[str, Any]]:
        return [json.loads(m.data) for m in pull_acknowledged(subscriber, subscription, quiet_seconds=settle)]

    yield drain
    subscriber.delete_subscription(subscription=subscription)
