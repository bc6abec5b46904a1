"""An incident's life on the served fan-out (functions-framework app, Firestore emulator, Slack
and PagerDuty stand-ins): opened by a critical firing group, acknowledged from Slack (PagerDuty
told) or PagerDuty (not told back), escalated on a fake clock when nobody acknowledges, resolved,
reviewed; forged, stale and replayed requests refused with nothing changed."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest

from tests.fanout.conftest import Fanout, make_transition
from tests.incidents.conftest import block_action, pagerduty_request, slack_request

pytestmark = pytest.mark.emulators

CONTRACT_FIELDS = {
    "id",
    "priority",
    "state",
    "opened_at",
    "acknowledged_at",
    "acknowledged_by",
    "resolved_at",
    "respond_by",
    "resolve_by",
    "timeline",
}


def only_incident(fanout: Fanout) -> dict[str, Any]:
    answer = fanout.http().get("/v1/incidents")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    [incident] = answer.get_json()
    return get(fanout, incident["id"])


def get(fanout: Fanout, incident_id: str) -> dict[str, Any]:
    answer = fanout.http().get(f"/v1/incidents/{incident_id}")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def post_slack(fanout: Fanout, body: bytes, headers: dict[str, str]) -> Any:
    return fanout.http().post("/v1/slack/interactions", data=body, headers=headers)


def post_pagerduty(fanout: Fanout, body: bytes, headers: dict[str, str]) -> Any:
    return fanout.http().post("/v1/pagerduty/webhooks", data=body, headers=headers)


def kinds(incident: dict[str, Any]) -> list[str]:
    return [entry["kind"] for entry in incident["timeline"]]


def ack_buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        element
        for block in blocks
        if block["type"] == "actions"
        for element in block["elements"]
        if element.get("action_id") == "ion_ack"
    ]


def test_a_critical_firing_group_opens_one_incident_with_its_targets_and_an_ack_button(
    incidents: Fanout,
) -> None:
    clock = incidents.freeze()
    firing = make_transition(severity="critical", at=clock.now())
    assert incidents.push(firing) == 200
    assert incidents.push(firing) == 200  # Pub/Sub redelivers: no second incident
    incident = only_incident(incidents)
    assert set(incident) >= CONTRACT_FIELDS
    assert incident["priority"] == "P1"
    assert incident["state"] == "triggered"
    assert incident["acknowledged_at"] is None
    assert incident["acknowledged_by"] is None
    opened = incident["opened_at"]
    assert incident["respond_by"] == (clock.now() + timedelta(minutes=15)).isoformat().replace("+00:00", "Z")
    assert incident["resolve_by"] == (clock.now() + timedelta(hours=4)).isoformat().replace("+00:00", "Z")
    assert opened == clock.now().isoformat().replace("+00:00", "Z")
    assert kinds(incident)[:2] == ["opened", "alert_joined"]
    notified = [e for e in incident["timeline"] if e["kind"] == "notified"]
    assert sorted(e["by"] for e in notified) == ["pagerduty", "slack"]
    assert any("C0ALERTS" in e["text"] for e in notified)
    [message] = incidents.slack.top_level()
    [button] = ack_buttons(message.blocks)
    assert button["value"] == incident["id"]


def test_high_opens_one_but_medium_only_on_demand(incidents: Fanout) -> None:
    clock = incidents.freeze()
    assert incidents.push(make_transition(severity="high", at=clock.now())) == 200
    assert incidents.push(make_transition(rule="queue-depth", severity="medium", at=clock.now())) == 200
    clock.advance(timedelta(seconds=31))
    incidents.tick()
    [high] = incidents.http().get("/v1/incidents").get_json()
    assert high["priority"] == "P2"
    medium_message = next(m for m in incidents.slack.top_level() if "queue-depth" in m.all_text())
    assert ack_buttons(medium_message.blocks) == []
    from functions.fanout.routes import get_routing

    group = get_routing().group_id(make_transition(rule="queue-depth", severity="medium"))
    answer = incidents.http().post("/v1/incidents", json={"group_id": group, "note": "customers complain"})
    assert answer.status_code == 201, answer.get_data(as_text=True)
    assert answer.get_json()["priority"] == "P3"
    again = incidents.http().post("/v1/incidents", json={"group_id": group})
    assert again.status_code == 409
    listed = incidents.http().get("/v1/incidents?priority=P3").get_json()
    assert [i["id"] for i in listed] == [answer.get_json()["id"]]
    assert incidents.http().get("/v1/incidents?state=acknowledged").get_json() == []
    bad = incidents.http().get("/v1/incidents?priority=P7")
    assert bad.status_code == 422
    assert "priority" in bad.get_json()["detail"]
    unknown = incidents.http().post("/v1/incidents", json={"group_id": "medium-" + "0" * 24})
    assert unknown.status_code == 404


def test_acknowledged_from_slack_as_the_user_with_pagerduty_told_and_the_message_updated(
    incidents: Fanout,
) -> None:
    clock = incidents.freeze()
    firing = make_transition(severity="critical", at=clock.now())
    assert incidents.push(firing) == 200
    incident_id = only_incident(incidents)["id"]
    clock.advance(timedelta(minutes=4))
    body, headers = slack_request(block_action(incidents, "ion_ack", incident_id), at=clock.now().timestamp())
    answer = post_slack(incidents, body, headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    incident = get(incidents, incident_id)
    assert incident["state"] == "acknowledged"
    assert incident["acknowledged_by"] == "ada"
    assert incident["acknowledged_at"] == clock.now().isoformat().replace("+00:00", "Z")
    ack = next(e for e in incident["timeline"] if e["kind"] == "acknowledged")
    assert ack["by"] == "ada"
    assert "Slack" in ack["text"]
    acknowledge = [e for e in incidents.pagerduty.events if e["event_action"] == "acknowledge"]
    assert [e["dedup_key"] for e in acknowledge] == [incidents.pagerduty.events[0]["dedup_key"]]
    assert incidents.pagerduty.events[0]["event_action"] == "trigger"
    assert acknowledge[0]["dedup_key"] == incident_id  # the group's incident, one PagerDuty incident
    # The message, updated in place: no Acknowledge button any more, who acknowledged instead.
    [message] = incidents.slack.top_level()
    [update] = message.updates
    assert ack_buttons(update["blocks"]) == []
    assert "Acknowledged by ada" in json.dumps(update["blocks"])
    # Someone else clicks a stale button: a no-op naming who acknowledged first.
    body, headers = slack_request(
        block_action(incidents, "ion_ack", incident_id, user="U0GRACE", name="grace"),
        at=clock.now().timestamp() + 1,
    )
    second = post_slack(incidents, body, headers)
    assert second.status_code == 200
    assert "already acknowledged by ada" in second.get_json()["handled"][0]["detail"]
    assert get(incidents, incident_id)["acknowledged_by"] == "ada"
    assert len([e for e in incidents.pagerduty.events if e["event_action"] == "acknowledge"]) == 1


def test_forged_stale_and_replayed_slack_requests_are_refused_and_change_nothing(incidents: Fanout) -> None:
    clock = incidents.freeze()
    assert incidents.push(make_transition(severity="critical", at=clock.now())) == 200
    incident_id = only_incident(incidents)["id"]
    before = get(incidents, incident_id)
    payload = block_action(incidents, "ion_ack", incident_id)
    now = clock.now().timestamp()

    forged_body, forged_headers = slack_request(payload, at=now, secret="not-the-signing-secret")
    stale_body, stale_headers = slack_request(payload, at=now - 301)
    tampered_body, tampered_headers = slack_request(payload, at=now)
    tampered_body = tampered_body.replace(b"ada", b"eve")
    unsigned_body, _ = slack_request(payload, at=now)
    for body, headers in (
        (forged_body, forged_headers),
        (stale_body, stale_headers),
        (tampered_body, tampered_headers),
        (unsigned_body, {"Content-Type": "application/x-www-form-urlencoded"}),
    ):
        answer = post_slack(incidents, body, headers)
        assert answer.status_code == 401, answer.get_data(as_text=True)
        assert "Nothing was changed" in answer.get_json()["detail"]
    assert get(incidents, incident_id) == before
    assert [e["event_action"] for e in incidents.pagerduty.events] == ["trigger"]
    assert incidents.slack.top_level()[0].updates == []

    body, headers = slack_request(payload, at=now)
    assert post_slack(incidents, body, headers).status_code == 200
    acknowledged = get(incidents, incident_id)
    replay = post_slack(incidents, body, headers)  # the same signed request, within the 5 minutes
    assert replay.status_code == 401
    assert "replay" in replay.get_json()["detail"]
    assert get(incidents, incident_id) == acknowledged


def test_pagerduty_acknowledgement_comes_back_signed_and_is_not_sent_back(incidents: Fanout) -> None:
    clock = incidents.freeze()
    firing = make_transition(severity="critical", at=clock.now())
    assert incidents.push(firing) == 200
    incident_id = only_incident(incidents)["id"]
    key = incidents.pagerduty.events[0]["dedup_key"]  # what PagerDuty names as the incident_key
    # A secret being rotated: two signatures, the old one no longer ours.
    body, headers = pagerduty_request(
        "incident.acknowledged",
        key,
        secrets=("the-old-secret", "ChNFWnhYb3JBUzBsZW5FUk5xUVdqSmhTYz"),
    )
    answer = post_pagerduty(incidents, body, headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    incident = get(incidents, incident_id)
    assert incident["state"] == "acknowledged"
    assert incident["acknowledged_by"] == "Grace Hopper (PagerDuty)"
    assert [e["event_action"] for e in incidents.pagerduty.events] == ["trigger"]  # nothing sent back
    # PagerDuty retries what is not answered 2xx (and may disable the subscription): a signed
    # event handled before is answered as handled, and changes nothing.
    replay = post_pagerduty(incidents, body, headers)
    assert replay.status_code == 200
    assert replay.get_json()["handled"] == []
    assert "handled before" in replay.get_json()["detail"]

    resolved_body, resolved_headers = pagerduty_request(
        "incident.resolved", key, event_id="01DEN4HPBQAAAG05V5QQYBRZMG"
    )
    forged = dict(resolved_headers, **{"X-PagerDuty-Signature": "v1=" + "0" * 64})
    assert post_pagerduty(incidents, resolved_body, forged).status_code == 401
    stale_body, stale_headers = pagerduty_request(
        "incident.resolved",
        key,
        event_id="01DEN4HPBQAAAG05V5QQYBRZMH",
        occurred_at=(clock.now() - timedelta(hours=2)).isoformat(),
    )
    stale = post_pagerduty(incidents, stale_body, stale_headers)
    assert stale.status_code == 200
    assert "over an hour ago: nothing was changed" in stale.get_json()["detail"]
    assert get(incidents, incident_id)["state"] == "acknowledged"
    assert post_pagerduty(incidents, resolved_body, resolved_headers).status_code == 200
    resolved = get(incidents, incident_id)
    assert resolved["state"] == "resolved"
    assert resolved["resolved_by"] == "Grace Hopper (PagerDuty)"
    assert [e["event_action"] for e in incidents.pagerduty.events] == ["trigger"]


def test_unacknowledged_incident_escalates_on_the_fake_clock_and_ack_stops_everything(
    incidents: Fanout,
) -> None:
    clock = incidents.freeze()
    assert incidents.push(make_transition(severity="critical", at=clock.now())) == 200
    incident_id = only_incident(incidents)["id"]
    [parent] = incidents.slack.top_level()
    clock.advance(timedelta(minutes=14, seconds=59))
    assert incidents.tick()["escalated"] == []
    clock.advance(timedelta(seconds=1))  # respond_by: level 1
    assert incidents.tick()["escalated"] == [f"{incident_id}-e1"]
    assert incidents.tick()["escalated"] == []  # once
    incident = get(incidents, incident_id)
    assert incident["escalation_level"] == 1
    assert "escalated" in kinds(incident)
    [reply] = incidents.slack.replies(parent.ts)
    assert reply.reply_broadcast
    assert "@oncall-secondary" in reply.all_text()
    assert "ESCALATED (level 1)" in incidents.pagerduty.events[-1]["payload"]["summary"]
    assert incidents.pagerduty.events[-1]["dedup_key"] == incidents.pagerduty.events[0]["dedup_key"]
    clock.advance(timedelta(minutes=5))
    answer = incidents.http().post(
        f"/v1/incidents/{incident_id}/ack",
        json={"note": "looking"},
        headers={"X-Ion-Dev-Principal": "ada@example.com"},
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["changed"] is True
    # The answer says what was done (it said "note added"); the note is on the timeline too.
    assert answer.get_json()["detail"] == "acknowledged by ada@example.com"
    assert answer.get_json()["incident"]["timeline"][-1]["text"] == "looking"
    assert answer.get_json()["incident"]["acknowledged_by"] == "ada@example.com"
    sent = len(incidents.pagerduty.events)
    slack_sent = len(incidents.slack.messages)
    clock.advance(timedelta(hours=2))  # past level 2 and the 30-minute repeat
    report = incidents.tick()
    assert report["escalated"] == []
    assert report["repeats"] == []
    assert len(incidents.slack.messages) == slack_sent
    assert [e["event_action"] for e in incidents.pagerduty.events[sent - 1 :]] == ["acknowledge"]
    assert get(incidents, incident_id)["escalation_level"] == 1


def test_resolved_from_slack_with_a_note_drafts_the_review_linked_from_the_message(incidents: Fanout) -> None:
    clock = incidents.freeze()
    assert incidents.push(make_transition(severity="critical", at=clock.now())) == 200
    incident_id = only_incident(incidents)["id"]
    clock.advance(timedelta(minutes=2))
    body, headers = slack_request(
        block_action(incidents, "ion_resolve", incident_id), at=clock.now().timestamp()
    )
    answer = post_slack(incidents, body, headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    [opened] = incidents.slack.views  # the dialog asking for the note
    assert get(incidents, incident_id)["state"] == "triggered"
    view = opened["view"]
    submission = {
        "type": "view_submission",
        "user": {"id": "U024BE7LH", "username": "ada", "name": "ada"},
        "view": {
            **view,
            "id": "V00000001",
            "state": {"values": {"note": {"note": {"type": "plain_text_input", "value": "rolled back 42"}}}},
        },
    }
    clock.advance(timedelta(minutes=30))
    body, headers = slack_request(submission, at=clock.now().timestamp())
    submitted = post_slack(incidents, body, headers)
    assert submitted.status_code == 200
    assert submitted.data == b""  # an empty 200 closes Slack's dialog
    incident = get(incidents, incident_id)
    assert incident["state"] == "resolved"
    assert incident["resolved_by"] == "ada"
    resolved = next(e for e in incident["timeline"] if e["kind"] == "resolved")
    assert "rolled back 42" in resolved["text"]
    assert "review_drafted" in kinds(incident)
    assert incident["review"]["markdown"].startswith("# Post-incident review (draft)")
    review = incidents.http().get(incident["review_url"].replace("http://fanout.local", ""))
    assert review.status_code == 200
    assert review.mimetype == "text/markdown"
    assert "rolled back 42" in review.get_data(as_text=True)
    assert "time to resolve | 32 min 0 s" in review.get_data(as_text=True)
    [message] = incidents.slack.top_level()
    update = json.dumps(message.updates[-1]["blocks"])
    assert "/v1/incidents/" + incident_id + "/review" in update
    assert "Incident resolved by ada" in update
    assert "resolve" in [e["event_action"] for e in incidents.pagerduty.events]


def test_alerts_resolving_resolve_the_incident_and_the_thread_links_the_review(incidents: Fanout) -> None:
    clock = incidents.freeze()
    assert incidents.push(make_transition(severity="critical", at=clock.now())) == 200
    incident_id = only_incident(incidents)["id"]
    clock.advance(timedelta(minutes=10))
    assert incidents.push(make_transition(severity="critical", state="resolved", at=clock.now())) == 200
    incident = get(incidents, incident_id)
    assert incident["state"] == "resolved"
    assert incident["resolved_by"] == "alerts"
    assert incident["review"] is not None
    [parent] = incidents.slack.top_level()
    [reply] = incidents.slack.replies(parent.ts)
    assert f"/v1/incidents/{incident_id}/review" in reply.all_text()
    # The next firing of the same group is a new incident.
    clock.advance(timedelta(minutes=10))
    assert incidents.push(make_transition(severity="critical", at=clock.now())) == 200
    listed = incidents.http().get("/v1/incidents").get_json()
    assert len(listed) == 2
    assert listed[0]["state"] == "triggered"


def test_operator_routes_notes_resolve_and_unknown_ids(incidents: Fanout) -> None:
    clock = incidents.freeze()
    assert incidents.push(make_transition(severity="high", at=clock.now())) == 200
    incident_id = only_incident(incidents)["id"]
    iap = {"X-Ion-Dev-Principal": "grace@example.com"}  # the caller, as the dev stack names it
    note = incidents.http().post(
        f"/v1/incidents/{incident_id}/notes", json={"text": "db failover"}, headers=iap
    )
    assert note.status_code == 200
    entry = note.get_json()["incident"]["timeline"][-1]
    assert (entry["kind"], entry["by"], entry["text"]) == ("note", "grace@example.com", "db failover")
    assert incidents.http().post(f"/v1/incidents/{incident_id}/notes", json={"text": ""}).status_code == 422
    done = incidents.http().post(f"/v1/incidents/{incident_id}/resolve", headers=iap)
    assert done.status_code == 200
    assert done.get_json()["incident"]["state"] == "resolved"
    again = incidents.http().post(f"/v1/incidents/{incident_id}/ack", headers=iap)
    assert again.status_code == 200
    assert again.get_json()["changed"] is False
    assert "already resolved by grace@example.com" in again.get_json()["detail"]
    missing = "critical-" + "0" * 24 + "-i1"
    assert incidents.http().get(f"/v1/incidents/{missing}").status_code == 404
    assert incidents.http().post(f"/v1/incidents/{missing}/ack").status_code == 404
    assert incidents.http().get("/v1/incidents/not-an-id").status_code == 404


def test_silence_button_silences_the_group_for_an_hour(incidents: Fanout) -> None:
    clock = incidents.freeze()
    assert incidents.push(make_transition(severity="critical", at=clock.now())) == 200
    incident_id = only_incident(incidents)["id"]
    body, headers = slack_request(
        block_action(incidents, "ion_silence_1h", incident_id), at=clock.now().timestamp()
    )
    assert post_slack(incidents, body, headers).status_code == 200
    [silence] = incidents.http().get("/v1/silences?state=active").get_json()
    assert silence["createdBy"] == "ada"
    assert {m["name"]: m["value"] for m in silence["matchers"]}["service"] == "persona-router"
    assert "silenced for 1 h" in get(incidents, incident_id)["timeline"][-1]["text"]


def test_concurrent_acknowledgements_apply_once(incidents: Fanout) -> None:
    from functions.fanout.incident_actions import acknowledge_incident

    clock = incidents.freeze()
    assert incidents.push(make_transition(severity="critical", at=clock.now())) == 200
    incident_id = only_incident(incidents)["id"]
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda who=who: results.append(acknowledge_incident(incident_id, who, "api")))
        for who in ("ada", "grace", "linus", "barbara")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sum(r.change.changed for r in results) == 1
    winner = next(r for r in results if r.change.changed).incident.acknowledged_by
    assert all(winner in r.change.detail for r in results if not r.change.changed)
    assert kinds(get(incidents, incident_id)).count("acknowledged") == 1
    assert [e["event_action"] for e in incidents.pagerduty.events].count("acknowledge") == 1


def test_without_slack_and_pagerduty_the_outbox_shows_the_button_and_the_acknowledge(
    incidents: Fanout,
) -> None:
    import os

    from tests.fanout.conftest import reset_fanout_caches

    for name in ("SLACK_BOT_TOKEN", "SLACK_CHANNEL", "PAGERDUTY_ROUTING_KEY"):
        os.environ.pop(name, None)
    reset_fanout_caches()
    clock = incidents.freeze()
    assert incidents.push(make_transition(severity="critical", at=clock.now())) == 200
    incident_id = only_incident(incidents)["id"]
    record = next(r for r in incidents.outbox_records() if r["instead_of"] == "slack")
    [button] = ack_buttons(record["slack_blocks"])
    assert button["value"] == incident_id
    assert record["notification"]["incident_id"] == incident_id
    assert incidents.slack.messages == []
    assert incidents.http().post(f"/v1/incidents/{incident_id}/ack").status_code == 200
    records = incidents.outbox_records()
    trigger = next(r for r in records if r.get("instead_of") == "pagerduty" and "notification" in r)
    [ack] = [r for r in records if r.get("incident_id") == incident_id]
    assert ack["instead_of"] == "pagerduty"
    assert trigger["notification"]["pagerduty_key"] == incident_id
    assert ack["events"] == [{"event_action": "acknowledge", "dedup_key": incident_id}]
    assert "logged instead" in get(incidents, incident_id)["timeline"][-1]["text"]
    assert incidents.pagerduty.events == []
