"""The incident store port: the Firestore implementation (emulator) and the memory one behave the
same (create once, change in a transaction, filters, lookups by alert and by due escalation)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.fanout.incident_policy import DEFAULT_POLICY_FILE, load_policy
from functions.fanout.incident_record import Incident
from functions.fanout.incident_store import FirestoreIncidentStore, IncidentStore, MemoryIncidentStore
from functions.fanout.incidents import acknowledge, open_incident
from tests.fanout.conftest import make_transition

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
POLICY = load_policy(DEFAULT_POLICY_FILE)


def incident(n: int, severity: str, at: datetime) -> Incident:
    firing = make_transition(severity=severity, service=f"svc-{n}", at=at)
    return open_incident(
        f"{severity}-{n:024x}-i1",
        group_id=f"{severity}-{n:024x}",
        severity=severity,  # type: ignore[arg-type]
        group_labels={"rule": "p95-latency", "service": f"svc-{n}"},
        firing=[firing],
        now=at,
        policy=POLICY,
    )


@pytest.fixture(params=["memory", "firestore"])
def store(request: Any) -> IncidentStore:
    if request.param == "firestore":
        request.getfixturevalue("fs")
        return FirestoreIncidentStore()
    return MemoryIncidentStore()


def test_the_store_behaves_the_same_in_firestore_and_in_memory(store: IncidentStore) -> None:
    first = incident(1, "critical", T0)
    second = incident(2, "high", T0 + timedelta(minutes=5))
    third = incident(3, "medium", T0 + timedelta(minutes=10))
    for item in (first, second, third):
        assert store.create(item)[1] is True
    again, created = store.create(incident(1, "critical", T0 + timedelta(hours=1)))
    assert created is False
    assert again.opened_at == T0  # the stored one, untouched

    done = store.change(first.id, lambda i: acknowledge(i, "ada", T0 + timedelta(minutes=3)))
    assert done is not None
    assert done[1].changed
    noop = store.change(first.id, lambda i: acknowledge(i, "grace", T0 + timedelta(minutes=4)))
    assert noop is not None
    assert not noop[1].changed
    assert "ada" in noop[1].detail
    assert store.change("critical-" + "f" * 24 + "-i9", lambda i: acknowledge(i, "x", T0)) is None
    stored = store.get(first.id)
    assert stored is not None
    assert stored.acknowledged_by == "ada"

    def ids(**filters: Any) -> list[str]:
        query = {"state": None, "priority": None, "since": None, "limit": 100} | filters
        return [i.id for i in store.list(**query)]

    assert ids() == [third.id, second.id, first.id]  # newest first
    assert ids(state="acknowledged") == [first.id]
    assert ids(state="triggered") == [third.id, second.id]
    assert ids(priority="P2") == [second.id]
    assert ids(since=T0 + timedelta(minutes=5)) == [third.id, second.id]
    assert ids(state="triggered", since=T0 + timedelta(minutes=6)) == [third.id]
    assert ids(limit=1) == [third.id]

    assert [i.id for i in store.open_with_pagerduty_key(second.fingerprints[0])] == [second.id]
    # P2's first step is at respond_by (1 h); P3 has none; the acknowledged P1 none any more.
    assert [i.id for i in store.due_escalations(T0 + timedelta(hours=2))] == [second.id]
    assert store.due_escalations(T0 + timedelta(minutes=30)) == []


def test_a_resolved_incident_expires_after_the_kept_days_and_an_open_one_never(fs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from functions.fanout.incidents import resolve
    from functions.fanout.settings import FanoutSettings, get_fanout_settings

    store = FirestoreIncidentStore()
    kept, open_one = incident(1, "critical", T0), incident(2, "high", T0)
    store.create(kept)
    store.create(open_one)
    store.change(kept.id, lambda i: resolve(i, "ada", T0 + timedelta(hours=2), POLICY))

    def stored(incident_id: str) -> dict[str, Any]:
        return fs.collection("incidents").document(incident_id).get().to_dict()

    assert stored(kept.id)["expire_at"] == T0 + timedelta(hours=2) + timedelta(days=400)
    assert "expire_at" not in stored(open_one.id)
    assert store.get(kept.id) is not None  # the expiry is the store's, not the incident's

    monkeypatch.setenv("ION_INCIDENTS_KEEP_DAYS", "120")
    get_fanout_settings.cache_clear()
    try:
        store.change(open_one.id, lambda i: resolve(i, "ada", T0 + timedelta(hours=3), POLICY))
        assert stored(open_one.id)["expire_at"] == T0 + timedelta(hours=3) + timedelta(days=120)
        monkeypatch.setenv("ION_INCIDENTS_KEEP_DAYS", "30")  # shorter than a quarter's report
        with pytest.raises(ValidationError, match="ION_INCIDENTS_KEEP_DAYS"):
            FanoutSettings()
    finally:
        get_fanout_settings.cache_clear()
