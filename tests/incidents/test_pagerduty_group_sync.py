"""An incident of several alerts is one PagerDuty incident, keyed by the incident's id: an
acknowledgement or resolve made here is one Events v2 event with that key, and PagerDuty's webhooks
naming that key find the incident. An incident the previous version opened (PagerDuty holding one
incident per alert) is still told per fingerprint, and found by a fingerprint."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fanout.conftest import Fanout, make_transition, routing_file
from tests.incidents.conftest import pagerduty_request
from tests.incidents.test_incident_flow import get, post_pagerduty

pytestmark = pytest.mark.emulators


def open_group(fanout: Fanout, service: str, alerts: int) -> tuple[str, list[str]]:
    """A critical group of ``alerts`` alerts, all announced; its incident's id and fingerprints."""
    assert fanout.clock is not None
    firing = [
        make_transition(severity="critical", service=service, endpoint=f"/e{i}", at=fanout.clock.now())
        for i in range(alerts)
    ]
    for alert in firing:
        assert fanout.push(alert) == 200
    fanout.advance(timedelta(minutes=1))
    fanout.tick()
    listed = fanout.http().get("/v1/incidents").get_json()
    [incident] = [i for i in listed if i["labels"].get("service") == service]
    return incident["id"], [a.fingerprint for a in firing]


def events(fanout: Fanout, action: str) -> list[str]:
    return [e["dedup_key"] for e in fanout.pagerduty.events if e["event_action"] == action]


def act(fanout: Fanout, incident_id: str, action: str) -> dict[str, Any]:
    answer = fanout.http().post(f"/v1/incidents/{incident_id}/{action}", json={"note": "on it"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return get(fanout, incident_id)


def test_acknowledging_and_resolving_here_is_one_event_each_with_the_incidents_key(
    incidents: Fanout,
) -> None:
    incidents.freeze()
    incident_id, _ = open_group(incidents, "persona-router", 3)
    assert set(events(incidents, "trigger")) == {incident_id}

    acknowledged = act(incidents, incident_id, "ack")
    assert events(incidents, "acknowledge") == [incident_id]
    texts = [e["text"] or "" for e in acknowledged["timeline"]]
    assert f"PagerDuty acknowledge sent (dedup_key {incident_id})" in texts
    [held] = incidents.pagerduty.open_incidents()
    assert (held.dedup_key, held.status) == (incident_id, "acknowledged")

    act(incidents, incident_id, "resolve")
    assert events(incidents, "resolve") == [incident_id]
    assert incidents.pagerduty.open_incidents() == []


def test_a_webhook_naming_the_incidents_key_acknowledges_it(incidents: Fanout) -> None:
    incidents.freeze()
    incident_id, _ = open_group(incidents, "persona-router", 2)
    body, headers = pagerduty_request("incident.acknowledged", incident_id)
    answer = post_pagerduty(incidents, body, headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert [h["incident_id"] for h in answer.get_json()["handled"]] == [incident_id]
    incident = get(incidents, incident_id)
    assert (incident["state"], incident["acknowledged_by"]) == ("acknowledged", "Grace Hopper (PagerDuty)")
    assert events(incidents, "acknowledge") == []  # nothing sent back


def test_an_incident_the_previous_version_opened_is_told_per_fingerprint_beside_a_new_one(
    incidents: Fanout, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.fanout import incidents as lifecycle

    incidents.freeze()
    with monkeypatch.context() as previous:
        previous.setattr(lifecycle, "opened_key", lambda *_args, **_kwargs: None, raising=False)
        old_id, old_fingerprints = open_group(incidents, "billing", 2)
    new_id, _ = open_group(incidents, "persona-router", 2)
    assert sorted(events(incidents, "trigger")) == sorted([*old_fingerprints, new_id, new_id])

    act(incidents, old_id, "ack")
    act(incidents, new_id, "ack")
    assert events(incidents, "acknowledge") == [*old_fingerprints, new_id]
    old = get(incidents, old_id)
    assert "PagerDuty acknowledge sent for 2 alert(s) (same dedup_key)" in [
        e["text"] for e in old["timeline"]
    ]

    # PagerDuty resolves one of the old incident's per-alert incidents: its webhook names the alert.
    body, headers = pagerduty_request("incident.resolved", old_fingerprints[1])
    assert post_pagerduty(incidents, body, headers).status_code == 200
    assert get(incidents, old_id)["resolved_by"] == "Grace Hopper (PagerDuty)"
    assert get(incidents, new_id)["state"] == "acknowledged"


def test_an_incident_whose_label_route_does_not_page_is_not_told_to_pagerduty(
    incidents: Fanout, tmp_path: Path
) -> None:
    """A label route taking critical alerts to Slack alone: PagerDuty never held the incident, so
    acknowledging and resolving it here send PagerDuty nothing (not an acknowledge it drops)."""
    quiet = {
        "name": "billing-slack",
        "matchers": [{"name": "service", "value": "billing"}],
        "channels": ["slack"],
    }
    with routing_file(tmp_path / "routing.yaml", routes=[quiet]):
        incidents.freeze()
        incident_id, _ = open_group(incidents, "billing", 2)
        assert events(incidents, "trigger") == []
        acknowledged = act(incidents, incident_id, "ack")
        resolved = act(incidents, incident_id, "resolve")
    assert incidents.pagerduty.events == []
    assert acknowledged["pagerduty_sync"] == []
    assert resolved["pagerduty_sync"] == []
