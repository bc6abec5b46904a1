"""The Slack channel through the real slack-sdk against the Slack stand-in."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pytest

from functions.fanout.channels.base import DeliveryFailed, Retrier
from functions.fanout.channels.slack import SlackChannel
from functions.fanout.models import Notification
from functions.fanout.settings import FanoutSettings
from tests.fanout.conftest import make_transition
from tests.fanout.slack_standin import SlackStandIn

pytestmark = pytest.mark.emulators


def settings_for(slack: SlackStandIn, **extra: str) -> FanoutSettings:
    env = {
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_CHANNEL": next(iter(slack.channels)),
        "SLACK_API_BASE_URL": slack.base_url,
        "ION_FANOUT_PUBLIC_URL": "http://fanout.local",
        **extra,
    }
    os.environ.update(env)
    return FanoutSettings()


def retrier() -> Retrier:
    return Retrier(max_attempts=3, budget_seconds=5, base_delay=0.01, max_delay=0.05)


def notification(*alerts, kind="notify", mention="<!subteam^S1|@oncall>") -> Notification:  # type: ignore[no-untyped-def]
    return Notification(
        notification_id=f"n-{alerts[0].transition_id}",
        kind=kind,
        group_id="g1",
        group_labels={"rule": alerts[0].rule, "service": "persona-router", "region": "us-central1"},
        severity=alerts[0].severity,
        mention=mention,
        alerts=list(alerts),
        created_at=datetime.now(UTC),
    )


def test_firing_message_has_what_the_responder_needs(fs, slack: SlackStandIn) -> None:  # type: ignore[no-untyped-def]
    channel = SlackChannel(settings_for(slack))
    alert = make_transition(severity="critical", value=0.31, threshold=0.2)
    receipt = channel.send(notification(alert), retrier())
    [message] = slack.messages
    assert receipt["posted"] == [message.ts]
    assert message.thread_ts is None
    text = message.all_text()
    assert message.blocks[0]["type"] == "header"
    assert "CRITICAL" in message.blocks[0]["text"]["text"]
    assert "<!subteam^S1|@oncall>" in text  # the route's mention
    assert "p95-latency on persona-router in us-central1" in text  # summary
    assert "0.31 (&gt; threshold 0.2)" in text  # value against threshold (">" escaped for mrkdwn)
    assert "1. Check the error dashboard" in text  # runbook steps
    buttons = next(b for b in message.blocks if b["type"] == "actions")["elements"]
    assert {b["url"] for b in buttons} == {
        "http://dashboards.local/d/overview",
        "http://fanout.local/v1/silences",
    }


def test_resolve_goes_in_the_thread_and_updates_the_original(fs, slack: SlackStandIn) -> None:  # type: ignore[no-untyped-def]
    channel = SlackChannel(settings_for(slack))
    firing = make_transition(severity="critical")
    channel.send(notification(firing), retrier())
    resolved = make_transition(severity="critical", state="resolved")
    receipt = channel.send(notification(resolved, mention=None), retrier())
    parent, reply = slack.messages
    assert reply.thread_ts == parent.ts
    assert "RESOLVED" in reply.all_text()
    assert receipt["updated"] == [parent.ts]
    [update] = parent.updates
    assert ":white_check_mark:" in update["blocks"][0]["text"]["text"]
    assert "RESOLVED" in json.dumps(update)


def test_repeat_is_broadcast_from_the_thread_with_the_mention(fs, slack: SlackStandIn) -> None:  # type: ignore[no-untyped-def]
    channel = SlackChannel(settings_for(slack))
    firing = make_transition(severity="critical")
    channel.send(notification(firing), retrier())
    channel.send(notification(firing, kind="repeat"), retrier())
    parent, repeat = slack.messages
    assert repeat.thread_ts == parent.ts
    assert repeat.reply_broadcast is True
    assert "STILL FIRING" in repeat.all_text()
    assert "@oncall" in repeat.all_text()


def test_a_wrong_token_is_not_retried(fs, slack: SlackStandIn) -> None:  # type: ignore[no-untyped-def]
    channel = SlackChannel(settings_for(slack, SLACK_BOT_TOKEN="xoxb-wrong"))
    with pytest.raises(DeliveryFailed, match="invalid_auth"):
        channel.send(notification(make_transition()), retrier())
    assert len(slack.calls) == 1


def test_ratelimited_beyond_the_bound_gives_up(fs, slack: SlackStandIn) -> None:  # type: ignore[no-untyped-def]
    channel = SlackChannel(settings_for(slack))
    slack.ratelimit_next = 10
    slack.retry_after = 0
    with pytest.raises(DeliveryFailed, match="ratelimited"):
        channel.send(notification(make_transition()), retrier())
    assert len(slack.calls) == 3  # max_attempts
