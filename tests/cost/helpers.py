"""What the cost tests share: the export table they read and Pub/Sub pulls on the emulator."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from tests.pubsub_helpers import pull_acknowledged

TABLE = "billing-admin.billing.gcp_billing_export_v1_0A1B2C"
NOW = datetime(2026, 11, 19, 17, 0, tzinfo=UTC)  # the daily run: 09:00 Pacific


def subscribe(topic: str) -> str:
    """A fresh pull subscription on ``topic`` (created on the emulator if needed)."""
    import contextlib
    import time

    from google.api_core.exceptions import AlreadyExists
    from google.cloud import pubsub_v1

    project = os.environ["GOOGLE_CLOUD_PROJECT"]
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    with contextlib.suppress(AlreadyExists):
        publisher.create_topic(name=publisher.topic_path(project, topic))
    sub = subscriber.subscription_path(project, f"{topic}-cost-{time.monotonic_ns()}")
    subscriber.create_subscription(name=sub, topic=publisher.topic_path(project, topic))
    return sub


def pull_all(subscription: str, quiet_seconds: float = 3.0) -> list[Any]:
    """Every message on ``subscription`` until none arrives for ``quiet_seconds``."""
    from google.cloud import pubsub_v1

    return pull_acknowledged(pubsub_v1.SubscriberClient(), subscription, quiet_seconds=quiet_seconds)
