"""An alert that fires for longer than fan-out keeps its records (30 days) is still resolved where
it was paged. Firestore's TTL deletes a document once its ``expire_at`` has passed; an alert's
record (``fanout_alerts``) was given one 30 days after its last transition, firing or not, so a
month-long firing alert lost it: its resolve then found no record saying receivers were told it
fires and went out to nobody (``unannounced``), leaving the PagerDuty incident open for good. The
emulator runs no TTL, so these tests delete what it would have deleted, day by day."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from functions.fanout.models import doc_id
from functions.fanout.records import ALERTS, TRANSITIONS
from tests.fanout.conftest import Fanout, make_transition

pytestmark = pytest.mark.emulators

TOPOLOGY = Path(__file__).resolve().parents[2] / "topology.yaml"


def sweep_expired(fs: Any, now: datetime) -> int:
    """What Firestore's TTL policies (topology.yaml) delete by ``now``: documents whose TTL field
    holds a time that has passed (a missing or null one is never deleted)."""
    policies = yaml.safe_load(TOPOLOGY.read_text())["ttl_policies"]
    deleted = 0
    for policy in policies:
        for snap in fs.collection(policy["collection"]).stream():
            expire_at = (snap.to_dict() or {}).get(policy["field"])
            if isinstance(expire_at, datetime) and expire_at <= now:
                snap.reference.delete()
                deleted += 1
    return deleted


def test_an_alert_firing_for_five_weeks_is_still_resolved_at_pagerduty(fanout: Fanout, fs: Any) -> None:
    clock = fanout.freeze()
    firing = make_transition(severity="critical", at=clock.now())
    assert fanout.push(firing) == 200
    fanout.tick()
    assert [e["event_action"] for e in fanout.pagerduty.events] == ["trigger"]
    record = fs.collection(ALERTS).document(doc_id(firing.fingerprint))
    assert record.get().to_dict()["expire_at"] is None  # kept while it fires
    # As a record stored before this was (30 days after the transition): the repeats keep it.
    record.update({"expire_at": clock.now() + timedelta(days=30)})

    swept = 0
    for _ in range(35):  # the tick runs every minute; a day apart is enough for its repeats
        fanout.advance(timedelta(days=1))
        fanout.tick()
        swept += sweep_expired(fs, clock.now())
    assert swept > 0  # the first day's transition, notification... are gone, as in production
    assert record.get().to_dict()["expire_at"] is None

    resolved = make_transition(severity="critical", state="resolved", at=clock.now())
    assert fanout.push(resolved) == 200
    fanout.tick()
    outcome = fs.collection(TRANSITIONS).document(doc_id(resolved.transition_id)).get().to_dict()
    assert outcome["outcome"] == "notified"
    resolves = [e for e in fanout.pagerduty.events if e["event_action"] == "resolve"]
    [incident] = fanout.http().get("/v1/incidents").get_json()
    assert [e["dedup_key"] for e in resolves] == [incident["id"]]
    assert (incident["state"], incident["resolved_by"]) == ("resolved", "alerts")


def test_a_resolved_alerts_record_still_expires(fanout: Fanout, fs: Any) -> None:
    clock = fanout.freeze()
    assert fanout.push(make_transition(severity="medium", at=clock.now())) == 200
    fanout.advance(timedelta(minutes=1))
    fanout.tick()
    fanout.advance(timedelta(minutes=5))
    resolved = make_transition(severity="medium", state="resolved", at=clock.now())
    assert fanout.push(resolved) == 200
    fanout.advance(timedelta(minutes=10))
    fanout.tick()
    record = fs.collection(ALERTS).document(doc_id(resolved.fingerprint)).get().to_dict()
    assert record["state"] == "resolved"
    assert record["expire_at"] == clock.now() - timedelta(minutes=10) + timedelta(days=30)


def test_an_alert_firing_for_five_weeks_is_resolved_in_its_first_slack_message(
    fanout: Fanout, fs: Any
) -> None:
    # Its message's thread references were kept 30 days from the first post: the repeat after that
    # posted a new message, the resolve went there, and the first kept saying FIRING.
    clock = fanout.freeze()
    firing = make_transition(severity="critical", at=clock.now())
    assert fanout.push(firing) == 200
    fanout.tick()
    [first] = fanout.slack.top_level()
    for _ in range(35):
        fanout.advance(timedelta(days=1))
        fanout.tick()  # the day's repeat, broadcast in the thread
        sweep_expired(fs, clock.now())

    resolved = make_transition(severity="critical", state="resolved", at=clock.now())
    assert fanout.push(resolved) == 200
    fanout.tick()
    assert [m.ts for m in fanout.slack.top_level()] == [first.ts]  # no second message
    replies = fanout.slack.replies(first.ts)
    assert len(replies) >= 35  # every repeat and the resolve in its thread
    assert "RESOLVED" in replies[-1].all_text().upper()
    # The message itself re-rendered resolved (chat.update).
    assert "RESOLVED" in json.dumps(fanout.slack.find(first.ts).updates[-1]["blocks"])
