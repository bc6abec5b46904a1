"""An acknowledgement or resolve made elsewhere (the operator API, PagerDuty) shows in the
incident's Slack message too, as one made from Slack does: its Acknowledge button gives way to who
did it, so nobody in the channel thinks the incident is unattended."""

from __future__ import annotations

import json

import pytest

from tests.fanout.conftest import Fanout, make_transition
from tests.incidents.conftest import pagerduty_request

pytestmark = pytest.mark.emulators


def _ack_buttons(blocks: list[dict[str, object]]) -> list[object]:
    return [
        element
        for block in blocks
        if block.get("type") == "actions"
        for element in block["elements"]  # type: ignore[attr-defined]
        if element.get("action_id") == "ion_ack"
    ]


@pytest.mark.parametrize("route", ["api", "pagerduty"])
def test_an_acknowledgement_made_elsewhere_updates_the_slack_message(incidents: Fanout, route: str) -> None:
    clock = incidents.freeze()
    firing = make_transition(severity="critical", at=clock.now())
    assert incidents.push(firing) == 200
    [incident] = incidents.http().get("/v1/incidents").get_json()
    if route == "api":
        headers = {"X-Ion-Dev-Principal": "grace@example.com"}
        answer = incidents.http().post(f"/v1/incidents/{incident['id']}/ack", headers=headers)
        who = "grace@example.com"
    else:
        body, headers = pagerduty_request("incident.acknowledged", firing.fingerprint)
        answer = incidents.http().post("/v1/pagerduty/webhooks", data=body, headers=headers)
        who = "Grace Hopper (PagerDuty)"
    assert answer.status_code == 200, answer.get_data(as_text=True)
    [message] = incidents.slack.top_level()
    [update] = message.updates
    assert _ack_buttons(update["blocks"]) == []
    assert f"Acknowledged by {who}" in json.dumps(update["blocks"])


def test_a_resolve_made_elsewhere_updates_the_slack_message(incidents: Fanout) -> None:
    clock = incidents.freeze()
    assert incidents.push(make_transition(severity="critical", at=clock.now())) == 200
    [incident] = incidents.http().get("/v1/incidents").get_json()
    headers = {"X-Ion-Dev-Principal": "grace@example.com"}
    answer = incidents.http().post(f"/v1/incidents/{incident['id']}/resolve", headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    [message] = incidents.slack.top_level()
    [update] = message.updates
    assert "Incident resolved by grace@example.com" in json.dumps(update["blocks"])
    assert f"/v1/incidents/{incident['id']}/review" in json.dumps(update["blocks"])
