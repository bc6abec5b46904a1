"""A send the vendor accepted is never repeated, whatever of ours fails after it: the Slack
channel's own Firestore writes (the thread and message records after chat.postMessage, the message
record after chat.update) fail once on the emulator, Pub/Sub or the flush tick retries, and each
stand-in holds exactly one of everything."""

from __future__ import annotations

from datetime import timedelta

import pytest

from functions.fanout.records import SLACK_MESSAGES, SLACK_THREADS
from tests.fanout.conftest import Fanout, make_transition
from tests.firestore_faults import failing_writes

pytestmark = pytest.mark.emulators


def test_a_post_is_not_repeated_when_its_thread_record_fails(fanout: Fanout) -> None:
    clock = fanout.freeze()
    firing = make_transition(severity="critical", at=clock.now())
    with failing_writes(SLACK_THREADS) as fault:
        assert fanout.push(firing, message_id="m-1") >= 500  # not acked: Pub/Sub redelivers
    assert fault.failed  # the thread record failed after Slack had accepted the post
    assert len(fanout.slack.messages) == 1
    for _ in range(3):  # the redelivery, then more of them and the tick, as Pub/Sub and cron would
        assert fanout.push(firing, message_id="m-1") == 200
        fanout.tick()
    assert len(fanout.slack.messages) == 1
    post = fanout.slack.messages[0]
    assert [e["event_action"] for e in fanout.pagerduty.events] == ["trigger"]
    # The retry wrote the thread record: the resolve threads under the one post and updates it.
    clock.advance(timedelta(minutes=2))
    resolved = make_transition(severity="critical", state="resolved", at=clock.now())
    assert fanout.push(resolved) == 200
    fanout.tick()
    assert len(fanout.slack.top_level()) == 1
    assert len(fanout.slack.replies(post.ts)) == 1
    assert len(post.updates) == 1


def test_a_resolve_is_not_repeated_when_the_message_record_fails_after_chat_update(fanout: Fanout) -> None:
    clock = fanout.freeze()
    firing = make_transition(severity="critical", at=clock.now())
    assert fanout.push(firing) == 200
    [post] = fanout.slack.messages
    clock.advance(timedelta(minutes=2))
    resolved = make_transition(severity="critical", state="resolved", at=clock.now())
    with failing_writes(SLACK_MESSAGES) as fault:
        assert fanout.push(resolved, message_id="r-1") >= 500
    assert fault.failed  # after the thread reply and chat.update were accepted
    assert len(fanout.slack.replies(post.ts)) == 1
    assert len(post.updates) == 1
    for _ in range(3):
        assert fanout.push(resolved, message_id="r-1") == 200
        fanout.tick()
    clock.advance(timedelta(minutes=3))  # past the re-drive age: the tick re-drives what is left
    fanout.tick()
    assert len(fanout.slack.replies(post.ts)) == 1
    assert len(post.updates) == 1
    assert len(fanout.slack.top_level()) == 1
    assert [e["event_action"] for e in fanout.pagerduty.events] == ["trigger", "resolve"]


def test_a_redriven_delivery_sends_only_what_the_vendor_did_not_accept_and_only_once(
    fanout: Fanout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delivery of two PagerDuty events, one accepted: an incident the previous version opened,
    whose alerts go per alert to its end (a group's incident of this version is one event)."""
    from functions.fanout import incidents

    clock = fanout.freeze()
    first = make_transition(severity="critical", endpoint="/v2/route", at=clock.now())
    with monkeypatch.context() as previous:
        previous.setattr(incidents, "opened_key", lambda *_args, **_kwargs: None)
        assert fanout.push(first) == 200  # the group's first notification, at once
    clock.advance(timedelta(seconds=1))
    accepted = make_transition(severity="critical", endpoint="/v2/bulk", at=clock.now())
    refused = make_transition(severity="critical", endpoint="/v2/recommend", at=clock.now())
    assert fanout.push(accepted) == 200
    assert fanout.push(refused) == 200
    fanout.pagerduty.fail_for = {refused.fingerprint: 503}  # an outage for this alert's incident only
    clock.advance(timedelta(minutes=1))
    fanout.tick()  # group_interval: both in one notification; PagerDuty takes one of two events
    [dead] = fanout.dead_letters(expect=1)
    assert dead["data"]["channel"] == "pagerduty"
    assert dead["attributes"]["redrives"] == "0"
    assert sorted(dead["data"]["transition_ids"]) == sorted([accepted.transition_id, refused.transition_id])
    assert [e["dedup_key"] for e in fanout.pagerduty.events] == [first.fingerprint, accepted.fingerprint]

    fanout.pagerduty.fail_for = {}
    assert fanout.redrive(dead, redrives=1) == 200
    assert fanout.redrive(dead, redrives=1) == 200  # Pub/Sub delivering the same re-drive again
    assert [e["dedup_key"] for e in fanout.pagerduty.events] == [
        first.fingerprint,
        accepted.fingerprint,
        refused.fingerprint,
    ]
    assert len(fanout.slack.top_level()) == 2  # Slack had both notifications; untouched by it


def test_a_redriven_trigger_of_an_alert_resolved_since_is_not_sent(fanout: Fanout) -> None:
    """PagerDuty took the resolve after the outage: the late trigger would open an incident that
    nothing would close."""
    clock = fanout.freeze()
    fanout.pagerduty.fail_status = 503
    firing = make_transition(severity="critical", at=clock.now())
    assert fanout.push(firing) == 200
    [dead] = fanout.dead_letters(expect=1)
    fanout.pagerduty.fail_status = None
    clock.advance(timedelta(minutes=2))
    assert fanout.push(make_transition(severity="critical", state="resolved", at=clock.now())) == 200
    assert [e["event_action"] for e in fanout.pagerduty.events] == ["resolve"]
    assert fanout.redrive(dead, redrives=1) == 200
    assert [e["event_action"] for e in fanout.pagerduty.events] == ["resolve"]
