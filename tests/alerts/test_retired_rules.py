"""Open alerts of rules removed from the rules file or disabled: the decision, pure (``retire``,
``gone_rules``, and the sweep over the in-memory store). The handler on the emulators:
test_retired_rules_live.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from functions.alerts.engine import CycleResult, Evaluator
from functions.alerts.retired_rules import DISABLED, REMOVED, gone_rules, retire, retire_gone_rules
from functions.alerts.source import ReplaySource
from functions.alerts.state import AlertState, RuleCycle, to_us
from functions.alerts.state_store import MemoryStateStore
from shared.messages import AlertTransition
from tests.alerts.helpers import T0, rule, times

M = timedelta(minutes=1)


def _firing(sequence: int = 1) -> AlertState:
    return AlertState(
        fingerprint="f",
        rule="r",
        kind="threshold",
        labels={"region": "eu"},
        state="firing",
        pending_since=T0,
        firing_since=T0,
        last_active_at=T0,
        value=12.0,
        threshold=10.0,
        severity="high",
        sequence=sequence,
        evaluated_at=T0,
    )


def _fired() -> AlertTransition:
    return AlertTransition(
        transition_id="f-1",
        fingerprint="f",
        rule="r",
        kind="threshold",
        state="firing",
        previous_state="inactive",
        severity="critical",
        metric="queue.depth",
        labels={"region": "eu", "team": "queue"},
        annotations={"summary": "depth 12 in eu"},
        runbook=["drain it"],
        value=12.0,
        threshold=10.0,
        op=">",
        starts_at=T0,
        evaluated_at=T0,
    )


def test_only_rules_with_a_record_and_not_enabled_are_gone_and_why() -> None:
    configured = [
        rule(name="kept", op=">", threshold=1),
        rule(name="off", op=">", threshold=1, enabled=False),
    ]
    assert gone_rules({"kept", "off", "deleted"}, configured) == {"deleted": REMOVED, "off": DISABLED}
    assert gone_rules({"kept"}, configured) == {}


def test_a_firing_alert_of_a_rule_gone_resolves_as_it_fired_with_the_reason() -> None:
    now = T0 + 5 * M
    state, moved = retire(_firing(), _firing(), fired=_fired(), reason=REMOVED, now=now)
    assert state is not None
    assert moved is not None
    assert (state.state, state.resolved_at, state.sequence, state.evaluated_at) == ("resolved", now, 2, now)
    assert state.expire_at is not None  # quiet now: kept as long as any fired alert
    assert (moved.transition_id, moved.state, moved.previous_state) == ("f-2", "resolved", "firing")
    # What routes and closes it downstream is what opened it.
    assert (moved.labels, moved.metric, moved.severity, moved.op) == (
        _fired().labels,
        "queue.depth",
        "critical",
        ">",
    )
    assert moved.runbook == ["drain it"]
    assert moved.annotations == {
        "summary": "depth 12 in eu (resolved: rule removed from the configuration)",
        "resolved_reason": REMOVED,
    }
    assert (moved.starts_at, moved.ends_at, moved.evaluated_at) == (T0, now, now)


def test_without_the_firing_transition_the_state_alone_says_enough() -> None:
    _, moved = retire(_firing(), _firing(), fired=None, reason=DISABLED, now=T0 + M)
    assert moved is not None
    assert moved.labels == {"region": "eu"}
    assert moved.annotations["summary"] == "r (resolved: rule disabled)"


def test_a_pending_alert_of_a_rule_gone_goes_inactive_unannounced() -> None:
    pending = _firing(0).model_copy(update={"state": "pending", "firing_since": None})
    state, moved = retire(pending, pending, fired=None, reason=REMOVED, now=T0 + M)
    assert moved is None
    assert state is not None
    assert (state.state, state.pending_since, state.sequence) == ("inactive", None, 0)


def test_nothing_is_decided_twice_nor_over_a_newer_decision() -> None:
    now = T0 + 5 * M
    resolved, _ = retire(_firing(), _firing(), fired=None, reason=REMOVED, now=now)
    # Delivered again, or a racing cycle that lost: the alert is no longer open.
    assert retire(resolved, _firing(), fired=None, reason=REMOVED, now=now) == (None, None)
    # Fired again since it was seen (another instance still had the rule): the next sweep decides.
    assert retire(_firing(3), _firing(1), fired=None, reason=REMOVED, now=now) == (None, None)
    # The rule is configured again and a cycle at this time or later claimed it.
    claimed = RuleCycle(rule="r", claimed_us=to_us(now))
    assert retire(_firing(), _firing(), fired=None, reason=REMOVED, now=now, cycle=claimed) == (None, None)
    # A state written at or after this sweep's time is newer than it.
    assert retire(_firing(), _firing(), fired=None, reason=REMOVED, now=T0) == (None, None)


def _fire_in_memory(regions: list[str]) -> tuple[MemoryStateStore, Any]:
    r = rule(op=">", threshold=10, window="1m", group_by=["region"], labels={"team": "queue"})
    source = ReplaySource()
    for region in regions:
        source.add("m", {"region": region}, zip(times(3, 60), [12.0, 12.0, 12.0], strict=True))
    store = MemoryStateStore()
    assert len(Evaluator(source, store).run([r], T0 + M).transitions) == len(regions)
    return store, r


def test_the_sweep_is_bounded_per_cycle_and_idempotent() -> None:
    store, r = _fire_in_memory(["a", "b", "c", "d", "e"])
    other = rule(name="other", op=">", threshold=10)
    published: list[AlertTransition] = []
    made = []
    for minute in (2, 3, 4, 5):
        result = CycleResult(evaluated_at=T0 + minute * M)
        retire_gone_rules(store, published.append, [other], result, limit=2)
        assert not result.failures
        made.append(len(result.transitions))
    assert made == [2, 2, 1, 0]
    assert sorted(t.labels["region"] for t in published) == ["a", "b", "c", "d", "e"]
    assert {t.labels["team"] for t in published} == {"queue"}
    assert {s.state for s in store.all_states(rule=r.name)} == {"resolved"}


def test_a_rules_file_of_no_rule_closes_nothing() -> None:
    store, r = _fire_in_memory(["a"])
    result = CycleResult(evaluated_at=T0 + 2 * M)
    retire_gone_rules(store, None, [], result)
    assert result.transitions == []
    assert {s.state for s in store.all_states(rule=r.name)} == {"firing"}
