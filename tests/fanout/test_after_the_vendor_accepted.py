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
