"""Slack's **Silence 1 h** button clicked twice (a double click: two signed requests, one after the
other or at once) makes one silence; a deliberate click later makes another, as the silence API
does for every request."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from tests.fanout.conftest import Fanout, make_transition
from tests.incidents.conftest import SLACK_SECRET, block_action, slack_request
from tests.incidents.test_incident_flow import get, only_incident, post_slack

pytestmark = pytest.mark.emulators


def _click(fanout: Fanout, incident_id: str, at: float) -> tuple[bytes, dict[str, str]]:
    return slack_request(block_action(fanout, "ion_silence_1h", incident_id), at=at)


def _active(fanout: Fanout) -> list[dict[str, Any]]:
    answer = fanout.http().get("/v1/silences?state=active")
    assert answer.status_code == 200
    return answer.get_json()


def _silence_notes(fanout: Fanout, incident_id: str) -> list[dict[str, Any]]:
    timeline = get(fanout, incident_id)["timeline"]
    return [e for e in timeline if e["kind"] == "note" and "silenced for 1 h" in (e["text"] or "")]


def test_a_double_click_on_silence_makes_one_silence(incidents: Fanout) -> None:
    clock = incidents.freeze()
    assert incidents.push(make_transition(severity="critical", at=clock.now())) == 200
    incident_id = only_incident(incidents)["id"]
    now = clock.now().timestamp()
    first = post_slack(incidents, *_click(incidents, incident_id, now))
    second = post_slack(incidents, *_click(incidents, incident_id, now + 1))  # its own signature
    assert first.status_code == second.status_code == 200
    [silence] = _active(incidents)
    assert silence["createdBy"] == "ada"
    assert second.get_json()["handled"][0]["detail"] == (
        f"already silenced by ada at {clock.now().isoformat().replace('+00:00', 'Z')} (silence {silence['id']})"
    )
    assert len(_silence_notes(incidents, incident_id)) == 1
    assert all("nothing to do" not in m.text for m in incidents.slack.messages)  # no scolding reply

    # Expired by hand, the next click silences again; so does a deliberate click a while later.
    assert incidents.http().delete(f"/v1/silences/{silence['id']}").status_code == 200
    assert post_slack(incidents, *_click(incidents, incident_id, now + 2)).status_code == 200
    assert len(_active(incidents)) == 1
    clock.advance(timedelta(minutes=5))
    later = clock.now().timestamp()
    assert post_slack(incidents, *_click(incidents, incident_id, later)).status_code == 200
    assert len(_active(incidents)) == 2
    assert len(_silence_notes(incidents, incident_id)) == 3


def test_two_clicks_handled_at_once_make_one_silence(incidents: Fanout) -> None:
    from functions.fanout.webhook_intake import take_slack_interaction

    clock = incidents.freeze()
    assert incidents.push(make_transition(severity="critical", at=clock.now())) == 200
    incident_id = only_incident(incidents)["id"]
    now = clock.now().timestamp()
    requests = [_click(incidents, incident_id, now + i) for i in range(2)]
    errors: list[Exception] = []

    def click(body: bytes, headers: dict[str, str]) -> None:
        try:
            take_slack_interaction(
                SLACK_SECRET, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"], body
            )
        except Exception as exc:  # noqa: BLE001 - reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=click, args=request) for request in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(_active(incidents)) == 1
    assert len(_silence_notes(incidents, incident_id)) == 1


def test_the_silence_api_keeps_making_one_silence_per_request(incidents: Fanout) -> None:
    from shared.clock import utcnow

    body = {
        "matchers": [{"name": "service", "value": "persona-router"}],
        "endsAt": (utcnow() + timedelta(hours=2)).isoformat(),
        "createdBy": "ada@example.com",
        "comment": "maintenance",
    }
    for _ in range(2):
        assert incidents.http().post("/v1/silences", json=body).status_code == 201
    assert len(_active(incidents)) == 2
