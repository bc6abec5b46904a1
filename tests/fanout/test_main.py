"""The fan-out capability served as deployed locally (devtools.serve: functions-framework under
gunicorn, over real HTTP): two instances receiving the same push at once notify once."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.fanout.conftest import PUSH_PATH, Fanout, make_transition
from tests.pubsub_helpers import push_envelope

pytestmark = pytest.mark.emulators


def test_two_instances_and_triple_redelivery_send_one_message_per_channel(
    fanout: Fanout, serve_capability
) -> None:  # type: ignore[no-untyped-def]
    first = serve_capability("fanout", fanout.env)
    second = serve_capability("fanout", fanout.env)
    assert requests.get(f"{first.url}/health", timeout=30).json()["checks"]["firestore"]["ok"] is True
    transition = make_transition(severity="critical", rule=f"served-{uuid.uuid4().hex[:6]}")
    envelope = push_envelope(
        transition.model_dump(mode="json"), message_id="77", publish_time=datetime.now(UTC)
    )
    statuses: list[int] = []
    barrier = threading.Barrier(3)

    def push(url: str) -> None:
        barrier.wait()
        statuses.append(requests.post(url + PUSH_PATH, json=envelope, timeout=30).status_code)

    threads = [threading.Thread(target=push, args=(u,)) for u in (first.url, second.url, first.url)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Pub/Sub redelivers whatever was not acked (a 5xx), until it is.
    for _ in range(10):
        if all(s == 200 for s in statuses):
            break
        statuses = [requests.post(first.url + PUSH_PATH, json=envelope, timeout=30).status_code]
    assert statuses[-1] == 200
    for _ in range(3):
        assert requests.post(second.url + PUSH_PATH, json=envelope, timeout=30).status_code == 200
    assert len(fanout.slack.messages) == 1
    assert [e["event_action"] for e in fanout.pagerduty.events] == ["trigger"]
    # The silence API is served by the same capability.
    assert requests.get(f"{second.url}/v1/silences", timeout=5).json() == []


def test_a_transition_published_hours_ago_is_delivered_marked_late(fanout: Fanout) -> None:
    transition = make_transition(severity="critical", rule=f"late-{uuid.uuid4().hex[:6]}")
    envelope = push_envelope(
        transition.model_dump(mode="json"),
        message_id=uuid.uuid4().hex,
        publish_time=datetime.now(UTC) - timedelta(hours=3),
    )
    status = fanout.app("fan_out_alerts", "cloudevent").post(PUSH_PATH, json=envelope).status_code
    assert status == 200
    assert len(fanout.slack.messages) == 1
    assert "[LATE 180 min]" in fanout.slack.messages[0].all_text()
    assert [e["event_action"] for e in fanout.pagerduty.events] == ["trigger"]
    assert fanout.pagerduty.events[0]["payload"]["summary"].startswith("[LATE 180 min]")
