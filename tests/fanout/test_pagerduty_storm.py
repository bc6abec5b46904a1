"""PagerDuty in a storm, at its rate limit of 120 events a minute per routing key (429 without
Retry-After past it): a group's 500 triggers and an incident's 300 acknowledgements each get
through within a few minutes, every event once, none lost."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.fanout.channels.base import DeliveryFailed, Retrier
from functions.fanout.channels.pagerduty import PagerDutyChannel
from functions.fanout.incident_record import Incident, PagerDutySync
from functions.fanout.incident_store import MemoryIncidentStore, get_store, use_store
from functions.fanout.models import Notification
from functions.fanout.settings import FanoutSettings
from tests.fanout.conftest import make_transition, reset_fanout_caches
from tests.fanout.pagerduty_standin import PagerDutyStandIn

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


def test_a_group_of_500_triggers_goes_through_over_re_drives_each_event_once(
    limited: PagerDutyStandIn,
) -> None:
    alerts = [make_transition(service=f"svc-{i:03d}", at=AT) for i in range(500)]
    notification = Notification(
        notification_id="n-storm",
        kind="notify",
        group_id="g",
        group_labels={},
        severity="critical",
        alerts=alerts,
        created_at=AT,
    )
    channel = PagerDutyChannel(FanoutSettings())
    journal = DictJournal()
    failures: list[DeliveryFailed] = []
    while True:  # the first delivery, then the dead-letter store's re-drives
        retrier = Retrier(max_attempts=4, budget_seconds=20, base_delay=0.01, max_delay=0.05, journal=journal)
        try:
            channel.send(notification, retrier)
            break
        except DeliveryFailed as exc:
            failures.append(exc)
        limited.next_window()  # a minute later
    assert all(f.retryable and "429" in f.reason for f in failures)  # re-driven by itself, not dropped
    assert len(failures) == 4  # 120 a minute: 500 events in the fifth minute
    keys = Counter(e["dedup_key"] for e in limited.events)
    assert len(keys) == 500
    assert set(keys.values()) == {1}  # every alert once, none again


def acknowledged_incident(incident_id: str, fingerprints: list[str]) -> Incident:
    """An incident acknowledged at ``AT`` whose acknowledgement PagerDuty is still to be told of."""
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
