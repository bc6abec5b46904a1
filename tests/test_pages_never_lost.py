"""No page is lost or repeated, end to end on the emulators (tests/pipeline_rig.py: fan-out and the
dead-letter store served as `make run` serves them, fed by the topology's push subscriptions):
a transition fan-out cannot read reaches the dead-letter store and pages; a channel delivery that
kept failing is re-driven to its channel exactly once."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.fanout.conftest import make_transition
from tests.pipeline_rig import (
    Pipeline,
    Vendors,
    eventually,
    served_pipeline,
    transition_json,
    vendor_standins,
)

pytestmark = pytest.mark.emulators


@pytest.fixture
def vendors() -> Iterator[Vendors]:
    with vendor_standins() as standins:
        yield standins


@pytest.fixture
def pipeline(fs, emulators, serve_capability, vendors: Vendors, tmp_path) -> Iterator[Pipeline]:  # type: ignore[no-untyped-def]
    with served_pipeline(serve_capability, vendors, tmp_path / "outbox") as rig:
        yield rig


def test_a_transition_fan_out_cannot_read_is_dead_lettered_with_its_reason_and_pages(
    pipeline: Pipeline,
) -> None:
    """A producer deployed first sends a severity this fan-out does not know: the message is
    acked, but not unread: the dead-letter store keeps it with the reason and pages about it."""
    rule = f"unreadable-{uuid.uuid4().hex[:6]}"
    unknown = transition_json(make_transition(rule=rule, severity="critical"), severity="urgent")
    pipeline.publish("alerts", unknown, origin="evaluate_alerts")

    letter = eventually(
        "the unreadable transition stored as a dead letter of topic alerts",
        lambda: pipeline.letters("alerts"),
    )[0]
    assert "does not match AlertTransition" in letter["reason"]
    assert "severity" in letter["reason"]
    assert letter["delivery_attempts"] is None  # dead-lettered by fan-out at once, not by Pub/Sub
    whole = requests.get(f"{pipeline.deadletters_url}/v1/dead-letters/{letter['id']}", timeout=10).json()
    assert base64.b64decode(whole["data_base64"]) == unknown
    assert whole["attributes"]["origin"] == "evaluate_alerts"
    # Its page: the store's critical notice, through fan-out, to Slack and PagerDuty.
    [notice] = eventually(
        "the dead letter's notice in Slack", lambda: pipeline.slack_about("was dead-lettered")
    )
    assert "does not match AlertTransition" in notice.all_text()
    eventually("the notice in PagerDuty", lambda: pipeline.pagerduty.events)
    assert not pipeline.slack_about(rule)  # the transition itself was not delivered
    assert len(pipeline.letters("alerts")) == 1  # acked once dead-lettered: no redelivery loop


def test_a_delivery_that_kept_failing_is_redriven_to_its_channel_exactly_once(pipeline: Pipeline) -> None:
    """A PagerDuty outage longer than the retry budget: Slack has the page, PagerDuty's delivery
    is dead-lettered; re-driving it (twice) pages PagerDuty once."""
    pipeline.pagerduty.fail_status = 503
    rule = f"pd-outage-{uuid.uuid4().hex[:6]}"
    firing = make_transition(rule=rule, severity="critical")
    pipeline.publish("alerts", firing.model_dump_json().encode())

    eventually("the page in Slack", lambda: pipeline.slack_about(rule))
    letter, body = eventually(
        "PagerDuty's delivery of the page dead-lettered",
        lambda: pipeline.delivery_letter(firing.transition_id),
    )
    assert body["channel"] == "pagerduty"
    assert "503" in letter["reason"]
    assert pipeline.pagerduty_for(firing.fingerprint) == []

    pipeline.pagerduty.fail_status = None  # PagerDuty is back
    redrive = f"{pipeline.deadletters_url}/v1/dead-letters/{letter['id']}/redrive"
    answer = requests.post(redrive, timeout=10)
    assert answer.status_code == 200, answer.text
    [event] = eventually(
        "the re-driven page in PagerDuty", lambda: pipeline.pagerduty_for(firing.fingerprint)
    )
    assert event["event_action"] == "trigger"

    # The same letter re-driven again (an operator's second click, a retried request): the
    # re-driven message reaches fan-out, which finds that re-drive done and sends nothing.
    watch = pipeline.watch("alert-deliveries")
    assert requests.post(redrive, timeout=10).status_code == 200
    assert len(pipeline.pulled(watch, want=1)) == 1
    with pytest.raises(AssertionError):
        eventually("a second PagerDuty event", lambda: len(pipeline.pagerduty_for(firing.fingerprint)) > 1, 5)
    assert len(pipeline.slack_about(rule)) == 1
