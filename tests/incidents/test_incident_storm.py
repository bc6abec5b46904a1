"""A critical storm's incident stays within one Firestore document (1 MiB). The group's alerts are
announced over several flushes (a notification carries what fits), and each flush joins its
alerts to the group's incident in the same transaction: before, the incident kept every alert
whole (summary, values, runbook), so past a few hundred alerts of realistic size its document
outgrew the limit, every later flush of the group failed, and the rest of the storm was never
announced. Now it lists the first alerts and keeps the others' fingerprints (PagerDuty's webhooks
name them) and which of them still fire, so it still resolves by itself when the last one does."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from functions.fanout.incident_record import MAX_LISTED_ALERTS
from functions.fanout.records import NOTIFICATIONS
from shared.messages import AlertTransition
from tests.fanout.conftest import Fanout, make_transition

pytestmark = pytest.mark.emulators

STORM = 450
# The default rules' runbook for errors: twelve steps, copied with every alert of the rule.
RUNBOOK = [f"Step {n}: check the error tracker, the regions, the database and the deploys" for n in range(12)]
FIRESTORE_DOCUMENT_BYTES = 1_048_576


def storm_alert(index: int, at: Any, state: str = "firing") -> AlertTransition:
    alert = make_transition(severity="critical", endpoint=f"/e{index:04d}", state=state, at=at)
    # An 800-byte summary: the storm notification_size.py was written for.
    summary = f"5xx on /e{index:04d}: " + "x" * 800
    return alert.model_copy(update={"annotations": {"summary": summary}, "runbook": RUNBOOK})


def stored_bytes(document: dict[str, Any]) -> int:
    """Firestore's count of a document's size: field names and values, as its docs define it."""

    def size(value: Any) -> int:
        if isinstance(value, dict):
            return sum(len(k.encode()) + 1 + size(v) for k, v in value.items())
        if isinstance(value, list):
            return sum(size(v) for v in value)
        if isinstance(value, str):
            return len(value.encode()) + 1
        return 8

    return size(document) + 16


def drain(fanout: Fanout) -> None:
    """Ticks until the group has nothing pending (a minute apart: group_interval)."""
    for _ in range(12):
        fanout.advance(timedelta(minutes=1))
        report = fanout.tick()
        assert report["errors"] == 0, report
        if not report["flushed"]:
            return
    raise AssertionError("the group kept flushing")


def test_a_critical_storms_incident_stays_in_one_document_and_every_alert_goes_out(
    fanout: Fanout, fs: Any
) -> None:
    clock = fanout.freeze()
    alerts = [storm_alert(i, clock.now()) for i in range(STORM)]
    for alert in alerts:
        assert fanout.push(alert) == 200
    drain(fanout)

    stored = [snap.to_dict() for snap in fs.collection(NOTIFICATIONS).stream()]
    announced = [a["fingerprint"] for doc in stored for a in doc["notification"]["alerts"]]
    assert sorted(announced) == sorted(a.fingerprint for a in alerts)  # each once, none left behind

    [incident] = fanout.http().get("/v1/incidents").get_json()
    document = fs.collection("incidents").document(incident["id"]).get().to_dict()
    assert stored_bytes(document) < FIRESTORE_DOCUMENT_BYTES * 0.9
    assert len(document["alerts"]) == MAX_LISTED_ALERTS
    assert sorted(document["fingerprints"]) == sorted(a.fingerprint for a in alerts)
    assert len(document["unlisted_firing"]) == STORM - MAX_LISTED_ALERTS

    # All but one resolve (listed and unlisted): the incident stays open for the last one.
    clock.advance(timedelta(minutes=5))
    last = alerts[-1]
    for alert in alerts[:-1]:
        assert fanout.push(storm_alert(alerts.index(alert), clock.now(), "resolved")) == 200
    drain(fanout)
    document = fs.collection("incidents").document(incident["id"]).get().to_dict()
    assert document["state"] != "resolved"
    assert document["unlisted_firing"] == [last.fingerprint]

    # The last one resolves: so does the incident, with its review drafted, still one document.
    clock.advance(timedelta(minutes=5))
    assert fanout.push(storm_alert(STORM - 1, clock.now(), "resolved")) == 200
    drain(fanout)
    document = fs.collection("incidents").document(incident["id"]).get().to_dict()
    assert (document["state"], document["resolved_by"]) == ("resolved", "alerts")
    assert document["review"] is not None
    assert f"{STORM - MAX_LISTED_ALERTS} more alerts" in document["review"]["markdown"]
    assert stored_bytes(document) < FIRESTORE_DOCUMENT_BYTES * 0.9
