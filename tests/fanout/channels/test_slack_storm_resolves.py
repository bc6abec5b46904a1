"""A storm's resolve in Slack: every resolved alert's own message is marked resolved, also past
the 50 alerts a notification shows, and the notification says so."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from functions.fanout.channels.slack import SlackChannel
from tests.fanout.channels.test_slack import notification, retrier, settings_for
from tests.fanout.conftest import make_transition
from tests.fanout.slack_standin import SlackMessage, SlackStandIn

pytestmark = pytest.mark.emulators
AT = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def shows_firing(message: SlackMessage) -> bool:
    blocks = message.updates[-1]["blocks"] if message.updates else message.blocks
    return "*FIRING*" in json.dumps(blocks)


def test_every_resolved_alerts_message_is_marked_resolved_past_the_50_shown(fs, slack: SlackStandIn) -> None:  # type: ignore[no-untyped-def]
    channel = SlackChannel(settings_for(slack))
    services = [f"svc-{i:03d}" for i in range(100)]
    for first in (0, 50):  # two notifications of 50 firing alerts: ten messages
        firing = [make_transition(service=s, at=AT) for s in services[first : first + 50]]
        channel.send(notification(*firing), retrier())
    parents = slack.top_level()
    assert len(parents) == 10
    assert all(shows_firing(m) for m in parents)

    resolved = [make_transition(service=s, state="resolved", at=AT + timedelta(minutes=5)) for s in services]
    receipt = channel.send(notification(*resolved), retrier())

    assert not any(shows_firing(m) for m in parents)  # each of the ten says resolved
    assert sorted(receipt["updated"]) == sorted(m.ts for m in parents)
    replied = {m.thread_ts for m in slack.messages if m.thread_ts}
    assert replied == {m.ts for m in parents[:5]}  # replies for the 50 shown only
    assert len(slack.top_level()) == 10  # nothing posted anew
    notes = [m.all_text() for m in slack.messages if "more not shown" in m.all_text()]
    assert len(notes) == 1
    assert (
        "and 50 more not shown (50 of them resolved: each one's own message is marked resolved)" in notes[0]
    )


def test_resolves_past_the_50_without_a_message_are_only_counted(fs, slack: SlackStandIn) -> None:  # type: ignore[no-untyped-def]
    channel = SlackChannel(settings_for(slack))
    firing = [make_transition(service=f"svc-{i:03d}", at=AT) for i in range(60)]
    channel.send(notification(*firing), retrier())  # 50 shown, 10 never had a message
    assert len(slack.top_level()) == 5
    resolved = [
        a.model_copy(update={"state": "resolved", "transition_id": a.transition_id + ":r"}) for a in firing
    ]
    sent_before = len(slack.messages)
    channel.send(notification(*resolved), retrier())
    assert not any(shows_firing(m) for m in slack.top_level())
    [note] = [m.all_text() for m in slack.messages[sent_before:] if "more not shown" in m.all_text()]
    assert "and 10 more not shown" in note
    assert "of them resolved" not in note  # their firing was never shown: nothing to mark
