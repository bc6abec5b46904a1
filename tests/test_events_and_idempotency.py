"""Pub/Sub CloudEvents decoded in one place, and exactly-once effect by event id, on the emulator."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import functions_framework
import pytest
from cloudevents.http import CloudEvent
from pydantic import BaseModel

from shared.clock import FrozenClock, set_clock
from shared.events import decode_pubsub, read_pubsub, topic_from_source
from shared.idempotency import InFlight, once
from tests.conftest import fixture_source
from tests.pubsub_helpers import push_envelope

PUSH_PATH = "/projects/ion-ops-test/topics/greetings"


class Greeting(BaseModel):
    name: str


def cloud_event(envelope: dict, source: str = "//pubsub.googleapis.com/projects/p/topics/greetings"):  # type: ignore[no-untyped-def]
    return CloudEvent(
        {
            "id": envelope["message"]["messageId"],
            "source": source,
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
        },
        envelope,
    )


def test_topic_is_read_from_the_source() -> None:
    assert topic_from_source("//pubsub.googleapis.com/projects/p/topics/alerts") == "alerts"
    assert topic_from_source("/projects/p/topics/metrics") == "metrics"
    assert topic_from_source("//storage.googleapis.com/buckets/b") is None


def test_decode_gives_a_typed_delivery() -> None:
    delivery = decode_pubsub(cloud_event(push_envelope({"name": "ada"}, attributes={"k": "v"})), Greeting)
    assert delivery is not None
    assert delivery.body == Greeting(name="ada")
    assert delivery.topic == "greetings"
    assert delivery.attributes == {"k": "v"}


def test_a_newer_producers_fields_are_ignored_and_a_producer_stays_strict() -> None:
    from shared.messages import AlertTransition

    now = datetime.now(UTC)
    transition = AlertTransition(
        transition_id="t1",
        fingerprint="f1",
        rule="r",
        kind="threshold",
        state="firing",
        previous_state="pending",
        severity="high",
        metric="m",
        starts_at=now,
        evaluated_at=now,
    )
    # A field added keeps the schema version: an older consumer reads the rest.
    newer = {**transition.model_dump(mode="json"), "escalation_policy": "follow-the-sun"}
    delivery = decode_pubsub(cloud_event(push_envelope(newer)), AlertTransition)
    assert delivery is not None
    assert delivery.body == transition
    with pytest.raises(ValueError, match="escalation_policy"):
        AlertTransition(**{**transition.model_dump(), "escalation_policy": "x"})
    missing = {k: v for k, v in newer.items() if k != "severity"}
    assert decode_pubsub(cloud_event(push_envelope(missing)), AlertTransition) is None
    # A field changed meaning (a newer schema version): never read as the version this code knows
    # (with ``dead_letter`` it goes to the dead-letter topic, recoverable: test_poison_messages).
    changed = {**transition.model_dump(mode="json"), "schema_version": 2}
    assert decode_pubsub(cloud_event(push_envelope(changed)), AlertTransition) is None


def test_a_binary_body_is_read_raw_for_its_own_decoder() -> None:
    message = read_pubsub(cloud_event(push_envelope(b"\x0a\x00protobuf", attributes={"content_type": "x"})))
    assert message is not None
    assert message.data == b"\x0a\x00protobuf"
    assert message.attributes == {"content_type": "x"}
    broken = push_envelope(b"x")
    broken["message"]["data"] = "not base64!"
    assert read_pubsub(cloud_event(broken)) is None


@pytest.mark.parametrize("body", [b"not json", {"nom": "ada"}, {"name": 5}])
def test_a_body_that_can_never_be_processed_is_dropped(body) -> None:  # type: ignore[no-untyped-def]
    assert decode_pubsub(cloud_event(push_envelope(body)), Greeting) is None


def test_an_event_older_than_the_limit_is_dropped() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    set_clock(FrozenClock(now))
    old = push_envelope({"name": "ada"}, publish_time=now - timedelta(hours=2))
    fresh = push_envelope({"name": "ada"}, publish_time=now - timedelta(minutes=5))
    assert decode_pubsub(cloud_event(old), Greeting) is None
    assert decode_pubsub(cloud_event(fresh), Greeting) is not None


@pytest.mark.emulators
def test_redelivered_push_is_processed_once(fs) -> None:  # type: ignore[no-untyped-def]
    app = functions_framework.create_app(
        "count_greetings", fixture_source("sample_functions.py"), "cloudevent"
    )
    client = app.test_client()
    envelope = push_envelope({"name": "ada"}, message_id="42")
    for _ in range(3):
        assert client.post(PUSH_PATH, json=envelope).status_code == 200
    doc = fs.collection("greetings").document("ada").get().to_dict()
    assert doc == {"count": 1, "topic": "greetings"}
    # A different message is a different event.
    client.post(PUSH_PATH, json=push_envelope({"name": "ada"}, message_id="43"))
    assert fs.collection("greetings").document("ada").get().to_dict()["count"] == 2


@pytest.mark.emulators
def test_a_failed_attempt_releases_its_claim_so_the_retry_runs(fs) -> None:  # type: ignore[no-untyped-def]
    app = functions_framework.create_app(
        "count_greetings", fixture_source("sample_functions.py"), "cloudevent"
    )
    client = app.test_client()
    envelope = push_envelope({"name": "fail-once"}, message_id="7")
    failed = client.post(PUSH_PATH, json=envelope)
    assert failed.status_code == 500  # raise to retry
    assert "transient failure" not in failed.text  # logged, never answered
    assert client.post(PUSH_PATH, json=envelope).status_code == 200
    assert client.post(PUSH_PATH, json=envelope).status_code == 200
    assert fs.collection("greetings").document("fail-once").get().to_dict()["count"] == 1


@pytest.mark.emulators
def test_concurrent_deliveries_run_the_work_once(fs) -> None:  # type: ignore[no-untyped-def]
    runs: list[int] = []
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def deliver() -> None:
        barrier.wait()
        try:
            with once("race", "event-1") as first:
                if first:
                    runs.append(1)
                outcomes.append("first" if first else "duplicate")
        except InFlight:
            outcomes.append("in-flight")
        except Exception as exc:  # noqa: BLE001 - contention aborts count as a retry
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(runs) == 1
    assert outcomes.count("first") == 1
    with once("race", "event-1") as first:
        assert not first


@pytest.mark.emulators
def test_an_expired_lease_is_taken_over(fs) -> None:  # type: ignore[no-untyped-def]
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    set_clock(clock)
    from shared.idempotency import COLLECTION, Marker, marker_id

    # An instance that died mid-way left a processing marker behind.
    fs.collection(COLLECTION).document(marker_id("crash", "e")).set(
        Marker(
            scope="crash",
            key="e",
            state="processing",
            lease_until=clock.now() + timedelta(minutes=5),
            expire_at=clock.now() + timedelta(days=7),
        ).model_dump()
    )
    with pytest.raises(InFlight), once("crash", "e"):
        pass
    clock.advance(timedelta(minutes=6))
    with once("crash", "e") as first:
        assert first
