"""What Slack shows of a group too big or values too long for one message: within Block Kit's
limits (which the stand-in enforces), and saying what was left out."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from functions.fanout.channels.slack import SlackChannel
from tests.fanout.channels.test_slack import notification, retrier, settings_for
from tests.fanout.conftest import make_transition
from tests.fanout.slack_standin import SlackStandIn

pytestmark = pytest.mark.emulators


def test_a_group_of_500_alerts_says_how_many_were_left_out(fs, slack: SlackStandIn) -> None:  # type: ignore[no-untyped-def]
    channel = SlackChannel(settings_for(slack))
    alerts = [make_transition(service=f"svc-{i:03d}") for i in range(500)]
    receipt = channel.send(notification(*alerts), retrier())
    assert len(receipt["posted"]) == 5  # 50 alerts shown, ten to a message
    shown = sum(
        len([b for b in m.blocks if b["type"] == "section" and "FIRING" in b["text"]["text"]])
        for m in slack.messages
    )
    said = [int(n) for m in slack.messages for n in re.findall(r"and (\d+) more", m.all_text())]
    assert shown + sum(said) == 500


def test_a_long_label_value_is_clipped_to_slacks_field_limit(fs, slack: SlackStandIn) -> None:  # type: ignore[no-untyped-def]
    channel = SlackChannel(settings_for(slack))
    alert = make_transition(service="s" * 2500, region="<" * 1500)  # 1500 "<" escape to 6000 chars
    channel.send(notification(alert), retrier())  # the stand-in refuses a field over 2000
    [message] = slack.messages
    fields = [f["text"] for b in message.blocks for f in b.get("fields", [])]
    assert all(len(f) <= 2000 for f in fields)
    assert any(f.startswith("*Service*\nsss") and f.endswith("…") for f in fields)
    region = next(f for f in fields if f.startswith("*Region*"))
    assert region.endswith("&lt;…")  # clipped between entities, never inside one


def test_times_from_another_offset_are_shown_in_utc(fs, slack: SlackStandIn) -> None:  # type: ignore[no-untyped-def]
    channel = SlackChannel(settings_for(slack))
    at = datetime(2026, 3, 1, 4, 30, tzinfo=timezone(timedelta(hours=2)))
    alert = make_transition(at=at)
    channel.send(notification(alert), retrier())
    fields = [f["text"] for b in slack.messages[0].blocks for f in b.get("fields", [])]
    assert "*Started*\n2026-03-01T02:30:00Z" in fields
    assert at.astimezone(UTC).hour == 2
