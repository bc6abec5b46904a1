"""Notices through fan-out: a low notice reaches Slack (a low alert only the log), once; it is
never repeated and never inhibits."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.notices import notice_transition
from tests.fanout.conftest import Fanout, make_transition

pytestmark = pytest.mark.emulators


def test_a_low_notice_goes_to_slack_once_and_is_never_repeated(fanout: Fanout) -> None:
    clock = fanout.freeze()
    notice = notice_transition(
        notice_id="scaling/us-central1/0800",
        source="scaling",
        name="scale-change",
        severity="low",
        summary="us-central1: min instances 2 -> 4 (forecast peak 310 r/s)",
        at=clock.now(),
        labels={"region": "us-central1"},
    )
    for _ in range(2):  # redelivered
        assert fanout.push(notice, message_id="n-1") == 200
    clock.advance(timedelta(seconds=31))  # the low route's group wait
    fanout.tick()
    assert len(fanout.slack.top_level()) == 1
    assert "min instances 2 -&gt; 4" in fanout.slack.top_level()[0].all_text()
    assert fanout.pagerduty.events == []
    clock.advance(timedelta(hours=25))  # past the low route's repeat interval
    fanout.tick()
    fanout.tick()
    assert len(fanout.slack.messages) == 1


def test_a_critical_notice_inhibits_nothing(fanout: Fanout) -> None:
    clock = fanout.freeze()
    dead_letter = notice_transition(
        notice_id="dead-letter/1",
        source="deadletters",
        name="dead-letter",
        severity="critical",
        summary="A message on alerts was dead-lettered",
        at=clock.now(),
        labels={"topic": "alerts"},
    )
    assert fanout.push(dead_letter) == 200
    assert len(fanout.slack.top_level()) == 1  # critical: no group wait
    # A high alert without service/region labels would be inhibited by a firing critical alert
    # that also lacks them; a notice does not stay firing, so it is not.
    high = make_transition(rule="queue-depth", severity="high", at=clock.now(), service="", region="")
    assert fanout.push(high) == 200
    clock.advance(timedelta(seconds=11))
    fanout.tick()
    assert len(fanout.slack.top_level()) == 2
    assert len(fanout.smtp.mails) == 1
