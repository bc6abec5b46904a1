"""An acknowledgement made in Slack while PagerDuty is slow or down (the PagerDuty stand-in made
slow or failing): Slack's answer never waits on PagerDuty past a short bound, the acknowledgement
stands, and PagerDuty is told later by the flush tick, or, when it never takes it, the incident's
timeline and Slack thread say so."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

from functions.fanout.settings import FanoutSettings
from tests.fanout.conftest import Fanout, make_transition
from tests.incidents.conftest import block_action, slack_request
from tests.incidents.test_incident_flow import get, only_incident, post_slack

pytestmark = pytest.mark.emulators
SLACK_ANSWER_WITHIN = 3.0  # seconds: Slack shows the clicker an error after that


def _click_ack(fanout: Fanout, incident_id: str) -> float:
    """Acknowledge from Slack; returns how long the answer took (wall clock)."""
    body, headers = slack_request(
        block_action(fanout, "ion_ack", incident_id),
        at=fanout.clock.now().timestamp() if fanout.clock else None,
    )
    started = time.monotonic()
    answer = post_slack(fanout, body, headers)
    took = time.monotonic() - started
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return took


def _texts(incident: dict[str, Any]) -> list[str]:
    return [e["text"] or "" for e in incident["timeline"]]


def test_a_slow_then_failing_pagerduty_never_delays_slack_and_gets_the_acknowledgement_later(
    incidents: Fanout,
) -> None:
    clock = incidents.freeze()
    firing = make_transition(severity="critical", at=clock.now())
    assert incidents.push(firing) == 200
    incident_id = only_incident(incidents)["id"]
    incidents.pagerduty.delay_seconds = 6.0  # PagerDuty answers, but far too late for Slack
    took = _click_ack(incidents, incident_id)
    assert took < SLACK_ANSWER_WITHIN, f"Slack waited {took:.1f} s on PagerDuty"
    incident = get(incidents, incident_id)
    assert incident["state"] == "acknowledged"
    assert incident["acknowledged_by"] == "ada"
    [pending] = incident["pagerduty_sync"]
    assert (pending["action"], pending["attempts"]) == ("acknowledge", 1)
    assert any(t.startswith("PagerDuty acknowledge pending") for t in _texts(incident))

    # Down now: the tick tries, fails, and backs off (1, 2, 4... minutes), the request kept.
    incidents.pagerduty.delay_seconds = 0.0
    incidents.pagerduty.fail_status = 503
    clock.advance(timedelta(minutes=1))
    assert incidents.tick()["pagerduty_synced"] == []
    [pending] = get(incidents, incident_id)["pagerduty_sync"]
    assert pending["attempts"] == 2
    assert "503" in pending["last_error"]

    # Back: the next due tick tells PagerDuty, once; nothing is left pending.
    incidents.pagerduty.fail_status = None
    clock.advance(timedelta(minutes=2))
    assert incidents.tick()["pagerduty_synced"] == [f"{incident_id}/acknowledge"]
    assert incidents.tick()["pagerduty_synced"] == []
    acknowledge = [e for e in incidents.pagerduty.events if e["event_action"] == "acknowledge"]
    assert acknowledge
    assert {e["dedup_key"] for e in acknowledge} == {incident_id}  # the incident's one PagerDuty incident
    incident = get(incidents, incident_id)
    assert incident["pagerduty_sync"] == []
    assert f"PagerDuty acknowledge sent (dedup_key {incident_id}) (after 3 attempts)" in _texts(incident)
    assert incident["state"] == "acknowledged"


@pytest.mark.parametrize(("status", "ticks"), [(503, 5), (400, 0)])
def test_pagerduty_that_never_takes_the_acknowledgement_is_reported_not_synced(
    incidents: Fanout, status: int, ticks: int
) -> None:
    clock = incidents.freeze()
    firing = make_transition(severity="critical", at=clock.now())
    assert incidents.push(firing) == 200
    incident_id = only_incident(incidents)["id"]
    [parent] = incidents.slack.top_level()
    incidents.pagerduty.fail_for[incident_id] = status  # down (503) or refusing it (400)
    assert _click_ack(incidents, incident_id) < SLACK_ANSWER_WITHIN
    for _ in range(ticks):  # an hour of ticks: down all along
        clock.advance(timedelta(minutes=15))
        assert incidents.tick()["pagerduty_synced"] == []
    incident = get(incidents, incident_id)
    assert incident["state"] == "acknowledged"  # it stands here
    assert incident["pagerduty_sync"] == []  # given up, not silently kept
    [given_up] = [t for t in _texts(incident) if "NOT sent" in t]
    assert given_up.startswith("PagerDuty acknowledge NOT sent after")
    assert str(status) in given_up
    assert "acknowledge it in PagerDuty by hand" in given_up
    warnings = [m for m in incidents.slack.replies(parent.ts) if "NOT sent" in m.text]
    assert len(warnings) == 1
    assert [e["event_action"] for e in incidents.pagerduty.events] == ["trigger"]


def test_the_inline_bound_leaves_slack_room() -> None:
    field = FanoutSettings.model_fields["pagerduty_sync_inline_seconds"]
    highest = next(m.le for m in field.metadata if getattr(m, "le", None) is not None)
    assert field.default <= highest <= SLACK_ANSWER_WITHIN / 2
