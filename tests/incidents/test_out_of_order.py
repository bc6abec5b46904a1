"""Incident events arriving out of order or more than once, as on-call lives them: a PagerDuty
webhook about an earlier incident of the same alert (its ``dedup_key``) delivered late, the same
webhook event handled twice at once, actions by a role that may not take them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.fanout.conftest import Fanout, make_transition
from tests.incidents.conftest import pagerduty_request

pytestmark = pytest.mark.emulators


def _incidents(fanout: Fanout) -> list[dict[str, Any]]:
    answer = fanout.http().get("/v1/incidents")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def _get(fanout: Fanout, incident_id: str) -> dict[str, Any]:
    answer = fanout.http().get(f"/v1/incidents/{incident_id}")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def _zulu(moment: Any) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize("event_type", ["incident.acknowledged", "incident.resolved"])
def test_a_late_pagerduty_event_of_the_previous_incident_leaves_the_new_one_alone(
    incidents: Fanout, event_type: str
) -> None:
    clock = incidents.freeze()
    firing = make_transition(severity="critical", at=clock.now())
    assert incidents.push(firing) == 200
    acted_at = clock.now() + timedelta(minutes=5)  # on PagerDuty's first incident of this alert
    clock.advance(timedelta(minutes=10))
    assert incidents.push(make_transition(severity="critical", state="resolved", at=clock.now())) == 200
    clock.advance(timedelta(minutes=10))
    assert incidents.push(make_transition(severity="critical", at=clock.now())) == 200  # it flaps
    newer = _incidents(incidents)[0]
    assert newer["state"] == "triggered"
    # PagerDuty's webhook of the first incident, retried until now: same dedup_key, older event.
    body, headers = pagerduty_request(event_type, firing.fingerprint, occurred_at=_zulu(acted_at))
    answer = incidents.http().post("/v1/pagerduty/webhooks", data=body, headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["handled"] == []
    after = _get(incidents, newer["id"])
    assert after["state"] == "triggered"
    assert after["acknowledged_by"] is None
    assert after["resolved_by"] is None


def test_a_pagerduty_event_handled_twice_at_once_notes_the_incident_once(incidents: Fanout) -> None:
    from functions.fanout.pagerduty_webhooks import handle_webhook, parse_webhook

    clock = incidents.freeze()
    firing = make_transition(severity="critical", at=clock.now())
    assert incidents.push(firing) == 200
    [incident] = _incidents(incidents)
    clock.advance(timedelta(minutes=2))
    body, _headers = pagerduty_request(
        "incident.annotated", firing.fingerprint, occurred_at=_zulu(clock.now())
    )
    event = parse_webhook(body)
    # Two copies of one retried delivery both past the receipt check (it is written after).
    first, second = handle_webhook(event), handle_webhook(event)
    assert [h["detail"] for h in first["handled"]] == ["note added"]
    assert second["handled"][0]["detail"] != "note added"
    notes = [e for e in _get(incidents, incident["id"])["timeline"] if e["kind"] == "note"]
    assert len(notes) == 1
    assert notes[0]["by"] == "Grace Hopper (PagerDuty)"
