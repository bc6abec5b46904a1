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


def test_a_success_action_is_mailed_to_its_success_manager_and_posted_once(fanout: Fanout) -> None:
    clock = fanout.freeze()

    def action(customer: str, email: str) -> object:
        return notice_transition(
            notice_id=f"health/{customer}/training_outreach/2026-03-02",
            source="health",
            name="training-outreach",
            severity="low",
            summary=f"{customer}: low engagement, offer training",
            at=clock.now(),
            labels={"customer": customer, "action": "training_outreach"},
            annotations={"contact_email": email, "contact_name": "Dana"},
        )

    first = action("acme", "dana@acme-success.example")
    for _ in range(2):  # redelivered
        assert fanout.push(first, message_id="h-1") == 200  # type: ignore[arg-type]
    # An address that is not one plain address is never put on the envelope.
    assert fanout.push(action("globex", "x@y.example>, all@corp.example"), message_id="h-2") == 200  # type: ignore[arg-type]
    clock.advance(timedelta(seconds=31))  # the low route's group wait
    fanout.tick()
    fanout.tick()
    assert len(fanout.slack.top_level()) == 1  # one group: both actions in one message
    assert len(fanout.smtp.mails) == 1
    recipients = fanout.smtp.envelopes[0][1]
    assert "dana@acme-success.example" in recipients
    assert {"oncall@example.com", "sre@example.com"} <= set(recipients)
    assert not any("corp.example" in r for r in recipients)
    assert "acme: low engagement" in fanout.smtp.mails[0].get_body(("plain",)).get_content()


def test_a_low_alert_with_a_contact_annotation_is_not_mailed(fanout: Fanout) -> None:
    clock = fanout.freeze()
    alert = make_transition(rule="queue-depth", severity="low", at=clock.now())
    alert = alert.model_copy(update={"annotations": {**alert.annotations, "contact_email": "a@b.example"}})
    assert fanout.push(alert) == 200
    clock.advance(timedelta(seconds=31))
    fanout.tick()
    assert fanout.smtp.mails == []  # only notices name recipients; a low alert goes to the log
