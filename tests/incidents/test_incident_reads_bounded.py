"""Incidents are kept 400 days after they resolve, so the collection grows with every incident: a
read of them must not grow with it. On the served fan-out (functions-framework app, Firestore
emulator): listing by state or priority reads the page asked for (before, every incident of that
state or priority was loaded and sorted here: resolved ones by the thousand after a year), and a
PagerDuty webhook reads the open incidents, a few (before, every incident its alert ever opened,
resolved ones too)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.fanout.incident_policy import DEFAULT_POLICY_FILE, load_policy
from functions.fanout.incident_record import Incident
from functions.fanout.incident_store import INCIDENTS, incident_document
from functions.fanout.incidents import open_incident, resolve
from tests.fanout.conftest import Fanout, make_transition
from tests.incidents.conftest import pagerduty_request

pytestmark = pytest.mark.emulators

POLICY = load_policy(DEFAULT_POLICY_FILE)
KEPT = 240  # resolved incidents in the store (a few months of them)


def past_incident(n: int, at: datetime, *, severity: str, service: str, resolved: bool) -> Incident:
    firing = make_transition(severity=severity, service=service, at=at)
    group_id = f"{severity}-{n:024x}"
    incident = open_incident(
        f"{group_id}-i1",
        group_id=group_id,
        severity=severity,  # type: ignore[arg-type]
        group_labels={"rule": firing.rule, "service": service},
        firing=[firing],
        now=at,
        policy=POLICY,
    )
    if resolved:
        resolve(incident, "ada", at + timedelta(hours=1), POLICY)
    return incident


def store(fs: Any, incidents: list[Incident]) -> None:
    for start in range(0, len(incidents), 400):
        batch = fs.batch()
        for incident in incidents[start : start + 400]:
            batch.set(fs.collection(INCIDENTS).document(incident.id), incident_document(incident))
        batch.commit()


def listed(fanout: Fanout, query: str) -> list[str]:
    answer = fanout.http().get(f"/v1/incidents?{query}")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return [item["id"] for item in answer.get_json()]


def test_listing_by_state_or_priority_reads_the_page_not_every_incident_kept(
    fanout: Fanout, fs: Any, query_reads: list[int]
) -> None:
    now = datetime.now(UTC)
    severities = ["critical", "high"]  # P1, P2
    past = [
        past_incident(
            n, now - timedelta(days=n + 1), severity=severities[n % 2], service=f"s{n}", resolved=True
        )
        for n in range(KEPT)
    ]
    open_ones = [
        past_incident(KEPT + n, now - timedelta(hours=n + 1), severity="high", service="o", resolved=False)
        for n in range(2)
    ]
    store(fs, [*past, *open_ones])
    newest_first = sorted(past, key=lambda i: i.opened_at, reverse=True)

    query_reads[0] = 0
    assert listed(fanout, "state=resolved&limit=5") == [i.id for i in newest_first[:5]]
    assert query_reads[0] <= 5

    query_reads[0] = 0
    p1 = [i.id for i in newest_first if i.priority == "P1"]
    assert listed(fanout, "priority=P1&limit=3") == p1[:3]
    assert query_reads[0] <= 3

    query_reads[0] = 0
    p2 = [
        i.id
        for i in sorted([*past, *open_ones], key=lambda i: i.opened_at, reverse=True)
        if i.priority == "P2"
    ]
    assert listed(fanout, "priority=P2&limit=4") == p2[:4]  # the open ones first: newest
    assert query_reads[0] <= 4

    query_reads[0] = 0
    since = (now - timedelta(days=11)).isoformat().replace("+00:00", "Z")
    resolved_p2 = [
        i.id for i in newest_first if i.priority == "P2" and i.opened_at >= now - timedelta(days=11)
    ]
    assert listed(fanout, f"state=resolved&priority=P2&since={since}&limit=100") == resolved_p2
    assert query_reads[0] <= len(resolved_p2)

    assert listed(fanout, "state=triggered") == [i.id for i in open_ones]


def test_a_pagerduty_webhook_reads_the_open_incidents_not_every_one_its_alert_opened(
    incidents: Fanout, fs: Any, query_reads: list[int]
) -> None:
    now = datetime.now(UTC)
    # One alert that fired and resolved every day for months: an incident each time, all kept.
    past = [
        past_incident(n, now - timedelta(days=n + 1), severity="critical", service="flappy", resolved=True)
        for n in range(KEPT)
    ]
    current = past_incident(
        KEPT, now - timedelta(minutes=5), severity="critical", service="flappy", resolved=False
    )
    elsewhere = past_incident(
        KEPT + 1, now - timedelta(minutes=9), severity="high", service="other", resolved=False
    )
    store(fs, [*past, current, elsewhere])
    [fingerprint] = current.fingerprints
    assert all(i.fingerprints == [fingerprint] for i in past)

    query_reads[0] = 0
    body, headers = pagerduty_request("incident.acknowledged", fingerprint)
    answer = incidents.http().post("/v1/pagerduty/webhooks", data=body, headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert [h["incident_id"] for h in answer.get_json()["handled"]] == [current.id]
    assert query_reads[0] <= 2  # the two open incidents
    stored = fs.collection(INCIDENTS).document(current.id).get().to_dict()
    assert stored["state"] == "acknowledged"
