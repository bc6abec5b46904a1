"""A region's scaling state a newer version stored, read and written back by an older instance
during a deploy, on the emulator: the cycle runs, and what the newer version learned survives
(``shared/compat.py``)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from functions.scaling.service import run_cycle
from functions.scaling.settings import ScalingSettings
from functions.scaling.sources import MemoryGuard, MemoryHistory, RegionInputs
from functions.scaling.store import STATE_COLLECTION, FirestoreDecisionStore
from shared import clock
from tests.scaling.test_function import AT, RULES, busy_history

pytestmark = pytest.mark.emulators
NEWER_LEARNING = {"2026-11-23T14:00:00Z": 6100.0}


def test_an_older_instance_keeps_what_a_newer_one_learned_and_reads_its_decisions(fs) -> None:  # type: ignore[no-untyped-def]
    clock.set_clock(clock.FrozenClock(AT))
    store = FirestoreDecisionStore()
    kwargs = {
        "rules": RULES,
        "settings": ScalingSettings(ION_SCALING_CAPACITY_RPM=2000.0),
        "history": MemoryHistory({"us-central1": RegionInputs(busy_history(6000.0, AT))}),
        "guard": MemoryGuard(),
        "scaler": None,
        "announce": lambda r: None,
        "regions": ["us-central1"],
    }
    assert len(run_cycle(at=AT, store=store, **kwargs).records) == 1

    ref = fs.collection(STATE_COLLECTION).document("us-central1")
    stored = ref.get().to_dict()
    newer_record = {**stored["recent"][0], "outcome": "deferred"}
    newer_record["decision"] = {**newer_record["decision"], "bound_by": "capacity-cap"}
    ref.set(
        {
            **stored,
            "state": {**stored["state"], "weekly_peaks": NEWER_LEARNING},
            "forecaster": "v2",
            "last_outcome": "deferred",
            "recent": [newer_record, *stored["recent"]],
        }
    )

    later = run_cycle(at=AT + timedelta(minutes=5), store=store, **kwargs)
    assert len(later.records) == 1
    assert later.records[0].outcome in ("dry-run", "unchanged")
    after = ref.get().to_dict()
    assert after["state"]["weekly_peaks"] == NEWER_LEARNING
    assert after["forecaster"] == "v2"
    assert after["last_slot"] == "20261130T1405Z"
