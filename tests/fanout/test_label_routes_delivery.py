"""Label routes on the emulators, against the Slack and SMTP stand-ins: an alert a route takes
goes to the route's Slack channel and mail list on the route's timers (its resolve, repeats and
escalations too, and a re-drive from the dead-letter journal), while every other alert goes where
it always went."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from functions.fanout.records import GROUPS
from tests.fanout.conftest import Fanout, make_transition, routing_file

pytestmark = pytest.mark.emulators

FINANCE_CHANNEL = "C0FINANCE"
FINANCE_LIST = ["finance@example.com", "cfo@example.com"]
ONCALL_LIST = ["oncall@example.com", "sre@example.com"]  # ALERT_EMAIL_TO of the rig
FINANCE = {
    "name": "finance",
    "matchers": [{"name": "service", "value": "cost"}],
    "channels": ["slack", "email"],
    "slack_channel": FINANCE_CHANNEL,
    "email_to": FINANCE_LIST,
    "group_wait": "2m",
    "repeat_interval": "30m",
}


@pytest.fixture
def routed(fanout: Fanout, tmp_path: Path) -> Iterator[Fanout]:
    """The rig with the shipped routing file plus the finance route, its channel in the stand-in."""
    with routing_file(tmp_path / "routing.yaml", routes=[FINANCE]):
        fanout.slack.channels.add(FINANCE_CHANNEL)
        yield fanout


def mailed_to(fanout: Fanout) -> list[list[str]]:
    return [sorted(recipients) for _, recipients in fanout.smtp.envelopes]


def test_a_routed_alert_goes_to_the_route_s_channel_and_list_and_the_rest_as_before(
    routed: Fanout, fs
) -> None:  # type: ignore[no-untyped-def]
    clock = routed.freeze()
    cost = make_transition(severity="high", service="cost", at=clock.now())
    other = make_transition(severity="high", at=clock.now())
    assert routed.push(cost) == 200
    assert routed.push(other) == 200
    # The unmatched alert: high's group_wait 0s, SLACK_CHANNEL and ALERT_EMAIL_TO, as always.
    assert [m.channel for m in routed.slack.top_level()] == ["C0ALERTS"]
    assert mailed_to(routed) == [sorted(ONCALL_LIST)]
    # The routed one waits the route's group_wait (2m, not high's 0s).
    clock.advance(timedelta(minutes=1))
    routed.tick()
    assert len(routed.slack.top_level()) == 1
    clock.advance(timedelta(minutes=1))
    routed.tick()
    [_, posted] = routed.slack.top_level()
    assert posted.channel == FINANCE_CHANNEL
    assert "cost" in posted.all_text()
    assert mailed_to(routed)[1:] == [sorted(FINANCE_LIST)]
    assert routed.smtp.mails[1]["To"] == ", ".join(FINANCE_LIST)
    [group] = [g.to_dict() for g in fs.collection(GROUPS).stream() if g.to_dict()["label_route"]]
    assert group["label_route"] == "finance"

    # The resolve goes in that message's thread, in the route's channel, and to its list.
    clock.advance(timedelta(minutes=1))
    assert (
        routed.push(make_transition(severity="high", service="cost", state="resolved", at=clock.now())) == 200
    )
    clock.advance(timedelta(minutes=5))
    routed.tick()
    [reply] = routed.slack.replies(posted.ts)
    assert reply.channel == FINANCE_CHANNEL
    assert "RESOLVED" in reply.all_text()
    assert len(posted.updates) == 1
    assert mailed_to(routed)[2:] == [sorted(FINANCE_LIST)]
    assert all(m.channel == "C0ALERTS" for m in routed.slack.messages if "persona-router" in m.all_text())


def test_a_route_s_timers_apply_to_its_groups_alone(routed: Fanout, without_escalation: None) -> None:
    clock = routed.freeze()
    assert routed.push(make_transition(severity="high", service="cost", at=clock.now())) == 200
    assert routed.push(make_transition(severity="high", at=clock.now())) == 200
    clock.advance(timedelta(minutes=2))
    routed.tick()
    by_channel = {m.channel: m for m in routed.slack.top_level()}
    assert set(by_channel) == {"C0ALERTS", FINANCE_CHANNEL}
    # The route's repeat_interval (30m) re-notifies its group; high's own (4h) not yet the other.
    clock.advance(timedelta(minutes=30))
    routed.tick()
    [repeat] = routed.slack.replies(by_channel[FINANCE_CHANNEL].ts)
    assert repeat.channel == FINANCE_CHANNEL
    assert repeat.reply_broadcast
    assert "STILL FIRING" in repeat.all_text()
    assert routed.slack.replies(by_channel["C0ALERTS"].ts) == []
    assert mailed_to(routed)[-1] == sorted(FINANCE_LIST)


def test_an_escalation_of_a_routed_incident_goes_to_the_route_s_receivers(routed: Fanout) -> None:
    clock = routed.freeze()
    assert routed.push(make_transition(severity="high", service="cost", at=clock.now())) == 200
    clock.advance(timedelta(minutes=2))
    routed.tick()
    [posted] = routed.slack.top_level()
    sent = len(routed.smtp.envelopes)
    clock.advance(timedelta(hours=1))  # P2's respond target passed: step 1 is slack and email
    routed.tick()
    escalated = [m for m in routed.slack.replies(posted.ts) if "ESCALATED" in m.all_text()]
    assert [m.channel for m in escalated] == [FINANCE_CHANNEL]
    assert all(m.channel == FINANCE_CHANNEL for m in routed.slack.messages)
    assert mailed_to(routed)[sent:]
    assert set(map(tuple, mailed_to(routed)[sent:])) == {tuple(sorted(FINANCE_LIST))}


def test_a_redriven_delivery_of_a_routed_group_goes_to_the_same_place(routed: Fanout) -> None:
    clock = routed.freeze()
    routed.slack.fail_with = "internal_error"  # every call answers 500
    routed.smtp.refuse, routed.smtp.refusal = True, "451 4.3.0 try again later"
    assert routed.push(make_transition(severity="high", service="cost", at=clock.now())) == 200
    clock.advance(timedelta(minutes=2))
    routed.tick()
    letters = {d["data"]["channel"]: d for d in routed.dead_letters(expect=2)}
    assert set(letters) == {"slack", "email"}
    assert letters["slack"]["data"]["notification"]["route_slack_channel"] == FINANCE_CHANNEL
    assert routed.slack.messages == []
    assert routed.smtp.envelopes == []

    routed.slack.fail_with, routed.smtp.refuse = None, False
    assert routed.redrive(letters["slack"], redrives=1) == 200
    assert routed.redrive(letters["email"], redrives=1) == 200
    assert [m.channel for m in routed.slack.top_level()] == [FINANCE_CHANNEL]
    assert mailed_to(routed) == [sorted(FINANCE_LIST)]
