"""What an evaluation cycle costs in Firestore and what it keeps, on the emulator, with every read
and write counted at the Firestore client: a steady alert is not written, a cycle reads only the
open states of its rule, quiet states expire, and a late cycle is ignored even where the newer one
wrote nothing."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from devtools.firestore_ops import FirestoreOps
from functions.alerts.engine import Evaluator
from functions.alerts.source import ReplaySource
from functions.alerts.state import KEEP_CYCLE, KEEP_FIRED, KEEP_NEVER_FIRED, effective
from functions.alerts.state_store import (
    CYCLES_COLLECTION,
    OUTBOX_COLLECTION,
    STATES_COLLECTION,
    FirestoreStateStore,
)
from shared.messages import AlertTransition
from tests.alerts.helpers import T0, rule

pytestmark = pytest.mark.emulators
M = timedelta(minutes=1)


def by_minute(series: dict[str, list[float]]) -> ReplaySource:
    """One point a minute from T0 per region."""
    source = ReplaySource()
    for region, values in series.items():
        source.add("m", {"region": region}, [(T0 + i * M, v) for i, v in enumerate(values)])
    return source


def stored(fs: Any, r: Any, region: str) -> dict[str, Any]:
    return fs.collection(STATES_COLLECTION).document(r.fingerprint({"region": region})).get().to_dict()


def test_a_steady_firing_alert_is_not_written_again(fs) -> None:  # type: ignore[no-untyped-def]
    r = rule(op=">", threshold=10, window="1m", group_by=["region"], keep_firing_for="2m")
    # Firing from minute 1, wobbling within 10%; eu jumps to 20 at minute 4 (a value worth writing).
    source = by_minute(
        {
            "us": [12, 12.4, 11.8, 12.2, 12.1, 12.0],
            "eu": [12, 12.0, 12.3, 11.9, 20.0, 20.0],
            "asia": [12, 11.7, 12.0, 12.5, 12.0, 12.2],
        }
    )
    store = FirestoreStateStore()
    evaluator = Evaluator(source, store)
    with FirestoreOps() as ops:
        assert len(evaluator.run([r], T0 + 1 * M).transitions) == 3
    assert ops.commits == 3  # the claim, the three alerts in one batch, the completion
    assert ops.writes[STATES_COLLECTION] == ops.writes[OUTBOX_COLLECTION] == 3
    with FirestoreOps() as ops:
        for minute in (2, 3):
            assert evaluator.run([r], T0 + minute * M).transitions == []
    assert ops.writes[STATES_COLLECTION] == 0
    assert ops.writes[OUTBOX_COLLECTION] == 0
    assert ops.writes[CYCLES_COLLECTION] == 2 * 2  # per cycle: the claim and the completion
    assert ops.reads[STATES_COLLECTION] == 2 * 3  # per cycle: the rule's open states, once
    with FirestoreOps() as ops:
        assert evaluator.run([r], T0 + 4 * M).transitions == []
    assert ops.writes[STATES_COLLECTION] == 1  # eu's value moved by more than 10%
    assert stored(fs, r, "eu")["value"] == 20.0
    # What the old rewrite stored, the rule's newest completed cycle still says.
    done = store.cycles()[r.name].completed_at
    assert done == T0 + 4 * M
    us = effective(store.snapshot(r.name)[r.fingerprint({"region": "us"})], done)
    assert (us.state, us.evaluated_at, us.last_active_at) == ("firing", T0 + 4 * M, T0 + 4 * M)


def test_keep_firing_for_counts_from_the_last_active_cycle_though_it_was_not_written(fs) -> None:  # type: ignore[no-untyped-def]
    r = rule(op=">", threshold=10, window="1m", keep_firing_for="3m", group_by=["region"])
    # Active at minutes 1-6 (written only at 1), clear from 7: last active at 6, resolved at 9.
    source = by_minute({"us": [5, 12, 12, 12, 12, 12, 12, 5, 5, 5, 5]})
    evaluator = Evaluator(source, FirestoreStateStore())
    moved = {m: evaluator.run([r], T0 + m * M).transitions for m in range(1, 11)}
    assert [(m, t.state) for m, ts in moved.items() for t in ts] == [(1, "firing"), (9, "resolved")]
    assert stored(fs, r, "us")["last_active_at"] == T0 + 6 * M


def test_a_cycle_reads_only_the_open_states_of_its_rule(fs) -> None:  # type: ignore[no-untyped-def]
    r = rule(op=">", threshold=10, window="1m", group_by=["region"])
    churned = {f"r{i}": [12.0, 5.0, 5.0, 5.0] for i in range(20)}  # fired once, quiet since
    source = by_minute({**churned, "us": [12.0] * 4, "eu": [12.0] * 4})
    evaluator = Evaluator(source, FirestoreStateStore())
    evaluator.run([r], T0)
    evaluator.run([r], T0 + 1 * M)
    with FirestoreOps() as ops:
        assert evaluator.run([r], T0 + 2 * M).transitions == []
    assert ops.reads[STATES_COLLECTION] == 2  # us and eu; the 20 resolved states are not read
    assert ops.writes[STATES_COLLECTION] == 0
    assert len(list(fs.collection(STATES_COLLECTION).stream())) == 22


def test_quiet_states_expire_and_an_active_one_does_not(fs) -> None:  # type: ignore[no-untyped-def]
    fast = rule(op=">", threshold=10, window="1m", group_by=["region"])
    slow = rule(name="slow", op=">", threshold=10, window="1m", group_by=["region"], **{"for": "5m"})
    source = by_minute({"us": [12, 5, 12], "eu": [12, 5, 5]})
    evaluator = Evaluator(source, FirestoreStateStore())
    evaluator.run([fast, slow], T0)
    assert stored(fs, fast, "us")["state"] == "firing"
    assert stored(fs, fast, "us")["expire_at"] is None
    assert stored(fs, slow, "eu")["state"] == "pending"
    assert stored(fs, slow, "eu")["expire_at"] is None

    evaluator.run([fast, slow], T0 + 1 * M)
    resolved = stored(fs, fast, "us")
    assert resolved["state"] == "resolved"
    assert resolved["expire_at"] == T0 + 1 * M + KEEP_FIRED
    never_fired = stored(fs, slow, "eu")
    assert never_fired["state"] == "inactive"
    assert never_fired["expire_at"] == T0 + 1 * M + KEEP_NEVER_FIRED

    evaluator.run([fast, slow], T0 + 2 * M)
    refired = stored(fs, fast, "us")
    assert (refired["state"], refired["sequence"]) == ("firing", 3)
    assert refired["expire_at"] is None  # active again: kept
    cycle = fs.collection(CYCLES_COLLECTION).document(fast.name).get().to_dict()
    assert cycle["expire_at"] == T0 + 2 * M + KEEP_CYCLE


def test_a_late_cycle_is_ignored_even_where_the_newer_one_wrote_nothing(fs) -> None:  # type: ignore[no-untyped-def]
    r = rule(op=">", threshold=10, window="1m", group_by=["region"])
    source = by_minute(
        {
            "steady": [12, 12, 12, 5, 12, 12],  # firing throughout; the late minute 3 says clear
            "quiet": [12, 12, 5, 12, 5, 5],  # resolved at 2, quiet since; the late minute 3 says active
        }
    )
    store = FirestoreStateStore()
    evaluator = Evaluator(source, store)
    seen = [
        (t.labels["region"], t.state)
        for m in (1, 2, 4, 5)
        for t in evaluator.run([r], T0 + m * M).transitions
    ]
    assert sorted(seen) == [("quiet", "firing"), ("quiet", "resolved"), ("steady", "firing")]
    before = {s.fingerprint: s for s in store.snapshot(r.name).values()}
    with FirestoreOps() as ops:
        late = evaluator.run([r], T0 + 3 * M)
    assert late.transitions == []
    assert not late.errors
    assert ops.writes[STATES_COLLECTION] == ops.writes[OUTBOX_COLLECTION] == 0
    assert store.snapshot(r.name) == before
    assert store.cycles()[r.name].completed_at == T0 + 5 * M


def test_a_cycle_overtaken_while_it_runs_stops_writing(fs) -> None:  # type: ignore[no-untyped-def]
    r = rule(op=">", threshold=10, window="1m", group_by=["region"])
    source = by_minute({"us": [12, 12, 5], "eu": [5, 5, 12]})

    class Overtaken(FirestoreStateStore):
        """A newer cycle claims the rule right after this one has read its states."""

        def open_states(self, rule_name: str) -> dict[str, Any]:
            states = super().open_states(rule_name)
            assert FirestoreStateStore().claim(rule_name, T0 + 3 * M)
            return states

    Evaluator(source, FirestoreStateStore()).run([r], T0 + 1 * M)  # us fires
    late = Evaluator(source, Overtaken()).run([r], T0 + 2 * M)  # would resolve us, fire eu
    assert late.transitions == []
    assert not late.errors
    assert stored(fs, r, "us")["state"] == "firing"
    assert stored(fs, r, "eu") is None
    cycle = FirestoreStateStore().cycles()[r.name]
    assert (cycle.claimed_at, cycle.completed_at) == (T0 + 3 * M, T0 + 1 * M)  # not completed at 2


def test_cycles_racing_at_different_times_make_each_transition_once(fs) -> None:  # type: ignore[no-untyped-def]
    r = rule(op=">", threshold=10, window="1m", group_by=["region"])
    regions = [f"r{i}" for i in range(10)]
    source = by_minute({region: [12.0, 12.0, 12.0] for region in regions})
    barrier = threading.Barrier(6)
    results: list[list[AlertTransition]] = []
    errors: list[BaseException] = []

    def evaluate(offset_ms: int) -> None:
        try:
            store = FirestoreStateStore()
            store.batch_alerts = 3  # several batches per cycle, each racing the other cycles'
            evaluator = Evaluator(source, store)
            barrier.wait()
            results.append(evaluator.run([r], T0 + 2 * M + timedelta(milliseconds=offset_ms)).transitions)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    # In pairs at one time: both of a pair pass the claim and race on the states (a batch that
    # loses is applied again alert by alert); a later pair overtakes an earlier one.
    threads = [threading.Thread(target=evaluate, args=(k // 2 * 7,)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    moved = [t for batch in results for t in batch]
    assert sorted(t.labels["region"] for t in moved) == regions
    assert len(list(fs.collection(OUTBOX_COLLECTION).stream())) == len(regions)
    assert {s.state for s in FirestoreStateStore().all_states()} == {"firing"}
