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
