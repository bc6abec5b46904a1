"""Incident events arriving out of order or more than once, as on-call lives them: a PagerDuty
webhook about an earlier incident of the same alert (its ``dedup_key``) delivered late, the same
webhook event handled twice at once, actions by a role that may not take them."""

from __future__ import annotations

import threading
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


def test_one_acknowledgement_by_three_routes_at_once_changes_once(incidents: Fanout) -> None:
    from functions.fanout.incident_actions import acknowledge_incident
    from functions.fanout.webhook_intake import take_pagerduty_webhook, take_slack_interaction
    from tests.incidents.conftest import PAGERDUTY_SECRET, SLACK_SECRET, block_action, slack_request

    clock = incidents.freeze()
    firing = make_transition(severity="critical", at=clock.now())
    assert incidents.push(firing) == 200
    [incident] = _incidents(incidents)
    slack_body, slack_headers = slack_request(
        block_action(incidents, "ion_ack", incident["id"]), at=clock.now().timestamp()
    )
    pd_body, pd_headers = pagerduty_request(
        "incident.acknowledged", firing.fingerprint, occurred_at=_zulu(clock.now())
    )
    routes = {
        "api": lambda: acknowledge_incident(incident["id"], "grace@example.com", "api"),
        "slack": lambda: take_slack_interaction(
            SLACK_SECRET,
            slack_headers["X-Slack-Request-Timestamp"],
            slack_headers["X-Slack-Signature"],
            slack_body,
        ),
        "pagerduty": lambda: take_pagerduty_webhook(
            PAGERDUTY_SECRET, pd_headers["X-PagerDuty-Signature"], pd_body
        ),
    }
    errors: list[Exception] = []

    def run(action: Any) -> None:
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(action,)) for action in routes.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    stored = _get(incidents, incident["id"])
    assert stored["state"] == "acknowledged"
    acks = [e for e in stored["timeline"] if e["kind"] == "acknowledged"]
    assert len(acks) == 1
    assert acks[0]["by"] == stored["acknowledged_by"]
    assert stored["acknowledged_by"] in {"grace@example.com", "ada", "Grace Hopper (PagerDuty)"}
    sent = [e["event_action"] for e in incidents.pagerduty.events].count("acknowledge")
    # PagerDuty is told once, and not at all when the acknowledgement was its own.
    assert sent == (0 if stored["acknowledged_by"].endswith("(PagerDuty)") else 1)


@pytest.mark.parametrize("event_type", ["incident.acknowledged", "incident.resolved"])
def test_a_pagerduty_action_delivered_late_is_recorded_when_it_happened(
    incidents: Fanout, event_type: str
) -> None:
    clock = incidents.freeze()
    opened_at = clock.now()
    firing = make_transition(severity="critical", at=opened_at)
    assert incidents.push(firing) == 200
    [incident] = _incidents(incidents)
    clock.advance(timedelta(minutes=2))
    note = incidents.http().post(f"/v1/incidents/{incident['id']}/notes", json={"text": "looking"})
    assert note.status_code == 200
    acted_at = opened_at + timedelta(minutes=4)
    clock.advance(timedelta(minutes=18))  # PagerDuty retried its webhook for 16 minutes
    body, headers = pagerduty_request(event_type, firing.fingerprint, occurred_at=_zulu(acted_at))
    answer = incidents.http().post("/v1/pagerduty/webhooks", data=body, headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    stored = _get(incidents, incident["id"])
    field = "acknowledged_at" if event_type == "incident.acknowledged" else "resolved_at"
    assert stored[field] == _zulu(acted_at)
    kind = event_type.removeprefix("incident.")
    entry = next(e for e in stored["timeline"] if e["kind"] == kind)
    assert entry["at"] == _zulu(acted_at)
    times = [e["at"] for e in stored["timeline"]]
    assert times == sorted(times)  # the timeline reads in the order things happened
    if kind == "resolved":
        review = incidents.http().get(f"/v1/incidents/{incident['id']}/review").get_data(as_text=True)
        assert "| time to resolve | 4 min 0 s |" in review


def test_resolved_by_hand_while_the_alert_still_fires_the_repeat_triggers_a_new_incident(
    incidents: Fanout,
) -> None:
    clock = incidents.freeze()
    assert incidents.push(make_transition(severity="critical", at=clock.now())) == 200
    [first] = _incidents(incidents)
    clock.advance(timedelta(minutes=5))
    resolved = incidents.http().post(f"/v1/incidents/{first['id']}/resolve", json={"note": "fixed?"})
    assert resolved.status_code == 200
    pages = len(incidents.pagerduty.events)
    clock.advance(timedelta(minutes=26))  # past the 30-minute repeat: the alert still fires
    incidents.tick()
    # As PagerDuty and Grafana OnCall do with a trigger for a resolved incident: a new one, paged.
    listed = _incidents(incidents)
    assert [i["state"] for i in listed] == ["triggered", "resolved"]
    assert listed[1]["id"] == first["id"]
    assert [e["event_action"] for e in incidents.pagerduty.events[pages:]] == ["trigger"]
    newer = _get(incidents, listed[0]["id"])
    assert newer["next_escalation_at"] is not None
    assert "alert_joined" in [e["kind"] for e in newer["timeline"]]


def test_acknowledged_and_still_firing_the_repeats_stay_quiet(incidents: Fanout) -> None:
    clock = incidents.freeze()
    assert incidents.push(make_transition(severity="critical", at=clock.now())) == 200
    [incident] = _incidents(incidents)
    assert incidents.http().post(f"/v1/incidents/{incident['id']}/ack").status_code == 200
    pages = len(incidents.pagerduty.events)
    clock.advance(timedelta(minutes=31))
    incidents.tick()
    assert len(_incidents(incidents)) == 1
    assert incidents.pagerduty.events[pages:] == []


def test_an_escalation_timer_of_a_resolved_incident_does_nothing(incidents: Fanout) -> None:
    clock = incidents.freeze()
    assert incidents.push(make_transition(severity="critical", at=clock.now())) == 200
    [incident] = _incidents(incidents)
    clock.advance(timedelta(minutes=5))
    assert incidents.http().post(f"/v1/incidents/{incident['id']}/resolve").status_code == 200
    pages, messages = len(incidents.pagerduty.events), len(incidents.slack.messages)
    clock.advance(timedelta(minutes=10))  # respond_by: the escalation's timer fires anyway
    for _ in range(2):  # Cloud Tasks delivers at least once
        answer = incidents.http().post(
            "/v1/flush/group", json={"group_id": incident["group_key"], "due_at": clock.now().isoformat()}
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert answer.get_json()["notifications"] == []
    assert len(incidents.pagerduty.events) == pages
    assert len(incidents.slack.messages) == messages
    stored = _get(incidents, incident["id"])
    assert stored["escalation_level"] == 0
    assert "escalated" not in [e["kind"] for e in stored["timeline"]]


def test_an_acknowledgement_landing_while_the_repeat_is_prepared_stops_it(
    incidents: Fanout, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.fanout import ticks
    from functions.fanout.incident_store import get_store

    clock = incidents.freeze()
    assert incidents.push(make_transition(severity="critical", at=clock.now())) == 200
    [incident] = _incidents(incidents)
    before_ack = get_store().get(incident["id"])
    assert incidents.http().post(f"/v1/incidents/{incident['id']}/ack").status_code == 200
    pages = len(incidents.pagerduty.events)

    class StaleRead:  # the repeat read the incident a moment before the acknowledgement landed
        def get(self, _incident_id: str) -> Any:
            return before_ack

    monkeypatch.setattr(ticks, "get_store", StaleRead)
    clock.advance(timedelta(minutes=31))
    incidents.tick()
    assert incidents.pagerduty.events[pages:] == []
