"""Pub/Sub push envelopes as the emulator and Pub/Sub send them to a push endpoint."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any


def push_envelope(
    body: Any, *, message_id: str = "1", publish_time: datetime | None = None, attributes: dict | None = None
) -> dict[str, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {
        "message": {
            "data": base64.b64encode(data).decode(),
            "messageId": message_id,
            "publishTime": (publish_time or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
            "attributes": attributes or {},
        },
        "subscription": "projects/ion-ops-test/subscriptions/test",
    }


def pull_acknowledged(
    subscriber: Any, subscription: str, *, quiet_seconds: float, want: int | None = None
) -> list[Any]:
    """Messages pulled from ``subscription`` and acknowledged, until ``want`` of them have arrived
    or none has for ``quiet_seconds``."""
    import time

    messages: list[Any] = []
    quiet_until = time.monotonic() + quiet_seconds
    while time.monotonic() < quiet_until and (want is None or len(messages) < want):
        response = subscriber.pull(request={"subscription": subscription, "max_messages": 100}, timeout=5)
        if response.received_messages:
            subscriber.acknowledge(
                request={
                    "subscription": subscription,
                    "ack_ids": [m.ack_id for m in response.received_messages],
                }
            )
            messages += [m.message for m in response.received_messages]
            quiet_until = time.monotonic() + quiet_seconds
    return messages
