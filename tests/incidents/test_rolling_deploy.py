"""An incident a newer fan-out wrote, read and changed by an older instance during a deploy, on
the emulator: it is read (a timeline kind it does not know is no failure) and what the newer
version added survives the older one's write (``shared/compat.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from functions.fanout.incident_policy import DEFAULT_POLICY_FILE, load_policy
from functions.fanout.incident_store import INCIDENTS, FirestoreIncidentStore
from functions.fanout.incidents import acknowledge, open_incident
from tests.fanout.conftest import make_transition

pytestmark = pytest.mark.emulators
T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def test_an_older_instance_acknowledges_an_incident_a_newer_one_wrote_and_keeps_its_fields(fs) -> None:  # type: ignore[no-untyped-def]
    store = FirestoreIncidentStore()
    opened = open_incident(
        "critical-" + "a" * 24 + "-i1",
        group_id="critical-" + "a" * 24,
        severity="critical",
        group_labels={"rule": "p95-latency", "service": "svc"},
        firing=[make_transition(severity="critical", service="svc", at=T0)],
        now=T0,
        policy=load_policy(DEFAULT_POLICY_FILE),
    )
    assert store.create(opened)[1] is True
    ref = fs.collection(INCIDENTS).document(opened.id)
    newer = ref.get().to_dict()
    reassigned = {"at": T0 + timedelta(minutes=1), "kind": "reassigned", "by": "bot", "team": "sre-eu"}
    ref.set(
        {
            **newer,
            "assignee": "grace@example.com",
            "timeline": [*newer["timeline"], reassigned],
            "alerts": [{**a, "dashboard": "https://d/x"} for a in newer["alerts"]],
        }
    )

    assert [i.id for i in store.list(state=None, priority=None, since=None, limit=10)] == [opened.id]
    changed = store.change(opened.id, lambda i: acknowledge(i, "ada", T0 + timedelta(minutes=3)))
    assert changed is not None
    assert changed[1].changed

    stored = ref.get().to_dict()
    assert stored["state"] == "acknowledged"
    assert stored["assignee"] == "grace@example.com"
    kept = next(e for e in stored["timeline"] if e["kind"] == "reassigned")
    assert kept["team"] == "sre-eu"
    assert kept["at"] == reassigned["at"]
    assert {a["dashboard"] for a in stored["alerts"]} == {"https://d/x"}
    assert "expire_at" not in stored  # open: the store sets none, and none read is written back
