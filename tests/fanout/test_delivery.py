"""Exactly once per transition and channel through functions-framework, bounded retries that
honour 429 + Retry-After, and dead letters for a channel that keeps failing, on the emulators."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest

from tests.fanout.conftest import Fanout, make_transition

pytestmark = pytest.mark.emulators


def test_a_critical_transition_pages_and_posts_once_under_triple_redelivery(fanout: Fanout) -> None:
    firing = make_transition(severity="critical")
    for _ in range(3):
        assert fanout.push(firing, message_id="m-1") == 200
    assert len(fanout.slack.top_level()) == 1
    assert [e["event_action"] for e in fanout.pagerduty.events] == ["trigger"]
    [incident] = fanout.http().get("/v1/incidents").get_json()
    assert fanout.pagerduty.events[0]["dedup_key"] == incident["id"]  # the group's incident
    assert fanout.smtp.mails == []  # critical routes to PagerDuty and Slack only
    # The same transition published again under another message id is still one notification.
    assert fanout.push(firing, message_id="m-2") == 200
    assert len(fanout.slack.messages) == 1
    assert len(fanout.pagerduty.events) == 1


def test_a_high_transition_goes_to_slack_and_email_once(fanout: Fanout) -> None:
    clock = fanout.freeze()
    high = make_transition(rule="error-rate", severity="high", at=clock.now())
    for _ in range(3):
        assert fanout.push(high) == 200
    assert len(fanout.slack.top_level()) == 1  # the first of its group: at once
    clock.advance(timedelta(seconds=11))
    fanout.tick()
    fanout.tick()
    assert len(fanout.slack.top_level()) == 1
    assert len(fanout.smtp.mails) == 1
    assert fanout.pagerduty.events == []


def test_concurrent_deliveries_of_one_message_notify_once(fanout: Fanout) -> None:
    firing = make_transition(severity="critical", rule="redis-unavailable")
    statuses: list[int] = []
    barrier = threading.Barrier(3)
    fanout.app("fan_out_alerts", "cloudevent")  # built once, before the threads share it

    def deliver() -> None:
        barrier.wait()
        statuses.append(fanout.push(firing, message_id="same"))

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Pub/Sub redelivers whatever was not acked, until acked.
    redelivered = []
    for _ in range(10):
        redelivered.append(fanout.push(firing, message_id="same"))
        if redelivered[-1] == 200:
            break
    assert len(statuses) == 3
    # Each push acked (its channels done) or answered 500 to be retried (a channel claimed by
    # another). All three can answer 500 when each claimed one channel and lost the other: then
    # each sent its own channel, and a redelivery finds both done and acks.
    assert set(statuses) <= {200, 500}
    assert redelivered[-1] == 200
    assert len(fanout.slack.messages) == 1
    assert len(fanout.pagerduty.events) == 1


def test_slack_429_is_retried_after_retry_after(fanout: Fanout) -> None:
    fanout.slack.ratelimit_next = 1
    fanout.slack.retry_after = 1
    assert fanout.push(make_transition(severity="critical")) == 200
    calls = [c for c in fanout.slack.calls if c[1] == "chat.postMessage"]
    assert [c[2] for c in calls] == [429, 200]
    assert calls[1][0] - calls[0][0] >= 1.0  # waited as Slack asked
    assert len(fanout.slack.messages) == 1


def test_a_channel_that_keeps_failing_is_dead_lettered_and_the_others_still_deliver(fanout: Fanout) -> None:
    fanout.slack.fail_with = "internal_error"  # every call answers 500
    firing = make_transition(severity="critical")
    assert fanout.push(firing) == 200  # acked: nothing left to retry
    assert len(fanout.pagerduty.events) == 1
    assert fanout.slack.messages == []
    attempts = [c for c in fanout.slack.calls if c[1] == "chat.postMessage"]
    assert 1 < len(attempts) <= 4  # retried, and bounded
    dead = fanout.dead_letters(expect=1)
    assert len(dead) == 1
    assert dead[0]["attributes"]["channel"] == "slack"
    assert dead[0]["data"]["channel"] == "slack"
    assert "500" in dead[0]["data"]["reason"]
    assert dead[0]["data"]["transition_ids"] == [firing.transition_id]
    # Redelivery after the dead letter sends nothing more, anywhere.
    fanout.slack.fail_with = None
    assert fanout.push(firing) == 200
    assert fanout.slack.messages == []
    assert len(fanout.pagerduty.events) == 1


def test_an_error_that_is_not_worth_retrying_is_dead_lettered_at_once(fanout: Fanout) -> None:
    fanout.pagerduty.routing_key = "another-key"  # PagerDuty answers 400 Invalid routing key
    assert fanout.push(make_transition(severity="critical")) == 200
    assert len(fanout.pagerduty.rejected) == 1  # one attempt only
    dead = fanout.dead_letters(expect=1)
    assert dead[0]["data"]["channel"] == "pagerduty"
    assert "not retryable" in dead[0]["data"]["reason"]
    assert len(fanout.slack.messages) == 1


def test_a_delivery_dead_lettered_again_after_its_claim_was_lost_is_one_letter(
    fanout: Fanout, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The dead letter is published, then marking the claim done fails (Firestore blips): the
    claim is released and the redelivery dead-letters the delivery again. Both copies carry one
    letter key, so the dead-letter store keeps one letter (and pages once)."""
    from google.api_core.exceptions import ServiceUnavailable

    from functions.deadletters import letters, store
    from shared.clock import utcnow
    from shared.events import PubSubMessage
    from shared.idempotency import Claim

    real_settle = Claim.settle
    failures = {"left": 1}

    def settle_fails_once(claim: Claim) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise ServiceUnavailable("Firestore went away")
        real_settle(claim)

    monkeypatch.setattr(Claim, "settle", settle_fails_once)
    fanout.pagerduty.routing_key = "another-key"  # refused for good: dead-lettered at once
    firing = make_transition(severity="critical")
    assert fanout.push(firing, message_id="m-1") >= 500  # our bookkeeping failed: redelivered
    assert fanout.push(firing, message_id="m-1") == 200
    dead = fanout.dead_letters(expect=2)
    assert len(dead) == 2
    assert dead[0]["attributes"]["letter_key"] == dead[1]["attributes"]["letter_key"]
    now = utcnow()
    kept = {
        store.store(
            letters.from_message(
                PubSubMessage(
                    event_id=f"e{n}",
                    message_id=str(100 + n),
                    topic="alert-deliveries-dead-letter",
                    publish_time=now,
                    attributes=copy["attributes"],
                    data=json.dumps(copy["data"]).encode(),
                ),
                now,
            )
        ).id
        for n, copy in enumerate(dead)
    }
    assert len(kept) == 1


def test_without_credentials_notifications_go_to_the_log_and_outbox(fanout: Fanout, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from tests.fanout.conftest import reset_fanout_caches

    for var in ("SLACK_BOT_TOKEN", "PAGERDUTY_ROUTING_KEY", "SMTP_HOST"):
        monkeypatch.delenv(var)
    reset_fanout_caches()
    firing = make_transition(severity="critical")
    for _ in range(3):
        assert fanout.push(firing) == 200
    records = fanout.outbox_records()
    assert sorted(r["instead_of"] for r in records) == ["pagerduty", "slack"]
    assert all(r["notification"]["alerts"][0]["transition_id"] == firing.transition_id for r in records)
    assert fanout.slack.calls == []
    assert fanout.pagerduty.events == []


class _RecordsFailOnce:
    """Firestore as delivery.py sees it, except that the first write of each channel's delivery
    record fails as an outage would: the vendor has already accepted the message by then."""

    def __init__(self, real: object) -> None:
        self.real = real
        self.failed: set[str] = set()

    def collection(self, name: str) -> object:
        from functions.fanout.records import NOTIFICATIONS

        collection = self.real.collection(name)  # type: ignore[attr-defined]
        return _Collection(collection, self.failed) if name == NOTIFICATIONS else collection


class _Collection:
    def __init__(self, real: object, failed: set[str]) -> None:
        self.real, self.failed = real, failed

    def document(self, doc_id: str) -> object:
        return _Document(self.real.document(doc_id), self.failed)  # type: ignore[attr-defined]


class _Document:
    def __init__(self, real: object, failed: set[str]) -> None:
        self.real, self.failed = real, failed

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)

    def update(self, fields: dict[str, object]) -> object:
        from google.api_core.exceptions import ServiceUnavailable

        records = [k for k in fields if k.startswith("deliveries.") and k not in self.failed]
        if records:
            self.failed.update(records)
            raise ServiceUnavailable("injected: Firestore unavailable after the send")
        return self.real.update(fields)  # type: ignore[attr-defined]


@pytest.mark.parametrize("severity", ["critical", "high"])
def test_a_send_the_vendor_accepted_is_not_repeated_when_our_record_of_it_fails(
    fanout: Fanout, monkeypatch, severity: str
) -> None:  # type: ignore[no-untyped-def]
    from functions.fanout import delivery
    from shared.firestore import get_firestore

    failing = _RecordsFailOnce(get_firestore())
    monkeypatch.setattr(delivery, "get_firestore", lambda: failing)
    clock = fanout.freeze()
    firing = make_transition(severity=severity, at=clock.now())
    assert fanout.push(firing, message_id="m-1") >= 500  # Pub/Sub must redeliver: our bookkeeping failed
    assert failing.failed  # the record write did fail after the send
    for _ in range(3):  # redeliveries and ticks, as Pub/Sub and the scheduler would
        fanout.push(firing, message_id="m-1")
        fanout.http().post("/v1/flush")
    assert len(fanout.slack.messages) == 1
    if severity == "critical":
        assert [e["event_action"] for e in fanout.pagerduty.events] == ["trigger"]
    else:
        assert len(fanout.smtp.mails) == 1
