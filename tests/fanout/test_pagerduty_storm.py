"""PagerDuty in a storm, at its rate limit of 120 events a minute per routing key (429 without
Retry-After past it). A group of 500 alerts is one PagerDuty incident, its notification one event:
nothing comes near the limit. What still can: more than 120 groups changing in one minute (their
events past the 120th are dead-lettered and re-driven the next minute, each once), and an incident
or notification of the previous version, per alert (a 500-alert notification re-driven over five
minutes, a 300-alert acknowledgement over three ticks, as before)."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.fanout.channels.base import DeliveryFailed, Retrier
from functions.fanout.channels.pagerduty import DETAILED_ALERTS, PagerDutyChannel
from functions.fanout.incident_record import Incident, PagerDutySync
from functions.fanout.incident_store import MemoryIncidentStore, get_store, use_store
from functions.fanout.models import Notification
from functions.fanout.settings import FanoutSettings
from shared.messages import AlertTransition
from tests.fanout.conftest import Fanout, make_transition, reset_fanout_caches
from tests.fanout.pagerduty_standin import MAX_EVENT_BYTES, PagerDutyStandIn

AT = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.fixture
def limited(pagerduty: PagerDutyStandIn) -> Iterator[PagerDutyStandIn]:
    os.environ.update({"PAGERDUTY_ROUTING_KEY": pagerduty.routing_key, "PAGERDUTY_EVENTS_URL": pagerduty.url})
    reset_fanout_caches()
    pagerduty.events_per_window = 120
    yield pagerduty
    for name in ("PAGERDUTY_ROUTING_KEY", "PAGERDUTY_EVENTS_URL"):
        os.environ.pop(name, None)
    reset_fanout_caches()


class DictJournal:
    def __init__(self) -> None:
        self.sent: dict[str, dict[str, Any]] = {}

    def accepted(self, step: str) -> dict[str, Any] | None:
        return self.sent.get(step)

    def record(self, step: str, answer: dict[str, Any]) -> None:
        self.sent[step] = answer


def storm_alert(index: int, *, fat: bool = False) -> AlertTransition:
    """One alert of a group (rule, service, region); ``fat``: a kilobyte summary and 30 labels of
    600 characters, the worst a PagerDuty event may be asked to carry."""
    alert = make_transition(endpoint=f"/e{index:03d}", at=AT)
    if not fat:
        return alert
    labels = {**alert.labels, **{f"label_{n:02d}": "v" * 600 for n in range(30)}}
    return alert.model_copy(update={"labels": labels, "annotations": {"summary": "s" * 1000}})


def storm_notification(alerts: list[AlertTransition], key: str = "critical-storm-i1") -> Notification:
    return Notification(
        notification_id=f"{key}-n1",
        kind="notify",
        group_id=key.removesuffix("-i1"),
        group_labels={"rule": "p95-latency", "service": "persona-router", "region": "us-central1"},
        severity="critical",
        alerts=alerts,
        created_at=AT,
        incident_id=key,
        pagerduty_key=key,
        group_firing=len(alerts),
    )


def deliver_until_through(
    channel: PagerDutyChannel, notification: Notification, limited: PagerDutyStandIn, journal: DictJournal
) -> list[DeliveryFailed]:
    """The first delivery, then the dead-letter store's re-drives a minute apart; the failures."""
    failures: list[DeliveryFailed] = []
    while True:
        retrier = Retrier(max_attempts=4, budget_seconds=20, base_delay=0.01, max_delay=0.05, journal=journal)
        try:
            channel.send(notification, retrier)
            return failures
        except DeliveryFailed as exc:
            failures.append(exc)
        limited.next_window()  # a minute later


@pytest.mark.parametrize("fat", [False, True])
def test_a_group_of_500_alerts_is_one_event_and_one_pagerduty_incident(
    limited: PagerDutyStandIn, fat: bool
) -> None:
    notification = storm_notification([storm_alert(i, fat=fat) for i in range(500)])
    failures = deliver_until_through(PagerDutyChannel(FanoutSettings()), notification, limited, DictJournal())
    assert failures == []
    assert limited.throttled == 0  # one event: nowhere near 120 a minute
    [event] = limited.events
    assert (event["event_action"], event["dedup_key"]) == ("trigger", "critical-storm-i1")
    assert event["payload"]["summary"].startswith("[FIRING:500] p95-latency (service=persona-router")
    details = event["payload"]["custom_details"]
    assert (details["firing"], details["resolved"]) == (500, 0)
    shown = len(details["alerts"])
    assert 0 < shown <= DETAILED_ALERTS
    assert details["alerts_not_shown"] == 500 - shown
    assert len(json.dumps(event)) < MAX_EVENT_BYTES / 4  # well under PagerDuty's 512 KB
    [incident] = limited.incidents
    assert (incident.dedup_key, incident.status) == ("critical-storm-i1", "triggered")


def test_a_storm_through_the_pipeline_is_one_pagerduty_incident_resolved_once(fanout: Fanout) -> None:
    """500 alerts of one group pushed as Pub/Sub would: the first is announced at once (critical
    has no group_wait), the 499 others together a group_interval later, each announcement one
    event; all but one resolve: no resolve; the last one: one resolve."""
    fanout.pagerduty.events_per_window = 120
    clock = fanout.freeze()
    alerts = [make_transition(endpoint=f"/e{i:03d}", at=clock.now()) for i in range(500)]
    for alert in alerts:
        assert fanout.push(alert) == 200
    clock.advance(timedelta(minutes=1))
    fanout.tick()
    [incident] = fanout.http().get("/v1/incidents").get_json()
    assert [(e["event_action"], e["dedup_key"]) for e in fanout.pagerduty.events] == [
        ("trigger", incident["id"])
    ] * 2
    assert fanout.pagerduty.events[-1]["payload"]["summary"].startswith("[FIRING:500] ")
    assert fanout.pagerduty.throttled == 0

    clock.advance(timedelta(minutes=5))
    resolved = [make_transition(endpoint=f"/e{i:03d}", state="resolved", at=clock.now()) for i in range(500)]
    for alert in resolved[:-1]:
        assert fanout.push(alert) == 200
    clock.advance(timedelta(minutes=1))
    fanout.tick()
    assert [e["event_action"] for e in fanout.pagerduty.events].count("resolve") == 0
    assert fanout.pagerduty.events[-1]["payload"]["summary"].startswith("[FIRING:1] ")
    clock.advance(timedelta(minutes=1))
    assert fanout.push(resolved[-1]) == 200
    fanout.tick()
    actions = [(e["event_action"], e["dedup_key"]) for e in fanout.pagerduty.events]
    assert actions[-1] == ("resolve", incident["id"])
    assert len(actions) <= 5  # 2 triggers, 1-2 updates as the resolves came in, 1 resolve
    assert len(fanout.pagerduty.incidents) == 1
    assert fanout.pagerduty.open_incidents() == []


def test_past_the_rate_limit_more_than_120_groups_in_a_minute_are_re_driven_each_once(
    limited: PagerDutyStandIn,
) -> None:
    channel = PagerDutyChannel(FanoutSettings())
    notifications = [storm_notification([storm_alert(0)], key=f"critical-g{g:03d}-i1") for g in range(150)]
    late: list[tuple[Notification, DeliveryFailed]] = []
    for notification in notifications:  # one minute: 150 groups' first notifications
        retrier = Retrier(
            max_attempts=4, budget_seconds=1, base_delay=0.01, max_delay=0.05, journal=DictJournal()
        )
        try:
            channel.send(notification, retrier)
        except DeliveryFailed as exc:
            late.append((notification, exc))
    assert len(late) == 30
    assert all(exc.retryable and "429" in exc.reason for _, exc in late)  # re-driven by itself
    limited.next_window()  # the re-drives, a minute later
    for notification, _ in late:
        assert deliver_until_through(channel, notification, limited, DictJournal()) == []
    keys = Counter(e["dedup_key"] for e in limited.events)
    assert len(keys) == 150
    assert set(keys.values()) == {1}  # every group's trigger once


def test_a_previous_version_notification_of_500_alerts_still_goes_per_alert_over_re_drives(
    limited: PagerDutyStandIn,
) -> None:
    """Stored by the previous version (no ``pagerduty_key``) and re-driven by this one: one event
    per alert as it was sent, 120 a minute, each once."""
    alerts = [make_transition(service=f"svc-{i:03d}", at=AT) for i in range(500)]
    notification = Notification.model_validate(
        {
            "notification_id": "n-storm",
            "kind": "notify",
            "group_id": "g",
            "group_labels": {},
            "severity": "critical",
            "alerts": [a.model_dump(mode="json") for a in alerts],
            "created_at": AT.isoformat(),
        }
    )
    channel = PagerDutyChannel(FanoutSettings())
    failures = deliver_until_through(channel, notification, limited, DictJournal())
    assert all(f.retryable and "429" in f.reason for f in failures)  # re-driven by itself, not dropped
    assert len(failures) == 4  # 120 a minute: 500 events in the fifth minute
    keys = Counter(e["dedup_key"] for e in limited.events)
    assert len(keys) == 500
    assert set(keys.values()) == {1}  # every alert once, none again


def acknowledged_incident(incident_id: str, fingerprints: list[str]) -> Incident:
    """An incident the previous version opened (no ``pagerduty_key``: one PagerDuty incident per
    alert), acknowledged at ``AT``, whose acknowledgement PagerDuty is still to be told of."""
    return Incident(
        id=incident_id,
        priority="P1",
        severity="critical",
        state="acknowledged",
        title=f"[CRITICAL] {incident_id}",
        group_key="g",
        opened_at=AT,
        respond_by=AT + timedelta(minutes=15),
        resolve_by=AT + timedelta(hours=4),
        fingerprints=fingerprints,
        pagerduty_sync=[
            PagerDutySync(action="acknowledge", key="acknowledge", requested_at=AT, next_attempt_at=AT)
        ],
        pagerduty_sync_at=AT,
    )


@pytest.fixture
def memory_store() -> Iterator[MemoryIncidentStore]:
    store = MemoryIncidentStore()
    use_store(store)
    yield store
    use_store(None)


def test_an_acknowledgement_of_300_alerts_goes_on_from_where_the_rate_limit_cut_it(
    limited: PagerDutyStandIn, memory_store: MemoryIncidentStore
) -> None:
    from functions.fanout.pagerduty_sync import sync_due, sync_incident

    fingerprints = [f"fp-{i:03d}" for i in range(300)]
    incident = acknowledged_incident("i-storm", fingerprints)
    memory_store.create(incident)
    assert sync_incident(incident.id, AT, seconds=20, due_only=False) == []  # 120, then 429
    now = AT
    for _ in range(5):
        now += timedelta(minutes=1)
        limited.next_window()
        if sync_due(now):
            break
    stored = get_store().get(incident.id)
    assert stored is not None
    assert stored.pagerduty_sync == []
    texts = [e.text or "" for e in stored.timeline]
    assert any(t.startswith("PagerDuty acknowledge sent for 300 alert(s)") for t in texts), texts
    assert any("pending (120 of 300 alert(s) taken)" in t for t in texts), texts
    keys = Counter(e["dedup_key"] for e in limited.events)
    assert set(keys) == set(fingerprints)
    assert set(keys.values()) == {1}
    assert now - AT == timedelta(minutes=2)  # three tries, a minute apart


@pytest.mark.parametrize(("seconds", "lease"), [(1.5, 120), (300, 330)])
def test_a_claim_lasts_as_long_as_its_attempt_may_take(
    memory_store: MemoryIncidentStore, monkeypatch: pytest.MonkeyPatch, seconds: float, lease: float
) -> None:
    """A tick's attempt may take the whole retry budget (up to 300 s): its claim outlasts it, so
    no second sender starts on the same request while the first may still be sending."""
    from functions.fanout import pagerduty_sync

    incident = acknowledged_incident("i-slow", ["fp-1"])
    memory_store.create(incident)
    during: list[datetime | None] = []
    second_sender: list[bool] = []

    def attempt(incident: Incident, entry: PagerDutySync, deadline: float) -> pagerduty_sync.Attempt:
        during.append(get_store().get(incident.id).pagerduty_sync[0].claimed_until)  # type: ignore[union-attr]
        # Another instance, 150 s into this attempt (past the 2-minute floor):
        second_sender.append(pagerduty_sync._claim(incident.id, entry.key, AT + timedelta(seconds=150)))
        return pagerduty_sync.Attempt("sent", taken=("fp-1",))

    monkeypatch.setattr(pagerduty_sync, "_attempt", attempt)
    pagerduty_sync.sync_incident(incident.id, AT, seconds=seconds, due_only=False)
    assert during == [AT + timedelta(seconds=lease)]
    assert second_sender == [lease < 150]
