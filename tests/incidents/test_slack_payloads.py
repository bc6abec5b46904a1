"""Signed Slack requests whose payload is not of the shape Slack sends: 400 naming the part at
fault and nothing changed, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fanout.conftest import Fanout, make_transition
from tests.incidents.conftest import slack_request

pytestmark = pytest.mark.emulators
USER = {"id": "U024BE7LH", "username": "ada"}


def _ack(incident_id: str) -> list[dict[str, Any]]:
    return [{"action_id": "ion_ack", "value": incident_id}]


@pytest.mark.parametrize(
    ("shape", "field"),
    [
        ({"type": "block_actions", "actions": "ion_ack"}, "actions"),
        ({"type": "block_actions", "container": "C0ALERTS", "actions": "ACK"}, "container"),
        ({"type": "block_actions", "message": "hello", "actions": "ACK"}, "message"),
        ({"type": "block_actions", "message": {"blocks": ["x"]}, "actions": "ACK"}, "message.blocks"),
        ({"type": "view_submission", "view": "ion_resolve"}, "view"),
        ({"type": "view_submission", "view": {"callback_id": "ion_resolve", "state": "x"}}, "view.state"),
        (
            {
                "type": "view_submission",
                "view": {"callback_id": "ion_resolve", "state": {"values": {"note": 1}}},
            },
            "view.state",
        ),
    ],
)
def test_a_signed_payload_of_the_wrong_shape_is_400_naming_it(
    incidents: Fanout, shape: dict[str, Any], field: str
) -> None:
    clock = incidents.freeze()
    assert incidents.push(make_transition(severity="critical", at=clock.now())) == 200
    [incident] = incidents.http().get("/v1/incidents").get_json()
    payload = {"user": USER, **shape}
    if payload.get("actions") == "ACK":
        payload["actions"] = _ack(incident["id"])
    body, headers = slack_request(payload, at=clock.now().timestamp())
    answer = incidents.http().post("/v1/slack/interactions", data=body, headers=headers)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert field in answer.get_json()["detail"]
    stored = incidents.http().get(f"/v1/incidents/{incident['id']}").get_json()
    assert stored["state"] == "triggered"
