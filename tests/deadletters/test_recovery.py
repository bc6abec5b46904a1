"""The alert pipeline's dead letters recover by themselves, on the emulators through the entry
points (store_dead_letters pushes, the scheduler's POST /v1/recover), with a frozen clock: no page
per letter, re-driven oldest first and bounded per run, backoff when a re-drive failed again, one
summary of what was delayed once nothing waits, and a page of its own for what cannot recover."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import functions_framework
import pytest

from devtools.pubsub_setup import create_topics
from shared.clock import FrozenClock, format_rfc3339, set_clock
from shared.topology import ROOT, load_topology
from tests.conftest import PROJECT
from tests.fanout.conftest import make_transition
from tests.pubsub_helpers import pull_acknowledged, push_envelope

pytestmark = pytest.mark.emulators
START = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
JOB = {"X-CloudScheduler-JobName": "deadletters-recover"}


class Rig:
    def __init__(self, clock: FrozenClock) -> None:
        source = str(ROOT / "main.py")
        self.clock = clock
        self.store_app = functions_framework.create_app("store_dead_letters", source, "http").test_client()
        self.api = functions_framework.create_app("manage_dead_letters", source, "http").test_client()
        self.watches: dict[str, str] = {}

    def dead_letter(self, topic: str, data: bytes, **attributes: str) -> str:
        """Push a message as Pub/Sub pushes a dead letter of ``topic`` to the store."""
        message_id = uuid.uuid4().hex[:12]
        envelope = push_envelope(
            data, message_id=message_id, publish_time=self.clock.now(), attributes=attributes
        )
        response = self.store_app.post(f"/projects/{PROJECT}/topics/{topic}-dead-letter", json=envelope)
        assert response.status_code == 200, response.get_data(as_text=True)
        return message_id

    def recover(self) -> dict[str, Any]:
        response = self.api.post("/v1/recover", headers=JOB)
        assert response.status_code == 200, response.get_data(as_text=True)
        return dict(response.get_json())

    def letter(self, letter_id: str) -> dict[str, Any]:
        return dict(self.api.get(f"/v1/dead-letters/{letter_id}").get_json())

    def published(self, topic: str, quiet: float = 1.5) -> list[Any]:
        from google.cloud import pubsub_v1

        subscriber = pubsub_v1.SubscriberClient()
        try:
            return pull_acknowledged(subscriber, self.watches[topic], quiet_seconds=quiet)
        finally:
            subscriber.close()


@pytest.fixture
def rig(fs, emulators, monkeypatch) -> Iterator[Rig]:  # type: ignore[no-untyped-def]
    from google.cloud import pubsub_v1

    from functions.deadletters.settings import get_dead_letter_settings

    monkeypatch.setenv("ION_DEAD_LETTERS_RECOVER_BATCH", "2")
    monkeypatch.setenv("ION_DEAD_LETTERS_SUMMARY_QUIET_SECONDS", "60")
    get_dead_letter_settings.cache_clear()
    clock = FrozenClock(START)
    set_clock(clock)
    create_topics(load_topology(), PROJECT, emulators.pubsub_host)
    rig = Rig(clock)
    subscriber = pubsub_v1.SubscriberClient()
    for topic in ("alerts", "alert-deliveries"):
        name = subscriber.subscription_path(PROJECT, f"recovery-{topic}-{uuid.uuid4().hex[:8]}")
        subscriber.create_subscription(name=name, topic=f"projects/{PROJECT}/topics/{topic}")
        rig.watches[topic] = name
    yield rig
    for name in rig.watches.values():
        with contextlib.suppress(Exception):
            subscriber.delete_subscription(subscription=name)
    subscriber.close()
    get_dead_letter_settings.cache_clear()


def alert(rule: str, minutes_ago: int, clock: FrozenClock) -> bytes:
    return (
        make_transition(rule=rule, at=clock.now() - timedelta(minutes=minutes_ago)).model_dump_json().encode()
    )


def given_up(rig: Rig, rule: str, minutes_ago: int, **attributes: str) -> str:
    """A transition Pub/Sub gave up on (fan-out failing at each of its attempts)."""
    first = format_rfc3339(rig.clock.now() - timedelta(minutes=minutes_ago))
    return rig.dead_letter(
        "alerts",
        alert(rule, minutes_ago, rig.clock),
        CloudPubSubDeadLetterSourceDeliveryCount="10",
        CloudPubSubDeadLetterSourceTopicPublishTime=first,
        **attributes,
    )


def test_the_pipelines_letters_are_redriven_oldest_first_in_bounded_runs_with_one_summary(rig: Rig) -> None:
    middle = given_up(rig, "p95-latency", minutes_ago=20)
    newest = given_up(rig, "error-rate", minutes_ago=10)
    oldest = given_up(rig, "redis-unavailable", minutes_ago=30)
    assert rig.published("alerts") == []  # no page per letter
    assert rig.letter(oldest)["automatic"] is True

    first_run = rig.recover()
    assert first_run["redriven"] == [oldest, middle]  # the batch (2 here), oldest first
    assert first_run["summary"] is None  # one still waits: the outage is not over
    redriven = rig.published("alerts")
    assert [json.loads(m.data)["rule"] for m in redriven] == ["redis-unavailable", "p95-latency"]
    again = redriven[0].attributes
    assert again["redriven_from"] == oldest
    assert again["redrives"] == "1"
    assert again["first_published_at"] == format_rfc3339(START - timedelta(minutes=30))
    assert not any(key.startswith("CloudPubSubDeadLetter") for key in again)

    rig.clock.advance(timedelta(seconds=30))
    second_run = rig.recover()
    assert second_run["redriven"] == [newest]
    assert second_run["summary"] is None  # re-driven 0 s ago: waiting for quiet (60 s here)
    assert [json.loads(m.data)["rule"] for m in rig.published("alerts")] == ["error-rate"]

    rig.clock.advance(timedelta(seconds=61))
    summary_run = rig.recover()
    assert summary_run["redriven"] == []
    assert summary_run["summary"] is not None
    [notice] = [json.loads(m.data) for m in rig.published("alerts")]
    assert (notice["rule"], notice["severity"]) == ("deadletters-recovered", "high")
    assert notice["annotations"]["letters"] == "3"
    assert notice["annotations"]["max_delay_seconds"] == str(30 * 60)  # re-driven at once, 30 min late
    text = notice["annotations"]["summary"]
    assert "3 dead-lettered messages (alerts 3)" in text
    assert (
        text.index("redis-unavailable firing") < text.index("p95-latency firing") < text.index("error-rate")
    )
    assert "delayed 10 min to 30 min" in text

    rig.clock.advance(timedelta(minutes=5))
    assert rig.recover() == {"redriven": [], "skipped": [], "expired": [], "summary": None}  # told once
    assert rig.published("alerts") == []
    assert [rig.letter(i)["state"] for i in (oldest, middle, newest)] == ["redriven"] * 3


def test_a_message_whose_redrive_failed_again_waits_longer_then_pages_on_its_own(rig: Rig) -> None:
    # Its first re-drive failed too (fan-out still down): a notice that re-driving is failing,
    # then a re-drive after the backoff (60 s), not at the next run.
    failing = given_up(rig, "p95-latency", minutes_ago=5, redrives="1", redriven_from="earlier")
    [retrying] = [json.loads(m.data) for m in rig.published("alerts")]
    assert (retrying["rule"], retrying["severity"]) == ("deadletters-redrive-failing", "critical")
    given_up(rig, "p95-latency", minutes_ago=5, redrives="2")
    [same] = [json.loads(m.data) for m in rig.published("alerts")]
    assert same["transition_id"] == retrying["transition_id"]  # the same hour: fan-out tells it once
    rig.clock.advance(timedelta(seconds=30))
    assert rig.recover()["redriven"] == []
    rig.clock.advance(timedelta(seconds=31))
    assert rig.recover()["redriven"] == [failing]
    assert rig.published("alerts")[0].attributes["redrives"] == "2"

    # After recover_max_redrives (5) it is no longer the pipeline's to recover: it pages alone.
    gave_up = given_up(rig, "error-rate", minutes_ago=40, redrives="5")
    [page] = [json.loads(m.data) for m in rig.published("alerts")]
    assert (page["rule"], page["severity"]) == ("deadletters-dead-letter", "critical")
    assert page["annotations"]["dead_letter_id"] == gave_up
    assert "still failing after 5 automatic re-drives" in page["annotations"]["summary"]
    assert rig.letter(gave_up)["automatic"] is False


def test_what_no_retry_can_help_pages_at_once_and_is_never_redriven_by_itself(rig: Rig) -> None:
    unreadable = rig.dead_letter(
        "alerts", b'{"severity": "urgent"}', reason="body does not match", recoverable="false"
    )
    refused = rig.dead_letter(
        "alert-deliveries",
        json.dumps({"channel": "pagerduty", "reason": "PagerDuty answered 400 (not retryable)"}).encode(),
        channel="pagerduty",
        recoverable="false",
    )
    metrics = rig.dead_letter("metrics", b"{}", CloudPubSubDeadLetterSourceDeliveryCount="10")
    notices = [json.loads(m.data) for m in rig.published("alerts")]
    assert sorted(n["annotations"]["dead_letter_id"] for n in notices) == sorted(
        [unreadable, refused, metrics]
    )
    assert {n["labels"]["topic"]: n["severity"] for n in notices} == {
        "alerts": "critical",
        "alert-deliveries": "critical",
        "metrics": "high",
    }
    rig.clock.advance(timedelta(hours=1))
    assert rig.recover()["redriven"] == []
    assert rig.published("alerts") == []
    assert rig.published("alert-deliveries") == []


def test_a_delivery_letter_is_redriven_to_alert_deliveries_numbered_as_its_next_redrive(rig: Rig) -> None:
    body = {"channel": "pagerduty", "notification_id": "critical-abc-n1", "reason": "PagerDuty 503"}
    letter = rig.dead_letter(
        "alert-deliveries",
        json.dumps(body).encode(),
        channel="pagerduty",
        notification_id="critical-abc-n1",
        redrives="0",
        first_published_at=format_rfc3339(START - timedelta(minutes=3)),
    )
    assert rig.published("alerts") == []
    assert rig.recover()["redriven"] == [letter]
    [again] = rig.published("alert-deliveries")
    assert again.attributes["redrives"] == "1"
    assert again.attributes["notification_id"] == "critical-abc-n1"
    assert again.attributes["first_published_at"] == format_rfc3339(START - timedelta(minutes=3))


def test_a_letter_with_nothing_to_redrive_it_to_pages_instead_of_waiting_for_ever(
    rig: Rig, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from functions.deadletters.settings import get_dead_letter_settings

    monkeypatch.setenv("ION_DEAD_LETTERS_RECOVER_TOPICS", "alerts,retired")  # a subscriber since retired
    get_dead_letter_settings.cache_clear()
    orphan = rig.dead_letter("retired", b"{}", CloudPubSubDeadLetterSourceDeliveryCount="10")
    assert rig.published("alerts") == []
    assert rig.recover()["skipped"] == [orphan]
    [page] = [json.loads(m.data) for m in rig.published("alerts")]
    assert page["annotations"]["dead_letter_id"] == orphan
    assert rig.recover() == {"redriven": [], "skipped": [], "expired": [], "summary": None}


def test_a_letter_that_cannot_be_redriven_still_pages_when_its_first_page_failed_to_publish(
    rig: Rig, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Pub/Sub refuses the page of a letter with nothing to re-drive it to (the run fails, 503):
    the next run pages. It must not be marked as handled before its page went out."""
    from google.api_core.exceptions import ServiceUnavailable

    from functions.deadletters import store
    from functions.deadletters.settings import get_dead_letter_settings

    monkeypatch.setenv("ION_DEAD_LETTERS_RECOVER_TOPICS", "alerts,retired")
    get_dead_letter_settings.cache_clear()
    orphan = rig.dead_letter("retired", b"{}", CloudPubSubDeadLetterSourceDeliveryCount="10")
    real_publish = store.publish_notice

    def pubsub_down(_notice: object) -> None:
        raise ServiceUnavailable("Pub/Sub is unavailable")

    monkeypatch.setattr(store, "publish_notice", pubsub_down)
    assert rig.api.post("/v1/recover", headers=JOB).status_code == 503
    monkeypatch.setattr(store, "publish_notice", real_publish)
    assert rig.recover()["skipped"] == [orphan]
    [page] = [json.loads(m.data) for m in rig.published("alerts")]
    assert page["annotations"]["dead_letter_id"] == orphan
    assert rig.letter(orphan)["alerted"] is True


def test_a_letter_whose_data_expired_first_pages_and_does_not_stop_the_later_ones(rig: Rig) -> None:
    """Firestore's TTL deletes a large letter's parts and the letter apart (within a day): the
    recovery run failed on it every minute and, oldest first, never reached the letters after it."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    from functions.deadletters.store import PARTS
    from shared.firestore import get_firestore

    first = format_rfc3339(rig.clock.now() - timedelta(minutes=30))
    large = rig.dead_letter(
        "alerts",
        b"x" * 600_000,  # over a letter's inline data: kept in parts
        CloudPubSubDeadLetterSourceDeliveryCount="10",
        CloudPubSubDeadLetterSourceTopicPublishTime=first,
    )
    later = given_up(rig, "error-rate", minutes_ago=10)
    parts = list(get_firestore().collection(PARTS).where(filter=FieldFilter("letter", "==", large)).stream())
    assert parts
    for part in parts:
        part.reference.delete()
    run = rig.recover()
    assert run["expired"] == [large]
    assert run["redriven"] == [later]
    pages = [json.loads(m.data) for m in rig.published("alerts")]
    assert any(p.get("annotations", {}).get("dead_letter_id") == large for p in pages)
    assert rig.letter(later)["state"] == "redriven"
    assert rig.recover()["expired"] == []  # out of the queue: paged once
