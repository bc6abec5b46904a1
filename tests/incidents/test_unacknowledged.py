"""PagerDuty's ``incident.unacknowledged`` (its acknowledgement timeout ran out, or someone undid
the acknowledgement): the incident is triggered again, its current escalation level is notified
again and escalation resumes, as in PagerDuty; a replay, an event about an earlier acknowledgement
and a late acknowledgement from before it change nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from functions.fanout.incident_policy import DEFAULT_POLICY_FILE, load_policy
from functions.fanout.incidents import acknowledge, escalate, unacknowledge
from shared.clock import FrozenClock
from tests.fanout.conftest import Fanout, make_transition
from tests.incidents.conftest import block_action, pagerduty_request, slack_request
from tests.incidents.test_incident_flow import (
    ack_buttons,
    get,
    kinds,
    only_incident,
    post_pagerduty,
    post_slack,
)
from tests.incidents.test_lifecycle import T0, opened

pytestmark = pytest.mark.emulators
POLICY = load_policy(DEFAULT_POLICY_FILE)


def _zulu(moment: Any) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _pagerduty(fanout: Fanout, event_type: str, key: str, event_id: str, at: Any) -> dict[str, Any]:
    body, headers = pagerduty_request(event_type, key, event_id=event_id, occurred_at=_zulu(at))
    answer = post_pagerduty(fanout, body, headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def _slack_ack(fanout: Fanout, incident_id: str, at: Any, name: str) -> None:
    payload = block_action(fanout, "ion_ack", incident_id, user=f"U{name.upper()}", name=name)
    body, headers = slack_request(payload, at=at.timestamp())
    answer = post_slack(fanout, body, headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)


def _acknowledges(fanout: Fanout) -> int:
    return [e["event_action"] for e in fanout.pagerduty.events].count("acknowledge")


def test_unacknowledged_in_pagerduty_triggers_again_renotifies_the_level_and_escalation_resumes(
    incidents: Fanout,
) -> None:
    clock = incidents.freeze()
    t0 = clock.now()
    firing = make_transition(severity="critical", at=t0)
    assert incidents.push(firing) == 200
    incident_id = only_incident(incidents)["id"]
    [parent] = incidents.slack.top_level()
    clock.advance(timedelta(minutes=2))
    _slack_ack(incidents, incident_id, clock.now(), "ada")
    assert get(incidents, incident_id)["state"] == "acknowledged"
    assert _acknowledges(incidents) == 1

    # 10:00 after opening, PagerDuty's acknowledgement timeout runs out.
    clock.advance(timedelta(minutes=8))
    undone_at = clock.now()
    answer = _pagerduty(
        incidents, "incident.unacknowledged", firing.fingerprint, "01UNACK0000000000000000001", undone_at
    )
    assert [h["detail"] for h in answer["handled"]] == [
        "unacknowledged by Grace Hopper (PagerDuty): level 0 is notified again"
    ]
    incident = get(incidents, incident_id)
    assert incident["state"] == "triggered"
    assert incident["acknowledged_by"] is None
    assert incident["acknowledged_at"] is None
    assert [k for k in kinds(incident) if k.endswith("acknowledged")] == ["acknowledged", "unacknowledged"]
    assert incident["next_escalation_at"] == _zulu(undone_at)  # due at once
    assert [e["event_action"] for e in incidents.pagerduty.events].count("trigger") == 1  # nothing sent back
    # The message shows it unacknowledged again, with its Acknowledge button back.
    latest = parent.updates[-1]["blocks"]
    assert ack_buttons(latest) != []
    assert "not acknowledged yet" in str(latest)

    # The flush tick notifies the current level (0: the route's channels and mention) again, once.
    pages = len(incidents.pagerduty.events)
    assert incidents.tick()["escalated"] == [f"{incident_id}-u1"]
    assert incidents.tick()["escalated"] == []
    [reply] = incidents.slack.replies(parent.ts)
    assert "ACKNOWLEDGEMENT TAKEN BACK (level 0)" in reply.all_text()
    assert "@oncall" in reply.all_text()
    assert reply.reply_broadcast
    assert len(incidents.pagerduty.events) == pages  # PagerDuty notifies its own responders
    # The level has its whole escalation timeout again: respond_by - opened_at (15 min) from now.
    incident = get(incidents, incident_id)
    assert incident["escalation_level"] == 0
    assert incident["next_escalation_at"] == _zulu(undone_at + timedelta(minutes=15))

    # The same event again (two copies past the receipt), and PagerDuty's acknowledgement from
    # before the un-acknowledgement delivered late: nothing changes.
    from functions.fanout.pagerduty_webhooks import handle_webhook, parse_webhook

    body, _ = pagerduty_request(
        "incident.unacknowledged",
        firing.fingerprint,
        event_id="01UNACK0000000000000000001",
        occurred_at=_zulu(undone_at),
    )
    again = handle_webhook(parse_webhook(body))
    assert again["handled"][0]["detail"] == "unacknowledged before (the same event)"
    clock.advance(timedelta(minutes=1))
    late = _pagerduty(
        incidents,
        "incident.acknowledged",
        firing.fingerprint,
        "01LATEACK00000000000000001",
        t0 + timedelta(minutes=5),
    )
    assert "before it was unacknowledged" in late["handled"][0]["detail"]
    assert get(incidents, incident_id)["state"] == "triggered"

    # Nobody acknowledges: level 1 when the restarted timeout runs out.
    clock.advance(undone_at + timedelta(minutes=15) - clock.now())
    assert incidents.tick()["escalated"] == [f"{incident_id}-e1"]
    # Acknowledged again from Slack: PagerDuty is told again (a second acknowledgement, not a repeat).
    clock.advance(timedelta(minutes=1))
    _slack_ack(incidents, incident_id, clock.now(), "grace")
    acked = get(incidents, incident_id)
    assert (acked["state"], acked["acknowledged_by"]) == ("acknowledged", "grace")
    assert _acknowledges(incidents) == 2
    # An un-acknowledgement that occurred before this acknowledgement is about the earlier one.
    earlier = _pagerduty(
        incidents,
        "incident.unacknowledged",
        firing.fingerprint,
        "01UNACK0000000000000000002",
        clock.now() - timedelta(seconds=30),
    )
    assert "acknowledged again by grace" in earlier["handled"][0]["detail"]
    assert get(incidents, incident_id)["state"] == "acknowledged"

    # Undone at level 1: level 1 (the first step's mention) is notified again, 15 min to level 2.
    clock.advance(timedelta(minutes=3))
    second_undo = clock.now()
    _pagerduty(
        incidents, "incident.unacknowledged", firing.fingerprint, "01UNACK0000000000000000003", second_undo
    )
    assert incidents.tick()["escalated"] == [f"{incident_id}-u2"]
    renotified = incidents.slack.replies(parent.ts)[-1]
    assert "ACKNOWLEDGEMENT TAKEN BACK (level 1)" in renotified.all_text()
    assert "@oncall-secondary" in renotified.all_text()
    incident = get(incidents, incident_id)
    assert incident["next_escalation_at"] == _zulu(second_undo + timedelta(minutes=15))
    times = [e["at"] for e in incident["timeline"]]
    assert times == sorted(times)


def test_unacknowledge_on_plain_records() -> None:
    clock = FrozenClock(T0)
    incident = opened(clock=clock)
    assert not unacknowledge(incident, "pd", T0, ref="e0").changed  # never acknowledged
    clock.advance(timedelta(minutes=20))
    assert escalate(incident, clock.now(), POLICY).changed  # level 1 at 09:15
    acknowledge(incident, "ada", clock.now())
    clock.advance(timedelta(minutes=5))
    assert unacknowledge(incident, "pd", clock.now(), ref="e1").changed
    assert incident.state == "triggered"
    assert incident.next_escalation_at == clock.now()
    assert escalate(incident, clock.now(), POLICY).detail == "level 1 notified again"
    assert incident.escalation_level == 1
    assert incident.next_escalation_at == clock.now() + timedelta(minutes=15)
    resolved = opened(clock=clock)
    acknowledge(resolved, "ada", clock.now())
    from functions.fanout.incidents import resolve

    resolve(resolved, "ada", clock.now(), POLICY)
    assert "already resolved" in unacknowledge(resolved, "pd", clock.now(), ref="e2").detail
